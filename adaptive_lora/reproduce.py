"""Re-run committed result cells and check them against their committed eval loss.

``adaptive-lora reproduce [--exp E ...] [--n 1 | --full]`` picks the cheapest ``n`` committed cells (by recorded
train_seconds; ties by run id, so the choice is deterministic), re-runs each from its saved config into a temporary
results folder, and compares the eval loss with the committed one within ``TOLERANCE`` nats (EXPERIMENTS.md: re-runs on the same
kind of CPU with the same thread count are bit-identical; a pilot cell re-run on another kind of CPU matched to
5 decimals; the pilot's largest effect is 0.0042 nats).
Exit 1 if any cell is outside the tolerance.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .config import RunConfig
from .errors import UserError
from .results import results_root

TOLERANCE = 0.001  # nats: measured (EXPERIMENTS.md), a quarter of the pilot's largest effect


def committed_cells(experiments: list[str] | None = None) -> list[dict]:
    root = results_root()
    exps = experiments or sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
    cells = []
    for exp in exps:
        for p in sorted((root / exp).glob("*.json")):
            r = json.loads(p.read_text())
            if "eval_loss" in r and "config" in r and "copied_from" not in r:
                cells.append(r)
    return cells


def pick(cells: list[dict], n: int | None) -> list[dict]:
    ordered = sorted(cells, key=lambda r: (r.get("train_seconds", 0.0), r["run_id"]))
    return ordered if n is None else ordered[:n]


def reproduce(experiments: list[str] | None = None, n: int | None = 1) -> list[dict]:
    from .run import execute

    cells = pick(committed_cells(experiments), n)
    if not cells:
        raise UserError("no committed result cells to reproduce")
    report = []
    saved = {k: os.environ.get(k) for k in ("ADAPTIVE_LORA_RESULTS", "ADAPTIVE_LORA_RUNS")}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ADAPTIVE_LORA_RESULTS"] = str(Path(tmp) / "results")
        os.environ["ADAPTIVE_LORA_RUNS"] = str(Path(tmp) / "runs")
        try:
            for r in cells:
                cfg = RunConfig.from_dict(r["config"])
                _, new = execute(cfg, allow_dirty=True, force=True)
                diff = new["eval_loss"] - r["eval_loss"]
                report.append({"run_id": r["run_id"], "committed": r["eval_loss"], "rerun": new["eval_loss"],
                               "diff": diff, "ok": abs(diff) <= TOLERANCE})
                print(f"{r['run_id']}: committed {r['eval_loss']:.5f}  re-run {new['eval_loss']:.5f}  "
                      f"diff {diff:+.5f}  {'OK' if abs(diff) <= TOLERANCE else 'MISMATCH'}", flush=True)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return report
