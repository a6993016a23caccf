"""Figure: LoRA rank per layer for each strategy, one panel per module kind (mean over seeds of the rank maps).

python scripts/fig_rank_per_layer.py [--exp pilot] [--budget r8] [--out paper/figures]
-> <out>/rank_per_layer.{pdf,png}
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import colors, load, parse_args, pick_group, plt, save, skip, strategies_in_order  # noqa: E402

from matplotlib.ticker import MaxNLocator  # noqa: E402

from adaptive_lora.spec import _BLOCK_RE  # noqa: E402


def ranks_by_kind(rank_maps: list[dict]) -> dict[str, dict[int, float]]:
    """{kind: {layer: mean rank over the maps}}; names that are not '<prefix>.<layer>.<kind>' are ignored."""
    acc: dict[str, dict[int, list[int]]] = {}
    for rm in rank_maps:
        for name, r in rm.items():
            m = _BLOCK_RE.match(name)
            if m:
                acc.setdefault(m["kind"], {}).setdefault(int(m["layer"]), []).append(r)
    return {k: {layer: sum(v) / len(v) for layer, v in sorted(d.items())} for k, d in acc.items()}


def main(argv=None) -> int:
    a = parse_args(__doc__.splitlines()[0], argv, budget=True)
    results = load(a.exp)
    key, group = pick_group(results, a.budget)
    group = [r for r in group if isinstance(r.get("rank_map"), dict) and r["rank_map"]]
    if not group:
        return skip(f"no result with a rank map in experiment '{a.exp}'")
    strategies = strategies_in_order(group)
    per_strategy = {s: ranks_by_kind([r["rank_map"] for r in group if r["config"]["strategy"] == s])
                    for s in strategies}
    kinds = list(dict.fromkeys(k for d in per_strategy.values() for k in d))
    if not kinds:
        return skip("no rank-map name matches '<prefix>.<layer>.<kind>'")
    ncol = min(4, len(kinds))
    nrow = math.ceil(len(kinds) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.5 * nrow + 0.6), sharex=True, sharey=True,
                             squeeze=False)
    col = colors(strategies)
    for ax, kind in zip(axes.flat, kinds):
        for s in strategies:
            d = per_strategy[s].get(kind)
            if d:
                ax.plot(list(d), list(d.values()), marker=".", ms=3, lw=1.2, color=col[s], label=s)
        ax.set_title(kind, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(kinds):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("layer")
    for ax in axes[:, 0]:
        ax.set_ylabel("rank")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    for ax in axes.flat[1:len(kinds)]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend_rows = math.ceil(len(seen) / 4)
    fig.legend(list(seen.values()), list(seen), loc="lower center", ncol=min(4, len(seen)), fontsize=8)
    model, data, budget = key
    fig.suptitle(f"rank per layer · {model} · {data} · budget {budget} (mean over seeds)", fontsize=10)
    fig.tight_layout(rect=(0, (0.25 * legend_rows + 0.1) / fig.get_figheight(), 1, 1))
    save(fig, a.out, "rank_per_layer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
