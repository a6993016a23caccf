"""Regenerate the README's measured-cost table from committed results (never typed by hand).

Usage: python scripts/update_readme.py [--check]   (--check: exit 1 if the README is stale)
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- cost-table:start -->", "<!-- cost-table:end -->"


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
    bench = ROOT / "benchmarks" / "results" / "latest.md"
    if bench.exists():
        text += "\n\nTraining throughput against stock PEFT + Trainer (`benchmarks/train_throughput.py`):\n\n"
        text += bench.read_text().strip()
    return text


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    readme = ROOT / "README.md"
    old = readme.read_text()
    new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda m: f"{START}\n{cost_table()}\n{END}", old,
                 flags=re.S)
    if a.check:
        return 0 if new == old else 1
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
