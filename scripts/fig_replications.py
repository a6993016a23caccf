"""Figure: part 1's primary effects beside its four replications (EXPERIMENTS.md, Part 2).

One row per strategy that a replication repeats, one colour per experiment with results
(``adaptive_lora.report.replication_effects``: part 1, A longer training, B GSM8K, C Gemma-3-270M, D the prior
setting at the matched budget on the 500 held-out examples), side by side within the row: mean paired difference to
uniform rank (test loss, nats; in D, to all modules at r16), unadjusted 95 % interval (thick) and the Holm step-down interval over that
experiment's own family (thin); a filled point where the adjusted interval excludes zero (the verdict), a dashed
line at zero, dotted lines at the equivalence margin (``stats.EQUIVALENCE_MARGIN``); the legend gives each
experiment's paired seeds. D's placements get rows of their own, marked "(D)", since their reference differs.
Part 1's other strategies are in the main forest figure. Skipped while no replication has a strategy
with two seed pairs.

python scripts/fig_replications.py [--out paper/figures] -> <out>/replications.{pdf,png}
"""
from __future__ import annotations

import sys
from pathlib import Path

from matplotlib.lines import Line2D

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import difference_axis, figure, interval_row, parse_args, plt, save, skip  # noqa: E402

from adaptive_lora.report import REPLICATIONS, replication_effects  # noqa: E402
from adaptive_lora.stats import EQUIVALENCE_MARGIN  # noqa: E402
from adaptive_lora.results import load_results  # noqa: E402


PRIOR = dict(REPLICATIONS)["replication_prior"]


def legend_label(label: str, rows: list[dict]) -> str:
    """An experiment's legend entry: its name without the parenthesis (the caption says it), D's reference (all
    modules, not uniform rank) and its paired seeds: "B: GSM8K (n = 2-3)", "part 1 (n = 8)"."""
    lo, hi = min(r["n_pairs"] for r in rows), max(r["n_pairs"] for r in rows)
    n = f"n = {lo}" if lo == hi else f"n = {lo}\u2013{hi}"
    return label.split(" (")[0] + (" vs all modules" if label == PRIOR else "") + f" ({n})"


def main(argv=None) -> int:
    a = parse_args(__doc__.split("\n")[0], argv, default_exp="main")
    blocks = replication_effects({exp: load_results(exp) for exp, _ in REPLICATIONS})
    part1, prior = REPLICATIONS[0][1], dict(REPLICATIONS)["replication_prior"]
    # D compares with all modules, not uniform rank: its own rows, so that no row sets two references side by side
    blocks = [(label, [dict(r, strategy=f"{r['strategy']} (D)") for r in rows] if label == prior else rows)
              for label, rows in blocks]
    replicated = list(dict.fromkeys(r["strategy"] for label, rows in blocks if label != part1 for r in rows))
    if not replicated:
        for ext in ("pdf", "png"):
            (Path(a.out) / f"replications.{ext}").unlink(missing_ok=True)
        return skip("no replication has a strategy with two seed pairs yet")
    blocks = [(label, [r for r in rows if r["strategy"] in replicated]) for label, rows in blocks]
    blocks = [(label, rows) for label, rows in blocks if rows]
    fig = figure(0.24 * len(replicated) + 1.0)
    ax = fig.add_subplot(1, 1, 1)
    cmap = plt.get_cmap("tab10")
    step = 0.7 / max(1, len(blocks))
    y_of = {s: len(replicated) - 1 - i for i, s in enumerate(replicated)}
    xs = []
    for j, (label, rows) in enumerate(blocks):
        off = 0.35 - step * (j + 0.5)
        for r in rows:
            xs += interval_row(ax, y_of[r["strategy"]] + off, r, ms=4, color=cmap(j),
                               filled=r["verdict"] in ("better", "worse"))
    difference_axis(ax, xs, len(replicated), EQUIVALENCE_MARGIN,
                    label="test loss \u2212 the reference's at the same seed (nats): uniform rank; in D, all modules")
    ax.set_yticks(list(y_of.values()), list(y_of))
    handles = [Line2D([], [], color=cmap(j), marker="o", mfc="white", lw=2.6) for j in range(len(blocks))]
    fig.legend(handles, [legend_label(label, rows) for label, rows in blocks], loc="outside lower center",
               ncol=min(3, len(blocks)), frameon=False)
    fig.suptitle("Part 1 and its replications: 95 % CI (thick), Holm-adjusted (thin); filled: adjusted CI excludes 0")
    save(fig, a.out, "replications")
    return 0


if __name__ == "__main__":
    sys.exit(main())
