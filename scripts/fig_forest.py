"""Figure: paired difference to uniform rank per strategy at one budget (forest plot), the paper's main figure.

For each strategy: its eval loss minus uniform's at the same seed, mean over the shared seeds with the 95 % t-interval
(both from ``adaptive_lora.report.summarize``: ``diff_vs_uniform_mean``, ``diff_ci95_low``/``diff_ci95_high``),
sorted from lowest (best) to highest, with a vertical line at zero. A strategy with one shared seed is drawn without
an interval and labelled n = 1. The PEFT baselines (AdaLoRA, EVA), which are not layerwise allocations at the exact
budget and may differ by far more, get their own panel with its own axis below the allocations, so that they do not
squeeze the allocations' intervals.

python scripts/fig_forest.py [--exp pilot] [--budget r8] [--out paper/figures] -> <out>/forest.{pdf,png}
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from matplotlib.ticker import MaxNLocator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import (BASELINES, REFERENCE, figure, load, parse_args, pick_group, save, skip,  # noqa: E402
                       summarize)


def fmt(x: float) -> str:
    return f"{x:+.4f}".replace("-", "\u2212")


def panel(ax, rows: list[dict], title: str | None) -> None:
    """One forest panel: a row per strategy (best at the top), point = mean paired difference, bar = 95 % CI;
    the interval is written on the right."""
    rows = sorted(rows, key=lambda r: (r["diff_vs_uniform_mean"], r["strategy"]))
    y = list(range(len(rows)))[::-1]
    for yi, r in zip(y, rows):
        lo, hi = r["diff_ci95_low"], r["diff_ci95_high"]
        if math.isfinite(lo) and math.isfinite(hi):
            ax.plot([lo, hi], [yi, yi], color="k", lw=1.2, solid_capstyle="butt")
            for x in (lo, hi):
                ax.plot([x, x], [yi - 0.15, yi + 0.15], color="k", lw=1.2)
        ax.plot([r["diff_vs_uniform_mean"]], [yi], "o", color="k", ms=5)
    ax.axvline(0, color="0.4", lw=0.8, ls="--", zorder=0)
    xs = [0.0] + [v for r in rows for v in (r["diff_ci95_low"], r["diff_ci95_high"], r["diff_vs_uniform_mean"])
                  if math.isfinite(v)]
    span = max(xs) - min(xs) or 1e-3
    ax.set_xlim(min(xs) - 0.08 * span, max(xs) + 0.08 * span)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    labels = [f"{r['strategy']} (n = {r['n_pairs']})" for r in rows]
    ax.set_yticks(y, labels)
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(y, [fmt(r["diff_vs_uniform_mean"]) + (
        f" [{fmt(r['diff_ci95_low'])}, {fmt(r['diff_ci95_high'])}]" if math.isfinite(r["diff_ci95_low"])
        else "  (n = 1: no interval)") for r in rows])
    right.tick_params(axis="y", length=0)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title, loc="left")


def main(argv=None) -> int:
    a = parse_args(__doc__.splitlines()[0], argv, budget=True)
    key, group = pick_group(load(a.exp), a.budget)
    rows = [r for r in summarize(group) if r["strategy"] != REFERENCE and math.isfinite(r["diff_vs_uniform_mean"])]
    if not rows:
        return skip(f"no strategy paired with uniform rank in experiment '{a.exp}'")
    alloc = [r for r in rows if r["strategy"] not in BASELINES]
    base = [r for r in rows if r["strategy"] in BASELINES]
    parts = [p for p in ((alloc, "layerwise allocations (exact budget)"), (base, "PEFT baselines")) if p[0]]
    fig = figure(0.32 * len(rows) + 0.75 + 0.35 * len(parts))
    axes = fig.subplots(len(parts), 1, squeeze=False, gridspec_kw={"height_ratios": [len(p) + 0.6 for p, _ in parts]})
    for ax, (rs, title) in zip(axes[:, 0], parts):
        panel(ax, rs, title if len(parts) > 1 else None)
    model, data, budget = key
    axes[-1, 0].set_xlabel("eval loss − uniform's eval loss at the same seed (nats); below 0: lower loss")
    fig.suptitle(f"{model} · {data} · budget {budget}: mean paired difference with 95 % CI")
    save(fig, a.out, "forest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
