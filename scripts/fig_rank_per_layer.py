"""Figure: LoRA rank of every adapted module for each strategy at one budget, one heat map per strategy (module
kinds as rows, layers as columns, mean over seeds of the recorded rank maps), one shared colour scale.

A strategy whose map is one rank everywhere (uniform) gets no panel; the title states its rank instead. Panels fill
rows of two; a shorter last row is centred.

python scripts/fig_rank_per_layer.py [--exp pilot] [--budget r8] [--out paper/figures]
-> <out>/rank_per_layer.{pdf,png}
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _plotting import figure, load, panel_grid, parse_args, pick_group, save, skip, strategies_in_order  # noqa: E402

from adaptive_lora.spec import _BLOCK_RE  # noqa: E402

NCOL = 2


def ranks_by_kind(rank_maps: list[dict]) -> dict[str, dict[int, float]]:
    """{kind: {layer: mean rank over the maps}}; names that are not '<prefix>.<layer>.<kind>' are ignored."""
    acc: dict[str, dict[int, list[int]]] = {}
    for rm in rank_maps:
        for name, r in rm.items():
            m = _BLOCK_RE.match(name)
            if m:
                acc.setdefault(m["kind"], {}).setdefault(int(m["layer"]), []).append(r)
    return {k: {layer: sum(v) / len(v) for layer, v in sorted(d.items())} for k, d in acc.items()}


def short(kind: str) -> str:
    """'self_attn.q_proj' -> 'q', 'mlp.gate_proj' -> 'gate'."""
    return kind.rsplit(".", 1)[-1].removesuffix("_proj")


def main(argv=None) -> int:
    a = parse_args(__doc__.splitlines()[0], argv, budget=True)
    key, group = pick_group(load(a.exp), a.budget)
    group = [r for r in group if isinstance(r.get("rank_map"), dict) and r["rank_map"]]
    if not group:
        return skip(f"no result with a rank map in experiment '{a.exp}'")
    strategies = strategies_in_order(group)
    per_strategy = {s: ranks_by_kind([r["rank_map"] for r in group if r["config"]["strategy"] == s])
                    for s in strategies}
    kinds = list(dict.fromkeys(k for d in per_strategy.values() for k in d))
    if not kinds:
        return skip("no rank-map name matches '<prefix>.<layer>.<kind>'")
    layers = sorted({layer for d in per_strategy.values() for k in d.values() for layer in k})
    constant = {s: {v for k in d.values() for v in k.values()} for s, d in per_strategy.items()}
    constant = {s: v.pop() for s, v in constant.items() if len(v) == 1}
    shown = [s for s in strategies if s not in constant and per_strategy[s]]
    if not shown:
        return skip("every strategy has one rank everywhere")
    vmax = max(v for s in shown for k in per_strategy[s].values() for v in k.values())
    nrow = -(-len(shown) // NCOL)
    fig = figure(1.3 * nrow + 0.75)
    axes = panel_grid(fig, len(shown), NCOL)
    im = None
    for i, (ax, s) in enumerate(zip(axes, shown)):
        grid = [[per_strategy[s].get(k, {}).get(layer, float("nan")) for layer in layers] for k in kinds]
        im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest",
                       extent=(layers[0] - 0.5, layers[-1] + 0.5, len(kinds) - 0.5, -0.5))
        ax.set_yticks(range(len(kinds)), [short(k) for k in kinds])
        ax.set_xticks([x for x in layers if x % 5 == 0])
        ax.tick_params(length=2)
        ax.set_title(s)
        if i >= len(shown) - NCOL:
            ax.set_xlabel("layer")
    fig.colorbar(im, ax=axes, label="rank (mean over seeds)", shrink=0.8, aspect=30)
    model, data, budget = key
    same = "; ".join(f"{s}: rank {v:g} on every module" for s, v in constant.items())
    fig.suptitle(f"{model} · {data} · budget {budget}" + (f" ({same})" if same else ""))
    save(fig, a.out, "rank_per_layer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
