"""Training throughput, side by side: stock PEFT + transformers Trainer vs this project's training path.

Both train the same SmolLM2-135M LoRA (uniform rank 8 on all 7 projections of every block) on the same Alpaca
training examples, 8 examples per optimizer step, for the same number of steps (one pass over STEPS x 8 examples):
  (a) stock: Trainer defaults (fp32, its shuffling sampler, DataCollatorForSeq2Seq dynamic padding, full logits);
  (b) ours:  adaptive_lora.train.train (length-grouped batches, LM head only at labelled positions,
             precision=auto: bf16 base + autocast only where the CPU has native bf16).
Metric: real (non-padding) tokens per second of wall time; median and min..max over REPEATS.

Model FLOPs per real token of a frozen-base LoRA step (stated so the efficiency can be checked):
  6 * P_lora_per_token ... LoRA: forward 2 r(in+out), backward input-grad 2 r(in+out) + weight-grad 2 r(in+out)
  4 * P_blocks            base matmuls: forward 2 P + input-gradient backward 2 P (no weight gradients)
  4 * P_head * f_label    LM head, only for the fraction f_label of tokens that carry a label (ours needs no more)
  12 * L * d * T_ctx / 2  attention scores and values (forward 4 T d, backward 8 T d per layer, causal: mean T/2)
Hardware efficiency = (model FLOPs on real tokens / s) / peak matmul FLOP/s measured here (max of fp32, bf16).

Usage: python benchmarks/train_throughput.py [--steps 6] [--repeats 3]  -> benchmarks/results/<date>.json + .md
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adaptive_lora import provenance  # noqa: E402
from adaptive_lora.config import best_precision  # noqa: E402
from adaptive_lora.data import load_split, tokenize  # noqa: E402
from adaptive_lora.models import load_model, model_spec  # noqa: E402
from adaptive_lora.peft_config import lora_config  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def matmul_peak(dtype: torch.dtype, n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t)


def flops_per_token(spec, config, rank: int, f_label: float, t_ctx: float, head_fraction: float) -> dict:
    p_blocks = sum(m.in_features * m.out_features for m in spec.modules)
    p_lora = rank * sum(m.params_per_rank for m in spec.modules)
    p_head = config.hidden_size * config.vocab_size
    attn = 12 * config.num_hidden_layers * config.hidden_size * t_ctx / 2
    total = 4 * p_blocks + 6 * p_lora + 4 * p_head * head_fraction + attn
    return {"base_blocks": 4 * p_blocks, "lora": 6 * p_lora, "head": 4 * p_head * head_fraction,
            "attention": attn, "total": total, "f_label": f_label, "mean_ctx": t_ctx}


def stock(examples, tok, steps: int) -> float:
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    model = load_model("smollm2-135m", torch.float32)[0]
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=TARGETS,
                                             task_type="CAUSAL_LM"))
    ds = [{"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
          for e in examples]
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=8, max_steps=steps,
                                 learning_rate=2e-4, lr_scheduler_type="cosine", warmup_steps=max(1, round(0.1 * steps)),
                                 report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True,
                                 dataloader_num_workers=0, seed=0, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=ds,
                          data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
        t = time.perf_counter()
        trainer.train()
        return time.perf_counter() - t


def ours(examples, tok, steps: int, precision: str) -> float:
    from peft import get_peft_model

    from adaptive_lora.train import train

    spec = model_spec("smollm2-135m")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = load_model("smollm2-135m", dtype)[0]
    model = get_peft_model(model, lora_config({m.name: 8 for m in spec.modules}))
    t = time.perf_counter()
    train(model, examples, tok.pad_token_id, seed=0, epochs=1, batch_size=8, lr=2e-4, weight_decay=0.01,
          warmup_ratio=0.1, max_grad_norm=1.0, precision=precision, progress=False)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--offset", type=int, default=0, help="first training-pool example used")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("ADAPTIVE_LORA_THREADS", os.cpu_count() or 1)))
    model, tok, sha = load_model("smollm2-135m")
    config = model.config
    del model
    recs, data_sha = load_split("alpaca", "train", n=a.offset + a.steps * 8)
    examples, _ = tokenize(recs[a.offset:], tok, 256)
    real = sum(len(e.input_ids) for e in examples)
    labels = sum(sum(1 for x in e.labels[1:] if x != -100) for e in examples)
    precision = best_precision()
    runs = {"stock": [], "ours": []}
    for rep in range(a.repeats):
        for name in ("stock", "ours"):
            sec = stock(examples, tok, a.steps) if name == "stock" else ours(examples, tok, a.steps, precision)
            runs[name].append(real / sec)
            print(f"repeat {rep}: {name:5s} {real / sec:7.1f} real tok/s ({sec:.1f} s)", flush=True)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    spec = model_spec("smollm2-135m")
    mean_ctx = statistics.fmean(len(e.input_ids) for e in examples)
    f_label = labels / real
    fl = flops_per_token(spec, config, 8, f_label, mean_ctx, head_fraction=f_label)
    peak = max(peaks.values())
    summary = {}
    for name, xs in runs.items():
        med = statistics.median(xs)
        summary[name] = {"tokens_per_second_median": med, "min": min(xs), "max": max(xs), "all": xs,
                         "achieved_gflops": med * fl["total"] / 1e9,
                         "hardware_efficiency": med * fl["total"] / peak}
    ratio = summary["ours"]["tokens_per_second_median"] / summary["stock"]["tokens_per_second_median"]
    out = {"date": time.strftime("%Y-%m-%d"), "steps": a.steps, "examples": len(examples), "real_tokens": real,
           "label_tokens": labels, "precision_ours": precision, "matmul_peak_gflops": {k: v / 1e9 for k, v in peaks.items()},
           "flops_per_real_token": fl, "results": summary, "ratio_ours_over_stock": ratio,
           "provenance": {"git_commit": provenance.git_commit(), "git_dirty": provenance.git_dirty(),
                          "packages": provenance.packages(), "machine": provenance.machine(), "data_sha256": data_sha,
                          "model_sha256": sha}}
    res = ROOT / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / f"{out['date']}.json").write_text(json.dumps(out, indent=1) + "\n")
    (res / f"{out['date']}.md").write_text(markdown(out))
    (res / "latest.md").write_text(markdown(out))
    print(markdown(out))


def markdown(out: dict) -> str:
    rows = ["| path | real tok/s (median) | min..max | achieved GFLOP/s | efficiency vs peak |",
            "| --- | --- | --- | --- | --- |"]
    for name, label in (("stock", "(a) stock PEFT + Trainer, fp32"), ("ours", f"(b) ours, {out['precision_ours']}")):
        s = out["results"][name]
        rows.append(f"| {label} | {s['tokens_per_second_median']:.1f} | {s['min']:.1f}..{s['max']:.1f} | "
                    f"{s['achieved_gflops']:.1f} | {100 * s['hardware_efficiency']:.1f} % |")
    peaks = out["matmul_peak_gflops"]
    return ("\n".join(rows) + f"\n\nRatio b/a: **{out['ratio_ours_over_stock']:.2f}x**. Matmul peak measured here: "
            f"fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s. {out['examples']} Alpaca examples, "
            f"{out['steps']} optimizer steps of 8, {out['real_tokens']:,} real tokens; {out['date']}, "
            f"commit {str(out['provenance']['git_commit'])[:8]}.\n")


if __name__ == "__main__":
    main()
