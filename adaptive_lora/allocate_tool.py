"""``adaptive-lora allocate``: a strategy's rank map at a budget, as a table, a JSON object and PEFT files.

Writes ``models/<model>/<strategy>-<budget>.json`` (rank map, budget, exact count, strategy, statistics provenance;
usable as ``run --rank-map FILE``) and, with ``--out DIR``, ``DIR/adapter_config.json`` (PEFT ``LoraConfig``) plus
``DIR/rank_map.json``.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from .budget import parse_budget
from .errors import UserError
from .results import ROOT, write_json_atomic



def models_dir() -> Path:
    """Where generated rank maps go: models/ in the project (override with ADAPTIVE_LORA_MODELS)."""
    return Path(os.environ.get("ADAPTIVE_LORA_MODELS", ROOT / "models"))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text).replace(":", "-").replace("/", "__"))


def rank_map_path(model: str, strategy: str, budget: str) -> Path:
    return models_dir() / _slug(model) / f"{_slug(strategy)}-{_slug(budget)}.json"


def summary_table(spec, rank_map: dict[str, int]) -> str:
    """Layers as rows, module kinds as columns, ranks in the cells; per-kind totals at the bottom."""
    kinds = spec.kinds
    cells = {(m.layer, m.kind): rank_map.get(m.name, 0) for m in spec.modules}
    layers = sorted({m.layer for m in spec.modules})
    width = [max(len(k), 4) for k in kinds]
    head = "layer  " + "  ".join(k.rjust(w) for k, w in zip(kinds, width)) + "      params"
    lines = [head, "-" * len(head)]
    by_layer = {}
    for m in spec.modules:
        by_layer[m.layer] = by_layer.get(m.layer, 0) + rank_map.get(m.name, 0) * m.params_per_rank
    for layer in layers:
        row = [str(cells[(layer, k)]) if (layer, k) in cells else "-" for k in kinds]
        lines.append(f"{layer:>5}  " + "  ".join(c.rjust(w) for c, w in zip(row, width)) + f"  {by_layer[layer]:>10,}")
    lines.append("-" * len(head))
    per_kind = [sum(rank_map.get(m.name, 0) * m.params_per_rank for m in spec.modules if m.kind == k) for k in kinds]
    mean_rank = [sum(rank_map.get(m.name, 0) for m in spec.modules if m.kind == k) /
                 sum(1 for m in spec.modules if m.kind == k) for k in kinds]
    lines.append("mean   " + "  ".join(f"{r:.2f}".rjust(w) for r, w in zip(mean_rank, width)))
    lines.append("params " + "  ".join(f"{p:,}".rjust(w) for p, w in zip(per_kind, width)))
    return "\n".join(lines)


def allocate_cmd(args) -> int:
    from .models import check_model_name, model_spec
    from .peft_config import SCALINGS
    from .stats import BASELINES
    from .strategies import build_rank_map, get_strategy

    check_model_name(args.model)
    if args.strategy in BASELINES:
        raise UserError(f"'{args.strategy}' decides its ranks during training, so it has no rank map to allocate "
                        f"beforehand; train it with `adaptive-lora run --strategy {args.strategy}`")
    if args.scaling not in SCALINGS:
        raise UserError(f"unknown scaling '{args.scaling}'; known: {', '.join(SCALINGS)}")
    strat = get_strategy(args.strategy)
    spec = model_spec(args.model)
    budget = parse_budget(args.budget, spec)
    stats, stats_prov = None, None
    if strat.needs:
        from . import calibration
        if not args.json:
            print(f"statistics '{strat.needs}' for {args.model} (computed once, then cached) ...", file=sys.stderr)
        stats = calibration.statistics_for(strat.needs, args.model, args.data)
        stats_prov = calibration.provenance(strat.needs, args.model, args.data)
    rank_map = build_rank_map(spec, budget, args.strategy, stats, min_rank=args.min_rank, max_rank=args.max_rank)
    count = spec.count(rank_map)
    doc = {
        "model": args.model,
        "strategy": args.strategy,
        "rule": strat.rule,
        "citation": strat.citation,
        "budget": args.budget,
        "budget_params": budget,
        "trainable_params": count,
        "count": count,
        "relative_error": (count - budget) / budget,
        "min_rank": args.min_rank,
        "max_rank": args.max_rank,
        "stats": stats_prov,
        "rank_map": rank_map,
    }
    path = rank_map_path(args.model, args.strategy, args.budget)
    write_json_atomic(path, doc)
    written = [path]
    if args.out:
        from .peft_config import lora_config
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        cfg = lora_config(rank_map, args.scaling, base_model_name_or_path=args.model)
        cfg.save_pretrained(str(out))
        write_json_atomic(out / "rank_map.json", doc)
        written += [out / "adapter_config.json", out / "rank_map.json"]
    if args.json:
        print(json.dumps({**doc, "scaling": args.scaling, "written": [str(p) for p in written]}))
        return 0
    print(f"{args.model}  strategy {args.strategy}  budget {args.budget} = {budget:,} parameters")
    if strat.rule:
        print(f"rule: {strat.rule}")
    print(summary_table(spec, rank_map))
    print(f"trainable parameters: {count:,} (budget {budget:,}, {100 * (count - budget) / budget:+.3f} %)")
    for p in written:
        print(f"wrote {_rel(p)}")
    return 0


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)
