"""Figure: training-loss curves per strategy at one budget (moving average, mean over seeds, ± 1 std band).
A curve is each run's training objective per optimizer step: cross-entropy, plus AdaLoRA's orthogonality penalty
for AdaLoRA runs (marked in the legend).

python scripts/fig_loss_curves.py [--exp pilot] [--budget r8] [--window 0] [--out paper/figures]
-> <out>/loss_curves.{pdf,png}. Window 0 = automatic (about 1/20 of the steps, odd, at least 1).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import colors, load, parse_args, pick_group, plt, save, skip, strategies_in_order  # noqa: E402


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (the first points average what is there), same length as the input."""
    out, s = [], 0.0
    for i, v in enumerate(values):
        s += v
        if i >= window:
            s -= values[i - window]
        out.append(s / min(i + 1, window))
    return out


def label(strategy: str, group: list[dict]) -> str:
    """Legend entry: name and n; AdaLoRA's curve is its objective, CE + weight x orthogonality penalty."""
    runs = [r for r in group if r["config"]["strategy"] == strategy]
    orth = {(r.get("adalora") or {}).get("orth_reg_weight") for r in runs} - {None}
    note = f", CE + {orth.pop():g} x orth. penalty" if len(orth) == 1 else ""
    return f"{strategy} (n={len(runs)}{note})"


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
    fig, ax = plt.subplots(figsize=(6.5, 4))
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
    model, data, budget = key
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (moving average)")
    ax.set_title(f"{model} · {data} · budget {budget}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, a.out, "loss_curves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
