"""Resumable sweeps: a grid file -> validated RunConfigs -> run only the missing cells.

Grid file (``experiments/<name>.yaml``), holding only what differs from the ``RunConfig`` defaults::

    name: pilot                  # experiment name: results go to results/<name>/ (default: the file's stem)
    description: ...             # optional, free text
    defaults: {model: smollm2-135m, train_examples: 1000, precision: fp32}
    grid:                        # each block is a cartesian product; several blocks allowed
      - {seed: [0, 1, 2], strategy: [uniform, linear_decay], budget: [r8]}
      - {strategy: uniform, budget: [r2, r4, r16], seed: 0}   # a scalar = a one-element list
    order: [seed]                # optional: stable sort of all cells by these keys
    training_path: acd2a0c6d902  # optional: the frozen training-path hash every cell must carry (see below)

Order of the cells (stable, so shards and partial sweeps are reproducible): blocks as listed; inside a block the
first key varies slowest (nested loops in the listed order); then the optional ``order`` keys sort all cells
stably; cells with an identical run id (= identical config) are kept once, at their first position.
Values are coerced to the field types of ``RunConfig`` (``epochs: 1`` -> 1.0, ``lr: 2e-4`` -> 0.0002,
``budget: 1500000`` -> "1500000"), so a grid cell and the same ``adaptive-lora run`` command share a run id.

``adaptive-lora sweep FILE [--shard i/N] [--dry-run] [--allow-dirty] [--limit K] [--no-reuse] [--jobs N]
[--launcher {local,submitit}]``:

- a cell is *done* when its result file exists (``results/<name>/<run-id>.json``; from a dirty tree, also
  ``results-dirty/<name>/<run-id>.json``); done cells are never re-run;
- ``--shard i/N`` (1-based: ``1/3``, ``2/3``, ``3/3``) takes cells i, i+N, i+2N, ... of the full stable order
  (round robin), so the N shards partition the grid whatever is already done, and can run on N machines;
- ``--reuse`` (default on; ``--no-reuse`` to disable): a missing cell whose run id has a finished result in
  another experiment folder under results/ (same run id = same config hash = identical config except the
  experiment name) is copied instead of re-run, with ``"copied_from": "<exp>/<file>"`` recorded in the copy
  (into results/ even from a dirty tree: no code of the tree ran);
- a cell that raises (any Exception; KeyboardInterrupt stops the sweep) is recorded as
  ``<results>/<name>/failed/<run-id>.json`` (config, error type and message, traceback, time) and the sweep goes
  on; a later successful run of the cell removes the record. The exit status is 1 if any cell failed;
- ``--limit K``: run (train) at most K cells in this invocation; copies and skips do not count;
- ``--jobs N``: N cells at a time, each in its own (spawned) process; every cell must set ``threads`` and
  N x threads must fit the cores (a cell's numbers may depend on its thread count, so it is part of the config);
- ``--launcher submitit`` (default ``local``: this machine, ``--jobs``): the missing cells (after the same done /
  copy / ``--limit`` / ``--shard`` selection) are submitted as one job array through ``submitit``, each task running
  one cell (``_run_cell``), so a Slurm cluster runs the grid; the result files and the resume logic are the same.
  Options: ``--slurm-partition``, ``--slurm-time-min`` (default 120), ``--slurm-cpus`` (default: the cells'
  ``threads``, which the grid must set), ``--slurm-mem-gb`` (default 8), ``--submitit-folder`` (logs and pickles;
  default ``<results>/<name>/submitit/``, ignored by git), ``--submitit-executor`` (``auto``: Slurm when ``srun``
  exists, else local processes; ``local``: submitit's LocalExecutor, which starts all cells at once, so cells x CPUs
  must fit the cores; ``slurm``). By default the sweep waits and records outcomes as above (a failing cell is
  recorded by its task itself, a job killed outside the cell, e.g. at its time limit, by the waiting sweep);
  ``--no-wait`` prints the job ids and returns: run the sweep again once the jobs have finished (cells still queued
  or running then would be submitted again);
- ``training_path`` (optional, a frozen grid): the sweep refuses to start (one-line error, nothing run) when the
  code's ``provenance.training_path_hash()`` differs from it, or when a done cell of the experiment carries another
  hash (move such cells out to re-run them), so every cell of the grid comes from one training path;
- copies (``--reuse``) are made only from a result with the current training-path hash;
- ``--dry-run``: list the cells of the shard with their status (done / missing / failed / copy) and an
  estimated CPU time, plus totals (see ``estimate_seconds``);
- a sweep killed at any point (even ``kill -9``) resumes cleanly: result files are written atomically (temp file
  + rename) and temp files (``.*.tmp``) older than a minute in the experiment folder are removed at start.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import statistics
import time
import traceback
from dataclasses import dataclass, fields
from pathlib import Path

from . import provenance
from .config import coerce
from .errors import UserError

GRID_KEYS = {"name", "description", "defaults", "grid", "order", "training_path"}
STALE_TMP_SECONDS = 60

# Cost fallbacks when no result of the same model exists yet (documented guesses, replaced by measurements as
# soon as one result of the model exists): training throughput in tokens per second (padded tokens, as
# `tokens_per_second` in the result files) and tokens per training example.
FALLBACK_TOKENS_PER_SECOND = {"tiny-llama": 20000.0, "tiny-gpt2": 20000.0, None: 400.0}
FALLBACK_TOKENS_PER_EXAMPLE = 150.0
EVAL_COST_FACTOR = 1 / 3  # an eval token (forward only) costs about a third of a training token
DEFAULT_EVAL_EXAMPLES = 500


# --------------------------------------------------------------------------------------------- grid expansion
def _field_types() -> dict[str, str]:
    from .config import RunConfig
    return {f.name: str(f.type) for f in fields(RunConfig)}


def load_grid(path: str | Path) -> dict:
    """Read and check a grid file -> {"name", "defaults", "grid", "order", "description"}."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise UserError(f"grid file not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: malformed YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: expected a mapping with keys name, defaults, grid")
    unknown = sorted(set(doc) - GRID_KEYS)
    if unknown:
        raise UserError(f"{path}: unknown keys {', '.join(unknown)}; known: {', '.join(sorted(GRID_KEYS))}")
    doc = {"name": path.stem, "defaults": {}, "grid": [{}], "order": [], "description": "", **doc}
    if isinstance(doc["grid"], dict):
        doc["grid"] = [doc["grid"]]
    if not isinstance(doc["defaults"], dict) or not isinstance(doc["grid"], list) or \
            not all(isinstance(b, dict) for b in doc["grid"]):
        raise UserError(f"{path}: 'defaults' must be a mapping and 'grid' a list of mappings")
    if isinstance(doc["order"], str):
        doc["order"] = [doc["order"]]
    return doc


def expand(doc: dict) -> list[dict]:
    """The cells of a grid document as config dicts (with ``experiment`` set), in the stable order; no validation
    beyond key names and types, no de-duplication (see ``cells``)."""
    types = _field_types()
    name = str(doc.get("name", ""))
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise UserError(f"experiment name '{name}' may use letters, digits, '_', '.', '-' only")
    allowed = set(types) - {"experiment"}
    defaults = dict(doc.get("defaults") or {})
    blocks = doc.get("grid") or [{}]
    for where, keys in [("defaults", defaults), *((f"grid block {i + 1}", b) for i, b in enumerate(blocks))]:
        bad = sorted(set(keys) - allowed)
        if bad:
            hint = " (the experiment name is the grid's 'name')" if "experiment" in bad else ""
            raise UserError(f"{where}: unknown config keys {', '.join(bad)}{hint}")
    out = []
    for i, block in enumerate(blocks):
        keys = list(block)
        options = []
        for k in keys:
            v = block[k]
            v = v if isinstance(v, list) else [v]
            if not v:
                raise UserError(f"grid block {i + 1}: '{k}' has no values")
            options.append(v)
        for combo in itertools.product(*options):
            d = {**defaults, **dict(zip(keys, combo)), "experiment": name}
            out.append({k: coerce(k, v, types[k]) for k, v in d.items()})
    order = list(doc.get("order") or [])
    bad = sorted(set(order) - allowed)
    if bad:
        raise UserError(f"order: unknown config keys {', '.join(bad)}")
    if order:
        from .config import RunConfig
        dflt = {f.name: f.default for f in fields(RunConfig)}
        try:
            out.sort(key=lambda d: tuple(d.get(k, dflt.get(k)) for k in order))
        except TypeError:
            raise UserError(f"order: the values of {order} cannot be compared") from None
    return out


def cells(doc: dict) -> list:
    """Validated RunConfigs of a grid document, in the stable order, de-duplicated by run id."""
    from .config import RunConfig

    seen, out = set(), []
    for i, d in enumerate(expand(doc)):
        try:
            cfg = RunConfig.from_dict(d)
        except UserError as e:
            shown = {k: v for k, v in d.items() if k != "experiment"}
            raise UserError(f"grid cell {i + 1} {json.dumps(shown, sort_keys=True)}: {e}") from None
        if cfg.run_id not in seen:
            seen.add(cfg.run_id)
            out.append(cfg)
    return out


# ------------------------------------------------------------------------------------------------------ shards
def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'i/N' (1-based, 1 <= i <= N) -> (i, N)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise UserError(f"--shard '{text}': use i/N with 1 <= i <= N (1-based), e.g. 1/4")
    return int(m[1]), int(m[2])


def shard(items: list, i: int, n: int) -> list:
    """Shard i of n (1-based), round robin over the stable order: items i-1, i-1+n, i-1+2n, ..."""
    if not 1 <= i <= n:
        raise ValueError(f"shard {i}/{n}: need 1 <= i <= n")
    return items[i - 1::n]


# ------------------------------------------------------------------------------------------------------ status
def failed_path(experiment: str, run_id: str, dirty: bool = False) -> Path:
    from .results import results_root
    return results_root(dirty) / experiment / "failed" / f"{run_id}.json"


def done_path(cfg, dirty_mode: bool) -> Path | None:
    """The existing result of a cell: the clean one, or (when running from a dirty tree) the dirty one."""
    from .results import result_path
    for dirty in ((False, True) if dirty_mode else (False,)):
        p = result_path(cfg.experiment, cfg.run_id, dirty=dirty)
        if p.exists():
            return p
    return None


def reuse_index(experiment: str) -> dict[str, Path]:
    """run id -> a finished clean result file in another experiment folder under results/."""
    from .results import results_root
    index: dict[str, Path] = {}
    root = results_root()
    if root.exists():
        for p in sorted(root.glob("*/*.json")):
            if p.parent.name != experiment and not p.name.startswith("."):
                index.setdefault(p.stem, p)
    return index


def try_copy(cfg, index: dict[str, Path]) -> Path | None:
    """Copy an identical finished result from another experiment (atomically); None when there is none."""
    from .results import result_path, results_root, write_json_atomic
    src = index.get(cfg.run_id)
    if src is None:
        return None
    try:
        r = json.loads(src.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    from .stats import training_path_hash
    if training_path_hash(r) != provenance.training_path_hash():
        return None  # same config, other training code: its numbers may differ, so it is not this cell's result
    want = {k: v for k, v in cfg.to_dict().items() if k != "experiment"}
    have = {k: v for k, v in (r.get("config") or {}).items() if k != "experiment"}
    if have != want or (r.get("provenance") or {}).get("config_hash", cfg.config_hash()) != cfg.config_hash() \
            or "eval_loss" not in r:
        return None
    r["config"] = {**r["config"], "experiment": cfg.experiment}
    r["copied_from"] = str(src.relative_to(results_root()))
    dst = result_path(cfg.experiment, cfg.run_id)
    write_json_atomic(dst, r)
    return dst


def clean_stale_tmp(experiment: str) -> int:
    """Remove temp files left by a killed writer (older than STALE_TMP_SECONDS, so a live write is not hit)."""
    from .results import results_root
    n, now = 0, time.time()
    for dirty in (False, True):
        d = results_root(dirty) / experiment
        for p in [*d.glob(".*.tmp"), *(d / "failed").glob(".*.tmp")]:
            try:
                if now - p.stat().st_mtime > STALE_TMP_SECONDS:
                    p.unlink()
                    n += 1
            except FileNotFoundError:
                pass
    return n


def record_failure(cfg, exc: BaseException, dirty: bool) -> Path:
    from .results import write_json_atomic
    path = failed_path(cfg.experiment, cfg.run_id, dirty)
    write_json_atomic(path, {
        "run_id": cfg.run_id,
        "config": cfg.to_dict(),
        "error_type": getattr(exc, "kind", type(exc).__name__),  # a worker's CellError: the cell's own error type
        "error": getattr(exc, "message", str(exc)),
        "traceback": getattr(exc, "worker_traceback", None)
        or "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        "failed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": provenance.git_commit(),
        "git_dirty": dirty,
    })
    return path


def clear_failure(cfg) -> None:
    for dirty in (False, True):
        failed_path(cfg.experiment, cfg.run_id, dirty).unlink(missing_ok=True)


# -------------------------------------------------------------------------------------------------------- cost
@dataclass
class Throughput:
    tokens_per_second: dict  # (model, precision) and model -> median measured tok/s
    tokens_per_example: dict  # (model, data) and data -> median training tokens per example seen
    eval_seconds_per_example: dict  # (model, data) -> median eval seconds per eval example


def _data_key(cfg_dict: dict) -> str:
    data = str(cfg_dict.get("data"))
    return data.rsplit("/", 1)[-1].removesuffix(".jsonl")


def measure_throughput(results: list[dict]) -> Throughput:
    """Medians over finished results (copies are skipped, they repeat a measurement)."""
    tps, tpe, eps = {}, {}, {}
    for r in results:
        c = r.get("config") or {}
        if r.get("copied_from") or not r.get("tokens_per_second") or not r.get("train_seconds"):
            continue
        model, data, prec = c.get("model"), _data_key(c), c.get("precision")
        threads = c.get("threads")   # a 1-thread cell beside another is slower than a 2-thread one alone
        if threads:
            tps.setdefault((model, prec, threads), []).append(r["tokens_per_second"])
        tps.setdefault((model, prec), []).append(r["tokens_per_second"])
        tps.setdefault(model, []).append(r["tokens_per_second"])
        seen = (r.get("n_train_examples") or 0) * float(c.get("epochs") or 1)
        if seen > 0:
            per = r["tokens_per_second"] * r["train_seconds"] / seen
            tpe.setdefault((model, data), []).append(per)
            tpe.setdefault(data, []).append(per)
        if r.get("eval_seconds") and r.get("n_eval_examples"):
            if threads:
                eps.setdefault((model, data, threads), []).append(r["eval_seconds"] / r["n_eval_examples"])
            eps.setdefault((model, data), []).append(r["eval_seconds"] / r["n_eval_examples"])
    med = lambda d: {k: statistics.median(v) for k, v in d.items()}  # noqa: E731
    return Throughput(med(tps), med(tpe), med(eps))


def _n_examples(cfg, split: str, given: int | None) -> int | None:
    if given is not None:
        return given
    from .data import resolve
    from .run import data_splits
    try:
        path = resolve(cfg.data, data_splits(cfg)[0 if split == "train" else 1], cfg.eval_data)
        return sum(1 for line in path.open(encoding="utf-8") if line.strip())
    except (UserError, OSError):
        return None


def estimate_seconds(cfg, tp: Throughput) -> tuple[float, str]:
    """Estimated CPU seconds of one cell -> (seconds, source: 'measured' | 'fallback').

    training = examples seen (train_examples x epochs) x tokens per example / tokens per second, with tokens per
    example and tokens per second measured on existing results of the same model (same precision and thread count
    if any, else same precision; tokens per example of the same model and data, else the same data) and the
    constants FALLBACK_* otherwise; eval = (test + dev + transfer examples) x measured test-eval seconds per
    example (same model, data and threads if any), else their token cost at EVAL_COST_FACTOR of a training
    token. Calibration passes of data-driven strategies are not included.
    """
    data = _data_key(cfg.to_dict())
    measured = True
    speed = (tp.tokens_per_second.get((cfg.model, cfg.precision, cfg.threads)) if cfg.threads else None) or \
        tp.tokens_per_second.get((cfg.model, cfg.precision)) or tp.tokens_per_second.get(cfg.model)
    if speed is None:
        measured = False
        speed = FALLBACK_TOKENS_PER_SECOND.get(cfg.model, FALLBACK_TOKENS_PER_SECOND[None])
    per_ex = tp.tokens_per_example.get((cfg.model, data)) or tp.tokens_per_example.get(data)
    if per_ex is None:
        per_ex = FALLBACK_TOKENS_PER_EXAMPLE
    n_train = _n_examples(cfg, "train", cfg.train_examples) or 1000
    n_eval = _n_examples(cfg, "eval", cfg.eval_examples) or DEFAULT_EVAL_EXAMPLES
    n_eval += cfg.dev_examples + (cfg.transfer_examples if cfg.transfer_data else 0)   # evaluated at the same rate
    seconds = n_train * cfg.epochs * per_ex / speed
    ev = (tp.eval_seconds_per_example.get((cfg.model, data, cfg.threads)) if cfg.threads else None) or \
        tp.eval_seconds_per_example.get((cfg.model, data))
    seconds += n_eval * ev if ev is not None else n_eval * per_ex * EVAL_COST_FACTOR / speed
    return seconds, "measured" if measured else "fallback"


def fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


# ------------------------------------------------------------------------------------------------------- sweep
def plan(cfgs: list, dirty_mode: bool, reuse: bool) -> list[tuple]:
    """[(cfg, status, path)] with status in done / copy / failed / missing."""
    index = reuse_index(cfgs[0].experiment) if (reuse and cfgs) else {}
    out = []
    for cfg in cfgs:
        p = done_path(cfg, dirty_mode)
        if p is not None:
            out.append((cfg, "done", p))
        elif cfg.run_id in index:
            out.append((cfg, "copy", index[cfg.run_id]))
        elif any(failed_path(cfg.experiment, cfg.run_id, d).exists() for d in (False, True)):
            out.append((cfg, "failed", failed_path(cfg.experiment, cfg.run_id, dirty_mode)))
        else:
            out.append((cfg, "missing", None))
    return out


def dry_run(cfgs: list, dirty_mode: bool, reuse: bool, out=print, jobs: int = 1) -> dict:
    from .results import results_root
    all_results = []
    root = results_root()
    for p in sorted(root.glob("*/*.json")) if root.exists() else []:
        try:
            all_results.append(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError):
            pass
    tp = measure_throughput(all_results)
    counts: dict[str, int] = {}
    todo_s, fallback = 0.0, False
    out(f"{'#':>3}  {'status':7}  {'estimate':>8}  run id")
    for k, (cfg, status, _) in enumerate(plan(cfgs, dirty_mode, reuse), 1):
        counts[status] = counts.get(status, 0) + 1
        if status in ("missing", "failed"):
            s, src = estimate_seconds(cfg, tp)
            todo_s += s
            fallback |= src == "fallback"
            est = fmt_duration(s) + ("*" if src == "fallback" else "")
        else:
            est = "-"
        out(f"{k:>3}  {status:7}  {est:>8}  {cfg.run_id}")
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("done", "copy", "failed", "missing"))
    out(f"total: {len(cfgs)} cells ({summary}); estimated time to run the missing and failed cells: "
        f"{fmt_duration(todo_s)}" + (f", about {fmt_duration(todo_s / jobs)} of wall time with --jobs {jobs}"
                                     if jobs > 1 else "")
        + (" (* = no measured throughput for the model yet: fallback constants)" if fallback else ""))
    return {"counts": counts, "estimated_seconds": todo_s}


def _run_cell(cfg_dict: dict, allow_dirty: bool, progress: bool) -> dict:
    """One cell in a worker process (``--jobs N``): -> {"path", "eval_loss"} or {"error", "message", "traceback"}."""
    import os
    import sys

    from .config import RunConfig
    from .run import execute
    if progress:
        print(f"start {cfg_dict.get('strategy')} lr {cfg_dict.get('lr')} seed {cfg_dict.get('seed')} "
              f"{cfg_dict.get('budget')} (worker pid {os.getpid()})", file=sys.stderr, flush=True)
    try:
        path, result = execute(RunConfig.from_dict(cfg_dict), allow_dirty=allow_dirty, progress=progress)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which records it
        return {"error": type(e).__name__, "message": str(e),
                "traceback": "".join(traceback.format_exception(type(e), e, e.__traceback__))}
    return {"path": str(path), "eval_loss": None if result is None else result["eval_loss"]}


class CellError(Exception):
    """A cell that failed in a worker process, with the worker's traceback."""
    def __init__(self, kind: str, message: str, tb: str):
        super().__init__(f"{kind}: {message}")
        self.kind, self.message, self.worker_traceback = kind, message, tb


def check_jobs(cfgs: list, jobs: int) -> None:
    """N processes x T threads must fit the cores: each cell's threads are in its config (results may depend on
    them), so a sweep with --jobs N needs threads set, and N x threads <= cores."""
    if jobs < 1:
        raise UserError("--jobs must be >= 1")
    if jobs == 1:
        return
    import os
    cores = os.cpu_count() or 1
    for cfg in cfgs:
        if cfg.threads is None:
            raise UserError(f"--jobs {jobs} needs 'threads' in the grid (cell {cfg.run_id} has none): "
                            "a cell's numbers may depend on its thread count")
        if jobs * cfg.threads > cores:
            raise UserError(f"--jobs {jobs} x threads {cfg.threads} > {cores} cores: the cells would share cores")


def warm_model_cache(cfgs: list, load=None, lock: Path | None = None) -> list[str]:
    """Load each distinct model of ``cfgs`` once, in this process, before any cell runs -> names loaded.

    Gotcha: the first load of a GGUF model converts it into ``.cache/models/<name>`` through one fixed temp folder;
    two processes doing that at once on a fresh machine rename the folder under each other (seen: SafetensorError
    "No such file or directory"), whether they are workers of one sweep (--jobs, array tasks) or two sweeps sharing
    the cache (scripts/sweep_bg.sh started twice). So the loads here hold an exclusive lock on ``lock`` (default
    ``.cache/models.lock``): the first process converts, the others wait and then read the cache. The conversion
    code sits on the frozen training path, so the race is avoided here rather than fixed there.
    A model that fails to load is skipped: each of its cells then fails in its worker and is recorded as before."""
    import fcntl

    if load is None:
        from .models import load_model as load
    if lock is None:
        from .models import cache_dir
        lock = cache_dir() / "models.lock"
    names = list(dict.fromkeys(cfg.model for cfg in cfgs))
    if not names:
        return []
    lock.parent.mkdir(parents=True, exist_ok=True)
    loaded = []
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes, also if this process is killed
        for name in names:
            try:
                load(name)  # only the cache is wanted: the weights are dropped at once, each cell loads its own
            except Exception:  # noqa: BLE001 - the cells' own runs report it, one failure record per cell
                continue
            loaded.append(name)
    return loaded


def select_cells(cfgs: list, dirty_mode: bool, reuse: bool, limit: int | None, counts: dict, out=print) -> list:
    """The cells to run now, in the stable order: done cells are skipped, identical finished results of other
    experiments copied (``reuse``), and at most ``limit`` cells kept; ``counts`` (done, copied, not_run) is
    updated. Shared by every launcher."""
    index = reuse_index(cfgs[0].experiment) if (reuse and cfgs) else {}
    todo = []
    for cfg in cfgs:
        if done_path(cfg, dirty_mode) is not None:
            counts["done"] += 1
            continue
        if reuse:
            dst = try_copy(cfg, index)
            if dst is not None:
                clear_failure(cfg)
                counts["copied"] += 1
                out(f"copied {index[cfg.run_id].parent.name}/{index[cfg.run_id].name} -> {dst}")
                continue
        if limit is not None and len(todo) >= limit:
            counts["not_run"] += 1
            continue
        todo.append(cfg)
    return todo


def run_sweep(cfgs: list, allow_dirty: bool = False, reuse: bool = True, limit: int | None = None,
              progress: bool = True, out=print, jobs: int = 1,
              submitit_opts: SubmititOptions | None = None) -> dict:
    """Run the missing cells (``jobs`` at a time, each in its own process when jobs > 1; or as a job array through
    submitit when ``submitit_opts`` is given); returns counts {done, copied, ran, failed, not_run, submitted, dirty}."""
    from tqdm.auto import tqdm

    from . import run as run_mod
    from .results import results_root

    counts = {"done": 0, "copied": 0, "ran": 0, "failed": 0, "not_run": 0, "submitted": 0}
    if not cfgs:
        return {**counts, "dirty": False}
    if submitit_opts is None:
        check_jobs(cfgs, jobs)
    else:
        if jobs != 1:
            raise UserError("--jobs is for --launcher local; with submitit every cell is its own array task")
        cluster, cpus = check_submitit(cfgs, submitit_opts)
    exp = cfgs[0].experiment
    dirty = provenance.git_dirty()
    dirty_mode = dirty and not allow_dirty
    if dirty_mode:
        out(f"warning: the git tree has uncommitted code changes: new results go to "
            f"{results_root(True) / exp}/, not {results_root() / exp}/ (commit, or pass --allow-dirty)")
    removed = clean_stale_tmp(exp)
    if removed:
        out(f"removed {removed} stale temp file(s) left by a killed run")
    todo = select_cells(cfgs, dirty_mode, reuse, limit, counts, out)
    submitted = []
    if todo:
        warm_model_cache(todo)  # workers, array tasks and other sweeps sharing the cache must not convert at once
    if submitit_opts is not None and todo:
        submitted = submit_cells(todo, submitit_opts, cluster, cpus, allow_dirty, dirty_mode,
                                 results_root(dirty_mode) / exp, out)
        if not submitit_opts.wait:
            counts["submitted"] = len(todo)
            todo = []
    bar = tqdm(total=len(todo), desc=f"sweep {exp}", unit="cell", disable=not progress, position=0)

    def finish(cfg, outcome, recorded: Path | None = None) -> None:
        if isinstance(outcome, Exception):
            fp = recorded or record_failure(cfg, outcome, dirty_mode)
            counts["failed"] += 1
            msg = str(outcome) if isinstance(outcome, CellError) else f"{type(outcome).__name__}: {outcome}"
            bar.write(f"FAILED {cfg.run_id}: {msg.splitlines()[0]} (recorded in {fp})")
        else:
            clear_failure(cfg)
            path, result = outcome
            counts["ran" if result is not None else "done"] += 1
            if result is not None:
                bar.write(f"done {cfg.run_id}: eval_loss {result['eval_loss']:.4f} -> {path}")
        bar.update(1)

    def from_worker(r: dict):
        if "error" in r:
            return CellError(r["error"], r["message"], r["traceback"])
        return Path(r["path"]), None if r["eval_loss"] is None else {"eval_loss": r["eval_loss"]}

    if submitit_opts is not None:
        for cfg, r in wait_for_jobs(submitted, todo, poll_seconds=1.0 if cluster == "local" else 15.0):
            outcome = from_worker(r) if isinstance(r, dict) else \
                CellError(type(r).__name__, str(r).splitlines()[0] if str(r) else "job failed", str(r))
            finish(cfg, outcome, Path(r["failure_record"]) if isinstance(r, dict) and "failure_record" in r else None)
    elif jobs == 1:
        for cfg in todo:
            bar.set_postfix_str(cfg.run_id, refresh=False)
            try:
                outcome = run_mod.execute(cfg, allow_dirty=allow_dirty, progress=progress)
            except Exception as e:  # noqa: BLE001 - any failure of one cell is recorded; KeyboardInterrupt stops
                outcome = e
            finish(cfg, outcome)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            # workers show their own step bars (interleaved in a log, one line per refresh; the start line
            # below says which cell is which), so a long cell is visibly alive
            futures = {pool.submit(_run_cell, cfg.to_dict(), allow_dirty, progress): cfg for cfg in todo}
            for fut in as_completed(futures):
                finish(futures[fut], from_worker(fut.result()))
    bar.close()
    where = results_root(dirty_mode) / exp
    out(f"sweep {exp}: {len(cfgs)} cells: {counts['done']} already done, {counts['copied']} copied, "
        f"{counts['ran']} ran, {counts['failed']} failed, {counts['not_run']} left for later (--limit)"
        + (f", {counts['submitted']} submitted (not waited for)" if counts["submitted"] else "")
        + (f"; results of this run in {where}/ (dirty tree)" if dirty_mode and counts["ran"] else ""))
    return {**counts, "dirty": dirty_mode}


# ---------------------------------------------------------------------------------------------------- submitit
@dataclass
class SubmititOptions:
    """``--launcher submitit``: the grid's missing cells as one job array (Slurm, or local processes)."""
    executor: str = "auto"  # auto (Slurm when available, else local processes) | local | slurm
    folder: str | None = None  # submitit's logs and pickles; default <results>/<exp>/submitit/
    partition: str | None = None
    time_min: int = 120
    cpus: int | None = None  # default: the cells' threads
    mem_gb: float = 8.0
    wait: bool = True


SUBMITIT_PIN = "submitit==1.5.4"


def _import_submitit():
    try:
        import submitit
    except ImportError:
        raise UserError(f"--launcher submitit needs the submitit package: pip install {SUBMITIT_PIN}") from None
    return submitit


def check_submitit(cfgs: list, opts: SubmititOptions) -> tuple[str, int]:
    """Check the options and the grid before anything is written -> (cluster, cpus per task). Every cell must set
    ``threads`` (a cell's numbers may depend on it, and it sizes the allocation: ``--slurm-cpus`` defaults to it)."""
    if opts.executor not in ("auto", "local", "slurm"):
        raise UserError(f"--submitit-executor {opts.executor}: use auto, local or slurm")
    for cfg in cfgs:
        if cfg.threads is None:
            raise UserError(f"--launcher submitit needs 'threads' in the grid (cell {cfg.run_id} has none): it sets "
                            "the CPUs per task, and a cell's numbers may depend on its thread count")
    threads = max(cfg.threads for cfg in cfgs)
    cpus = threads if opts.cpus is None else opts.cpus
    if cpus < threads:
        raise UserError(f"--slurm-cpus {cpus} < threads {threads} of the grid: the cell's threads would share CPUs")
    if opts.time_min < 1 or opts.mem_gb <= 0:
        raise UserError("--slurm-time-min must be >= 1 and --slurm-mem-gb > 0")
    submitit = _import_submitit()
    if opts.executor == "auto":
        cluster = submitit.AutoExecutor.which()
    else:
        cluster = opts.executor
        if cluster == "slurm" and submitit.SlurmExecutor.affinity() < 0:
            raise UserError("--submitit-executor slurm: no Slurm here (srun not found)")
    return cluster, cpus


def _submitit_cell(cfg_dict: dict, allow_dirty: bool, dirty_mode: bool) -> dict:
    """One array task: ``_run_cell``, then the failure record written (or cleared) here, so that failures are
    recorded even when nobody waits for the job (``--no-wait``)."""
    from .config import RunConfig
    r = _run_cell(cfg_dict, allow_dirty, False)
    cfg = RunConfig.from_dict(cfg_dict)
    if "error" in r:
        r["failure_record"] = str(record_failure(cfg, CellError(r["error"], r["message"], r["traceback"]),
                                                 dirty_mode))
    else:
        clear_failure(cfg)
    return r


def submit_cells(todo: list, opts: SubmititOptions, cluster: str, cpus: int, allow_dirty: bool, dirty_mode: bool,
                 exp_dir: Path, out=print) -> list:
    """Submit the cells as one job array (``executor.map_array``) -> the submitit jobs, in the order of ``todo``."""
    import os
    submitit = _import_submitit()
    if cluster == "local":
        cores = os.cpu_count() or 1
        if len(todo) * cpus > cores:
            fix = f"use --limit {cores // cpus}, or --launcher local --jobs N" if cpus <= cores else "lower 'threads'"
            raise UserError(f"submitit's local executor starts all {len(todo)} cells at once: {len(todo)} x {cpus} "
                            f"CPUs > {cores} cores; {fix}")
    folder = Path(opts.folder) if opts.folder else exp_dir / "submitit"
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(name=f"sweep-{exp_dir.name}", timeout_min=opts.time_min, cpus_per_task=cpus,
                               mem_gb=opts.mem_gb, tasks_per_node=1, nodes=1, slurm_partition=opts.partition)
    n = len(todo)
    try:
        jobs = executor.map_array(_submitit_cell, [c.to_dict() for c in todo], [allow_dirty] * n, [dirty_mode] * n)
    except Exception as e:  # noqa: BLE001 - e.g. sbatch refusing the partition or the limits
        lines = [ln for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
        raise UserError(f"submitit could not submit the {n} cell(s) ({cluster}): {lines[-1].strip()}") from None
    arrays = sorted({str(j.job_id).split("_")[0] for j in jobs})
    out(f"submitted {n} cell(s) through submitit ({cluster}) as job(s) {', '.join(arrays)}; logs in {folder}/")
    if not opts.wait:
        for cfg, job in zip(todo, jobs):
            out(f"  job {job.job_id}: {cfg.run_id}")
        out("not waiting: run the sweep again once the jobs have finished; their results then count as done "
            "(cells still queued or running would be submitted again)")
    return jobs


def wait_for_jobs(jobs: list, todo: list, poll_seconds: float):
    """Yield (cfg, the task's return dict, or the exception of a job that failed outside the cell: timeout, killed,
    crashed interpreter) as the jobs finish."""
    pending = list(zip(jobs, todo))
    try:
        while pending:
            still = []
            for job, cfg in pending:
                if not job.done():
                    still.append((job, cfg))
                    continue
                try:
                    r = job.result()
                except Exception as e:  # noqa: BLE001 - submitit's FailedJobError / UncompletedJobError
                    r = e
                yield cfg, r
            pending = still
            if pending:
                time.sleep(poll_seconds)
    except KeyboardInterrupt:
        print(f"interrupted: {len(pending)} job(s) keep running ({', '.join(str(j.job_id) for j, _ in pending)}); "
              "run the sweep again once they have finished", flush=True)
        raise


# --------------------------------------------------------------------------------------------------------- CLI
def check_training_path(doc: dict, cfgs: list, dirty_mode: bool) -> None:
    """A grid that pins ``training_path``: the code and every done cell must carry that hash (else UserError)."""
    from .stats import training_path_hash
    pinned = doc.get("training_path")
    if pinned is None:
        return
    current = provenance.training_path_hash()
    if str(pinned) != current:
        raise UserError(f"grid '{doc['name']}' pins training path {pinned}, but this code's is {current}: the "
                        f"training path changed after the grid was frozen (revert it, or re-freeze the grid)")
    stale = []
    for cfg in cfgs:
        p = done_path(cfg, dirty_mode)
        if p is not None:
            try:
                h = training_path_hash(json.loads(p.read_text()))
            except (OSError, json.JSONDecodeError):
                continue
            if h != current:
                stale.append(f"{p.name} ({h or 'none'})")
    if stale:
        raise UserError(f"grid '{doc['name']}' pins training path {current}, but {len(stale)} done cell(s) carry "
                        f"another: {', '.join(stale[:3])}{' ...' if len(stale) > 3 else ''}; move them out of "
                        f"results/{doc['name']}/ to re-run them")


def cmd_sweep(a) -> int:
    doc = load_grid(a.grid)
    cfgs = cells(doc)
    check_training_path(doc, cfgs, provenance.git_dirty() and not a.allow_dirty)
    total = len(cfgs)
    sh = parse_shard(a.shard)
    if sh:
        cfgs = shard(cfgs, *sh)
        print(f"shard {sh[0]}/{sh[1]}: {len(cfgs)} of {total} cells")
    if a.limit is not None and a.limit < 0:
        raise UserError("--limit must be >= 0")
    submitit_opts = submitit_options(a)
    if a.dry_run:
        dirty_mode = provenance.git_dirty() and not a.allow_dirty
        if dirty_mode:
            print("note: the git tree is dirty: new results would go to results-dirty/ (unless --allow-dirty)")
        dry_run(cfgs, dirty_mode, a.reuse, jobs=a.jobs)
        return 0
    counts = run_sweep(cfgs, allow_dirty=a.allow_dirty, reuse=a.reuse, limit=a.limit, progress=not a.quiet,
                       jobs=a.jobs, submitit_opts=submitit_opts)
    return 1 if counts["failed"] else 0


SUBMITIT_FLAGS = {"slurm_partition": "--slurm-partition", "slurm_time_min": "--slurm-time-min",
                  "slurm_cpus": "--slurm-cpus", "slurm_mem_gb": "--slurm-mem-gb",
                  "submitit_folder": "--submitit-folder", "submitit_executor": "--submitit-executor",
                  "no_wait": "--no-wait"}


def submitit_options(a) -> SubmititOptions | None:
    """--launcher submitit and its options -> SubmititOptions; None for --launcher local (which refuses them)."""
    given = [flag for key, flag in SUBMITIT_FLAGS.items() if getattr(a, key) not in (None, False)]
    if a.launcher == "local":
        if given:
            raise UserError(f"{', '.join(given)}: only with --launcher submitit")
        return None
    dflt = SubmititOptions()
    pick = lambda v, d: d if v is None else v  # noqa: E731
    return SubmititOptions(executor=pick(a.submitit_executor, dflt.executor), folder=a.submitit_folder,
                           partition=a.slurm_partition, time_min=pick(a.slurm_time_min, dflt.time_min),
                           cpus=a.slurm_cpus, mem_gb=pick(a.slurm_mem_gb, dflt.mem_gb), wait=not a.no_wait)


def cmd_report(a) -> int:
    from .report import cmd_report as _cmd
    return _cmd(a)


def add_sweep_parsers(sub) -> None:
    p = sub.add_parser("sweep", help="run the missing cells of a grid file (resumable, shardable)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("grid", help="grid file, e.g. experiments/pilot.yaml")
    p.add_argument("--shard", default=None, help="i/N, 1-based: run cells i, i+N, i+2N, ... of the stable order")
    p.add_argument("--dry-run", action="store_true", help="list the cells, their status and estimated cost")
    p.add_argument("--allow-dirty", action="store_true", help="write into results/ even from a dirty git tree")
    p.add_argument("--limit", type=int, default=None, help="run at most K cells now (copies/skips not counted)")
    p.add_argument("--reuse", action=argparse.BooleanOptionalAction, default=True,
                   help="copy identical finished results from other experiments instead of re-running "
                        "(default: on)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--jobs", type=int, default=1,
                   help="cells at a time, one process each; the grid's 'threads' x jobs must fit the cores")
    p.add_argument("--launcher", choices=["local", "submitit"], default="local",
                   help="local: run here (default; see --jobs); submitit: submit the missing cells as one job array "
                        "(Slurm) through submitit; the grid must set 'threads'")
    g = p.add_argument_group("--launcher submitit")
    g.add_argument("--submitit-executor", choices=["auto", "local", "slurm"], default=None,
                   help="auto (default): Slurm when available, else local processes; local: submitit.LocalExecutor "
                        "(all cells at once on this machine); slurm: require Slurm")
    g.add_argument("--slurm-partition", default=None, help="Slurm partition (default: the cluster's default)")
    g.add_argument("--slurm-time-min", type=int, default=None, help="time limit per cell in minutes (default 120)")
    g.add_argument("--slurm-cpus", type=int, default=None, help="CPUs per cell (default: the grid's threads)")
    g.add_argument("--slurm-mem-gb", type=float, default=None, help="memory per cell in GB (default 8)")
    g.add_argument("--submitit-folder", default=None,
                   help="submitit's logs and pickles (default: <results>/<exp>/submitit/, ignored by git)")
    g.add_argument("--no-wait", action="store_true",
                   help="print the job ids and return; run the sweep again later to pick up the results")
    p.set_defaults(fn=cmd_sweep)
    p = sub.add_parser("report", help="summary statistics and the strategy table of an experiment")
    p.add_argument("experiment", help="experiment name (results/<name>/)")
    p.add_argument("--paper-dir", default=None,
                   help="folder for strategy_table.{tex,md} (default: paper/generated for the pilot, whose table the "
                        "paper prints; none for other experiments)")
    p.add_argument("--no-paper", action="store_true", help="write only results/<exp>/summary.{csv,md}")
    p.add_argument("--allow-mixed", action="store_true",
                   help="pair cells whose training-path hashes differ (marked MIXED TRAINING-PATH HASHES); "
                        "by default such a pairing is refused")
    p.set_defaults(fn=cmd_report)
