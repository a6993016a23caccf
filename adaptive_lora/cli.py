"""Command line: ``adaptive-lora {run,params,allocate,sweep,report}``. Bad input -> one line on stderr, exit 2."""
from __future__ import annotations

import argparse
import json
import sys

from .errors import UserError


ALIASES = {"rank_map_file": ["--rank-map"]}


def _converter(ftype: str):
    """argparse type for a RunConfig annotation ('int', 'float | None', 'dict', ...); 'none' -> None."""
    base = ftype.split("|")[0].strip()
    conv = {"int": int, "float": float, "str": str, "dict": _json_dict}[base]
    if "None" not in ftype:
        return conv
    return lambda text: None if text.lower() in ("none", "null", "") else conv(text)


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _add_run_args(p: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """One option per RunConfig field (``--kebab-name``; ``only``: these fields), typed and documented from the
    dataclass, so that ``run`` and ``allocate`` share names, defaults and help."""
    from dataclasses import MISSING, fields

    from .config import RunConfig

    for f in fields(RunConfig):
        if only is not None and f.name not in only:
            continue
        flags = ["--" + f.name.replace("_", "-"), *ALIASES.get(f.name, [])]
        default = f.default_factory() if f.default is MISSING else f.default
        ftype = str(f.type)
        helptext = f.metadata.get("help", "") + f" (default: {json.dumps(default)})"
        if ftype == "bool":
            p.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=helptext)
        else:
            p.add_argument(*flags, dest=f.name, type=_converter(ftype), default=default, help=helptext,
                           metavar=f.name.upper())


def cmd_run(a) -> int:
    from dataclasses import fields

    from .config import RunConfig
    from .run import execute

    cfg = RunConfig(**{f.name: getattr(a, f.name) for f in fields(RunConfig)})
    path, result = execute(cfg, allow_dirty=a.allow_dirty, force=a.force)
    if result is None:
        print(f"exists, skipped: {path}")
        return 0
    dev = f"; dev {result['dev_loss']:.4f}" if result.get("dev_loss") is not None else ""
    print(f"eval_loss {result['eval_loss']:.4f} (ppl {result['eval_ppl']:.2f}; base {result['base_eval_loss']:.4f}"
          f"{dev})  trainable {result['trainable_params']:,}  {result['tokens_per_second']:.0f} tok/s")
    print(f"wrote {path}")
    return 0


def cmd_params(a) -> int:
    from .models import model_spec

    spec = model_spec(a.model)
    targets = [t for t in a.targets.split(",") if t] if a.targets else None
    sel = spec.select(targets) if targets else spec
    if not sel.modules:
        raise UserError(f"targets {a.targets} match no module of {a.model}; kinds: {', '.join(spec.kinds)}")
    n = sel.uniform_count(a.rank)
    out = {"model": a.model, "targets": targets or "all", "rank": a.rank, "modules": len(sel.modules),
           "kinds": sel.kinds, "trainable_params": n}
    print(json.dumps(out) if a.json else f"{a.model}: {len(sel.modules)} modules ({', '.join(sel.kinds)}) "
                                         f"at r={a.rank}: {n:,} trainable parameters")
    return 0


def cmd_allocate(a) -> int:
    from .allocate_tool import allocate_cmd

    return allocate_cmd(a)


def cmd_reproduce(a) -> int:
    from .reproduce import TOLERANCE, reproduce

    report = reproduce(a.exp or None, None if a.full else a.n)
    bad = [r for r in report if not r["ok"]]
    print(f"{len(report) - len(bad)}/{len(report)} cells within {TOLERANCE} nats of the committed eval loss")
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="adaptive-lora", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="train + evaluate one budget-matched LoRA run")
    _add_run_args(p)
    p.add_argument("--allow-dirty", action="store_true", help="write into results/ even from a dirty git tree")
    p.add_argument("--force", action="store_true", help="re-run even if the result file exists")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("params", help="LoRA trainable-parameter count of a uniform rank on given targets")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--targets", default=None, help="comma-separated module suffixes (PEFT list semantics)")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--json", action="store_true", help="print the count as JSON")
    p.set_defaults(fn=cmd_params)
    p = sub.add_parser("allocate", help="write a PEFT adapter_config.json for a strategy at a budget",
                       description="A strategy's rank map at an exact parameter budget: printed as a layer x module "
                                   "table, saved as JSON (usable as `run --rank-map`), and with --out as a PEFT "
                                   "adapter_config.json. Data-driven strategies compute their statistics on --data "
                                   "once (cached). adalora and eva allocate during training: use `run`.")
    _add_run_args(p, only=("model", "strategy", "budget", "data", "scaling", "min_rank", "max_rank"))
    p.add_argument("--out", default=None, help="folder for adapter_config.json and rank_map.json")
    p.add_argument("--json", action="store_true", help="print the rank map and its counts as one JSON object")
    p.set_defaults(fn=cmd_allocate)
    p = sub.add_parser("reproduce", help="re-run committed cells and compare with their committed eval loss")
    p.add_argument("--exp", action="append", help="experiment(s) to draw from (default: all)")
    p.add_argument("--n", type=int, default=1, help="number of cells, cheapest first")
    p.add_argument("--full", action="store_true", help="re-run every committed cell")
    p.set_defaults(fn=cmd_reproduce)
    from .sweep import add_sweep_parsers
    add_sweep_parsers(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
