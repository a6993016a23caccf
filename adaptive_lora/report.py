"""``adaptive-lora report <exp>``: the orchestrator. Statistics live in ``adaptive_lora.stats``, text in
``adaptive_lora.writers``; this module reads results, calls both, writes files, and re-exports the old public
names (``report.summarize``, ``report.mean_ci``, ``report.strategy_table_latex``, ...) for existing callers.

Writes ``results/<exp>/summary.csv`` and ``summary.md``, and the strategy table
``paper/generated/strategy_table.tex`` (booktabs; ``\\input`` it inside a table environment) and ``.md``.
Per (model, data, budget, strategy), over seeds: n, mean, sample std and t-interval of the eval loss,
exp(mean loss), parameters, seconds, and the paired difference to uniform (t-interval, paired t p, Holm's p);
see ``stats.summarize``. Protocol-v2 cells (``dev_loss`` and ``config.lr``) are summarised at each strategy's
selected lr, and summary.md gains the lr selection and the primary / secondary endpoint tables.
"""
from __future__ import annotations

from pathlib import Path

from .errors import UserError
from .stats import (ALPHA, BASELINES, CONF, DELTA, NAN, POWER, REFERENCE, _by_seed, _finite,  # noqa: F401
                    _grouped, _pooled_sd, _strategy_order, at_selected_lr, is_v2, data_label, endpoint, group_key, holm,
                    lr_selection, mean_ci, paired_power, paired_test, sd_upper, seed_spread, seeds_needed, summarize)
from .writers import (BASELINES_SHOWN, CSV_COLUMNS, DASH, _csv_value, _f, _groups, _p, _params,  # noqa: F401
                      latex_escape, protocol_v2_markdown, seed_spread_markdown, seed_spread_text,
                      strategy_table_latex, strategy_table_markdown, summary_markdown, to_csv)


def protocol_v2(results: list[dict], allow_mixed: bool = False) -> tuple[list[dict], list[dict], list[dict]]:
    """(primary rows, secondary rows, lr selection) over every group with protocol-v2 cells (``stats.is_v2``)."""
    v2 = [r for r in results if is_v2(r)]
    primary, secondary = [], []
    for model, data, budget in sorted({group_key(r) for r in v2}):
        for which, out in (("primary", primary), ("secondary", secondary)):
            out += endpoint(v2, budget=budget, model=model, data=data, which=which, allow_mixed=allow_mixed)
    return primary, secondary, lr_selection(v2)


def write_report(experiment: str, results: list[dict], summary_dir: Path, paper_dir: Path | None,
                 allow_mixed: bool = False) -> list[Path]:
    warns: list[str] = []
    chosen = at_selected_lr(results)
    rows = summarize(chosen, warns, allow_mixed)
    summary_dir.mkdir(parents=True, exist_ok=True)
    written = []
    md = summary_markdown(rows, experiment, warns, seed_spread(chosen))
    extra = protocol_v2_markdown(*protocol_v2(results, allow_mixed))
    if extra:
        md = md.rstrip("\n") + "\n\n" + "\n".join(extra)
    for name, text in (("summary.csv", to_csv(rows)), ("summary.md", md)):
        (summary_dir / name).write_text(text)
        written.append(summary_dir / name)
    if paper_dir is not None:
        paper_dir.mkdir(parents=True, exist_ok=True)
        for name, text in (("strategy_table.tex", strategy_table_latex(rows, experiment)),
                           ("strategy_table.md", strategy_table_markdown(rows))):
            (paper_dir / name).write_text(text)
            written.append(paper_dir / name)
    for w in warns:
        print(f"warning: {w}")
    return written


def cmd_report(a) -> int:
    from .results import ROOT, load_results, results_root

    results = load_results(a.experiment)
    if not results:
        raise UserError(f"no results in {results_root() / a.experiment}/")
    paper_dir = None if a.no_paper else Path(a.paper_dir) if a.paper_dir else ROOT / "paper" / "generated"
    for p in write_report(a.experiment, results, results_root() / a.experiment, paper_dir,
                          getattr(a, "allow_mixed", False)):
        print(f"wrote {p}")
    return 0
