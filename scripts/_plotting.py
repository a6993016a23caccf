"""Shared helpers of the fig_*.py scripts: arguments, loading results, picking a budget group, print-size figures
and panel grids, saving PDF + PNG.

Every figure is made at the size it is printed (``WIDTH`` = 6.5 in, the text width: main.tex includes each at
``\\linewidth``) and saved without cropping, so a font size set here is the size on paper; the smallest is 8 pt.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

WIDTH = 6.5        # inches: the paper's text width, at which main.tex prints every figure
MIN_FONT_PT = 8    # no text in a figure is smaller than this at print size
plt.rcParams.update({
    "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "legend.fontsize": 8, "legend.title_fontsize": 8, "figure.titlesize": 9,
    "pdf.fonttype": 42, "savefig.dpi": 200,
})

from adaptive_lora.report import BASELINES, REFERENCE, group_key, mean_ci, summarize  # noqa: E402
from adaptive_lora.results import ROOT, load_results, results_root  # noqa: E402

DEFAULT_OUT = ROOT / "paper" / "figures"


def parse_args(description: str, argv=None, budget: bool = False, extra=None,
               default_exp: str = "pilot") -> argparse.Namespace:
    """--exp, --out (and --budget); ``extra(parser)`` adds a script's own options."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--exp", default=default_exp,
                    help="experiment name (results/<exp>/; ADAPTIVE_LORA_RESULTS moves it)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the PDF and PNG")
    if budget:
        ap.add_argument("--budget", default=None, help="budget group to plot (default: the one with most strategies)")
    if extra is not None:
        extra(ap)
    return ap.parse_args(argv)


def skip(msg: str) -> int:
    print(f"skip: {msg}", file=sys.stderr)
    return 0


def load(exp: str) -> list[dict]:
    """Finished results of an experiment (an empty list, with a message, when there are none)."""
    results = [r for r in load_results(exp) if isinstance(r.get("config"), dict) and "eval_loss" in r]
    if not results:
        print(f"no results in {results_root() / exp}/", file=sys.stderr)
    return results


def pick_group(results: list[dict], budget: str | None = None) -> tuple[tuple, list[dict]] | tuple[None, list]:
    """The (model, data, budget) group with most strategies (ties: most runs, then first), or the asked budget."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault(group_key(r), []).append(r)
    if budget is not None:
        groups = {k: v for k, v in groups.items() if k[2] == budget}
    if not groups:
        return None, []
    key = max(groups, key=lambda k: (len({r["config"]["strategy"] for r in groups[k]}), len(groups[k])))
    return key, groups[key]


def strategies_in_order(results: list[dict]) -> list[str]:
    names = sorted({r["config"]["strategy"] for r in results})
    return ([REFERENCE] if REFERENCE in names else []) + [s for s in names if s != REFERENCE]


def colors(strategies: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {s: cmap(i % 10) for i, s in enumerate(strategies)}


def figure(height: float):
    """A figure of the printed width (``WIDTH``) and the given height in inches, with constrained layout (so that
    labels fit inside it without cropping at save time, which would change the printed scale)."""
    return plt.figure(figsize=(WIDTH, height), layout="constrained")


def panel_grid(fig, n: int, ncol: int, **subplot_kw) -> list:
    """``n`` axes in rows of ``ncol`` with no empty slot: a last row with fewer panels is centred (each panel spans
    two columns of a grid twice as wide, so half-panel offsets are possible)."""
    ncol = max(1, min(ncol, n))
    nrow = -(-n // ncol)
    gs = fig.add_gridspec(nrow, 2 * ncol)
    axes = []
    for i in range(n):
        row, col = divmod(i, ncol)
        in_row = ncol if row < nrow - 1 else n - ncol * (nrow - 1)
        start = 2 * col + (ncol - in_row)
        axes.append(fig.add_subplot(gs[row, start:start + 2], **subplot_kw))
    return axes


def t_interval(values) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the 95 % t-interval (``adaptive_lora.report.mean_ci``); low/high NaN when n < 2."""
    ci = mean_ci(values)
    return ci["mean"], ci["ci_low"], ci["ci_high"], ci["n"]


def interval_row(ax, y: float, row: dict, ms: float = 5, color="k", filled: bool = False) -> list[float]:
    """One paired-difference row of a forest plot at height ``y``: the Holm step-down interval (thin,
    ``adj_ci_low``/``adj_ci_high``), the unadjusted 95 % interval (thick, ``ci_low``/``ci_high``) and the mean
    (``diff_mean``; a hollow point unless ``filled``), as ``stats.paired_contrasts`` rows carry them. Returns the
    finite x values drawn (for the axis limits); an interval that is NaN (n < 2) is left out."""
    xs = [row["diff_mean"]] if math.isfinite(row["diff_mean"]) else []
    for lo, hi, lw in ((row["adj_ci_low"], row["adj_ci_high"], 0.9), (row["ci_low"], row["ci_high"], 2.6)):
        if math.isfinite(lo) and math.isfinite(hi):
            ax.plot([lo, hi], [y, y], color=color, lw=lw, solid_capstyle="butt")
            xs += [lo, hi]
    ax.plot([row["diff_mean"]], [y], "o", color=color, mfc=color if filled else "white", ms=ms, zorder=3)
    return xs


DIFFERENCE_LABEL = "test loss \u2212 uniform's at the same seed (nats); below 0: lower loss"


def difference_axis(ax, xs: list[float], n_rows: int, margin: float | None = None,
                    label: str = DIFFERENCE_LABEL) -> None:
    """The x axis of a paired-difference forest plot: a dashed line at zero, dotted lines at +-``margin`` (the
    equivalence margin, when the verdicts use one), limits around ``xs``, zero and the margin with 8 % margins,
    rows 0 .. n_rows - 1, a light grid and the x label (default: the difference to uniform rank)."""
    ax.axvline(0, color="0.4", lw=0.8, ls="--", zorder=0)
    for x in (-margin, margin) if margin else ():
        ax.axvline(x, color="0.55", lw=0.8, ls=":", zorder=0)
    xs = [0.0] + list(xs) + ([-margin, margin] if margin else [])
    span = max(xs) - min(xs) or 1e-3
    ax.set_xlim(min(xs) - 0.08 * span, max(xs) + 0.08 * span)
    ax.set_ylim(-0.6, n_rows - 0.4)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel(label)


def small_texts(fig) -> list[str]:
    """Visible texts of a figure smaller than ``MIN_FONT_PT`` (the test suite checks every figure with it)."""
    from matplotlib.text import Text

    return [f"{t.get_text()!r} ({t.get_fontsize():g} pt)" for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT_PT]


def save(fig, out: str | Path, name: str) -> list[Path]:
    """Write <out>/<name>.pdf and .png at the figure's own size, uncropped (PDF without a creation date, so reruns
    give the same file)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    fig.savefig(paths[0], metadata={"CreationDate": None, "ModDate": None})
    fig.savefig(paths[1])
    plt.close(fig)
    for p in paths:
        print(f"wrote {os.path.relpath(p)}")
    return paths


__all__ = ["parse_args", "skip", "load", "pick_group", "strategies_in_order", "colors", "figure", "panel_grid",
           "t_interval", "interval_row", "difference_axis", "small_texts", "save", "summarize", "plt", "REFERENCE", "BASELINES", "WIDTH"]
