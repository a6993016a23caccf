"""Provenance of a result: code version, packages, hashes."""
from __future__ import annotations

import hashlib
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


# Package modules that cannot change a number a run produces (CLI, sweeps, reports, paper, bookkeeping). Every
# other .py file under adaptive_lora/ is part of the training path, new files included by default.
NOT_TRAINING_PATH = frozenset({
    "__init__.py", "__main__.py", "cli.py", "errors.py", "provenance.py", "results.py", "sweep.py", "reproduce.py",
    "report.py", "stats.py", "writers.py", "allocate_tool.py", "launch.py", "paper.py",
})
PACKAGE = Path(__file__).resolve().parent


def training_path_files() -> list[Path]:
    """The source files whose content can change a result: adaptive_lora/**/*.py minus NOT_TRAINING_PATH
    (top-level only; every strategy module counts)."""
    files = sorted(PACKAGE.rglob("*.py"))
    return [p for p in files if not (p.parent == PACKAGE and p.name in NOT_TRAINING_PATH)]


def training_path_hash() -> str:
    """sha256 (first 12 hex digits) over the relative paths and bytes of the training-path files. Cells compared
    with each other must carry the same hash (``report`` refuses to pair cells whose hashes differ)."""
    h = hashlib.sha256()
    for p in training_path_files():
        h.update(p.relative_to(PACKAGE).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def packages() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "accelerate", "numpy", "gguf", "adaptive-lora"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def cpu(cpuinfo: str | None = None) -> dict:
    """The CPU's model name and the instruction-set features that decide its speed, from /proc/cpuinfo (Linux;
    ``cpuinfo``: its text, for tests): ``model_name``, ``avx2``, ``avx512f``, ``avx512_bf16``, ``amx_bf16`` and
    ``native_bf16`` (AMX or AVX512-BF16: bf16 matmuls in hardware; elsewhere bf16 is emulated, ~3x slower than
    fp32). Gotcha: ``platform.processor()`` says only "x86_64", so two very different machines look alike without
    this."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    lines = cpuinfo.splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), []))
    out = {"model_name": model, **{f: f in flags for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2")}}
    return {**out, "native_bf16": out["amx_bf16"] or out["avx512_bf16"]}


def cpu_kind(info: dict | None) -> str:
    """One label per kind of CPU (``cpu``'s dict; None for cells recorded before it existed): the model name and
    its widest feature, 'AMX' > 'AVX512-BF16' > 'AVX-512' > 'AVX2'."""
    if not info:
        return "not recorded"
    best = next((label for key, label in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"),
                                          ("avx512f", "AVX-512"), ("avx2", "AVX2")) if info.get(key)), "no AVX2")
    return f"{info.get('model_name', '?')}, {best}"


def machine() -> dict:
    import os
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu": cpu(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
