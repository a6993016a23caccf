"""Sweeps on a tiny model: grid expansion, shards, resume after kill -9, failures, dirty trees, reuse, dry run."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from adaptive_lora import provenance, run, sweep
from adaptive_lora.cli import main
from adaptive_lora.config import RunConfig
from adaptive_lora.errors import UserError
from conftest import SHORT, write_jsonl

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny(tmp_path):
    """Grid defaults of a tiny, fast run on short custom data."""
    train = write_jsonl(tmp_path / "train.jsonl", SHORT)
    ev = write_jsonl(tmp_path / "eval.jsonl", SHORT[:6])
    return {"model": "tiny-llama", "data": str(train), "eval_data": str(ev), "train_examples": 12, "batch_size": 4,
            "epochs": 1, "max_length": 64, "lr": 1e-2}


def write_grid(path: Path, name: str, defaults: dict, grid: list, **extra) -> Path:
    path.write_text(yaml.safe_dump({"name": name, "defaults": defaults, "grid": grid, **extra}, sort_keys=False))
    return path


@pytest.fixture
def count_runs(monkeypatch):
    """Records the run id of every cell the sweep actually executes."""
    calls = []
    real = run.execute

    def wrapped(cfg, *a, **k):
        calls.append(cfg.run_id)
        return real(cfg, *a, **k)

    monkeypatch.setattr(run, "execute", wrapped)
    return calls


def _json_files(d: Path) -> list[Path]:
    return sorted(d.glob("*.json")) if d.exists() else []


# ------------------------------------------------------------------------------------------------ expansion
def test_expand_order_coercion_and_dedup(tiny, tmp_path):
    grid = write_grid(tmp_path / "g.yaml", "g", {**tiny, "lr": "2e-4"}, [
        {"strategy": ["uniform"], "budget": ["r2", "r4"], "seed": [0, 1]},
        {"strategy": "uniform", "budget": 1000, "seed": 0},
        {"budget": ["r4"], "seed": [1]},  # duplicate of a cell of block 1
    ])
    doc = sweep.load_grid(grid)
    dicts = sweep.expand(doc)
    # the first key varies slowest: (r2,0) (r2,1) (r4,0) (r4,1), then block 2, then block 3
    assert [(d["budget"], d["seed"]) for d in dicts] == [("r2", 0), ("r2", 1), ("r4", 0), ("r4", 1), ("1000", 0),
                                                         ("r4", 1)]
    assert all(d["epochs"] == 1.0 and isinstance(d["epochs"], float) and d["lr"] == 2e-4 for d in dicts)
    cfgs = sweep.cells(doc)
    assert len(cfgs) == 5 and all(c.experiment == "g" for c in cfgs)
    # same run id as the same run from the command line (types coerced as argparse does)
    cli = RunConfig(**{**tiny, "epochs": 1.0, "lr": 2e-4, "budget": "r4", "seed": 1, "experiment": "other"})
    assert cfgs[3].run_id == cli.run_id
    # order: stable sort by seed across blocks
    doc["order"] = ["seed"]
    assert [(c.budget, c.seed) for c in sweep.cells(doc)] == [("r2", 0), ("r4", 0), ("1000", 0), ("r2", 1),
                                                               ("r4", 1)]


def test_pilot_grid_order_and_defaults():
    doc = sweep.load_grid(ROOT / "experiments" / "pilot.yaml")
    assert doc["name"] == "pilot"
    cells = [(d["seed"], d["strategy"], d["budget"]) for d in sweep.expand(doc)]
    strategies = ["uniform", "linear_decay", "attn_heavy", "ffn_heavy", "weight_norm", "shuffled:weight_norm",
                  "adalora"]
    # grid order: seed varies slowest in the first group (paired seeds first), then the budget sweep
    assert cells == ([(seed, s, "r8") for seed in (0, 1, 2) for s in strategies]
                     + [(0, "uniform", b) for b in ("r2", "r4", "r16")])
    for d in sweep.expand(doc):
        assert (d["model"], d["data"], d["train_examples"], d["epochs"], d["precision"]) == \
            ("smollm2-135m", "alpaca", 1000, 1.0, "fp32")
    cfgs = sweep.cells(doc)  # validates every cell (strategy names, precision, ...)
    assert len(cfgs) == 24
    # the uniform r8 seed-0 cell is the `make main` run (on an fp32 CPU): a finished main run is reused
    assert cfgs[0].run_id == RunConfig(precision="fp32").run_id


# (field, given, stored): RunConfig coerces to its field types, so YAML, CLI and Python hash alike
COERCION_CASES = [("epochs", 1, 1.0), ("lr", "2e-4", 2e-4), ("seed", "3", 3), ("seed", 2.0, 2),
                  ("budget", 1000, "1000"), ("train_examples", None, None), ("compile", True, True)]


@pytest.mark.parametrize("key,given,stored", COERCION_CASES)
def test_run_config_coerces_field_types(key, given, stored):
    cfg = RunConfig(precision="fp32", **{key: given})
    assert getattr(cfg, key) == stored and type(getattr(cfg, key)) is type(stored)
    assert cfg.run_id == RunConfig(precision="fp32", **{key: stored}).run_id


def test_run_config_rejects_unreadable_values():
    with pytest.raises(UserError, match="config key 'lr': cannot read 'fast' as float"):
        RunConfig(lr="fast")


@pytest.mark.parametrize("grid,match", [
    ({"name": "x", "grid": [{"strategy": ["uniform"], "colour": [1]}]}, "unknown config keys colour"),
    ({"name": "x", "grid": [{"experiment": ["y"]}]}, "experiment name is the grid's 'name'"),
    ({"name": "x", "grid": [{"strategy": ["no-such-strategy"]}]}, "grid cell 1"),
    ({"name": "x", "grid": [{"seed": []}]}, "has no values"),
    ({"name": "bad name", "grid": [{}]}, "experiment name"),
    ({"name": "x", "grid": [{}], "extra": 1}, "unknown keys extra"),
])
def test_bad_grid_fails_in_one_line(grid, match, tmp_path, sandbox, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(grid))
    assert main(["sweep", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and match in err
    assert not (sandbox / "results").exists()


# --------------------------------------------------------------------------------------------------- shards
def test_shards_partition_every_cell_exactly_once():
    items = [f"cell{i}" for i in range(23)]
    for n in range(1, 6):
        parts = [sweep.shard(items, i, n) for i in range(1, n + 1)]
        flat = [c for p in parts for c in p]
        assert sorted(flat) == sorted(items) and len(flat) == len(set(flat)) == 23
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        assert parts[0][0] == "cell0" and (n == 1 or parts[1][0] == "cell1")  # round robin
    assert sweep.parse_shard("2/5") == (2, 5) and sweep.parse_shard(None) is None
    for bad in ("0/3", "4/3", "1", "a/b"):
        with pytest.raises(Exception, match="1-based"):
            sweep.parse_shard(bad)


def test_shard_cli_runs_only_its_cells(tiny, tmp_path, sandbox, count_runs):
    grid = write_grid(tmp_path / "g.yaml", "sh", tiny, [{"seed": [0, 1, 2]}])
    cfgs = sweep.cells(sweep.load_grid(grid))
    assert main(["sweep", str(grid), "--shard", "2/2", "--quiet"]) == 0
    assert count_runs == [cfgs[1].run_id]
    assert main(["sweep", str(grid), "--shard", "1/2", "--quiet"]) == 0
    assert count_runs == [cfgs[1].run_id, cfgs[0].run_id, cfgs[2].run_id]


# ---------------------------------------------------------------------------------------------------- sweeps
def test_sweep_runs_missing_cells_only_and_limit(tiny, tmp_path, sandbox, count_runs, capsys):
    grid = write_grid(tmp_path / "g.yaml", "s", tiny, [{"seed": [0, 1, 2]}])
    assert main(["sweep", str(grid), "--limit", "1", "--quiet"]) == 0
    assert len(count_runs) == 1 and "1 ran" in capsys.readouterr().out
    assert main(["sweep", str(grid), "--quiet"]) == 0
    assert len(count_runs) == 3 == len(set(count_runs))
    out = capsys.readouterr().out
    assert "1 already done" in out and "2 ran" in out
    files = _json_files(sandbox / "results" / "s")
    assert len(files) == 3 and {json.loads(p.read_text())["config"]["experiment"] for p in files} == {"s"}
    assert main(["sweep", str(grid), "--quiet"]) == 0
    assert len(count_runs) == 3  # nothing re-run


def test_killed_sweep_resumes_without_redoing_cells(tiny, tmp_path, sandbox, count_runs):
    grid = write_grid(tmp_path / "g.yaml", "k", tiny, [{"seed": [0, 1, 2, 3, 4, 5]}])
    res = sandbox / "results" / "k"
    env = dict(os.environ, ADAPTIVE_LORA_THREADS="1", OMP_NUM_THREADS="1")  # sandbox paths are in os.environ
    proc = subprocess.Popen([sys.executable, "-m", "adaptive_lora", "sweep", str(grid), "--allow-dirty", "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 180
        while not _json_files(res):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "no result after 180 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    done = _json_files(res)
    assert 1 <= len(done) < 6
    for p in done:  # no partial result file
        assert json.loads(p.read_text())["eval_loss"] > 0
    mtimes = {p.name: p.stat().st_mtime_ns for p in done}
    stale = res / ".k_dummy.json.abc123.tmp"  # as left by a writer killed between write and rename
    stale.write_text("{partial")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))

    assert main(["sweep", str(grid), "--quiet"]) == 0
    assert len(count_runs) == 6 - len(done)
    assert not set(count_runs) & {p.stem for p in done}
    after = _json_files(res)
    assert len(after) == 6
    assert all(mtimes[n] == (res / n).stat().st_mtime_ns for n in mtimes)
    assert not list(res.glob(".*.tmp"))


def test_failing_cell_is_recorded_and_the_sweep_goes_on(tiny, tmp_path, sandbox, monkeypatch, capsys):
    grid = write_grid(tmp_path / "g.yaml", "f", tiny, [{"seed": [0, 1, 2]}])
    real = run.execute

    def flaky(cfg, *a, **k):
        if cfg.seed == 1:
            raise RuntimeError("simulated out of memory")
        return real(cfg, *a, **k)

    monkeypatch.setattr(run, "execute", flaky)
    assert main(["sweep", str(grid), "--quiet"]) == 1
    assert "FAILED" in capsys.readouterr().out
    res = sandbox / "results" / "f"
    assert sorted(json.loads(p.read_text())["config"]["seed"] for p in _json_files(res)) == [0, 2]
    (failed,) = _json_files(res / "failed")
    rec = json.loads(failed.read_text())
    assert rec["error_type"] == "RuntimeError" and rec["error"] == "simulated out of memory"
    assert "Traceback" in rec["traceback"] and rec["config"]["seed"] == 1 and rec["failed_at"]
    assert failed.stem == rec["run_id"]
    # dry run shows it as failed; a later successful run removes the record
    assert main(["sweep", str(grid), "--dry-run"]) == 0
    assert any(ln.split()[1:2] == ["failed"] for ln in capsys.readouterr().out.splitlines())
    monkeypatch.setattr(run, "execute", real)
    assert main(["sweep", str(grid), "--quiet"]) == 0
    assert len(_json_files(res)) == 3 and not _json_files(res / "failed")


def test_user_error_in_a_cell_is_recorded_too(tiny, tmp_path, sandbox):
    grid = write_grid(tmp_path / "g.yaml", "u", tiny, [{"budget": ["r100000", "r2"]}])  # r100000: impossible
    assert main(["sweep", str(grid), "--quiet"]) == 1
    (rec,) = [json.loads(p.read_text()) for p in _json_files(sandbox / "results" / "u" / "failed")]
    assert rec["error_type"] == "UserError" and "budget" in rec["error"]
    assert len(_json_files(sandbox / "results" / "u")) == 1


def test_dirty_tree_cells_stay_out_of_results(tiny, tmp_path, sandbox, monkeypatch, capsys):
    monkeypatch.setattr(provenance, "git_dirty", lambda: True)
    grid = write_grid(tmp_path / "g.yaml", "d", tiny, [{"seed": [0]}])
    assert main(["sweep", str(grid), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "uncommitted" in out and "results-dirty" in out
    assert not (sandbox / "results").exists()
    (path,) = _json_files(sandbox / "results-dirty" / "d")
    assert json.loads(path.read_text())["provenance"]["git_dirty"] is True
    # a dirty result counts as done for later dirty sweeps; --allow-dirty writes into results/
    assert main(["sweep", str(grid), "--quiet"]) == 0 and "1 already done" in capsys.readouterr().out
    assert main(["sweep", str(grid), "--quiet", "--allow-dirty"]) == 0
    assert len(_json_files(sandbox / "results" / "d")) == 1


def test_identical_results_of_other_experiments_are_copied(tiny, tmp_path, sandbox, count_runs, capsys):
    a = write_grid(tmp_path / "a.yaml", "a", tiny, [{"seed": [0]}])
    b = write_grid(tmp_path / "b.yaml", "b", tiny, [{"seed": [0, 1]}])
    assert main(["sweep", str(a), "--quiet"]) == 0 and len(count_runs) == 1
    assert main(["sweep", str(b), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "copy" in out and "1 copy" in out and "1 missing" in out
    assert main(["sweep", str(b), "--quiet"]) == 0
    assert len(count_runs) == 2  # seed 0 copied, only seed 1 ran
    (src,) = _json_files(sandbox / "results" / "a")
    copy = json.loads((sandbox / "results" / "b" / src.name).read_text())
    orig = json.loads(src.read_text())
    assert copy["copied_from"] == f"a/{src.name}" and copy["config"]["experiment"] == "b"
    assert copy["eval_loss"] == orig["eval_loss"] and copy["run_id"] == orig["run_id"]
    # --no-reuse runs it
    c = write_grid(tmp_path / "c.yaml", "c", tiny, [{"seed": [0]}])
    assert main(["sweep", str(c), "--quiet", "--no-reuse"]) == 0 and len(count_runs) == 3


def test_results_of_another_training_path_are_not_copied(tiny, tmp_path, sandbox, count_runs, monkeypatch):
    a = write_grid(tmp_path / "a.yaml", "a", tiny, [{"seed": [0]}])
    assert main(["sweep", str(a), "--quiet"]) == 0 and len(count_runs) == 1
    monkeypatch.setattr(provenance, "training_path_hash", lambda: "0123456789ab")
    b = write_grid(tmp_path / "b.yaml", "b", tiny, [{"seed": [0]}])
    assert main(["sweep", str(b), "--quiet"]) == 0 and len(count_runs) == 2  # ran, not copied
    (cell,) = _json_files(sandbox / "results" / "b")
    assert "copied_from" not in json.loads(cell.read_text())


def test_a_grid_pinned_to_a_training_path_refuses_other_code_and_stale_cells(tiny, tmp_path, sandbox, count_runs,
                                                                              monkeypatch, capsys):
    current = provenance.training_path_hash()
    other = write_grid(tmp_path / "p.yaml", "p", tiny, [{"seed": [0, 1]}], training_path="0123456789ab")
    assert main(["sweep", str(other), "--quiet"]) == 2 and not count_runs
    err = capsys.readouterr().err
    assert f"pins training path 0123456789ab, but this code's is {current}" in err and len(err.splitlines()) == 1
    pinned = write_grid(tmp_path / "p.yaml", "p", tiny, [{"seed": [0, 1]}], training_path=current)
    assert main(["sweep", str(pinned), "--quiet", "--limit", "1"]) == 0 and len(count_runs) == 1
    # the code changes: a done cell now carries another hash than the (re-frozen) grid -> refused, nothing run
    monkeypatch.setattr(provenance, "training_path_hash", lambda: "ba9876543210")
    refrozen = write_grid(tmp_path / "p.yaml", "p", tiny, [{"seed": [0, 1]}], training_path="ba9876543210")
    assert main(["sweep", str(refrozen), "--quiet"]) == 2 and len(count_runs) == 1
    assert f"1 done cell(s) carry another" in capsys.readouterr().err
    for f in _json_files(sandbox / "results" / "p"):
        f.unlink()
    assert main(["sweep", str(refrozen), "--quiet"]) == 0 and len(count_runs) == 3
    assert {json.loads(f.read_text())["provenance"]["training_path_hash"]
            for f in _json_files(sandbox / "results" / "p")} == {"ba9876543210"}


def test_dry_run_lists_cells_status_and_cost(tiny, tmp_path, sandbox, count_runs, capsys):
    grid = write_grid(tmp_path / "g.yaml", "dr", tiny, [{"seed": [0, 1, 2]}])
    assert main(["sweep", str(grid), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("missing") >= 3 and "total: 3 cells" in out and "fallback" in out
    assert not count_runs and not (sandbox / "results").exists()
    assert main(["sweep", str(grid), "--limit", "1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["sweep", str(grid), "--dry-run", "--shard", "1/1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    cells = [ln.split() for ln in lines if ln.strip()[:1].isdigit()]
    assert [c[1] for c in cells] == ["done", "missing", "missing"]
    assert cells[0][2] == "-" and not cells[1][2].endswith("*")  # estimate from the measured throughput
    assert "1 done" in lines[-1] and "2 missing" in lines[-1]


def test_cost_estimate_uses_measured_throughput(tiny):
    cfg = RunConfig(**{**tiny, "epochs": 2.0, "eval_examples": 5})
    measured = {"config": {**cfg.to_dict(), "epochs": 1.0}, "tokens_per_second": 100.0, "train_seconds": 30.0,
                "n_train_examples": 12, "eval_seconds": 2.0, "n_eval_examples": 4}
    tp = sweep.measure_throughput([measured])
    seconds, src = sweep.estimate_seconds(cfg, tp)
    # 12 examples x 2 epochs x (100 x 30 / 12 tokens per example) / 100 tok/s + 5 eval examples x 0.5 s
    assert src == "measured" and seconds == pytest.approx(12 * 2 * 250 / 100 + 5 * 0.5)
    seconds, src = sweep.estimate_seconds(cfg, sweep.measure_throughput([]))
    assert src == "fallback" and seconds > 0


def test_committed_results_keep_the_run_id_of_their_config():
    """A change to RunConfig (a new field, a coercion) must not move the ids of committed cells: the sweep would
    then run them again under a new name."""
    paths = [p for p in sorted((ROOT / "results").glob("*/*.json"))]
    assert paths, "no committed result"
    for p in paths:
        r = json.loads(p.read_text())
        assert RunConfig.from_dict(r["config"]).run_id == r["run_id"] == p.stem, p


# ------------------------------------------------------------------------------------------------ --jobs N
def test_jobs_need_threads_in_the_grid_and_must_fit_the_cores(tiny, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    cfgs = [RunConfig(**tiny, threads=1, seed=s) for s in (0, 1)]
    sweep.check_jobs(cfgs, 1)
    sweep.check_jobs(cfgs, 2)
    with pytest.raises(UserError, match="needs 'threads'"):
        sweep.check_jobs([RunConfig(**tiny)], 2)
    with pytest.raises(UserError, match="x threads 2 > 2 cores"):
        sweep.check_jobs([RunConfig(**tiny, threads=2)], 2)
    with pytest.raises(UserError, match="--jobs must be >= 1"):
        sweep.check_jobs(cfgs, 0)


def test_two_jobs_run_cells_in_parallel_processes_with_the_serial_results(tiny, tmp_path, sandbox):
    """Two cells in two spawned processes give the same result files as one after the other."""
    grid = write_grid(tmp_path / "g.yaml", "par", {**tiny, "threads": 1}, [{"seed": [0, 1]}])
    assert main(["sweep", str(grid), "--jobs", "2", "--quiet", "--allow-dirty"]) == 0
    par = {p.name: json.loads(p.read_text())["eval_loss"] for p in _json_files(sandbox / "results" / "par")}
    grid2 = write_grid(tmp_path / "g2.yaml", "ser", {**tiny, "threads": 1}, [{"seed": [0, 1]}])
    assert main(["sweep", str(grid2), "--quiet", "--no-reuse", "--allow-dirty"]) == 0
    ser = {p.name: json.loads(p.read_text())["eval_loss"] for p in _json_files(sandbox / "results" / "ser")}
    assert len(par) == 2 and par == ser


def test_models_are_converted_once_before_parallel_workers_start(tiny, tmp_path):
    """Two workers converting the same GGUF at once on a fresh machine raced on one temp folder; the sweep now
    loads each distinct model once, in order, before the pool starts."""
    calls = []
    cfgs = [RunConfig(**{**tiny, "model": m}, seed=s) for m, s in
            [("tiny-llama", 0), ("tiny-gpt2", 0), ("tiny-llama", 1), ("tiny-gpt2", 1)]]
    lock = tmp_path / "models.lock"
    assert sweep.warm_model_cache(cfgs, load=calls.append, lock=lock) == ["tiny-llama", "tiny-gpt2"]
    assert calls == ["tiny-llama", "tiny-gpt2"]
    assert sweep.warm_model_cache([], load=calls.append, lock=lock) == [] and len(calls) == 2

    def broken(name):  # e.g. a hub model offline: not an error of the sweep, each cell records its own failure
        if name == "tiny-gpt2":
            raise UserError("cannot load")
    assert sweep.warm_model_cache(cfgs, load=broken, lock=lock) == ["tiny-llama"]


def test_a_second_sweep_waits_for_the_model_lock_of_the_first(tiny, tmp_path):
    """Two sweeps sharing one cache (scripts/sweep_bg.sh run twice on a fresh machine) raced on the conversion:
    the loads hold an exclusive lock, so the second process loads only after the first has released it."""
    import fcntl
    import threading
    lock, calls = tmp_path / "models.lock", []
    worker = threading.Thread(target=sweep.warm_model_cache,
                              args=([RunConfig(**tiny, seed=0)],), kwargs={"load": calls.append, "lock": lock})
    with open(lock, "a") as held:  # "the other sweep", converting
        fcntl.flock(held, fcntl.LOCK_EX)
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive() and calls == []  # blocked on the lock, nothing loaded
    worker.join(timeout=10)
    assert not worker.is_alive() and calls == [tiny["model"]]


def test_a_one_job_sweep_warms_the_model_cache_before_its_first_cell(tiny, tmp_path, sandbox, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "warm_model_cache", lambda cfgs, load=None: calls.append(("warm", len(cfgs))))
    monkeypatch.setattr(run, "execute", lambda cfg, **k: calls.append(("run", cfg.seed)) or (Path("x"), None))
    grid = write_grid(tmp_path / "g.yaml", "warm1", {**tiny, "threads": 1}, [{"seed": [0, 1]}])
    assert main(["sweep", str(grid), "--quiet", "--allow-dirty"]) == 0
    assert calls == [("warm", 2), ("run", 0), ("run", 1)]


# ------------------------------------------------------------------------------------------ --launcher submitit
SUBMITIT_LOCAL = ["--launcher", "submitit", "--submitit-executor", "local", "--quiet", "--allow-dirty"]


@pytest.fixture
def submitit_env(sandbox, monkeypatch):
    """The array tasks (separate processes, sandbox paths inherited through os.environ) import this checkout."""
    pytest.importorskip("submitit")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return sandbox


def test_submitit_local_executor_gives_the_local_results_and_skips_done_cells(tiny, tmp_path, submitit_env,
                                                                              capsys):
    grid = write_grid(tmp_path / "g.yaml", "subm", {**tiny, "threads": 1}, [{"seed": [0, 1]}])
    assert main(["sweep", str(grid), *SUBMITIT_LOCAL]) == 0
    out = capsys.readouterr().out
    assert "submitted 2 cell(s) through submitit (local)" in out and "2 ran" in out
    res = submitit_env / "results" / "subm"
    sub = {p.name: json.loads(p.read_text())["eval_loss"] for p in _json_files(res)}
    logs = sorted((res / "submitit").iterdir())
    assert len(sub) == 2 and logs
    # done cells are not submitted again
    assert main(["sweep", str(grid), *SUBMITIT_LOCAL]) == 0
    out = capsys.readouterr().out
    assert "2 already done" in out and "submitted" not in out and sorted((res / "submitit").iterdir()) == logs
    # the default local launcher gives the same result files
    grid2 = write_grid(tmp_path / "g2.yaml", "locl", {**tiny, "threads": 1}, [{"seed": [0, 1]}])
    assert main(["sweep", str(grid2), "--quiet", "--no-reuse", "--allow-dirty"]) == 0
    loc = {p.name: json.loads(p.read_text())["eval_loss"] for p in _json_files(submitit_env / "results" / "locl")}
    assert loc == sub


def test_submitit_warms_the_model_cache_before_submitting(tiny, tmp_path, submitit_env, monkeypatch):
    """Array tasks start together, so the submitting process converts each model once first (as --jobs does)."""
    calls = []
    monkeypatch.setattr(sweep, "warm_model_cache", lambda cfgs, load=None: calls.append(("warm", len(cfgs))))
    monkeypatch.setattr(sweep, "submit_cells", lambda todo, *a, **k: calls.append(("submit", len(todo))) or [])
    grid = write_grid(tmp_path / "g.yaml", "subw", {**tiny, "threads": 1}, [{"seed": [0, 1]}])
    assert main(["sweep", str(grid), *SUBMITIT_LOCAL, "--no-wait"]) == 0
    assert calls == [("warm", 2), ("submit", 2)]


def _wait_for(paths_fn, seconds=180):
    deadline = time.time() + seconds
    while not paths_fn():
        assert time.time() < deadline, f"nothing after {seconds} s"
        time.sleep(0.5)
    return paths_fn()


@pytest.mark.parametrize("wait", [True, False])
def test_submitit_failing_cell_is_recorded(wait, tiny, tmp_path, submitit_env, capsys):
    grid = write_grid(tmp_path / "g.yaml", "subf", {**tiny, "threads": 1}, [{"budget": ["r100000"]}])  # impossible
    argv = ["sweep", str(grid), *SUBMITIT_LOCAL] + ([] if wait else ["--no-wait"])
    assert main(argv) == (1 if wait else 0)
    out = capsys.readouterr().out
    if wait:
        assert "FAILED" in out and "UserError" in out and "1 failed" in out
    else:
        assert "1 submitted (not waited for)" in out and "  job " in out
    res = submitit_env / "results" / "subf"
    (failed,) = _wait_for(lambda: _json_files(res / "failed"))  # written by the array task itself
    rec = json.loads(failed.read_text())
    assert rec["error_type"] == "UserError" and "budget" in rec["error"] and failed.stem == rec["run_id"]
    assert not _json_files(res)


@pytest.mark.parametrize("defaults,argv,match", [
    ({}, [], "needs 'threads' in the grid"),
    ({"threads": 2}, ["--slurm-cpus", "1"], "--slurm-cpus 1 < threads 2"),
    ({"threads": 1}, ["--jobs", "2"], "--jobs is for --launcher local"),
    ({"threads": 1}, ["--slurm-time-min", "0"], "--slurm-time-min must be >= 1"),
    ({"threads": 1}, ["--launcher", "local", "--slurm-partition", "x"], "--slurm-partition: only with --launcher"),
    ({"threads": 1}, ["--launcher", "local", "--no-wait"], "--no-wait: only with --launcher submitit"),
    ({"threads": 1}, ["--submitit-executor", "local"], "starts all 3 cells at once"),  # 3 x 1 CPU > 2 cores
    pytest.param({"threads": 1}, ["--submitit-executor", "slurm"], "no Slurm here",
                 marks=pytest.mark.skipif(shutil.which("srun") is not None, reason="Slurm is installed")),
])
def test_submitit_bad_options_fail_in_one_line_before_anything_runs(defaults, argv, match, tiny, tmp_path,
                                                                     submitit_env, monkeypatch, capsys):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    grid = write_grid(tmp_path / "g.yaml", "subx", {**tiny, **defaults}, [{"seed": [0, 1, 2]}])
    assert main(["sweep", str(grid), "--launcher", "submitit", "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and match in err, err
    assert not (submitit_env / "results").exists()


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_every_committed_grid_is_valid_and_pins_the_frozen_training_path(path):
    """Each grid expands to valid configs; a pinned grid pins this code's training path, so a change of the
    training-path code fails here until the grids are deliberately re-frozen (and their cells re-run)."""
    doc = sweep.load_grid(path)
    assert sweep.cells(doc)
    if "training_path" in doc:
        assert doc["training_path"] == provenance.training_path_hash()
