"""Figure: dev loss against learning rate per strategy (protocol v2, stage 1), the data of the lr choice.

For each strategy of the (model, data, budget) group with most swept strategies (arms run at one lr only are left
out once any arm has two), seed 0, on a log lr axis. Left: its dev loss minus uniform rank's at the same learning
rate (``adaptive_lora.stats.same_lr_dev_gaps``), on a symmetric-log axis (linear within +-0.01 nats) so that gaps of
thousandths and a divergence of nats both show: where the sign changes with the lr, a comparison at one shared lr
says more about the lr than about the allocation. (Before uniform shares an lr with any arm, the left panel shows
every dev loss instead.) Right: the dev losses zoomed onto the minima, where the choice is made
(``adaptive_lora.stats.lr_selection``: argmin, bracketing; every strategy's chosen point in view): the chosen lr is
a large marker, drawn hollow while not yet bracketed (also named in the legend). A diverged cell (non-finite dev
loss) is marked at the top of the axis. Each strategy's points are shifted sideways by a few hundredths of a decade
(``DODGE``; the lrs run are the grid's, 3e-4, 1e-3, ...) so that arms choosing the same lr do not hide each other.
The test set plays no part in this figure or in the choice.

python scripts/fig_lr_curves.py --exp main [--out paper/figures] -> <out>/lr_curves.{pdf,png}
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import colors, figure, load, parse_args, save, skip  # noqa: E402

from adaptive_lora.stats import REFERENCE, lr_curves, lr_selection, same_lr_dev_gaps  # noqa: E402

LINTHRESH = 0.01   # nats: the symlog gap axis is linear inside +-LINTHRESH
DODGE = 0.025      # decades between neighbouring strategies' points (7 arms: +-0.075, a quarter of 3e-4 -> 1e-3)


def dodges(strategies: list[str]) -> dict[str, float]:
    """{strategy: the factor its lrs are drawn at}, centred on 1: 10 ** (DODGE * (i - (n - 1) / 2))."""
    return {s: 10 ** (DODGE * (i - (len(strategies) - 1) / 2)) for i, s in enumerate(strategies)}


def draw_curves(ax, rows: list[dict], col: dict, top: float, dodge: dict[str, float]) -> None:
    """Each strategy's dev loss by lr (``lr_curves`` rows), its chosen lr as a large marker (hollow: not bracketed)
    and a diverged cell as a cross at ``top``; x shifted by ``dodge``."""
    for s in rows:
        k = dodge[s["strategy"]]
        xs = [lr * k for lr, _ in s["curve"]]
        ys = [v if math.isfinite(v) else top for _, v in s["curve"]]
        label = s["strategy"] + ("" if s["bracketed"] else " (not bracketed yet)")
        ax.plot(xs, ys, "-", color=col[s["strategy"]], lw=1.2, label=label)
        ax.plot(xs, ys, "o", color=col[s["strategy"]], ms=3)
        for lr, v in s["curve"]:
            if not math.isfinite(v):
                ax.plot([lr * k], [top], "x", color=col[s["strategy"]], ms=6)
        if s["lr"] is not None:
            ax.plot([s["lr"] * k], [s["dev_loss"]], "o", ms=6.5, color=col[s["strategy"]],
                    mfc=col[s["strategy"]] if s["bracketed"] else "none", mec="white", mew=0.6)


def draw_gaps(ax, gaps: dict[str, list[tuple[float, float]]], col: dict, dodge: dict[str, float]) -> None:
    """Each arm's dev loss minus uniform's at the same lr on a symlog axis (linear inside +-LINTHRESH), with
    headroom so that no point sits on the frame."""
    for strategy, pts in gaps.items():
        ax.plot([lr * dodge[strategy] for lr, _ in pts], [g for _, g in pts], "o-", color=col[strategy], lw=1.2,
                ms=3)
    ax.axhline(0.0, color="k", lw=0.8, ls="--")
    ax.set_yscale("symlog", linthresh=LINTHRESH, linscale=1.5)
    ys = [g for pts in gaps.values() for _, g in pts if math.isfinite(g)] + [0.0]
    pad = lambda y: y * 3 if abs(y) > LINTHRESH else y + math.copysign(LINTHRESH / 2, y or 1)  # noqa: E731
    ax.set_ylim(min(-LINTHRESH, pad(min(ys))), max(LINTHRESH, pad(max(ys))))
    ax.set_ylabel(f"dev loss $-$ {REFERENCE}'s (nats)")
    ax.set_title(f"gap to {REFERENCE} at the same rate")


def plain_ticks(ax, gaps: bool) -> None:
    """Tick labels as plain text ("1e-3" on the lr axis; "-0.1", "0", "0.01" on the symlog gap axis): matplotlib's
    default "10^{-3}" sets the exponent as a superscript at 70 % of the 8-pt tick size, below the 8-pt minimum."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")))
    ax.xaxis.set_minor_formatter(NullFormatter())
    if gaps:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}".replace("-", "\u2212")))


def main(argv=None) -> int:
    a = parse_args(__doc__.split("\n")[0], argv, default_exp="main")
    sel = lr_curves(lr_selection(load(a.exp)))
    if not sel:
        return skip(f"no protocol-v2 cell with a dev loss in results/{a.exp}/")
    groups: dict[tuple, list[dict]] = {}
    for s in sel:
        groups.setdefault((s["model"], s["data"], s["budget"]), []).append(s)
    key = max(groups, key=lambda k: len(groups[k]))
    rows = groups[key]
    col = colors([s["strategy"] for s in rows])
    fig = figure(3.0 + 0.2 * ((len(rows) - 1) // 4))
    full, zoom = fig.subplots(1, 2)
    finite = [v for s in rows for _, v in s["curve"] if math.isfinite(v)]
    top = max(finite) + 0.05 * (max(finite) - min(finite) + 1e-3)
    gaps = same_lr_dev_gaps(rows)
    dodge = dodges([s["strategy"] for s in rows])
    for ax in (zoom,) if gaps else (full, zoom):
        draw_curves(ax, rows, col, top, dodge)
    if gaps:
        draw_gaps(full, gaps, col, dodge)
    else:
        full.set_ylabel("dev loss (nats/token, seed 0)")
        full.set_title("all learning rates run")
    for ax in (full, zoom):
        ax.set_xscale("log")
        ax.set_xlabel("peak learning rate")
        ax.grid(alpha=0.3)
    plain_ticks(zoom, False)
    plain_ticks(full, bool(gaps))
    zoom.set_ylabel("dev loss (nats/token, seed 0)")
    full.set_xlim(zoom.get_xlim())      # one lr axis for both panels
    # the right panel zooms onto the minima, where the choice is made (a curve is often flat there)
    best = [s["dev_loss"] for s in rows if s["lr"] is not None and math.isfinite(s["dev_loss"])]
    lo = min(best) if best else min(finite)
    span = max(0.02, 1.2 * ((max(best) - lo) if best else 0.0))   # every strategy's choice stays in view
    zoom.set_ylim(lo - 0.15 * span, lo + span)
    zoom.set_title(f"near the minima (to +{span:.2f} nats)")
    fig.suptitle(f"{key[0]}, {key[1]}, budget {key[2]}")
    handles, labels = zoom.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), frameon=False)
    save(fig, a.out, "lr_curves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
