"""Figure: training cross-entropy at one budget: uniform rank's curve, and each strategy's paired difference to it.

Only runs whose training objective is plain cross-entropy are plotted: AdaLoRA's objective adds a weighted
orthogonality penalty, so its curve is not comparable and it is left out (named on the command line and in the
caption). First panel: uniform rank's training loss per optimizer step (trailing moving average of each run, then
mean over seeds with the 95 % t-interval as a band). Then one panel per strategy: its training loss minus uniform's
at the same seed, which sees the same batches in the same order (moving average of the per-step difference, mean
over the shared seeds with the 95 % t-interval as a band; n = 1: the curve alone, labelled n = 1), all on one
y-axis. Panels fill rows of three; a shorter last row is centred.

python scripts/fig_loss_curves.py [--exp pilot] [--budget r8] [--window 0] [--out paper/figures]
-> <out>/loss_curves.{pdf,png}. Window 0 = automatic (odd, at least 1): about 1/20 of the steps for uniform's curve,
1/8 for the paired differences.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from matplotlib.ticker import MaxNLocator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import (REFERENCE, colors, figure, load, panel_grid, parse_args, pick_group, save,  # noqa: E402
                       skip, strategies_in_order, t_interval)

NCOL = 3


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (the first points average what is there), same length as the input."""
    out, s = [], 0.0
    for i, v in enumerate(values):
        s += v
        if i >= window:
            s -= values[i - window]
        out.append(s / min(i + 1, window))
    return out


def penalised(r: dict) -> bool:
    """True when the run's training objective is not plain cross-entropy (AdaLoRA's orthogonality penalty)."""
    return bool((r.get("adalora") or {}).get("orth_reg_weight"))


def band(curves: list[list[float]]) -> tuple[list[float], list[float], list[float], int]:
    """Per step: mean and 95 % t-interval over the curves (``adaptive_lora.report.mean_ci``); NaN bounds if n = 1."""
    steps = [t_interval(v) for v in zip(*curves)]
    return [s[0] for s in steps], [s[1] for s in steps], [s[2] for s in steps], len(curves)


def paired(group: list[dict], strategy: str, window: int) -> list[list[float]]:
    """Smoothed per-step (strategy - uniform) training loss, one curve per shared seed (truncated to the shorter)."""
    ref = {r["config"]["seed"]: r["train_loss_curve"] for r in group if r["config"]["strategy"] == REFERENCE}
    runs = {r["config"]["seed"]: r["train_loss_curve"] for r in group if r["config"]["strategy"] == strategy}
    seeds = sorted(set(ref) & set(runs))
    if not seeds:
        return []
    steps = min(min(len(ref[sd]), len(runs[sd])) for sd in seeds)
    return [smooth([a - b for a, b in zip(runs[sd][:steps], ref[sd][:steps])], window) for sd in seeds]


def draw(ax, curves: list[list[float]], color, label: str) -> tuple[float, float]:
    """Mean curve with its 95 % band, titled with the label and n; -> (lowest, highest) value drawn."""
    mean, lo, hi, n = band(curves)
    x = range(1, len(mean) + 1)
    ax.plot(x, mean, color=color, lw=1.3)
    if n >= 2:
        ax.fill_between(x, lo, hi, color=color, alpha=0.25, lw=0)
    ax.set_title(f"{label} (n = {n}{'' if n >= 2 else ', no interval'})")
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    drawn = [v for v in mean + lo + hi if math.isfinite(v)]
    return min(drawn), max(drawn)


def main(argv=None) -> int:
    a = parse_args(__doc__.splitlines()[0], argv, budget=True,
                   extra=lambda ap: ap.add_argument("--window", type=int, default=0, help="moving-average steps"))
    key, group = pick_group(load(a.exp), a.budget)
    group = [r for r in group if isinstance(r.get("train_loss_curve"), list) and len(r["train_loss_curve"]) > 0]
    col = colors(strategies_in_order(group))  # the colours of the other figures, AdaLoRA's included
    left_out = sorted({r["config"]["strategy"] for r in group if penalised(r)})
    group = [r for r in group if not penalised(r)]
    if left_out:
        print(f"left out (training objective is not plain cross-entropy): {', '.join(left_out)}")
    ref = [r["train_loss_curve"] for r in group if r["config"]["strategy"] == REFERENCE]
    if not ref:
        return skip(f"no uniform-rank result with a training-loss curve in experiment '{a.exp}'")
    strategies = strategies_in_order(group)
    others = [s for s in strategies if s != REFERENCE]
    diffs = {}
    for s in others:
        steps = min(len(r["train_loss_curve"]) for r in group if r["config"]["strategy"] == s)
        d = paired(group, s, a.window or max(1, (steps // 8) | 1))
        if d:
            diffs[s] = d
    n_panels = 1 + len(diffs)
    nrow = -(-n_panels // NCOL)
    fig = figure(1.75 * nrow + 0.45)
    axes = panel_grid(fig, n_panels, NCOL)
    steps = min(len(c) for c in ref)
    window = a.window or max(1, (steps // 20) | 1)
    draw(axes[0], [smooth(c[:steps], window) for c in ref], col[REFERENCE], REFERENCE)
    axes[0].set_ylabel("training CE (nats)")
    extent = [0.0]
    for i, (ax, (s, d)) in enumerate(zip(axes[1:], diffs.items()), 1):
        extent += draw(ax, d, col[s], s)
        ax.axhline(0, color="k", lw=0.8)
        if i % NCOL == 0 or i == 1:
            ax.set_ylabel("CE − uniform's (nats)")
    # one y-axis for every difference panel, wide enough for every curve and band
    pad = 0.05 * (max(extent) - min(extent) or 1e-3)
    for ax in axes[1:]:
        ax.set_ylim(min(extent) - pad, max(extent) + pad)
    for i, ax in enumerate(axes):
        if i >= n_panels - NCOL:
            ax.set_xlabel("optimizer step")
    model, data, budget = key
    fig.suptitle(f"{model} · {data} · budget {budget}: training cross-entropy (CE), mean over seeds with 95 % CI")
    save(fig, a.out, "loss_curves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
