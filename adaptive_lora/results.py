"""Result files: ``results/<experiment>/<run-id>.json``, written atomically (temp file + rename).

Runs from a dirty tree (code differing from HEAD) go to ``results-dirty/`` unless explicitly allowed, so the
committed record never mixes in uncommitted code.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def results_root(dirty: bool = False) -> Path:
    base = Path(os.environ.get("ADAPTIVE_LORA_RESULTS", ROOT / "results"))
    return base.with_name(base.name + "-dirty") if dirty else base


def result_path(experiment: str, run_id: str, dirty: bool = False) -> Path:
    return results_root(dirty) / experiment / f"{run_id}.json"


def write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_results(experiment: str, root: Path | None = None) -> list[dict]:
    d = (root or results_root()) / experiment
    return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))]
