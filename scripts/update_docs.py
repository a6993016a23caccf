"""Regenerate the generated blocks of README.md and EXPERIMENTS.md from committed results (never typed by hand).

- README.md, between the cost-table markers: the measured cost of the default run(s) and the benchmark;
- EXPERIMENTS.md, between the pilot-seeds markers: the pilot's seed spread against the strategy differences and
  the seeds the main grid needs (``adaptive_lora.report.seed_spread`` / ``seed_spread_text``).

Usage: python scripts/update_docs.py [--check]   (--check: exit 1 if a file is stale, and say which)
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # the package, for the blocks it computes
START, END = "<!-- cost-table:start -->", "<!-- cost-table:end -->"
SEEDS = ("<!-- pilot-seeds:start -->", "<!-- pilot-seeds:end -->")
PILOT, MAIN_BUDGET = "pilot", "r8"


def cost_table() -> str:
    rows = ["| run | train examples | optimizer steps | trainable params | train time | real tok/s | eval (500) time "
            "| peak RSS | eval loss (base → trained) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for p in sorted((ROOT / "results" / "default").glob("*.json")):
        r = json.loads(p.read_text())
        c = r["config"]
        rows.append(f"| `{c['model']}` {c['strategy']} {c['budget']} seed {c['seed']} ({c['precision']}) | "
                    f"{r['n_train_examples']:,} | {r['optimizer_steps']} | {r['trainable_params']:,} | "
                    f"{r['train_seconds'] / 60:.1f} min | {r['tokens_per_second']:.0f} | {r['eval_seconds']:.0f} s | "
                    f"{r['peak_rss_mb'] / 1024:.1f} GiB | {r['base_eval_loss']:.4f} → {r['eval_loss']:.4f} |")
    text = "\n".join(rows)
    cpu = None
    for p in sorted((ROOT / "results" / "default").glob("*.json")):
        cpu = json.loads(p.read_text())["provenance"]["machine"]
    if cpu:
        text += f"\n\nMachine: {cpu['cpu_count']} cores ({cpu['processor']}), {cpu['torch_threads']} torch threads."
    grids = grid_cost_rows()
    if grids:
        text += ("\n\nProtocol-v2 grid cells as they ran (medians over the committed cells of each experiment, "
                 "model and kind of CPU, which cells record from 2026-12-01 on; the grids run 2 cells side by side, "
                 "1 thread each, beside other work; the test eval covers the 500 test examples, dev and transfer "
                 "evals come on top; in `replication_prior` it covers the prior split's 20, 100 examples train for "
                 "3 epochs and the 500 held-out are its transfer eval):\n\n" + "\n".join(grids))
    bench = ROOT / "benchmarks" / "results" / "latest.md"
    if bench.exists():
        text += "\n\nTraining throughput against stock PEFT + Trainer (`benchmarks/train_throughput.py`):\n\n"
        text += bench.read_text().strip()
    return text


def grid_cost_rows() -> list[str]:
    """Markdown rows of the measured cost of protocol-v2 cells and of replication D's (the prior split: 100
    examples x 3 epochs, tested on its 20), one per (experiment, model, kind of CPU) under results/
    (``provenance.cpu_kind``: cells from before the CPU was recorded form their own row)."""
    import statistics
    from adaptive_lora.provenance import cpu_kind
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for p in sorted((ROOT / "results").glob("*/*.json")):
        r = json.loads(p.read_text())
        if not isinstance(r.get("config"), dict) or "train_seconds" not in r or (
                "dev_loss" not in r and r["config"].get("split") != "prior"):   # pilot-era cells: the table above
            continue
        kind = cpu_kind(r["provenance"]["machine"].get("cpu"))
        groups.setdefault((p.parent.name, r["config"]["model"], kind), []).append(r)
    if not groups:
        return []
    rows = ["| experiment | model | CPU | cells | train examples | threads | train time (median) | test eval (median) "
            "| peak RSS (max) | base test loss |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (exp, model, kind), rs in sorted(groups.items()):
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        rows.append(f"| `{exp}` | `{model}` | {kind} | {len(rs)} | {med('n_train_examples'):,.0f} | "
                    f"{rs[0]['provenance']['machine']['torch_threads']} | {med('train_seconds') / 60:.1f} min | "
                    f"{med('eval_seconds'):.0f} s | {max(r['peak_rss_mb'] for r in rs) / 1024:.1f} GiB | "
                    f"{rs[0]['base_eval_loss']:.4f} |")
    return rows


def pilot_seeds_block(results_dir: Path | None = None) -> str:
    """The EXPERIMENTS.md paragraph on the pilot's seed spread (main budget), with where it comes from."""
    from adaptive_lora.report import seed_spread, seed_spread_text
    from adaptive_lora.results import load_results

    results = load_results(PILOT, results_dir or ROOT / "results")
    row = next((s for s in seed_spread(results) if s["budget"] == MAIN_BUDGET), None)
    return (f"*Generated by `scripts/update_docs.py` from the {len(results)} cells in `results/{PILOT}/` "
            f"(`adaptive-lora report {PILOT}` has the table).*\n\n" + seed_spread_text(row))


def replace_block(text: str, markers: tuple[str, str], body: str) -> str:
    start, end = markers
    if start not in text or end not in text:
        raise SystemExit(f"markers {start} ... {end} missing")
    return re.sub(re.escape(start) + r".*?" + re.escape(end), lambda m: f"{start}\n{body}\n{end}", text,
                  flags=re.S)


def regenerated() -> dict[Path, str]:
    """{file: its content with every generated block regenerated}."""
    return {ROOT / "README.md": replace_block((ROOT / "README.md").read_text(), (START, END), cost_table()),
            ROOT / "EXPERIMENTS.md": replace_block((ROOT / "EXPERIMENTS.md").read_text(), SEEDS,
                                                   pilot_seeds_block())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    stale = []
    for path, new in regenerated().items():
        if new != path.read_text():
            stale.append(path.name)
            if not a.check:
                path.write_text(new)
    if a.check and stale:
        print(f"stale: {', '.join(stale)} (run python scripts/update_docs.py and commit)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
