"""Write the next stage file of a part-2 replication (EXPERIMENTS.md, Part 2) from the committed cells.

Every choice is read off dev losses (``adaptive_lora.stats``); part 1's choices (its learning rates, its best
data-driven strategy, uniform's lr at r1 / r32) come from results/main/ and are not re-made here.

- ``gsm8k`` / ``gemma``: experiments/replication_<x>.yaml is the replication's own stage 1 (lr selection, seed 0).
  While an argmin sits at an end of its grid: replication_<x>_extend.yaml. Then replication_<x>_r8.yaml, seeds 0-3:
  GSM8K: uniform, attn_heavy, ffn_heavy, part 1's best data-driven strategy, eva (rho 2) and adalora, each swept
  strategy at its GSM8K lr and the others at uniform's; Gemma: uniform, attn_heavy, ffn_heavy and the best
  data-driven strategy (the statistics are recomputed on Gemma by the runs themselves), at uniform's Gemma lr except
  the data-driven arms. Amendment 6: before the r8 file, replication_<x>_data_driven.yaml checks the data-driven
  arms' own lrs (the best data-driven strategy; on GSM8K also eva) at uniform's selected lr x 1/9, 1/3, 1, 3
  (seed 0), extended while unbracketed (replication_<x>_data_driven_extend.yaml).
- ``long``: 4,000 training examples (500 steps), the main grid's settings otherwise. replication_long.yaml = the lr
  check of uniform and attn_heavy (part-1 lr /3, x1, x3; seed 0), extended while unbracketed
  (replication_long_extend.yaml); then replication_long_r8.yaml, seeds 0-2: uniform and attn_heavy at their checked
  lrs, ffn_heavy and the best data-driven strategy at their part-1 lrs, and uniform at r16 and r32 at its long lr
  times part 1's lr(r) / lr(r8) (``next_stage.interpolated_lr`` over part 1's checks at r1, r8, r32).

python scripts/next_replication.py {gsm8k,gemma,long} [--dry-run]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import next_stage as ns  # noqa: E402

from adaptive_lora.results import load_results  # noqa: E402
from adaptive_lora.stats import LR_STEP, is_v2, lr_selection  # noqa: E402

SEEDS = [0, 1, 2, 3]
LONG_SEEDS = [0, 1, 2]
LONG_EXAMPLES = 4000


def read(name: str) -> dict:
    return yaml.safe_load((ROOT / "experiments" / f"{name}.yaml").read_text())


def part1(main_doc: dict, main: list[dict]) -> dict:
    """Part 1's choices: {"lr": {strategy: lr}, "best": best data-driven strategy, "checked": {rank: lr}}.
    Raises SystemExit while part 1 has not made them (stage 1 lrs, stage 2, uniform's r1 / r32 checks)."""
    ext, lr = ns.stage1_lrs(main_doc, main)
    if ext:
        raise SystemExit("part 1's learning rates are not chosen yet (stage 1 is being extended)")
    budget = main_doc["grid"][0]["budget"][0]
    v2 = [r for r in main if is_v2(r)]
    if not all(ns._seeds_done(v2, s, budget, ns.SEEDS) for s in ns.DATA_DRIVEN):
        raise SystemExit("part 1's stage 2 is not complete: its best data-driven strategy is not chosen yet")
    out = {"lr": lr, "best": ns.best_choices(v2, budget)[1]}
    checked = {}
    for b in ns.CHECKED:
        sel = ns._lr_of(lr_selection(main), b).get("uniform")
        if sel and sel["bracketed"]:
            checked[ns._rank(b)] = sel["lr"]
    out["checked"] = {**checked, ns._rank(budget): lr["uniform"]} if len(checked) == len(ns.CHECKED) else None
    return out


def data_driven_lrs(stage1: dict, results: list[dict], arms: list[str], uniform_lr: float,
                    budget: str) -> tuple[str, dict] | dict[str, float]:
    """Amendment 6 (EXPERIMENTS.md): each data-driven arm of B / C that stage 1 did not sweep gets its own lr on
    this replication's dev split (seed 0), over uniform's selected lr x 1/9, 1/3, 1, 3 and then one factor of 3
    beyond an end that holds the argmin, as stage 1 does. -> (suffix, stage document) while cells are missing or an
    argmin is unbracketed; {arm: selected lr} once all are bracketed."""
    by = ns._lr_of(lr_selection(results), budget)
    grid_lrs = [ns._sig(uniform_lr * LR_STEP ** k) for k in (-2, -1, 0, 1)]
    todo = [s for s in arms if s not in by or not set(grid_lrs) <= {x for x, _ in by[s]["curve"]}]
    if todo:
        return "data_driven", {**ns.head_of(stage1), "description": f"Amendment 6: the own lr of {', '.join(todo)} "
                               f"on this replication's dev split (seed 0), uniform's lr {uniform_lr:g} x 1/9, 1/3, 1, "
                               "3.", "grid": [{"strategy": todo, "lr": grid_lrs, "seed": [0], "budget": [budget]}]}
    ext = ns.extension_rows(by, arms, budget)
    if ext:
        return "data_driven_extend", {**ns.head_of(stage1), "description": "Amendment 6: the lr check extended one "
                                      "factor of 3 beyond the end where the dev-loss argmin sits.", "grid": ext}
    return {s: by[s]["lr"] for s in arms}


def plan_task(name: str, stage1: dict, results: list[dict], p1: dict) -> tuple[str, dict]:
    """GSM8K / Gemma: their own stage 1, the data-driven arms' own lrs (amendment 6), then the r8 seeds."""
    ext, lr = ns.stage1_lrs(stage1, results)
    if ext:
        return "extend", ext
    budget = stage1["grid"][0]["budget"][0]
    data_driven = list(dict.fromkeys([p1["best"], *(["eva"] if name == "gsm8k" else [])]))
    tuned = data_driven_lrs(stage1, results, [s for s in data_driven if s not in lr], lr["uniform"], budget)
    if isinstance(tuned, tuple):
        return tuned
    lr |= tuned
    own = lambda s: lr.get(s, lr["uniform"])  # noqa: E731 - not swept here: uniform's lr
    if name == "gsm8k":
        arms = list(dict.fromkeys(["uniform", "attn_heavy", "ffn_heavy", p1["best"], "eva", "adalora"]))
    else:
        arms = list(dict.fromkeys(["uniform", "attn_heavy", "ffn_heavy", p1["best"]]))
    grid = [{"seed": SEEDS, "strategy": [s], "lr": [own(s)], "budget": [budget]} for s in arms]
    return "r8", {**ns.head_of(stage1), "description": f"r8, seeds 0-3, at the lrs selected on this replication's "
                  f"dev split; {p1['best']} is part 1's best data-driven strategy.", "grid": grid, "order": ["seed"]}


def plan_long(main_doc: dict, results: list[dict], p1: dict) -> tuple[str, dict]:
    """Longer training: the lr check of uniform and attn_heavy, then the r8 seeds and uniform's r16 / r32."""
    budget = main_doc["grid"][0]["budget"][0]
    head = {**ns.head_of(main_doc), "name": "replication_long",
            "defaults": {**main_doc["defaults"], "train_examples": LONG_EXAMPLES}}
    check = {s: sorted({ns._sig(p1["lr"][s] / LR_STEP), p1["lr"][s], ns._sig(p1["lr"][s] * LR_STEP)})
             for s in ("uniform", "attn_heavy")}
    by = ns._lr_of(lr_selection(results), budget)
    if any(s not in by or len(by[s]["curve"]) < 3 for s in check):
        grid = [{"strategy": [s], "lr": lrs, "seed": [0], "budget": [budget]} for s, lrs in check.items()]
        return "", {**head, "description": f"Replication A (500 steps): lr check of uniform and attn_heavy at "
                    f"their part-1 lr /3, x1, x3 (seed 0), {LONG_EXAMPLES:,} training examples.", "grid": grid}
    ext = ns.extension_rows(by, check, budget)
    if ext:
        return "extend", {**head, "description": "Replication A: lr check extended one factor of 3 beyond the end "
                          "where the dev-loss argmin sits.", "grid": ext}
    if p1["checked"] is None:
        raise SystemExit("part 1's uniform lr checks at r1 / r32 are not bracketed yet (needed for r16 / r32)")
    lr = {"uniform": by["uniform"]["lr"], "attn_heavy": by["attn_heavy"]["lr"],
          "ffn_heavy": p1["lr"].get("ffn_heavy", p1["lr"]["uniform"]),
          p1["best"]: p1["lr"].get(p1["best"], p1["lr"]["uniform"])}
    grid = [{"seed": LONG_SEEDS, "strategy": [s], "lr": [v], "budget": [budget]} for s, v in lr.items()]
    u8 = p1["checked"][ns._rank(budget)]
    for b in ("r16", "r32"):
        scale = ns.interpolated_lr(ns._rank(b), p1["checked"]) / u8
        grid.append({"seed": LONG_SEEDS, "strategy": ["uniform"], "lr": [ns._sig(lr["uniform"] * scale)],
                     "budget": [b]})
    return "r8", {**head, "description": f"Replication A (500 steps): r8 seeds 0-2 (uniform and attn_heavy at "
                  f"their checked lrs, the others at part 1's; {p1['best']} = part 1's best data-driven strategy) "
                  f"and uniform at r16 / r32.", "grid": grid, "order": ["seed"]}


def plan(which: str) -> tuple[str, dict]:
    main_doc = read("main")
    p1 = part1(main_doc, load_results("main"))
    if which == "long":
        return plan_long(main_doc, load_results("replication_long"), p1)
    return plan_task(which, read(f"replication_{which}"), load_results(f"replication_{which}"), p1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("which", choices=["gsm8k", "gemma", "long"])
    ap.add_argument("--dry-run", action="store_true", help="print the file instead of writing it")
    a = ap.parse_args(argv)
    suffix, doc = plan(a.which)
    return ns.write_stage(doc, suffix, a.dry_run, "scripts/next_replication.py")


if __name__ == "__main__":
    sys.exit(main())
