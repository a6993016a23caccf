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
                    _grouped, _pooled_sd, _strategy_order, arm, at_selected_lr, data_label, endpoint, group_key,
                    holm, is_v2, planned_seeds, arm_contrast, INIT_CONTRAST, reference_endpoint, robustness, SEEDS_MIN,
                    lr_selection, mean_ci, paired_power, paired_test, sd_upper, seed_spread, seeds_needed, summarize)
from .writers import (BASELINES_SHOWN, CSV_COLUMNS, DASH, _csv_value, _f, _groups, _p, _params,  # noqa: F401
                      latex_escape, protocol_v2_markdown, seed_spread_markdown, seed_spread_text,
                      strategy_table_latex, strategy_table_markdown, summary_markdown, to_csv)


PLANNED_SEEDS = "primary (seeds 0-3)"
TRANSFER = "transfer loss"     # the primary comparison on the transfer set (main grid: 200 GSM8K test examples)


def protocol_v2(results: list[dict], allow_mixed: bool = False) -> tuple[list[dict], list[dict], list[dict]]:
    """(primary rows, secondary rows, lr selection) over every group with protocol-v2 cells (``stats.is_v2``).
    Where the primary endpoint has run seeds beyond the planned ``SEEDS_MIN`` (amendment 3), the secondary rows
    also hold the primary endpoint over seeds 0 to SEEDS_MIN - 1 alone, the original plan (endpoint
    ``PLANNED_SEEDS``), and, where cells record a ``transfer_loss``, the primary comparison on it (endpoint
    ``TRANSFER``: each arm at its own selected lr, Holm over the same family). Arms of the scaling ablation
    (stage 5) are a Holm family of their own (``stats.endpoint``): their rows go with the secondary ones, so the
    primary rows are exactly the primary family."""
    v2 = [r for r in results if is_v2(r)]
    primary, secondary = [], []
    for model, data, budget in sorted({group_key(r) for r in v2}):
        where = dict(budget=budget, model=model, data=data, allow_mixed=allow_mixed)
        rows = endpoint(v2, which="primary", **where)
        primary += [r for r in rows if r["endpoint"] == "primary"]
        secondary += [r for r in rows if r["endpoint"] != "primary"] + endpoint(v2, which="secondary", **where)
        if any(_finite(r.get("transfer_loss")) for r in v2 if group_key(r) == (model, data, budget)):
            secondary += [dict(r, endpoint=TRANSFER) for r in endpoint(v2, which="primary", metric="transfer_loss",
                                                                       **where) if r["endpoint"] == "primary"]
        if any(s >= SEEDS_MIN for r in rows for s in r["seeds"]):
            secondary += [dict(r, endpoint=PLANNED_SEEDS)
                          for r in endpoint(planned_seeds(v2), which="primary", **where) if r["endpoint"] == "primary"]
    return primary, secondary, lr_selection(v2)


def init_contrasts(results: list[dict], allow_mixed: bool = False) -> list[dict]:
    """``stats.arm_contrast`` of ``INIT_CONTRAST`` (eva minus eva[rho1]) for every protocol-v2 group in which both
    arms have a cell."""
    v2 = [r for r in results if is_v2(r)]
    out = []
    for model, data, budget in sorted({group_key(r) for r in v2}):
        arms = {arm(r) for r in v2 if group_key(r) == (model, data, budget)}
        if set(INIT_CONTRAST) <= arms:
            out.append(arm_contrast(v2, *INIT_CONTRAST, budget=budget, model=model, data=data,
                                    allow_mixed=allow_mixed))
    return out


def protocol_v2_robustness(results: list[dict], allow_mixed: bool = False) -> list[dict]:
    """``stats.robustness`` of the primary endpoint over every protocol-v2 group (uniform's frontier is read from
    all budgets of the group's model and data)."""
    v2 = [r for r in results if is_v2(r)]
    out = []
    for model, data, budget in sorted({group_key(r) for r in v2}):
        group = [r for r in v2 if group_key(r) == (model, data, budget)]
        frontier_cells = [r for r in v2 if group_key(r)[:2] == (model, data)]
        out += robustness(group + [r for r in frontier_cells if r not in group], budget=budget, model=model,
                          data=data, allow_mixed=allow_mixed)
    return out


PRIOR_REFERENCE = REFERENCE      # the prior study's baseline: every module at its rank (= uniform)


def prior_setting(results: list[dict], allow_mixed: bool = False) -> list[dict]:
    """The prior setting's comparisons (EXPERIMENTS.md, Part 2, D), for cells with ``split: prior``: each placement
    against uniform at the reference budget (the budget uniform ran at, e.g. r16), paired by seed, (i) at its
    natural budget (any other budget) and (ii) at the matched budget, on the 500 held-out examples
    (``transfer_loss``, primary) and on the prior 20 (``eval_loss``). Holm within each (comparison, metric)."""
    cells = [r for r in results if r["config"].get("split") == "prior" and _finite(r.get("eval_loss"))]
    ref_budgets = sorted({str(r["config"]["budget"]) for r in cells if arm(r) == PRIOR_REFERENCE})
    if len(ref_budgets) != 1:
        return []
    ref = (PRIOR_REFERENCE, ref_budgets[0])
    arms = sorted({(arm(r), str(r["config"]["budget"])) for r in cells} - {ref})
    rows = []
    for metric in ("transfer_loss", "eval_loss"):
        if not any(_finite(r.get(metric)) for r in cells):
            continue
        for kind, chosen in (("natural", [a for a in arms if a[1] != ref[1]]),
                             ("matched", [a for a in arms if a[1] == ref[1]])):
            if chosen:
                for row in reference_endpoint(cells, ref, chosen, metric, allow_mixed=allow_mixed):
                    rows.append({**row, "comparison": kind})
    return rows


def prior_setting_markdown(rows: list[dict]) -> list[str]:
    """summary.md's section for the prior setting (empty without prior-split cells)."""
    if not rows:
        return []
    from .writers import prior_setting_table, table_markdown
    return ["## The prior study's setting: placements against all modules (uniform)", "",
            "Δ = loss of the placement − uniform's at the reference budget, paired by seed (negative = better); "
            "natural = each placement at its own count (the prior comparison), matched = the same count. "
            "Primary: the 500 held-out examples (transfer_loss); for the record: the prior 20 (eval_loss). Holm "
            "within each comparison and metric; the verdict follows the adjusted interval.", "",
            table_markdown(prior_setting_table(rows))]


# Part 1 and its replications (EXPERIMENTS.md, Part 2), in the order the paper shows them: (experiment, label).
REPLICATIONS = (("main", "part 1 (SmolLM2, Alpaca, 125 steps)"), ("replication_long", "A: 500 steps"),
                ("replication_gsm8k", "B: GSM8K"), ("replication_gemma", "C: Gemma-3-270M"),
                ("replication_prior", "D: prior setting (matched budget)"))


def replication_effects(exps: dict[str, list[dict]], budget: str = "r8") -> list[tuple[str, list[dict]]]:
    """[(label, rows)] for part 1 and each replication with at least one strategy of two or more seed pairs: the
    primary endpoint at ``budget`` (``protocol_v2``) for protocol-v2 experiments, the matched comparison on the
    500 held-out examples for the prior setting (``prior_setting``). Rows are ``endpoint`` rows."""
    out = []
    for exp, label in REPLICATIONS:
        results = [r for r in exps.get(exp, []) if "eval_loss" in r]
        if not results:
            continue
        if exp == "replication_prior":
            rows = [r for r in prior_setting(results) if r["comparison"] == "matched"
                    and r["endpoint"] == "transfer_loss"]
        else:
            rows = [r for r in protocol_v2(results)[0] if r["budget"] == budget]
        rows = [r for r in rows if r["n_pairs"] >= 2]
        if rows:
            out.append((label, rows))
    return out


PAPER_TABLE_EXP = "pilot"   # the experiment whose strategy table the paper prints (paper.MAIN_EXP)


def write_report(experiment: str, results: list[dict], summary_dir: Path, paper_dir: Path | None,
                 allow_mixed: bool = False) -> list[Path]:
    warns: list[str] = []
    chosen = at_selected_lr(results)
    rows = summarize(chosen, warns, allow_mixed)
    summary_dir.mkdir(parents=True, exist_ok=True)
    written = []
    md = summary_markdown(rows, experiment, warns, seed_spread(chosen))
    extra = protocol_v2_markdown(*protocol_v2(results, allow_mixed), protocol_v2_robustness(results, allow_mixed),
                                 init_contrasts(results, allow_mixed)) + \
        prior_setting_markdown(prior_setting(results, allow_mixed))
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
    # the paper prints one experiment's strategy table: reporting any other must not overwrite it unasked
    default = ROOT / "paper" / "generated" if a.experiment == PAPER_TABLE_EXP else None
    paper_dir = None if a.no_paper else Path(a.paper_dir) if a.paper_dir else default
    for p in write_report(a.experiment, results, results_root() / a.experiment, paper_dir,
                          getattr(a, "allow_mixed", False)):
        print(f"wrote {p}")
    return 0
