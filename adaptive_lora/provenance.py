"""Provenance of a result: code version, packages, hashes."""
from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Outputs written by runs themselves; changes there do not make the *code* dirty.
GENERATED = ("results/", "results-dirty/", "models/", "benchmarks/results/", "paper/")


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def git_commit() -> str | None:
    out = _git("rev-parse", "HEAD")
    return out.strip() if out else None


def git_dirty() -> bool:
    """True when tracked or untracked (not ignored) files outside generated outputs differ from HEAD."""
    out = _git("status", "--porcelain", "--untracked-files=all")
    if out is None:
        return True
    paths = [line[3:].split(" -> ")[-1].strip('"') for line in out.splitlines() if line.strip()]
    return any(not p.startswith(GENERATED) for p in paths)


def packages() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "accelerate", "numpy", "gguf", "adaptive-lora"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def machine() -> dict:
    import os
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
