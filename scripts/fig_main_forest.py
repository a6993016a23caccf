"""Figure: the main grid's primary endpoint (protocol v2) as a forest plot, unadjusted and Holm-adjusted.

For each strategy at its own dev-selected learning rate: test loss minus uniform's at the same seed, mean over the
paired seeds (``adaptive_lora.report.protocol_v2`` -> ``stats.endpoint``), with the unadjusted 95 % t interval
(thick) and the Holm step-down interval (thin), sorted from lowest (best) to highest, a dashed line at zero,
dotted lines at the pre-specified equivalence margin (+-0.01 nats, ``stats.EQUIVALENCE_MARGIN``) and the verdict
(which follows the adjusted interval) on the right. An arm tuned to a learning rate other than uniform's also shows,
in grey just below its row, the same comparison at uniform's learning rate (the secondary endpoint, unadjusted
95 % interval): how much of its difference the learning rate alone decides. The axis is set by the primary rows (a
grey interval widens it by at most half their span, ``REACH``); a grey interval beyond is cut at the edge, and a
grey mean beyond is an arrowhead at the edge with its value printed, so that one far secondary point does not
squeeze every primary row. A point is filled where the adjusted interval excludes zero (the verdict better or
worse), as in the replications' figure. Only strategies with at least two seed pairs are drawn; the figure is
skipped while none has.

python scripts/fig_main_forest.py [--exp main] [--budget r8] [--out paper/figures] -> <out>/main_forest.{pdf,png}
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import difference_axis, figure, interval_row, load, parse_args, save, skip  # noqa: E402

from adaptive_lora.paper import secondary_rows  # noqa: E402
from adaptive_lora.report import protocol_v2  # noqa: E402
from adaptive_lora.stats import EQUIVALENCE_MARGIN  # noqa: E402

GREY = "0.55"
REACH = 0.5        # a grey (secondary) interval may widen the primary rows' axis by this share of their span


def fmt(x: float) -> str:
    return f"{x:+.4f}".replace("-", "\u2212")


def rows_of(results: list[dict], budget: str) -> tuple[list[dict], dict[str, dict]]:
    """(primary rows with two or more pairs, best first; {arm: secondary row} for the arms whose own lr is not
    uniform's and that also ran at uniform's lr with two or more pairs)."""
    primary, secondary, _ = protocol_v2(results)
    rows = [r for r in primary if r["budget"] == budget and r["n_pairs"] >= 2 and math.isfinite(r["diff_mean"])]
    own = {r["strategy"] for r in rows if r["lr"] != r["ref_lr"]}
    at_uniform = {s: r for s, r in secondary_rows([r for r in secondary if r["budget"] == budget]).items()
                  if s in own and math.isfinite(r["diff_mean"])}
    return sorted(rows, key=lambda r: (r["diff_mean"], r["strategy"])), at_uniform


def grey_reach(xs: list[float], secondary) -> list[float]:
    """The grey intervals' ends that may set the axis: those within ``REACH`` of the primary rows' span (``xs``,
    zero and the margin included) beyond it."""
    pts = [0.0, -EQUIVALENCE_MARGIN, EQUIVALENCE_MARGIN] + [x for x in xs if math.isfinite(x)]
    lo, hi = min(pts), max(pts)
    lo, hi = lo - REACH * (hi - lo), hi + REACH * (hi - lo)
    return [x for sec in secondary for x in (sec["ci_low"], sec["ci_high"]) if math.isfinite(x) and lo <= x <= hi]


def grey_row(ax, y: float, sec: dict) -> None:
    """A secondary row (the arm at uniform's lr) at height ``y``, in grey, within the axis limits already set: its
    interval cut at the edges, its mean a diamond, or, beyond an edge, an arrowhead there with the value beside it."""
    lo, hi = ax.get_xlim()
    a, b = max(sec["ci_low"], lo), min(sec["ci_high"], hi)
    if a < b:
        ax.plot([a, b], [y, y], color=GREY, lw=1.2, solid_capstyle="butt")
    m = sec["diff_mean"]
    if lo <= m <= hi:
        ax.plot([m], [y], "D", color=GREY, ms=3.5, zorder=3)
        return
    right = m > hi
    edge = (hi - 0.015 * (hi - lo)) if right else (lo + 0.015 * (hi - lo))    # the arrowhead inside the frame
    ax.plot([edge], [y], ">" if right else "<", color=GREY, ms=6, zorder=3)
    ax.annotate(fmt(m), (edge, y), xytext=(-6 if right else 6, 0), textcoords="offset points",
                ha="right" if right else "left", va="center", color=GREY,
                bbox=dict(fc="white", ec="none", pad=0.5))    # over the cut interval


def main(argv=None) -> int:
    a = parse_args(__doc__.split("\n")[0], argv, budget=True, default_exp="main")
    budget = a.budget or "r8"
    rows, at_uniform = rows_of(load(a.exp), budget)
    if not rows:
        for ext in ("pdf", "png"):   # a figure of cells that are gone would be stale
            (Path(a.out) / f"main_forest.{ext}").unlink(missing_ok=True)
        return skip(f"no strategy with two seed pairs at {budget} in results/{a.exp}/")
    fig = figure(0.21 * len(rows) + 0.9 + 0.2 * bool(at_uniform))   # ~18 arms at r8 in under half a page
    ax = fig.add_subplot(1, 1, 1)
    y = list(range(len(rows)))[::-1]
    xs = [x for yi, r in zip(y, rows)
          for x in interval_row(ax, yi, r, filled=r["verdict"] in ("better", "worse"))]
    difference_axis(ax, xs + grey_reach(xs, at_uniform.values()), len(rows), EQUIVALENCE_MARGIN)
    for yi, r in zip(y, rows):    # the same arm at uniform's lr (secondary endpoint): grey, just below its row
        if (sec := at_uniform.get(r["strategy"])) is not None:
            grey_row(ax, yi - 0.3, sec)
    if at_uniform:
        ax.plot([], [], "D-", color=GREY, ms=3.5, lw=1.2, label="same arm at uniform's lr (95 % CI)")
        fig.legend(loc="outside lower center", frameon=False)
    ax.set_yticks(y, [f"{r['strategy']} (lr {r['lr']:g}, n = {r['n_pairs']})" for r in rows])
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(y, [f"{fmt(r['diff_mean'])}  {r['verdict']}" for r in rows])
    right.tick_params(axis="y", length=0)
    model, data = rows[0]["model"], rows[0]["data"]
    fig.suptitle(f"{model} · {data} · budget {budget}, each at its own lr: 95 % CI (thick), Holm-adjusted (thin)")
    save(fig, a.out, "main_forest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
