"""Figure: training-loss curves per strategy at one budget (moving average, mean over seeds, ± 1 std band).
A curve is each run's training objective per optimizer step: cross-entropy, plus AdaLoRA's orthogonality penalty
for AdaLoRA runs (marked in the legend). Right panel: each strategy's curve minus uniform's at the same seed (same
batches in the same order), averaged over the shared seeds; penalised curves are left out there.

python scripts/fig_loss_curves.py [--exp pilot] [--budget r8] [--window 0] [--out paper/figures]
-> <out>/loss_curves.{pdf,png}. Window 0 = automatic (odd, at least 1: about 1/20 of the steps for the curves,
1/8 for the paired differences).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import (REFERENCE, colors, load, parse_args, pick_group, plt, save, skip,  # noqa: E402
                       strategies_in_order)


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (the first points average what is there), same length as the input."""
    out, s = [], 0.0
    for i, v in enumerate(values):
        s += v
        if i >= window:
            s -= values[i - window]
        out.append(s / min(i + 1, window))
    return out


def orth_weights(strategy: str, group: list[dict]) -> set[float]:
    """The orthogonality-penalty weights in the strategy's training objectives (AdaLoRA); empty for plain CE."""
    return {(r.get("adalora") or {}).get("orth_reg_weight") for r in group
            if r["config"]["strategy"] == strategy} - {None}


def label(strategy: str, group: list[dict]) -> str:
    """Legend entry: name and n; AdaLoRA's curve is its objective, CE + weight x orthogonality penalty."""
    n = sum(1 for r in group if r["config"]["strategy"] == strategy)
    orth = orth_weights(strategy, group)
    note = f", CE + {orth.pop():g} x orth. penalty" if len(orth) == 1 else ""
    return f"{strategy} (n={n}{note})"


def paired_delta(group: list[dict], strategy: str, window: int) -> tuple[list[float], int]:
    """Mean over shared seeds of smoothed (strategy - uniform) training loss per step, and the number of seeds.

    Runs of one seed see the same batches in the same order, so the per-step difference removes the batch-to-batch
    noise that makes the raw curves overlap. ([], 0) without a shared seed."""
    ref = {r["config"]["seed"]: r["train_loss_curve"] for r in group if r["config"]["strategy"] == REFERENCE}
    runs = {r["config"]["seed"]: r["train_loss_curve"] for r in group if r["config"]["strategy"] == strategy}
    seeds = sorted(set(ref) & set(runs))
    if not seeds:
        return [], 0
    steps = min(min(len(ref[sd]), len(runs[sd])) for sd in seeds)
    diffs = [smooth([a - b for a, b in zip(runs[sd][:steps], ref[sd][:steps])], window) for sd in seeds]
    return [sum(v) / len(v) for v in zip(*diffs)], len(seeds)


def main(argv=None) -> int:
    a = parse_args(__doc__.splitlines()[0], argv, budget=True,
                   extra=lambda ap: ap.add_argument("--window", type=int, default=0, help="moving-average steps"))
    results = load(a.exp)
    key, group = pick_group(results, a.budget)
    group = [r for r in group if isinstance(r.get("train_loss_curve"), list) and len(r["train_loss_curve"]) > 0]
    if not group:
        return skip(f"no result with a training-loss curve in experiment '{a.exp}'")
    strategies = strategies_in_order(group)
    col = colors(strategies)
    fig, (ax, dax) = plt.subplots(1, 2, figsize=(11, 4))
    for s in strategies:
        curves = [r["train_loss_curve"] for r in group if r["config"]["strategy"] == s]
        steps = min(len(c) for c in curves)
        window = a.window or max(1, (steps // 20) | 1)
        sm = [smooth(c[:steps], window) for c in curves]
        mean = [sum(v) / len(v) for v in zip(*sm)]
        x = range(1, steps + 1)
        ax.plot(x, mean, color=col[s], lw=1.3, label=label(s, group))
        if len(sm) > 1:
            std = [(sum((u - m) ** 2 for u in v) / (len(v) - 1)) ** 0.5 for v, m in zip(zip(*sm), mean)]
            ax.fill_between(x, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)],
                            color=col[s], alpha=0.15, lw=0)
        # right panel: paired difference to uniform; curves that include a penalty are not comparable there
        if s != REFERENCE and not orth_weights(s, group):
            delta, n = paired_delta(group, s, a.window or max(1, (steps // 8) | 1))
            if delta:
                dax.plot(range(1, len(delta) + 1), delta, color=col[s], lw=1.3, label=f"{s} (n={n})")
    model, data, budget = key
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (moving average)")
    ax.set_title(f"{model} · {data} · budget {budget}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    dax.axhline(0, color="k", lw=0.8)
    dax.set_xlabel("optimizer step")
    dax.set_ylabel("training loss − uniform's, same seed (moving average)")
    dax.set_title("paired difference to uniform (below 0 = lower loss)", fontsize=10)
    dax.grid(alpha=0.3)
    if dax.lines[1:]:
        dax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, a.out, "loss_curves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
