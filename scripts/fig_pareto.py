"""Figure: trainable parameters vs eval loss over all budgets and strategies (mean ± 95 % CI), Pareto frontier.

python scripts/fig_pareto.py [--exp pilot] [--out paper/figures] -> <out>/pareto.{pdf,png}
One panel per (model, data). The frontier joins the points that no other point beats on both axes (fewer or
equal parameters and lower mean loss).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import colors, load, parse_args, plt, save, skip, summarize  # noqa: E402

MARKERS = "osD^v<>pPX*h"


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
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (model, data) in zip(axes[0], panels):
        sub = [r for r in rows if (r["model"], r["data"]) == (model, data)]
        labelled = set()
        for i, s in enumerate(strategies):
            pts = [r for r in sub if r["strategy"] == s]
            if not pts:
                continue
            err = [r["eval_loss_ci95_high"] - r["eval_loss_mean"] if math.isfinite(r["eval_loss_ci95_high"])
                   else 0.0 for r in pts]
            ax.errorbar([r["trainable_params_mean"] for r in pts], [r["eval_loss_mean"] for r in pts], yerr=err,
                        fmt=MARKERS[i % len(MARKERS)], color=col[s], capsize=3, ms=6, label=s, lw=1)
            for r in pts:
                if r["budget"] in labelled:
                    continue
                labelled.add(r["budget"])
                ax.annotate(r["budget"], (r["trainable_params_mean"], r["eval_loss_mean"]), fontsize=7,
                            xytext=(4, 4), textcoords="offset points", color="0.3")
        fr = frontier([(r["trainable_params_mean"], r["eval_loss_mean"]) for r in sub])
        ax.plot(*zip(*fr), color="k", lw=1, ls="--", alpha=0.7, label="Pareto frontier", zorder=0)
        if max(r["trainable_params_mean"] for r in sub) > 2 * min(r["trainable_params_mean"] for r in sub):
            ax.set_xscale("log")
        ax.set_xlabel("trainable parameters")
        ax.set_ylabel("eval loss (mean ± 95 % CI)")
        ax.set_title(f"{model} · {data}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, a.out, "pareto")
    return 0


if __name__ == "__main__":
    sys.exit(main())
