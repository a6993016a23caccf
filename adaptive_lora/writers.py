"""Writers: Markdown, LaTeX and CSV text from the rows of ``adaptive_lora.stats``. No statistics here.

Undefined values (NaN) print as "–" in Markdown, "--" in LaTeX and blank in CSV. New tables are ``Table``s
(header, alignments, cell rows, group captions) rendered by ``table_markdown`` / ``table_latex``: a table's
content is built once and both formats come from it (``endpoint_table`` is one). The pilot's summary and strategy
tables predate ``Table`` and are kept byte-identical (the committed paper table is tested against them).
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

from .stats import ALPHA, DELTA, EQUIVALENCE_MARGIN, POWER, REFERENCE, _finite

BASELINES_SHOWN = {"adalora": "AdaLoRA", "eva": "EVA"}

CSV_COLUMNS = ["model", "data", "budget", "strategy", "n", "seeds", "eval_loss_mean", "eval_loss_std",
               "eval_loss_ci95_low", "eval_loss_ci95_high", "ppl_of_mean_loss", "trainable_params_mean",
               "budget_params", "train_seconds_mean", "n_pairs", "diff_vs_uniform_mean", "diff_ci95_low",
               "diff_ci95_high", "p_paired_t", "p_holm", "note"]


def _csv_value(v):
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(round(v, 10))
    return v


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _csv_value(r.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


DASH = "–"


def _f(v, fmt: str, dash: str = DASH) -> str:
    return format(v, fmt) if _finite(v) else dash


def _p(v, dash: str = DASH) -> str:
    if not _finite(v):
        return dash
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def _params(v) -> str:
    if not _finite(v):
        return DASH
    return f"{v / 1e6:.3f}M" if v >= 1e5 else f"{v:,.0f}"


def _groups(rows):
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault((r["model"], r["data"], r["budget"]), []).append(r)
    return out


def summary_markdown(rows: list[dict], experiment: str, warns: list[str] = (), spread: list[dict] = ()) -> str:
    lines = [f"# Summary of experiment `{experiment}`", "",
             "Eval loss: mean ± sample std over seeds, 95 % CI of the mean (t distribution). "
             "PPL = exp(mean eval loss). Δ = strategy − uniform at the same seed (negative = better); "
             "p = paired t-test, Holm-adjusted across the strategies of each group. "
             f"{DASH} = undefined (n < 2 or no paired uniform run; see the note).", ""]
    for (model, data, budget), rs in _groups(rows).items():
        lines += [f"## {model} · {data} · budget {budget}", "",
                  "| strategy | n | eval loss | 95 % CI | PPL | trainable | train s | Δ vs uniform [95 % CI] "
                  "| p | p (Holm) | note |",
                  "| --- | ---: | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
        for r in rs:
            ci = (f"[{r['eval_loss_ci95_low']:.4f}, {r['eval_loss_ci95_high']:.4f}]"
                  if _finite(r["eval_loss_ci95_low"]) else DASH)
            diff = _f(r["diff_vs_uniform_mean"], "+.4f")
            if _finite(r["diff_ci95_low"]):
                diff += f" [{r['diff_ci95_low']:+.4f}, {r['diff_ci95_high']:+.4f}]"
            lines.append(f"| {r['strategy']} | {r['n']} | {_f(r['eval_loss_mean'], '.4f')} ± "
                         f"{_f(r['eval_loss_std'], '.4f')} | {ci} | {_f(r['ppl_of_mean_loss'], '.2f')} | "
                         f"{_params(r['trainable_params_mean'])} | {_f(r['train_seconds_mean'], '.0f')} | {diff} | "
                         f"{_p(r['p_paired_t'])} | {_p(r['p_holm'])} | {r['note']} |")
        lines.append("")
    lines += seed_spread_markdown(spread)
    if warns:
        lines += ["## Warnings", "", *(f"- {w}" for w in warns), ""]
    return "\n".join(lines)


def strategy_table_markdown(rows: list[dict]) -> str:
    lines = ["| model · data · budget | strategy | n | trainable | eval loss ± 95 % CI | PPL | Δ vs uniform "
             "[95 % CI] | p (Holm) |", "| --- | --- | ---: | ---: | --- | ---: | --- | ---: |"]
    for (model, data, budget), rs in _groups(rows).items():
        for r in rs:
            loss = _f(r["eval_loss_mean"], ".4f") + (f" ± {r['eval_loss_ci95_high'] - r['eval_loss_mean']:.4f}"
                                                     if _finite(r["eval_loss_ci95_high"]) else "")
            diff = "(reference)" if r["strategy"] == REFERENCE else _f(r["diff_vs_uniform_mean"], "+.4f")
            if _finite(r["diff_ci95_low"]):
                diff += f" [{r['diff_ci95_low']:+.4f}, {r['diff_ci95_high']:+.4f}]"
            lines.append(f"| {model} · {data} · {budget} | {r['strategy']} | {r['n']} | "
                         f"{_params(r['trainable_params_mean'])} | {loss} | {_f(r['ppl_of_mean_loss'], '.2f')} | "
                         f"{diff} | {_p(r['p_holm'])} |")
    return "\n".join(lines) + "\n"


def latex_escape(s: str) -> str:
    repl = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(repl.get(ch, ch) for ch in str(s))


def strategy_table_latex(rows: list[dict], experiment: str = "") -> str:
    """A booktabs tabular (needs \\usepackage{booktabs}); one block per (model, data, budget)."""
    ncol = 7
    out = [f"% generated by `adaptive-lora report {experiment}` from results/{experiment}/ -- do not edit",
           r"\begin{tabular}{lrrlrlr}", r"\toprule",
           r"Strategy & $n$ & Params & Eval loss ($\pm$ 95\,\% CI) & PPL & $\Delta$ vs.\ uniform [95\,\% CI] "
           r"& $p_\mathrm{Holm}$ \\", r"\midrule"]
    groups = _groups(rows)
    for gi, ((model, data, budget), rs) in enumerate(groups.items()):
        if len(groups) > 1:
            if gi:
                out.append(r"\midrule")
            out.append(rf"\multicolumn{{{ncol}}}{{l}}{{\textit{{{latex_escape(model)}, {latex_escape(data)}, "
                       rf"budget {latex_escape(budget)}}}}} \\")
        for r in rs:
            loss = _f(r["eval_loss_mean"], ".4f", "--")
            if _finite(r["eval_loss_ci95_high"]):
                loss += rf" $\pm$ {r['eval_loss_ci95_high'] - r['eval_loss_mean']:.4f}"
            if r["strategy"] == REFERENCE:
                diff = "(reference)"
            else:
                diff = _f(r["diff_vs_uniform_mean"], "+.4f", "--")
                if _finite(r["diff_ci95_low"]):
                    diff += f" [{r['diff_ci95_low']:+.4f}, {r['diff_ci95_high']:+.4f}]"
                if _finite(r["diff_vs_uniform_mean"]):
                    diff = diff.replace("-", "$-$")
            params = _params(r["trainable_params_mean"]).replace(",", "{,}").replace(DASH, "--")
            p = _p(r["p_holm"], "--").replace("<", "$<$")
            out.append(f"{latex_escape(r['strategy'])} & {r['n']} & {params} & {loss} & "
                       f"{_f(r['ppl_of_mean_loss'], '.2f', '--')} & {diff} & {p} " + r"\\")
    out += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(out)



# ------------------------------------------------------------------------------------------------ seed spread
def seed_spread_markdown(spread: list[dict]) -> list[str]:
    """The 'seeds needed' section of summary.md."""
    if not spread:
        return []
    lines = ["## Seed spread and seeds needed", "",
             f"sd = pooled sample standard deviation over seeds (df in brackets); paired = of strategy − uniform at "
             f"the same seed; seeds needed for a {DELTA} nat paired difference at power {POWER:.0%}, two-sided "
             f"α = {ALPHA} (plain, Holm's first step α/m, and Holm with the 95 % upper bound of the paired sd).", "",
             "| model · data · budget | sd seeds | sd uniform | sd paired [95 % upper] | Δ range | seeds needed "
             "(α / α/m / upper) |", "| --- | --- | --- | --- | --- | --- |"]
    for s in spread:
        def sd(v, df):
            return f"{v:.4f} ({df})" if _finite(v) else DASH
        need = " / ".join(DASH if n is None else str(n) for n in
                          (s["seeds_needed"], s["seeds_needed_holm"], s["seeds_needed_upper"]))
        rng = (f"{s['diff_min']:+.4f} … {s['diff_max']:+.4f}" if _finite(s["diff_min"]) else DASH)
        lines.append(f"| {s['model']} · {s['data']} · {s['budget']} | {sd(s['sd_seed'], s['df_seed'])} | "
                     f"{sd(s['sd_uniform'], s['df_uniform'])} | {sd(s['sd_diff'], s['df_diff'])} "
                     f"[{_f(s['sd_diff_upper'], '.4f')}] | {rng} | {need} |")
    return lines + [""]


def seed_spread_text(s: dict | None, latex: bool = False, planned: int | None = None) -> str:
    """The pilot's 'seed spread vs strategy differences' paragraph (EXPERIMENTS.md, the paper), from one
    ``seed_spread`` row; every number is generated. ``latex`` switches minus signs, alpha, % and thousands.
    ``planned``: the seeds per arm the main grid runs, set against the seeds needed (else a recommendation)."""
    def num(x: float, signed: bool = False) -> str:
        t = f"{x:+.4f}" if signed else f"{x:.4f}"
        return t.replace("-", "$-$") if latex else t.replace("-", "−")

    def count(n: int | None) -> str:
        t = f"{n:,}" if n is not None else "more than 10,000"
        return t.replace(",", "{,}") if latex else t

    pct = r"\,\%" if latex else " %"
    if not s or not s["df_diff"]:
        return ("The seed spread cannot be estimated yet: no strategy at this budget has two seeds paired with "
                "uniform rank, so the number of seeds the main grid needs is still open.")
    test = (rf"$\alpha = {s['alpha']:g}$ (two-sided paired $t$-test)" if latex else
            f"α = {s['alpha']:g} (two-sided paired t-test)")
    n, n_holm, n_up = s["seeds_needed"], s["seeds_needed_holm"], s["seeds_needed_upper"]
    span = f"{num(s['diff_min'], True)} to {num(s['diff_max'], True)} nats"
    largest, what = s["max_abs_diff"], "The largest of them"
    if s["baselines"] and _finite(s["alloc_min"]):
        span += (f" ({num(s['alloc_min'], True)} to {num(s['alloc_max'], True)} among the layerwise allocations, "
                 f"without {' and '.join(BASELINES_SHOWN.get(b, b) for b in s['baselines'])})")
        largest, what = s["alloc_max_abs"], "The largest among the allocations"
    close = largest < s["sd_diff"]
    text = (f"With up to {s['max_seeds']} seeds per strategy at {s['budget']}, the eval loss of uniform rank "
            f"varies with a standard deviation of {num(s['sd_uniform'])} nats ({num(s['sd_seed'])} pooled over the "
            f"{s['seeded_strategies']} strategies with two or more seeds; {s['df_uniform']} and {s['df_seed']} "
            f"degrees of freedom), and the strategies' mean paired differences to uniform span {span}. "
            f"{what} ({num(largest)} nats) is {'smaller' if close else 'larger'} than the seed-to-seed standard "
            f"deviation of a paired difference ({num(s['sd_diff'])} nats with {s['df_diff']} degrees of freedom; "
            f"one-sided 95{pct} upper bound {num(s['sd_diff_upper'])}): "
            + ("with this many seeds the strategies are within each other's noise. " if close else
               ("pairing by seed removes part of the seed-to-seed variation, and differences of this size stand "
                "out with few seeds. " if s["sd_diff"] < s["sd_uniform"] else
                "differences of this size stand out with few seeds. "))
            + (f"Sized for the smallest effect the pilot detected ({s['delta_source'].replace('_', chr(92) + '_') if latex else s['delta_source']}, "
               f"{s['delta']:g} nats after Holm's correction), r" if s.get("delta_source") else "R")
            + f"esolving a paired difference of {s['delta']:g} nats with {round(100 * s['power'])}{pct} power at "
            f"{test} takes {count(n)} seeds; with Holm's correction over the {s['strategies']} strategies, "
            f"{count(n_holm)}; and {count(n_up)} if the paired standard deviation is at its upper bound. ")
    if planned is not None:
        return text + planned_seeds_text(planned, n, n_holm, n_up, count)
    if n_up is not None:
        return text + (f"The main grid should therefore run {count(n_up)} seeds per arm, enough even if the pilot "
                       f"underestimates the spread.")
    if n_holm is not None:
        return text + (f"The main grid needs at least {count(n_holm)} seeds per arm at the estimated spread, and "
                       "more if the pilot underestimates it.")
    return text + f"Differences of {s['delta']:g} nats are out of reach of any affordable number of seeds."


def planned_seeds_text(planned: int, n, n_holm, n_up, count) -> str:
    """How the main grid's ``planned`` seeds per arm compare with the pilot's seeds-needed figures (None: more
    than any affordable number)."""
    ok = [n_ is not None and planned >= n_ for n_ in (n, n_holm, n_up)]
    meets = ("all three" if all(ok) else "the Holm-adjusted figure but not the upper bound" if ok[1] else
             "the unadjusted figure only" if ok[0] else "none of them")
    return (f"The main grid planned {count(planned)} seeds per arm, which meets {meets}; its seeds also draw the "
            "training examples, which the pilot's did not, so its spread may be larger, and its own intervals "
            "(with any seeds its planned rule adds), not this calculation, decide.")




# ------------------------------------------------------------------------------------ generic tables (v2)
@dataclass(frozen=True)
class Cell:
    """One table cell in both target formats: ``md`` (Markdown, Unicode) and ``tex`` (LaTeX, escaped)."""
    md: str
    tex: str


def text(s) -> Cell:
    return Cell(str(s), latex_escape(s))


def ident(s) -> Cell:
    """An identifier (a strategy name, as the CLI spells it): plain in Markdown, \\texttt in LaTeX, as in the
    paper's running text."""
    return Cell(str(s), rf"\texttt{{{latex_escape(s)}}}")


def num(v, fmt: str = ".4f") -> Cell:
    """A number; NaN/None -> "–" / "--"; minus signs become $-$ in LaTeX, thousands separators {,}."""
    if not _finite(v):
        return Cell(DASH, "--")
    s = format(v, fmt)
    return Cell(s, s.replace("-", "$-$").replace(",", "{,}"))


def lr_cell(lr) -> Cell:
    """A learning rate: "0.0003" / "3.33e-05" in Markdown, ``fmt_lr``'s $3 \\times 10^{-4}$ in LaTeX, so a table
    whose rates span decades reads in one format; NaN/None as ``num``."""
    return Cell(f"{lr:g}", fmt_lr(lr)) if _finite(lr) else num(lr)


def pval(v) -> Cell:
    s = _p(v)
    return Cell(s, _p(v, "--").replace("<", "$<$"))


def bound_digits(v: float, digits: int = 4) -> int:
    """Decimals for an interval bound: ``digits``, or up to 3 more while a non-zero bound would print as 0 (a bound
    of -0.00003 shows as -0.00003, not -0.0000, so an interval that excludes 0 is seen to)."""
    for d in range(digits, digits + 4):
        if not v or round(v, d) != 0:
            return d
    return digits   # smaller than that: it is zero at any width worth printing


def interval(lo, hi, digits: int = 4) -> Cell:
    """A signed interval, "[-0.0007, +0.0002]"; a bound that would print as zero gets more decimals
    (``bound_digits``)."""
    if not (_finite(lo) and _finite(hi)):
        return Cell(DASH, "--")
    a, b = (num(v, f"+.{bound_digits(v, digits)}f") for v in (lo, hi))
    return Cell(f"[{a.md}, {b.md}]", f"[{a.tex}, {b.tex}]")


@dataclass
class Table:
    """Header cells, column alignments ("l"/"r"), and groups of rows; a group's caption (None: no caption row)
    spans all columns."""
    header: list[Cell]
    align: str
    groups: list[tuple[str | None, list[list[Cell]]]] = field(default_factory=list)

    def __post_init__(self):
        assert len(self.header) == len(self.align)


def table_markdown(t: Table) -> str:
    """GitHub Markdown; a group caption becomes a bold first-column row."""
    al = {"l": "---", "r": "---:"}
    out = ["| " + " | ".join(c.md for c in t.header) + " |", "| " + " | ".join(al[a] for a in t.align) + " |"]
    for caption, rows in t.groups:
        if caption is not None and len(t.groups) > 1:
            out.append("| " + " | ".join([f"**{caption}**"] + [""] * (len(t.align) - 1)) + " |")
        for r in rows:
            assert len(r) == len(t.align), r
            out.append("| " + " | ".join(c.md for c in r) + " |")
    return "\n".join(out) + "\n"


def table_latex(t: Table, comment: str = "") -> str:
    """A booktabs tabular (\\usepackage{booktabs}); \\input it inside a table environment."""
    out = ([f"% {comment}"] if comment else []) + [rf"\begin{{tabular}}{{{t.align}}}", r"\toprule",
                                                   " & ".join(c.tex for c in t.header) + r" \\", r"\midrule"]
    for gi, (caption, rows) in enumerate(t.groups):
        if caption is not None and len(t.groups) > 1:
            if gi:
                out.append(r"\midrule")
            out.append(rf"\multicolumn{{{len(t.align)}}}{{l}}{{\textit{{{latex_escape(caption)}}}}} \\")
        for r in rows:
            assert len(r) == len(t.align), r
            out.append(" & ".join(c.tex for c in r) + r" \\")
    return "\n".join(out + [r"\bottomrule", r"\end{tabular}", ""])


def endpoint_group(r: dict) -> str:
    """The default group of an endpoint table: "model, data, budget b, e endpoint"."""
    return f"{r['model']}, {r['data']}, budget {r['budget']}, {r['endpoint']} endpoint"


def endpoint_table(rows: list[dict], notes: bool = True, group=endpoint_group) -> Table:
    """The primary / secondary endpoint (``stats.endpoint`` rows, any number of groups): Δ = strategy − uniform
    test loss, unadjusted and Holm step-down intervals side by side, Holm p, the verdict (adjusted interval);
    ``notes=False`` leaves the note column out (the paper's width). One captioned group per ``group(row)``."""
    header = [text("strategy"), text("lr"), Cell("n", "$n$"), Cell("Δ vs uniform", r"$\Delta$ vs.\ uniform"),
              Cell("95 % CI", r"95\,\% CI"), Cell("Holm-adjusted CI", "Holm-adjusted CI"),
              Cell("p (Holm)", r"$p_\mathrm{Holm}$"), text("verdict")] + ([text("note")] if notes else [])
    groups: dict[str, list[list[Cell]]] = {}
    for r in rows:
        groups.setdefault(group(r), []).append(
            [ident(r["strategy"]), lr_cell(r["lr"]), num(r["n_pairs"], "d"), num(r["diff_mean"], "+.4f"),
             interval(r["ci_low"], r["ci_high"]), interval(r["adj_ci_low"], r["adj_ci_high"]), pval(r["p_holm"]),
             text(r["verdict"])] + ([text(r["note"])] if notes else []))
    return Table(header, "llrllll" + "l" * (1 + notes), list(groups.items()))


def lr_grid_table(selection: list[dict], group=None) -> Table:
    """``stats.lr_selection`` rows as a grid with one row per learning rate run and one column per strategy (dev
    loss, seed 0; the selected one marked * / bold; "–" where a strategy did not run at that lr), then a row saying
    whether a worse lr brackets each selection on both sides. Learning rates run down the page so that extending a
    grid adds a row, not a column the page cannot hold. One captioned group per ``group(row)`` (default: "model,
    data, budget b"), each with its own learning rates."""
    group = group or (lambda s: f"{s['model']}, {s['data']}, budget {s['budget']}")
    strategies = list(dict.fromkeys(s["strategy"] for s in selection))
    by_group: dict[str, dict[str, dict]] = {}
    for s in selection:
        by_group.setdefault(group(s), {})[s["strategy"]] = s

    def loss(s: dict | None, lr: float) -> Cell:
        dev = dict(s["curve"]) if s else {}
        if lr not in dev:
            return Cell(DASH, "--")
        if not math.isfinite(dev[lr]):
            return text("diverged")
        c = num(dev[lr])
        return Cell(c.md + "*", rf"\textbf{{{c.tex}}}") if lr == s["lr"] else c

    groups = []
    for name, arms in by_group.items():
        lrs = sorted({lr for s in arms.values() for lr, _ in s["curve"]})
        rows = [[lr_cell(lr)] + [loss(arms.get(st), lr) for st in strategies] for lr in lrs]
        rows.append([text("bracketed")] + [text(("yes" if arms[st]["bracketed"] else "no") if st in arms else DASH)
                                           for st in strategies])
        groups.append((name, rows))
    return Table([text("peak lr")] + [ident(st) for st in strategies], "l" + "r" * len(strategies), groups)


def fmt_lr(lr: float) -> str:
    """1e-3 -> $10^{-3}$, 3e-4 -> $3 \\times 10^{-4}$, 2.08e-3 -> $2.08 \\times 10^{-3}$ (LaTeX math)."""
    e = math.floor(math.log10(lr) + 1e-9)
    m = lr / 10 ** e
    mantissa = "" if abs(m - 1) < 1e-9 else f"{m:.3g} \\times "
    return f"${mantissa}10^{{{e}}}$"


def _runs_at(s: dict, selection: list[dict]) -> str | None:
    """The arm whose selected lr an arm of ``stats.lr_selection`` borrows, or None. Protocol v2 sweeps the lr of a
    few arms only: a variant (``eva[rho1]``, ``shuffled:gradient``) runs at its parent arm's lr and every other arm
    at uniform's, so a lone point at that lr is no selection and "extend the grid" would be wrong advice."""
    if len(s["curve"]) != 1 or s["strategy"] == REFERENCE:
        return None
    group = {x["strategy"]: x for x in selection if (x["model"], x["data"], x["budget"]) ==
             (s["model"], s["data"], s["budget"])}
    if not any(len(x["curve"]) > 1 for x in group.values()):
        return None         # nothing swept in this group yet: the lone point may be the start of a sweep
    parent = s["strategy"].split("[")[0].removeprefix("shuffled:")
    for lender in (parent, REFERENCE):
        x = group.get(lender)
        if lender != s["strategy"] and x is not None and x["lr"] == s["lr"]:
            return lender
    return None


def lr_table(selection: list[dict]) -> Table:
    """``stats.lr_selection`` rows: the dev-loss curve per strategy, the chosen lr and the bracketing check."""
    header = [text("strategy"), text("dev loss by lr"), text("selected lr"), text("bracketed"), text("note")]
    groups: dict[tuple, list[list[Cell]]] = {}
    for s in selection:
        curve = ", ".join(f"{lr:g}: {v:.4f}" if math.isfinite(v) else f"{lr:g}: diverged" for lr, v in s["curve"])
        bracketed, note = ("yes" if s["bracketed"] else "no"), s["note"]
        lender = _runs_at(s, selection)
        if lender:
            bracketed, note = DASH, f"not swept: runs at {lender}'s selected lr (protocol v2)"
        groups.setdefault((s["model"], s["data"], s["budget"]), []).append(
            [ident(s["strategy"]), text(curve or DASH), lr_cell(s["lr"]), text(bracketed), text(note)])
    return Table(header, "lllll", [(f"{m}, {d}, budget {b}", rs) for (m, d, b), rs in groups.items()])


def multiple_text(value: float, side: str, ends: tuple[float, float]) -> str:
    """One equivalent-budget multiple: '1.3', or beyond an end of the frontier '<0.125' / '>4' (``ends``: the
    frontier's smallest and largest budget as multiples; ``side`` "above" = a loss above the frontier's highest).
    An end gets three significant digits: at two, r1/r8 = 0.125 printed as '0.12' for one arm and '0.13' for an
    arm whose parameter count is a hair smaller than uniform's (AdaLoRA), the same end read two ways."""
    if side:
        bound = ends[0] if side == "above" else ends[1]
        return ("<" if side == "above" else ">") + (f"{bound:.3g}" if _finite(bound) else "?")
    return f"{value:#.2g}".rstrip(".") if _finite(value) else DASH   # '1.0', not '1'; '41', not '41.'


def multiple_cell(r: dict) -> Cell:
    """A robustness row's multiplier and, in brackets, its multiples at the Holm-adjusted interval's ends:
    '1.0 [0.20, 1.3]'; a dash without a frontier."""
    ends = r.get("frontier_multiples", (math.nan, math.nan))
    point = multiple_text(r["multiplier"], r.get("multiplier_side", ""), ends)
    if point == DASH:
        return Cell(DASH, "--")
    plain = point
    if "multiplier_low" in r:
        lo, hi = (multiple_text(r[f"multiplier_{k}"], r.get(f"multiplier_{k}_side", ""), ends) for k in ("low", "high"))
        plain += f" [{lo}, {hi}]"
    return Cell(plain, plain.replace("<", "$<$").replace(">", "$>$"))


def robustness_table(rows: list[dict], notes: bool = True) -> Table:
    """``stats.robustness`` rows: the two-way (pooled-variance) interval and Holm p with the seeds (blocks) it used,
    the paired bootstrap interval over test examples, and the equivalent-budget multiplier."""
    # LaTeX headers short (the caption spells them out) so the table fits the page at 8 pt or more
    header = [text("strategy"), Cell("n", "$n$"), Cell("blocks", "$b$"), Cell("Δ (two-way)", r"$\Delta$ 2-way"),
              Cell("95 % CI (pooled)", "pooled CI"), Cell("p (Holm)", r"$p_\mathrm{Holm}$"),
              Cell("95 % CI (bootstrap)", "bootstrap CI"),
              Cell("× budget [adj.]", r"$\times$ budget [adj.]")] + \
        ([text("note")] if notes else [])
    groups: dict[str, list[list[Cell]]] = {}
    for r in rows:
        groups.setdefault(endpoint_group(r), []).append(
            [ident(r["strategy"]), num(r["n_pairs"], "d"), num(r.get("anova_seeds"), "d"),
             num(r["anova_diff"], "+.4f"),
             interval(r["anova_ci_low"], r["anova_ci_high"]), pval(r["anova_p_holm"]),
             interval(r["boot_ci_low"], r["boot_ci_high"]), multiple_cell(r)] +
            ([text(r["note"])] if notes else []))
    return Table(header, "lrrrlrlr" + "l" * notes, list(groups.items()))


def contrast_table(rows: list[dict]) -> Table:
    """``stats.arm_contrast`` rows: arm minus reference arm, each at its own lr, paired by seed (one planned
    contrast per group: unadjusted interval and p), with the verdict and the margin as the endpoint's."""
    header = [text("contrast"), text("lr"), Cell("n", "$n$"), Cell("Δ", r"$\Delta$"), Cell("95 % CI", r"95\,\% CI"),
              Cell("p", "$p$"), text("verdict")]
    groups: dict[tuple, list[list[Cell]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["data"], r["budget"]), []).append(
            [text(f"{r['strategy']} − {r['reference']}"), text(f"{r['lr']:g} / {r['ref_lr']:g}"),
             num(r["n_pairs"], "d"), num(r["diff_mean"], "+.4f"), interval(r["ci_low"], r["ci_high"]), pval(r["p"]),
             text(r["verdict"])])
    return Table(header, "llrrlrl", [(f"{m}, {d}, budget {b}", rs) for (m, d, b), rs in groups.items()])


PRIOR_METRICS = {"transfer_loss": "500 held-out examples (primary)", "eval_loss": "the prior 20 examples"}


def prior_setting_table(rows: list[dict]) -> Table:
    """``report.prior_setting`` rows: each placement minus all modules (uniform at the reference budget), paired by
    seed, one group per (comparison, metric); a natural budget is printed as its parameter count."""
    header = [text("placement"), text("budget"), Cell("n", "$n$"), Cell("Δ vs all modules", r"$\Delta$ vs.\ all"),
              Cell("95 % CI", r"95\,\% CI"), Cell("Holm-adjusted CI", "Holm-adjusted CI"),
              Cell("p (Holm)", r"$p_\mathrm{Holm}$"), text("verdict")]
    groups: dict[tuple, list[list[Cell]]] = {}
    for r in rows:
        b = str(r["budget"])
        groups.setdefault((r["comparison"], r["endpoint"]), []).append(
            [ident(r["strategy"]), text(b) if not b.isdigit() else num(int(b), ",d"), num(r["n_pairs"], "d"),
             num(r["diff_mean"], "+.4f"), interval(r["ci_low"], r["ci_high"]),
             interval(r["adj_ci_low"], r["adj_ci_high"]), pval(r["p_holm"]), text(r["verdict"])])
    return Table(header, "lrrrllll", [(f"{kind} budget{'s' * (kind == 'natural')}, "
                                       f"{PRIOR_METRICS.get(metric, metric)}", rs)
                                      for (kind, metric), rs in groups.items()])


def protocol_v2_markdown(primary: list[dict], secondary: list[dict], selection: list[dict],
                         robust: list[dict] = (), contrasts: list[dict] = ()) -> list[str]:
    """The protocol-v2 sections of summary.md (empty when there is nothing to show)."""
    if not (primary or secondary or selection or robust or contrasts):
        return []
    out = ["## Learning-rate selection (dev split, seed 0)", "", table_markdown(lr_table(selection))] \
        if selection else []
    for title, rows in (("Primary endpoint: each strategy at its own selected lr", primary),
                        ("Secondary endpoint (every strategy at uniform's selected lr) and further families, one "
                         "group each: the primary comparison over seeds 0-3 alone, on the transfer loss, and the "
                         "scaling ablation", secondary)):
        if rows:
            out += [f"## {title}", "",
                    f"Δ = test loss (the transfer set's loss in \"transfer loss\" groups), strategy − uniform, paired "
                    f"by seed (negative = better); Holm within each group. Holm-adjusted CI: "
                    f"Holm step-down intervals (step k at level 1 − {ALPHA}/(m − k + 1), frozen at the first "
                    f"non-rejected step); the verdict follows the adjusted interval only: \"equivalent\" when it contains "
                    f"0 and lies inside ±{EQUIVALENCE_MARGIN} nats (the pre-specified margin).", "",
                    table_markdown(endpoint_table(rows))]
    if robust:
        out += ["## Robustness of the primary endpoint (pre-specified)", "",
                "Two-way model: strategy fixed, seed as a block, pooled residual variance (complete blocks), Holm "
                "over the strategies. Bootstrap: paired over test examples (the same resampled examples for both "
                "arms and every seed; test-set sampling only, not training noise). × budget: the parameter "
                "multiple at which uniform rank's frontier (its monotone fit) reaches uniform's loss there plus the "
                "strategy's paired difference, in brackets at the ends of its Holm-adjusted interval (< / >: beyond "
                "the frontier's ends; no extrapolation; EXPERIMENTS.md, amendment 7).", "", table_markdown(robustness_table(robust))]
    if contrasts:
        out += ["## Planned contrast: allocation beyond the initialisation", "",
                "eva (rho 2: EVA's initialisation and its rank redistribution) minus eva[rho1] (the same "
                "initialisation, every module at rank r), test loss, each at its own selected lr, paired by seed; one "
                f"pre-planned contrast, so no adjustment; \"equivalent\" when the interval lies inside "
                f"±{EQUIVALENCE_MARGIN} nats.", "", table_markdown(contrast_table(contrasts))]
    return out
