"""Figure: eval loss per strategy at one budget (mean over seeds with its 95 % t-interval as error bars; n = 1: the
point alone, labelled n = 1), and the exact trainable parameters per strategy when they differ.

When every strategy trains the same number of parameters (budget-matched), the parameter panel would show identical
bars: it is left out, and the count is printed on the command line for the caption.

python scripts/fig_params_vs_loss.py [--exp pilot] [--budget r8] [--out paper/figures]
-> <out>/params_vs_loss.{pdf,png}
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from matplotlib.ticker import MaxNLocator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import colors, figure, load, parse_args, pick_group, save, skip, summarize  # noqa: E402


def main(argv=None) -> int:
    a = parse_args(__doc__.splitlines()[0], argv, budget=True)
    key, group = pick_group(load(a.exp), a.budget)
    if not group:
        return skip(f"no results for experiment '{a.exp}'" + (f" at budget {a.budget}" if a.budget else ""))
    rows = summarize(group)
    names = [r["strategy"] for r in rows]
    col = colors(names)
    y = list(range(len(rows)))[::-1]
    params = [r["trainable_params_mean"] for r in rows]
    same = len({round(p) for p in params if math.isfinite(p)}) <= 1
    fig = figure(0.3 * len(rows) + 0.9)
    if same:
        ax = fig.subplots()
        print(f"every strategy trains {params[0]:,.0f} parameters: parameter panel left out")
    else:
        ax, pax = fig.subplots(1, 2, sharey=True, width_ratios=[2.2, 1])
    for yi, r in zip(y, rows):
        m, lo, hi = r["eval_loss_mean"], r["eval_loss_ci95_low"], r["eval_loss_ci95_high"]
        # small open markers, so that an interval narrower than a marker still shows its caps
        xerr = [[m - lo], [hi - m]] if math.isfinite(lo) else None
        ax.errorbar([m], [yi], xerr=xerr, fmt="o", color=col[r["strategy"]], mfc="white", ms=3.5, mew=1.2,
                    capsize=3, lw=1.2)
    ax.set_yticks(y, [f"{n} (n = {r['n']})" for n, r in zip(names, rows)])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.set_xlabel("eval loss (nats), mean over seeds with 95 % CI")
    ax.grid(axis="x", alpha=0.3)
    if not same:
        pax.plot([p / 1e6 for p in params], y, "o", color="k", ms=5)
        budget = rows[0]["budget_params"]
        if math.isfinite(budget or math.nan):
            pax.axvline(budget / 1e6, color="0.4", lw=0.8, ls="--", label="budget")
            pax.legend(loc="lower right")
        lo, hi = min(params) / 1e6, max(params) / 1e6
        pad = 0.15 * (hi - lo)
        pax.set_xlim(lo - pad, hi + pad)
        pax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        pax.set_xlabel("parameters (M)")
        pax.grid(axis="x", alpha=0.3)
    model, data, budget = key
    fig.suptitle(f"{model} · {data} · budget {budget}")
    save(fig, a.out, "params_vs_loss")
    return 0


if __name__ == "__main__":
    sys.exit(main())
