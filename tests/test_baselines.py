"""AdaLoRA and EVA through PEFT on a tiny model."""
import json

import torch
from peft import AdaLoraConfig

from adaptive_lora.baselines import active_ranks, adalora_model, orth_penalty, total_optimizer_steps
from adaptive_lora.cli import main
from adaptive_lora.config import RunConfig
from adaptive_lora.data import collate, tokenize
from adaptive_lora.models import load_model, model_spec
from adaptive_lora.train import evaluate, loss_sum, train
from conftest import SHORT, TINY_RUN


def test_total_optimizer_steps():
    assert total_optimizer_steps(1000, 8, 1) == 125 and total_optimizer_steps(12, 4, 2) == 6
    assert total_optimizer_steps(10, 4, 1.5) == 5


def test_adalora_shrinks_to_target_and_eval_excludes_penalty():
    model, tok, _ = load_model("tiny-llama")
    spec = model_spec("tiny-llama")
    cfg = RunConfig(model="tiny-llama", epochs=10, batch_size=4, lr=1e-2)
    torch.manual_seed(0)
    exs, _ = tokenize(SHORT, tok, 64)
    budget = spec.uniform_count(4)
    peft_model, hook, extra, loss_fn = adalora_model(model, cfg, spec, budget, len(exs))
    assert isinstance(peft_model.peft_config["default"], AdaLoraConfig)
    steps = total_optimizer_steps(len(exs), 4, 10)
    assert peft_model.peft_config["default"].total_step == steps
    train(peft_model, exs, tok.pad_token_id, seed=0, epochs=10, batch_size=4, lr=1e-2, weight_decay=0.0,
          warmup_ratio=0.1, max_grad_norm=1.0, precision="fp32", step_hook=hook, loss_fn=loss_fn, progress=False)
    ranks, info = extra["finalize"]()
    init_total = info["adalora"]["init_r"] * len(spec.modules)
    assert sum(ranks.values()) == 4 * len(spec.modules) < init_total  # the active rank really shrank to target
    assert info["peak_params"] > info["final_params"]
    # eval: plain cross-entropy. PEFT's forward with labels adds the orthogonality penalty on top.
    batch = collate(exs, tok.pad_token_id)
    plain = evaluate(peft_model, exs, tok.pad_token_id, "fp32", batch_size=len(exs))["loss"]
    peft_model.eval()
    with torch.no_grad():
        s, n = loss_sum(peft_model, batch, selected=False)
        with_penalty = peft_model(**batch).loss
        penalty = float(orth_penalty(peft_model))
    assert abs(plain - float(s / n)) < 1e-5
    assert penalty > 0 and abs(float(with_penalty) - (float(s / n) + 0.5 * penalty)) < 1e-4


def test_adalora_cli_run_records_final_and_peak(sandbox, short_data):
    assert main(TINY_RUN + short_data + ["--strategy", "adalora", "--budget", "r2", "--epochs", "6"]) == 0
    (path,) = sorted((sandbox / "results").rglob("*.json"))
    r = json.loads(path.read_text())
    assert r["peak_params"] > r["trainable_params"] == r["final_params"]
    assert sum(r["rank_map"].values()) == 2 * len(model_spec("tiny-llama").modules)


def test_eva_cli_run(sandbox, short_data):
    assert main(TINY_RUN + short_data + ["--strategy", "eva", "--budget", "r2"]) == 0
    (path,) = sorted((sandbox / "results").rglob("*.json"))
    r = json.loads(path.read_text())
    spec = model_spec("tiny-llama")
    assert r["trainable_params"] == spec.count(r["rank_map"])
    assert sum(r["rank_map"].values()) == 2 * len(spec.modules)  # EVA keeps the rank count, not the parameter count
