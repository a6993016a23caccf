"""Figure: trainable parameters and eval loss per strategy at one budget (mean ± 95 % CI over seeds).

python scripts/fig_params_vs_loss.py [--exp pilot] [--budget r8] [--out paper/figures]
-> <out>/params_vs_loss.{pdf,png}
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import colors, load, parse_args, pick_group, plt, save, skip, summarize  # noqa: E402


def main(argv=None) -> int:
    a = parse_args(__doc__.splitlines()[0], argv, budget=True)
    results = load(a.exp)
    key, group = pick_group(results, a.budget)
    if not group:
        return skip(f"no results for experiment '{a.exp}'" + (f" at budget {a.budget}" if a.budget else ""))
    rows = summarize(group)
    names = [r["strategy"] for r in rows]
    col = colors(names)
    y = list(range(len(rows)))[::-1]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 0.45 * len(rows) + 1.6), sharey=True)
    params = [r["trainable_params_mean"] / 1e6 for r in rows]
    ax1.barh(y, params, color=[col[n] for n in names])
    if math.isfinite(rows[0]["budget_params"] or math.nan):
        ax1.axvline(rows[0]["budget_params"] / 1e6, color="k", lw=0.8, ls="--", label="budget")
        ax1.legend(loc="lower right", fontsize=8)
    ax1.set_xlabel("trainable parameters (M)")
    ax1.set_yticks(y, [f"{n}  (n={r['n']})" for n, r in zip(names, rows)])
    means = [r["eval_loss_mean"] for r in rows]
    err = [r["eval_loss_ci95_high"] - r["eval_loss_mean"] if math.isfinite(r["eval_loss_ci95_high"]) else 0.0
           for r in rows]
    lo = min(m - e for m, e in zip(means, err))
    hi = max(m + e for m, e in zip(means, err))
    pad = max(hi - lo, 1e-3) * 0.25
    ax2.barh(y, [m - (lo - pad) for m in means], left=lo - pad, color=[col[n] for n in names],
             xerr=err, capsize=3, ecolor="k")
    ax2.set_xlim(lo - pad, hi + pad)
    ax2.set_xlabel("eval loss (mean ± 95 % CI; axis does not start at 0)")
    model, data, budget = key
    fig.suptitle(f"{model} · {data} · budget {budget}", fontsize=10)
    fig.tight_layout()
    save(fig, a.out, "params_vs_loss")
    return 0


if __name__ == "__main__":
    sys.exit(main())
