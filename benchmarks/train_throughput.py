"""Training throughput and cost of a cell, side by side: stock PEFT + transformers Trainer vs this project's path.

Every measurement runs in its own process (clean peak RSS, its own thread count). Both paths train the same
SmolLM2-135M LoRA (uniform rank 8 on all 7 projections of every block, the same LoRA dropout) on the same Alpaca
examples, 8 examples per optimizer step, for the same number of steps:
  (a) stock: Trainer defaults (fp32, its shuffling sampler, DataCollatorForSeq2Seq dynamic padding, full logits);
  (b) ours:  adaptive_lora.train.train (length-grouped batches, LM head only at labelled positions), fp32.
Measured, per thread count T in {1, 2} and LoRA dropout in {0.1, 0}: real (non-padding) tokens per second of wall
time (median and min..max over REPEATS), peak RSS; then the sweep's layouts on 2 cores: 1 process x 2 threads
(``--jobs 1``, threads 2) and 2 processes x 1 thread (``--jobs 2``, threads 1; both processes measured at once),
turned into standard cells per hour with the measured eval cost (forward only, 500 test + 250 dev + 200 transfer
examples per protocol-v2 cell) and the measured tokens per training example.

Model FLOPs per real token of a frozen-base LoRA step (stated so the efficiency can be checked):
  6 * P_lora_per_token ... LoRA: forward 2 r(in+out), backward input-grad 2 r(in+out) + weight-grad 2 r(in+out)
  4 * P_blocks            base matmuls: forward 2 P + input-gradient backward 2 P (no weight gradients)
  4 * P_head * f_label    LM head, only for the fraction f_label of tokens that carry a label (ours needs no more)
  12 * L * d * T_ctx / 2  attention scores and values (forward 4 T d, backward 8 T d per layer, causal: mean T/2)
Hardware efficiency = achieved model FLOP/s / the fp32 matmul peak measured here with the same thread count (for
2 x 1 layouts: both processes' FLOP/s over the 2-thread peak).

Usage: python benchmarks/train_throughput.py [--steps 6] [--repeats 2]  -> benchmarks/results/<date>.json + .md
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adaptive_lora import provenance  # noqa: E402
from adaptive_lora.data import load_split, tokenize  # noqa: E402
from adaptive_lora.models import load_model, model_spec  # noqa: E402
from adaptive_lora.peft_config import lora_config  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CELL = {"train_examples": 1000, "test": 500, "dev": 250, "transfer": 200}  # a protocol-v2 standard cell


def matmul_peak(dtype: torch.dtype, threads: int, n: int = 1024, reps: int = 20) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t))
    return best


def flops_per_token(spec, config, rank: int, f_label: float, t_ctx: float, head_fraction: float) -> dict:
    p_blocks = sum(m.in_features * m.out_features for m in spec.modules)
    p_lora = rank * sum(m.params_per_rank for m in spec.modules)
    p_head = config.hidden_size * config.vocab_size
    attn = 12 * config.num_hidden_layers * config.hidden_size * t_ctx / 2
    total = 4 * p_blocks + 6 * p_lora + 4 * p_head * head_fraction + attn
    return {"base_blocks": 4 * p_blocks, "lora": 6 * p_lora, "head": 4 * p_head * head_fraction,
            "attention": attn, "total": total, "f_label": f_label, "mean_ctx": t_ctx}


def examples_for(steps: int, offset: int = 0):
    tok = load_model("smollm2-135m")[1]
    recs, _ = load_split("alpaca", "train", n=offset + steps * 8)
    return tokenize(recs[offset:], tok, 256)[0], tok


# ------------------------------------------------------------------------------------------ child measurements
def stock(examples, tok, steps: int, dropout: float) -> tuple[float, list]:
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    model = load_model("smollm2-135m", torch.float32)[0]
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=dropout, target_modules=TARGETS,
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
        return time.perf_counter() - t, []


def ours(examples, tok, steps: int, dropout: float, checkpoint: bool = False) -> tuple[float, list]:
    from peft import get_peft_model

    from adaptive_lora.train import train

    spec = model_spec("smollm2-135m")
    model = load_model("smollm2-135m", torch.float32)[0]
    torch.manual_seed(0)
    model = get_peft_model(model, lora_config({m.name: 8 for m in spec.modules}, dropout=dropout))
    if checkpoint:
        from adaptive_lora.speed import enable_checkpointing
        enable_checkpointing(model)
    t = time.perf_counter()
    log = train(model, examples, tok.pad_token_id, seed=0, epochs=1, batch_size=8, lr=2e-4, weight_decay=0.01,
                warmup_ratio=0.1, max_grad_norm=1.0, precision="fp32", progress=False)
    return time.perf_counter() - t, log["train_loss_curve"]


def eval_cost(n: int) -> tuple[float, int]:
    """Forward-only eval of n test examples (our evaluate) -> (seconds, real tokens)."""
    from adaptive_lora.train import evaluate

    model, tok, _ = load_model("smollm2-135m", torch.float32)
    recs, _ = load_split("alpaca", "eval", n=n)
    exs, _ = tokenize(recs, tok, 256)
    out = evaluate(model, exs, tok.pad_token_id, "fp32")
    return out["seconds"], sum(len(e.input_ids) for e in exs)


def child(a) -> None:
    torch.set_num_threads(a.threads)
    if a.child == "eval":
        sec, real = eval_cost(a.eval_examples)
        out = {"seconds": sec, "real_tokens": real}
    else:
        examples, tok = examples_for(a.steps, a.offset)
        real = sum(len(e.input_ids) for e in examples)
        fn = stock if a.child == "stock" else ours
        sec, curve = fn(examples, tok, a.steps, a.dropout, a.checkpoint) if a.child == "ours" else \
            fn(examples, tok, a.steps, a.dropout)
        out = {"seconds": sec, "real_tokens": real, "tok_s": real / sec, "curve": curve}
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out), flush=True)


def spawn(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env)


def collect(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"benchmark child failed (rc {proc.returncode})")
    return json.loads(line[7:])


def measure(path: str, threads: int, dropout: float, steps: int, extra=()) -> dict:
    return collect(spawn(["--child", path, "--threads", str(threads), "--dropout", str(dropout),
                          "--steps", str(steps), *extra]))


# -------------------------------------------------------------------------------------------------- the report
def summarize(xs: list[dict]) -> dict:
    t = [x["tok_s"] for x in xs]
    return {"tok_s_median": statistics.median(t), "min": min(t), "max": max(t), "all": t,
            "peak_rss_mib": max(x["peak_rss_mib"] for x in xs), "curve": xs[0].get("curve")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--offset", type=int, default=0, help="first training-pool example used")
    ap.add_argument("--eval-examples", type=int, default=64)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--dropout", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)

    cpu = provenance.cpu()
    model, tok, sha = load_model("smollm2-135m")
    config = model.config
    del model
    examples, _ = examples_for(a.steps, a.offset)
    real = sum(len(e.input_ids) for e in examples)
    labels = sum(sum(1 for x in e.labels[1:] if x != -100) for e in examples)
    pool, _ = load_split("alpaca", "train", n=200)
    tokens_per_example = statistics.fmean(len(e.input_ids) for e in tokenize(pool, tok, 256)[0])
    peaks = {"fp32_1t": matmul_peak(torch.float32, 1), "fp32_2t": matmul_peak(torch.float32, 2),
             "bf16_1t": matmul_peak(torch.bfloat16, 1)}
    spec = model_spec("smollm2-135m")
    fl = flops_per_token(spec, config, 8, labels / real, statistics.fmean(len(e.input_ids) for e in examples),
                         head_fraction=labels / real)
    runs: dict[str, dict] = {}
    for dropout in (0.1, 0.0):
        for threads in (2, 1):
            for path in ("stock", "ours"):
                key = f"{path}_t{threads}_d{dropout:g}"
                xs = [measure(path, threads, dropout, a.steps) for _ in range(a.repeats)]
                runs[key] = summarize(xs)
                print(f"{key}: {runs[key]['tok_s_median']:.1f} tok/s, peak RSS {runs[key]['peak_rss_mib']:.0f} MiB",
                      flush=True)
    runs["ours_t1_d0_checkpoint"] = summarize([measure("ours", 1, 0.0, a.steps, ["--checkpoint"])])
    # 2 processes x 1 thread, measured at once (the sweep's --jobs 2 layout)
    pair = []
    for _ in range(a.repeats):
        procs = [spawn(["--child", "ours", "--threads", "1", "--dropout", "0", "--steps", str(a.steps)])
                 for _ in range(2)]
        pair.append([collect(p) for p in procs])
    runs["ours_2x1_d0"] = {"per_process_tok_s": [[x["tok_s"] for x in rep] for rep in pair],
                           "tok_s_median": statistics.median(sum(x["tok_s"] for x in rep) for rep in pair),
                           "peak_rss_mib": max(x["peak_rss_mib"] for rep in pair for x in rep)}
    print(f"ours 2x1: {runs['ours_2x1_d0']['tok_s_median']:.1f} tok/s together", flush=True)
    ev = {t: collect(spawn(["--child", "eval", "--threads", str(t), "--eval-examples", str(a.eval_examples)]))
          for t in (1, 2)}

    def eff(tok_s: float, threads: int) -> float:
        return tok_s * fl["total"] / peaks[f"fp32_{threads}t"]

    for key, r in runs.items():
        threads = 2 if ("_t2_" in key or "2x1" in key) else 1
        r["achieved_gflops"] = r["tok_s_median"] * fl["total"] / 1e9
        r["efficiency_vs_fp32_peak"] = eff(r["tok_s_median"], threads)
    eval_per_example = {t: ev[t]["seconds"] / a.eval_examples for t in ev}
    # eval is forward only, base model without LoRA: half the block and head FLOPs, a third of attention's
    forward_flops = fl["base_blocks"] / 2 + fl["head"] / 2 + fl["attention"] / 3
    eval_examples_per_cell = CELL["test"] + CELL["dev"] + CELL["transfer"]
    layouts = {}
    for name, tok_s_process, threads, jobs in (
            ("1x2", runs["ours_t2_d0"]["tok_s_median"], 2, 1),
            ("2x1", runs["ours_2x1_d0"]["tok_s_median"] / 2, 1, 2)):
        train_s = CELL["train_examples"] * tokens_per_example / tok_s_process
        eval_s = eval_examples_per_cell * eval_per_example[threads]
        cell_s = train_s + eval_s
        layouts[name] = {"processes": jobs, "threads": threads, "train_seconds": train_s, "eval_seconds": eval_s,
                         "cell_seconds": cell_s, "cells_per_hour": jobs * 3600 / cell_s}
    out = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu, "steps": a.steps, "examples": len(examples),
           "eval_examples": a.eval_examples,
           "real_tokens": real, "label_tokens": labels, "tokens_per_training_example": tokens_per_example,
           "matmul_peak_gflops": {k: v / 1e9 for k, v in peaks.items()}, "flops_per_real_token": fl,
           "results": runs, "eval": {str(t): {**ev[t], "seconds_per_example": eval_per_example[t],
                                               "projected_500_seconds": 500 * eval_per_example[t],
                                               "efficiency_vs_fp32_peak": ev[t]["real_tokens"] / ev[t]["seconds"]
                                               * forward_flops / peaks[f"fp32_{t}t"]} for t in ev},
           "cells_per_hour": layouts,
           "ratios": {"ours_over_stock_t2_d0.1": runs["ours_t2_d0.1"]["tok_s_median"] / runs["stock_t2_d0.1"]["tok_s_median"],
                      "ours_over_stock_t1_d0.1": runs["ours_t1_d0.1"]["tok_s_median"] / runs["stock_t1_d0.1"]["tok_s_median"],
                      "ours_over_stock_t2_d0": runs["ours_t2_d0"]["tok_s_median"] / runs["stock_t2_d0"]["tok_s_median"],
                      "ours_over_stock_t1_d0": runs["ours_t1_d0"]["tok_s_median"] / runs["stock_t1_d0"]["tok_s_median"],
                      "ours_2x1_d0_over_stock_t2_d0.1": runs["ours_2x1_d0"]["tok_s_median"] / runs["stock_t2_d0.1"]["tok_s_median"]},
           "provenance": {"git_commit": provenance.git_commit(), "git_dirty": provenance.git_dirty(),
                          "training_path_hash": provenance.training_path_hash(),
                          "packages": provenance.packages(), "machine": provenance.machine(), "model_sha256": sha}}
    res = ROOT / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / f"{out['date']}.json").write_text(json.dumps(out, indent=1) + "\n")
    (res / f"{out['date']}.md").write_text(markdown(out))
    (res / "latest.md").write_text(markdown(out))
    print(markdown(out))


def markdown(out: dict) -> str:
    r, cpu = out["results"], out["cpu"]
    rows = ["| path | threads | LoRA dropout | real tok/s (median) | min..max | GFLOP/s | of fp32 peak | peak RSS |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, s in r.items():
        if "per_process_tok_s" in s:
            label, th, d, mm = "(b) ours, 2 processes at once", "1 + 1", "0", ""
        else:
            path, t, d = key.split("_")[:3]
            label = ("(a) stock PEFT + Trainer" if path == "stock" else "(b) ours") + \
                (", activation checkpointing" if key.endswith("checkpoint") else "")
            th, d, mm = t[1:], d[1:], f"{s['min']:.1f}..{s['max']:.1f}"
        rows.append(f"| {label} | {th} | {d} | {s['tok_s_median']:.1f} | {mm} | {s['achieved_gflops']:.1f} | "
                    f"{100 * s['efficiency_vs_fp32_peak']:.0f} % | {s['peak_rss_mib'] / 1024:.1f} GiB |")
    p = out["matmul_peak_gflops"]
    ratios = out["ratios"]
    lay = out["cells_per_hour"]
    ev = out["eval"]
    bf16 = ("native bf16 (AMX or AVX512-BF16): yes" if cpu["native_bf16"] else
            "native bf16: **no** (no AMX, no AVX512-BF16; bf16 is emulated, so the bf16 path was not measured)")
    return ("\n".join(rows) + "\n\n"
            f"CPU: {cpu['model_name']}, AVX2 {'yes' if cpu['avx2'] else 'no'}, AVX-512 "
            f"{'yes' if cpu['avx512f'] else 'no'}, {bf16}. fp32 matmul peak measured here: {p['fp32_1t']:.0f} GFLOP/s "
            f"(1 thread), {p['fp32_2t']:.0f} (2 threads); bf16 {p['bf16_1t']:.0f} (1 thread).\n\n"
            f"Ours / stock, same dropout: {ratios['ours_over_stock_t2_d0.1']:.2f}x (2 threads, dropout 0.1), "
            f"{ratios['ours_over_stock_t1_d0.1']:.2f}x (1 thread, 0.1), {ratios['ours_over_stock_t2_d0']:.2f}x "
            f"(2 threads, 0), {ratios['ours_over_stock_t1_d0']:.2f}x (1 thread, 0). The grid's layout (2 processes x 1 "
            f"thread, dropout 0) against the pilot-era stock baseline (2 threads, dropout 0.1): "
            f"{ratios['ours_2x1_d0_over_stock_t2_d0.1']:.2f}x.\n\n"
            f"Eval (forward only, {ev['1']['real_tokens']:,} tokens of the first {out['eval_examples']} test examples): "
            f"{ev['1']['seconds_per_example']:.2f} s per example at 1 thread, {ev['2']['seconds_per_example']:.2f} at "
            f"2 -> 500 examples in {ev['1']['projected_500_seconds']:.0f} s / {ev['2']['projected_500_seconds']:.0f} s "
            f"({100 * ev['1']['efficiency_vs_fp32_peak']:.0f} % / {100 * ev['2']['efficiency_vs_fp32_peak']:.0f} % "
            f"of the fp32 peak).\n\n"
            f"Standard protocol-v2 cell (1,000 training examples at {out['tokens_per_training_example']:.0f} tokens "
            f"each, eval of 500 test + 250 dev + 200 transfer examples): 1 process x 2 threads "
            f"{lay['1x2']['cell_seconds'] / 60:.0f} min per cell, **{lay['1x2']['cells_per_hour']:.1f} cells/hour**; "
            f"2 processes x 1 thread {lay['2x1']['cell_seconds'] / 60:.0f} min per cell, "
            f"**{lay['2x1']['cells_per_hour']:.1f} cells/hour**.\n\n"
            f"{out['examples']} Alpaca examples, {out['steps']} optimizer steps of 8, {out['real_tokens']:,} real "
            f"tokens per measurement, each in its own process; {out['date']}, commit "
            f"{str(out['provenance']['git_commit'])[:8]}, training path {out['provenance']['training_path_hash']}.\n")


if __name__ == "__main__":
    main()
