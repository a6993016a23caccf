"""Figure: trainable parameters vs eval loss over all budgets and strategies, Pareto frontier.

python scripts/fig_pareto.py [--exp pilot] [--out paper/figures] -> <out>/pareto.{pdf,png}
One panel per (model, data). A point is a strategy at a budget: mean eval loss over seeds with its 95 % t-interval
as an error bar (n = 1: the point alone; the legend gives each strategy's n). Strategies with the same parameter
count (budget-matched) are spread horizontally around it by ``DODGE`` so that they do not hide each other; the
budget names are written above the axes at the budgets' counts. The frontier joins the points that no other point
beats on both axes (fewer or equal parameters and lower mean loss).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import WIDTH, colors, load, parse_args, plt, save, skip, summarize  # noqa: E402

MARKERS = "osD^v<>pPX*h"
DODGE = 0.04  # relative horizontal offset between strategies that share a parameter count


def frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated (x, y) points, minimising both, sorted by x."""
    out, best = [], math.inf
    for x, y in sorted(points, key=lambda p: (p[0], p[1])):
        if y < best:
            out.append((x, y))
            best = y
    return out


def main(argv=None) -> int:
    a = parse_args(__doc__.splitlines()[0], argv)
    rows = [r for r in summarize(load(a.exp))
            if math.isfinite(r["trainable_params_mean"]) and math.isfinite(r["eval_loss_mean"])]
    if not rows:
        return skip(f"no results with parameter counts and eval losses in experiment '{a.exp}'")
    panels = list(dict.fromkeys((r["model"], r["data"]) for r in rows))
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    col = colors(strategies)
    fig, axes = plt.subplots(len(panels), 1, figsize=(WIDTH, 3.4 * len(panels) + 0.8), squeeze=False,
                             layout="constrained")
    for ax, (model, data) in zip(axes[:, 0], panels):
        sub = [r for r in rows if (r["model"], r["data"]) == (model, data)]
        # x position: the exact count, spread around it when several strategies share it
        same: dict[int, list[str]] = {}
        for r in sub:
            same.setdefault(round(r["trainable_params_mean"]), []).append(r["strategy"])
        def xpos(r):
            peers = same[round(r["trainable_params_mean"])]
            k = peers.index(r["strategy"]) - (len(peers) - 1) / 2
            return r["trainable_params_mean"] * (1 + DODGE) ** k
        for i, s in enumerate(strategies):
            pts = [r for r in sub if r["strategy"] == s]
            if not pts:
                continue
            by_n: dict[int, list[str]] = {}
            for r in pts:
                by_n.setdefault(r["n"], []).append(r["budget"])
            label = f"{s} (n = {pts[0]['n']})" if len(by_n) == 1 else (
                f"{s} (n = " + "; ".join(f"{n} at {', '.join(b)}" for n, b in sorted(by_n.items())) + ")")
            for r in pts:
                m, lo, hi = r["eval_loss_mean"], r["eval_loss_ci95_low"], r["eval_loss_ci95_high"]
                yerr = [[m - lo], [hi - m]] if math.isfinite(lo) else None
                ax.errorbar([xpos(r)], [m], yerr=yerr, fmt=MARKERS[i % len(MARKERS)], color=col[s], capsize=2.5,
                            ms=5, lw=1, label=label)
                label = None
        fr = set(frontier([(r["trainable_params_mean"], r["eval_loss_mean"]) for r in sub]))
        fr = sorted((xpos(r), r["eval_loss_mean"]) for r in sub
                    if (r["trainable_params_mean"], r["eval_loss_mean"]) in fr)
        ax.plot(*zip(*fr), color="k", lw=1, ls="--", alpha=0.7, label="Pareto frontier", zorder=0)
        if max(r["trainable_params_mean"] for r in sub) > 2 * min(r["trainable_params_mean"] for r in sub):
            ax.set_xscale("log")
        budgets = {}
        for r in sub:
            if math.isfinite(r["budget_params"] or math.nan):
                budgets.setdefault(r["budget"], r["budget_params"])
        ax.set_xticks(list(budgets.values()), [f"{v / 1e6:.2f}M" for v in budgets.values()])
        ax.minorticks_off()
        top = ax.secondary_xaxis("top")
        top.set_xticks(list(budgets.values()), list(budgets))
        top.minorticks_off()
        top.tick_params(length=0)
        ax.set_xlabel("trainable parameters (ticks at the budgets)")
        ax.set_ylabel("eval loss (nats), mean with 95 % CI")
        ax.set_title(f"{model} · {data}")
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3)
    save(fig, a.out, "pareto")
    return 0


if __name__ == "__main__":
    sys.exit(main())
