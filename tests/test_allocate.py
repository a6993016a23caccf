"""Calibration statistics (cached, provenance) and the `allocate` tool (PEFT files that load and count exactly)."""
import json
import math

import pytest
import torch
from peft import LoraConfig, get_peft_model

from adaptive_lora import calibration
from adaptive_lora.budget import parse_budget
from adaptive_lora.cli import main
from adaptive_lora.config import RunConfig
from adaptive_lora.models import load_model, model_spec
from adaptive_lora.peft_config import lora_ranks_in_model, trainable_params
from adaptive_lora.run import resolve_rank_map
from conftest import SHORT, write_jsonl


@pytest.fixture
def models_dir(sandbox, monkeypatch):
    monkeypatch.setenv("ADAPTIVE_LORA_MODELS", str(sandbox / "models"))
    return sandbox / "models"


@pytest.fixture
def cfg(short_data):
    return RunConfig(model="tiny-llama", data=short_data[1], eval_data=short_data[3], strategy="gradient",
                     max_length=64, precision="fp32")


def stats_files(sandbox):
    return sorted((sandbox / "cache" / "stats").glob("*.json"))


# ------------------------------------------------------------------------------------------------ calibration
@pytest.mark.parametrize("kind", calibration.KINDS)
def test_statistics_are_computed_once_and_cached(kind, sandbox, cfg, monkeypatch):
    spec = model_spec("tiny-llama")
    stats = calibration.statistics(kind, cfg, spec, None, None, SHORT)
    assert set(stats) == set(spec.names())
    assert all(math.isfinite(v) and v > 0 for v in stats.values())
    files = stats_files(sandbox)
    assert len(files) == 1
    doc = json.loads(files[0].read_text())
    assert doc["kind"] == kind and doc["model"] == "tiny-llama" and doc["stats"] == stats
    if kind in calibration.DATA_KINDS:
        assert doc["data_sha256"] and doc["sample"]["n_examples"] == len(SHORT)
        assert doc["sample"]["max_length"] == calibration.CALIB_MAX_LENGTH and doc["sample"]["seed"] is None
    else:
        assert doc["data_sha256"] is None  # weight statistics do not depend on data

    # second call: read from the file, nothing recomputed (also for another run seed: the sample is fixed)
    def boom(*a, **k):
        raise AssertionError("recomputed")
    monkeypatch.setattr(calibration, "_data_stats", boom)
    monkeypatch.setattr(calibration, "_weight_stats", boom)
    monkeypatch.setattr(calibration, "load_model", boom)
    other_seed = RunConfig(**{**cfg.to_dict(), "seed": 7})
    assert calibration.statistics(kind, other_seed, spec, None, None, SHORT) == stats
    assert len(stats_files(sandbox)) == 1


def test_statistics_use_the_first_records_of_the_training_split_only(sandbox, cfg, tmp_path):
    spec = model_spec("tiny-llama")
    a = calibration.statistics("activations", cfg, spec, None, None, None)  # loads the training file itself
    assert len(stats_files(sandbox)) == 1
    assert calibration.statistics("activations", cfg, spec, None, None, SHORT) == a  # same records -> same file
    more = SHORT * (1 + calibration.CALIB_EXAMPLES // len(SHORT))  # > CALIB_EXAMPLES records: only the first count
    b = calibration.statistics("activations", cfg, spec, None, None, more)
    c = calibration.statistics("activations", cfg, spec, None, None, more + SHORT[:3])
    assert b == c and len(stats_files(sandbox)) == 2
    sizes = sorted(json.loads(f.read_text())["sample"]["n_examples"] for f in stats_files(sandbox))
    assert sizes == [len(SHORT), calibration.CALIB_EXAMPLES]
    # a different sample is a different file and different numbers; the eval file is never read
    other = [dict(r, output=r["output"] * 3) for r in SHORT]
    assert calibration.statistics("activations", cfg, spec, None, None, other) != a
    assert len(stats_files(sandbox)) == 3


def test_statistics_match_with_the_runs_model_and_leave_it_untouched(sandbox, cfg):
    spec = model_spec("tiny-llama")
    model, tok, _ = load_model("tiny-llama")
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    rng = torch.random.get_rng_state()
    got = calibration.statistics("gradients", cfg, spec, model, tok, SHORT)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    assert torch.equal(torch.random.get_rng_state(), rng)
    for f in stats_files(sandbox):
        f.unlink()
    fresh = calibration.statistics("gradients", cfg, spec, None, None, SHORT)  # loads its own fp32 model
    assert fresh == pytest.approx(got, rel=1e-5)


def test_run_resolves_a_data_driven_strategy_through_the_cache(sandbox, cfg):
    spec = model_spec("tiny-llama")
    budget = parse_budget("r4", spec)
    rank_map = resolve_rank_map(cfg, spec, budget, None, None, SHORT)
    assert spec.count(rank_map) == budget and len(stats_files(sandbox)) == 1
    assert resolve_rank_map(RunConfig(**{**cfg.to_dict(), "seed": 3}), spec, budget, None, None, SHORT) == rank_map


# ------------------------------------------------------------------------------------------------ allocate tool
@pytest.mark.parametrize("strategy,scaling", [("linear_decay", "constant"), ("attention_cproj", "rslora"),
                                              ("shuffled:gradient", "fixed-alpha"), ("weight_norm", "constant")])
def test_allocate_out_loads_into_peft_with_the_printed_count(strategy, scaling, models_dir, short_data, tmp_path,
                                                             capsys):
    out = tmp_path / "adapter"
    argv = ["allocate", "--model", "tiny-llama", "--strategy", strategy, "--budget", "r4", "--scaling", scaling,
            "--data", short_data[1], "--out", str(out), "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)  # exactly one JSON object
    spec = model_spec("tiny-llama")
    assert doc["budget_params"] == parse_budget("r4", spec)
    assert doc["trainable_params"] == spec.count(doc["rank_map"]) and doc["model"] == "tiny-llama"
    assert doc["strategy"] == strategy and abs(doc["trainable_params"] - doc["budget_params"]) <= 0.005 * doc[
        "budget_params"]
    cfg = LoraConfig.from_pretrained(str(out))
    assert cfg.base_model_name_or_path == "tiny-llama"
    peft_model = get_peft_model(load_model("tiny-llama")[0], cfg)
    assert trainable_params(peft_model) == doc["trainable_params"]
    assert lora_ranks_in_model(peft_model) == {n: r for n, r in doc["rank_map"].items() if r > 0}
    assert json.loads((out / "rank_map.json").read_text())["rank_map"] == doc["rank_map"]
    if strategy == "weight_norm":
        assert doc["stats"]["kind"] == "weights" and "stats" not in doc["stats"]

    # the models/ copy is a --rank-map file for `run`
    saved = models_dir / "tiny-llama" / f"{strategy.replace(':', '-')}-r4.json"
    assert json.loads(saved.read_text())["rank_map"] == doc["rank_map"]
    run_cfg = RunConfig(model="tiny-llama", budget="r4", rank_map_file=str(saved))
    assert resolve_rank_map(run_cfg, spec, doc["budget_params"]) == doc["rank_map"]


def test_allocate_prints_a_layer_by_kind_table(models_dir, capsys):
    assert main(["allocate", "--model", "tiny-gpt2", "--strategy", "linear_increase", "--budget", "r8"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("layer"))
    assert header.split()[1:5] == ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]
    rows = [line.split() for line in lines if line[:5].strip().isdigit()]
    assert [r[:5] for r in rows] == [["0", "4", "4", "4", "4"], ["1", "8", "8", "8", "8"],
                                     ["2", "12", "12", "12", "12"]]
    budget = parse_budget("r8", model_spec("tiny-gpt2"))
    assert f"trainable parameters: {budget:,} (budget {budget:,}, +0.000 %)" in out


@pytest.mark.parametrize("argv,match", [
    (["--strategy", "nope"], "unknown strategy"),
    (["--budget", "r100000"], "can meet the budget"),
    (["--budget", "lots"], "unknown budget"),
    (["--scaling", "odd"], "unknown scaling"),
    (["--model", "nope"], "unknown model"),
    (["--strategy", "linear_decay", "--min-rank", "9", "--max-rank", "2"], "rank bounds"),
    (["--strategy", "eva"], "decides its ranks during training"),
    (["--strategy", "adalora"], "adaptive-lora run --strategy adalora"),
])
def test_allocate_errors_are_one_line(argv, match, models_dir, capsys):
    assert main(["allocate", "--model", "tiny-llama", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err and err.count("\n") == 1


def test_allocate_data_driven_on_custom_data_reuses_the_cache(models_dir, sandbox, tmp_path, capsys):
    data = write_jsonl(tmp_path / "calib.jsonl", SHORT)
    argv = ["allocate", "--model", "tiny-gpt2", "--strategy", "activation", "--budget", "r8", "--data", str(data),
            "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert first["rank_map"] == second["rank_map"] and len(stats_files(sandbox)) == 1
    assert first["stats"]["data"] == "calib.jsonl" and first["stats"]["sample"]["n_examples"] == len(SHORT)
