"""Figure: part 1's primary effects beside its four replications (EXPERIMENTS.md, Part 2).

One block per experiment with results (``adaptive_lora.report.replication_effects``: part 1, A longer training,
B GSM8K, C Gemma-3-270M, D the prior setting at the matched budget on the 500 held-out examples), one row per
strategy with at least two seed pairs: mean paired difference to uniform rank (test loss, nats), unadjusted 95 %
interval (thick) and Holm step-down interval (thin; the verdict follows it), a dashed line at zero. Skipped while
no replication has such a row (part 1 alone is the main forest figure).

python scripts/fig_replications.py [--out paper/figures] -> <out>/replications.{pdf,png}
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import difference_axis, figure, interval_row, parse_args, save, skip  # noqa: E402

from adaptive_lora.report import REPLICATIONS, replication_effects  # noqa: E402
from adaptive_lora.results import load_results  # noqa: E402


def main(argv=None) -> int:
    a = parse_args(__doc__.split("\n")[0], argv, default_exp="main")
    blocks = replication_effects({exp: load_results(exp) for exp, _ in REPLICATIONS})
    if not any(label != REPLICATIONS[0][1] for label, _ in blocks):
        for ext in ("pdf", "png"):
            (Path(a.out) / f"replications.{ext}").unlink(missing_ok=True)
        return skip("no replication has a strategy with two seed pairs yet")
    n = sum(len(rows) + 1 for _, rows in blocks)
    fig = figure(0.27 * n + 0.9)
    ax = fig.add_subplot(1, 1, 1)
    y, ticks, labels, heads, xs = n - 1, [], [], [], []
    for label, rows in blocks:
        heads.append(len(ticks))
        ticks.append(y)
        labels.append(label)
        y -= 1
        for r in sorted(rows, key=lambda r: r["strategy"]):
            xs += interval_row(ax, y, r, ms=4.5)
            ticks.append(y)
            labels.append(f"{r['strategy']} (n = {r['n_pairs']}): {r['verdict']}")
            y -= 1
    difference_axis(ax, xs, n)
    ax.set_yticks(ticks, labels)
    for i in heads:   # block headings: bold, no tick mark
        ax.get_yticklabels()[i].set_fontweight("bold")
        ax.yaxis.get_major_ticks()[i].tick1line.set_visible(False)
    fig.suptitle("Part 1 and its replications: 95 % CI (thick), Holm-adjusted (thin)")
    save(fig, a.out, "replications")
    return 0


if __name__ == "__main__":
    sys.exit(main())
