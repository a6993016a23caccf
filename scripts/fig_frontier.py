"""Figure: the main grid's budget frontier (stage 4), and allocation effects across budgets.

Left: test loss against trainable parameters (log axis) for uniform rank at every budget it ran (r1 ... r32) and
for the other arms run at more than one budget (attn_heavy, eva), each at its selected learning rate
(``stats.at_selected_lr``): mean over seeds with its 95 % t interval. A filled point has the
``stats.FRONTIER_MIN_SEEDS`` seeds the equivalent-budget multiplier needs (uniform's: ``stats.uniform_frontier``,
the line; dashed, where it differs, its monotone fit, which the multipliers are read off); a hollow one does not yet. Right: each such arm minus uniform at the same seed and budget (the primary endpoint of
``report.protocol_v2`` at each budget), unadjusted 95 % (thick) and Holm step-down interval (thin), dotted: the
equivalence margin. Arms are offset sideways so that no two overlap. Skipped while uniform has results at fewer
than two budgets.

python scripts/fig_frontier.py [--exp main] [--out paper/figures] -> <out>/frontier.{pdf,png}
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import REFERENCE, colors, figure, load, parse_args, save, skip, t_interval  # noqa: E402

from adaptive_lora.report import protocol_v2  # noqa: E402
from adaptive_lora.stats import (EQUIVALENCE_MARGIN, FRONTIER_MIN_SEEDS, arm, at_selected_lr, is_v2,  # noqa: E402
                                 uniform_frontier, uniform_rank)

SHIFT = 1.12   # sideways offset factor between arms on the log parameter axis


def points(results: list[dict]) -> dict[str, list[dict]]:
    """{arm: [{budget, params, mean, low, high, n}]} at the selected lr, per budget in rank order, for uniform and
    the default-scaling arms that ran at two or more budgets."""
    cells = [r for r in at_selected_lr([r for r in results if is_v2(r)]) if math.isfinite(r.get("eval_loss", math.nan))]
    by: dict[str, dict[str, list[dict]]] = {}
    for r in cells:
        by.setdefault(arm(r), {}).setdefault(r["config"]["budget"], []).append(r)
    out = {}
    for name, budgets in by.items():
        if "[" in name or len(budgets) < 2 or any(uniform_rank(b) is None for b in budgets):
            continue
        out[name] = []
        for b in sorted(budgets, key=uniform_rank):
            mean, lo, hi, n = t_interval([r["eval_loss"] for r in budgets[b]])
            params = sum(r["trainable_params"] for r in budgets[b]) / len(budgets[b])
            out[name].append({"budget": b, "params": params, "mean": mean, "low": lo, "high": hi, "n": n})
    return out


def legend_rank(label: str) -> int:
    """Legend order: uniform, its monotone fit, the other arms (sorted() is stable: they keep theirs), the key."""
    return 0 if label == REFERENCE else 1 if label.startswith("monotone") else 3 if label.startswith("hollow") else 2


def model_data(results: list[dict]) -> tuple[str, str]:
    return results[0]["config"]["model"], results[0]["config"]["data"]


def main(argv=None) -> int:
    a = parse_args(__doc__.split("\n")[0], argv, default_exp="main")
    results = load(a.exp)
    pts = points(results)
    if len(pts.get(REFERENCE, [])) < 2:
        for ext in ("pdf", "png"):   # a figure of cells that are gone would be stale
            (Path(a.out) / f"frontier.{ext}").unlink(missing_ok=True)
        return skip(f"uniform has results at fewer than two budgets in results/{a.exp}/")
    names = [REFERENCE] + sorted(n for n in pts if n != REFERENCE)
    col = dict(colors(names), **{REFERENCE: "k"})
    primary = [r for r in protocol_v2(results)[0] if r["strategy"] in pts and r["n_pairs"] >= 2]
    fig = figure(3.2)
    if primary:
        left, right = fig.subplots(1, 2, width_ratios=[1.25, 1])
    else:     # no arm has two paired seeds at two budgets yet: the frontier alone
        left, right = fig.subplots(), None
    for i, name in enumerate(names):
        shift = SHIFT ** (i - (len(names) - 1) / 2)
        ps = pts[name]
        xs = [p["params"] / 1e6 * shift for p in ps]
        if name == REFERENCE:
            full = [(x, p) for x, p in zip(xs, ps) if p["n"] >= FRONTIER_MIN_SEEDS]
            left.plot([x for x, _ in full], [p["mean"] for _, p in full], "-", color="k", lw=0.9)
            fit = dict(uniform_frontier(results, *model_data(results), monotone=True))
            if any(abs(fit.get(p["params"], p["mean"]) - p["mean"]) > 1e-12 for _, p in full):   # drawn where it differs
                left.plot([x for x, _ in full], [fit.get(p["params"], math.nan) for _, p in full], "--", color="0.45",
                          lw=1.2, label="monotone fit (multipliers)")
        for x, p in zip(xs, ps):
            err = [[p["mean"] - p["low"]], [p["high"] - p["mean"]]] if math.isfinite(p["low"]) else None
            filled = p["n"] >= FRONTIER_MIN_SEEDS
            left.errorbar([x], [p["mean"]], yerr=err, fmt="o", color=col[name], mfc=col[name] if filled else "white",
                          ms=4, capsize=2.5, lw=1.0)
        left.plot([], [], "o", color=col[name], label=name)
    if any(p["n"] < FRONTIER_MIN_SEEDS for ps in pts.values() for p in ps):     # named only when one is drawn
        left.plot([], [], "o", color="k", mfc="white", label=f"hollow: n < {FRONTIER_MIN_SEEDS} seeds")
    left.set_xscale("log")
    ranks = pts[REFERENCE]
    left.set_xticks([p["params"] / 1e6 for p in ranks], [f"{p['params'] / 1e6:.2g}\n{p['budget']}" for p in ranks])
    left.minorticks_off()
    left.set_xlabel("trainable parameters (M) and budget")
    left.set_ylabel("test loss (nats), mean with 95 % CI")
    left.grid(alpha=0.3)
    # below the panels: with two seeds a t interval is wide enough to cross any corner of the axes
    fig.legend(*zip(*sorted(zip(*left.get_legend_handles_labels()), key=lambda hl: legend_rank(hl[1]))),
               loc="outside lower center", ncol=5, frameon=False)
    if right is not None:
        differences(right, primary, [n for n in names if n != REFERENCE], col)
    model, data = model_data(results)
    fig.suptitle(f"{model} \u00b7 {data}: test loss by budget, each arm at its selected lr")
    save(fig, a.out, "frontier")
    return 0


def differences(right, primary: list[dict], others: list[str], col: dict) -> None:
    """The right panel: each arm minus uniform per budget, unadjusted 95 % (thick) and Holm-adjusted (thin)."""
    budgets = sorted({r["budget"] for r in primary if uniform_rank(r["budget"])}, key=uniform_rank)
    for i, name in enumerate(others):
        dx = (i - (len(others) - 1) / 2) * 0.18
        for r in (r for r in primary if r["strategy"] == name and r["budget"] in budgets):
            x = budgets.index(r["budget"]) + dx
            for lo, hi, lw in ((r["adj_ci_low"], r["adj_ci_high"], 0.9), (r["ci_low"], r["ci_high"], 2.6)):
                if math.isfinite(lo) and math.isfinite(hi):
                    right.plot([x, x], [lo, hi], color=col[name], lw=lw, solid_capstyle="butt")
            # filled: on the left, "hollow" means fewer than two seeds
            right.plot([x], [r["diff_mean"]], "o", color=col[name], ms=4, zorder=3)
    right.axhline(0, color="0.4", lw=0.8, ls="--", zorder=0)
    for y in (-EQUIVALENCE_MARGIN, EQUIVALENCE_MARGIN):
        right.axhline(y, color="0.55", lw=0.8, ls=":", zorder=0)
    right.set_xticks(range(len(budgets)), budgets)
    right.set_xlim(-0.6, max(len(budgets), 1) - 0.4)
    right.set_xlabel("budget")
    right.set_ylabel("arm \u2212 uniform, same seed (nats)")
    right.grid(axis="y", alpha=0.3)


if __name__ == "__main__":
    sys.exit(main())
