"""Training and evaluation loops (plain PyTorch; no Trainer, so AdaLoRA's per-step hook and the loss are ours).

Speed on a CPU (see benchmarks/): base weights in bf16 with autocast (LoRA weights stay fp32, PEFT's
``autocast_adapter_dtype``), length-grouped batches, and the LM head + cross-entropy evaluated only at positions that
carry a label (the head is 576 x 49152 for SmolLM2: on all positions it would be the largest matmul of the step).
"""
from __future__ import annotations

import contextlib
import math
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import IGNORE, Example, collate, length_grouped_batches


def flush_denormals() -> None:
    """Treat subnormal floats (< 1.2e-38) as zero. Late in training, tiny gradients and activations become
    subnormal, and x86 cores process those ~100x slower: without this a CPU run slows down as it trains."""
    torch.set_flush_denormal(True)


def autocast(precision: str):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _parts(model):
    """(backbone, lm_head) of a causal LM, through a PEFT wrapper if there is one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, base.base_model_prefix), base.get_output_embeddings()


def _softcap(logits: torch.Tensor, backbone) -> torch.Tensor:
    """Gemma-2-style models squash logits in the LM wrapper, which the selected-head path bypasses."""
    cap = getattr(backbone.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def labelled_logits(model, batch: dict, selected: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits at the N positions whose next token has a label: (logits (N, V), targets (N,), example row (N,)).

    selected=True runs the backbone, then the LM head only on those positions:
    hidden (B, T, H) -> (N, H) -> logits (N, V). selected=False is the plain reference (full logits (B, T, V),
    then the same N rows). Both give the same logits; one backbone pass either way.
    """
    labels = batch["labels"][:, 1:]
    sel = labels != IGNORE
    if selected:
        backbone, head = _parts(model)
        h = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        logits = _softcap(head(h[:, :-1][sel]), backbone)
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1][sel]
    return logits, labels[sel], sel.nonzero()[:, 0]


def loss_sum(model, batch: dict, selected: bool = True) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over labelled positions, and their count (see ``labelled_logits``)."""
    logits, targets, _ = labelled_logits(model, batch, selected)
    return F.cross_entropy(logits.float(), targets, reduction="sum"), int(targets.numel())


@torch.no_grad()
def evaluate(model, examples: list[Example], pad_id: int, precision: str = "bf16", batch_size: int = 16,
             selected: bool = True, desc: str = "eval", per_example: bool = False) -> dict:
    """Token-weighted mean cross-entropy over response tokens (+EOS); ppl = exp(loss). Plain CE: no penalties.

    per_example=True adds ``example_losses``: [summed nats, label tokens] per example, in the given order (the
    paired bootstrap over eval examples resamples these). The total is computed exactly as without it.
    """
    flush_denormals()
    was_training = model.training
    model.eval()
    total, count, t0 = 0.0, 0, time.perf_counter()
    per = [None] * len(examples)
    batches = length_grouped_batches(examples, batch_size, seed=0, shuffle=False, group=10**9)
    for idx in tqdm(batches, desc=desc, leave=False, mininterval=2):
        batch = collate([examples[i] for i in idx], pad_id)
        with autocast(precision):
            logits, targets, rows = labelled_logits(model, batch, selected)
            logits = logits.float()
            # The total is reduced exactly as in loss_sum (same logits, same reduction), so it is bit-identical
            # with or without per_example; the per-example sums reuse the logits (no second backbone pass).
            s, n = F.cross_entropy(logits, targets, reduction="sum"), int(targets.numel())
            if per_example:
                per_pos = F.cross_entropy(logits, targets, reduction="none")
                sums = torch.zeros(len(idx), dtype=per_pos.dtype).index_add_(0, rows, per_pos).tolist()
                counts = torch.bincount(rows, minlength=len(idx)).tolist()
                for j, i in enumerate(idx):
                    per[i] = [round(sums[j], 6), counts[j]]
        total += float(s)
        count += n
    model.train(was_training)
    loss = total / count
    out = {"loss": loss, "ppl": math.exp(loss), "tokens": count, "seconds": time.perf_counter() - t0}
    if per_example:
        out["example_losses"] = per
    return out


@torch.no_grad()
def check_selected_head(model, examples: list[Example], pad_id: int, precision: str, tol: float = 1e-3) -> float:
    """The LM-head-at-labelled-positions path bypasses the model's own forward after the backbone. For a model
    outside the registry, compare it with the full-logits forward on the first batch (a wrapper that scales or
    squashes logits would otherwise make every loss silently wrong). Returns |difference| in nats per token."""
    batch = collate(examples[:8], pad_id)
    was = model.training
    model.eval()
    with autocast(precision):
        s_sel, n = loss_sum(model, batch, selected=True)
        s_full, _ = loss_sum(model, batch, selected=False)
    model.train(was)
    diff = abs(float(s_sel) - float(s_full)) / n
    if diff > tol:
        raise RuntimeError(f"the LM head at labelled positions differs from the model's full forward by {diff:.4g} "
                           "nats/token on the first batch: this model transforms its logits in a way the fast path "
                           "does not reproduce")
    return diff


def cosine_schedule(optimizer, warmup: int, total: int):
    """Linear warm-up to the peak lr over ``warmup`` steps, then cosine decay to 0 at ``total`` (HF's schedule)."""
    def f(step):
        if step < warmup:
            return (step + 1) / max(1, warmup)  # step 0 trains at lr/warmup, not 0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


def train(model, examples: list[Example], pad_id: int, *, seed: int, epochs: float, batch_size: int, lr: float,
          weight_decay: float, warmup_ratio: float, max_grad_norm: float, precision: str,
          step_hook=None, loss_fn=None, progress: bool = True) -> dict:
    """AdamW + cosine schedule over length-grouped batches. ``step_hook(step)`` runs after every optimizer step
    (AdaLoRA's update_and_allocate). ``loss_fn(model, batch) -> (loss_sum, n)`` overrides the loss.

    Returns the per-step training-loss curve and throughput counters.
    """
    # One process (multi-process training was removed: run.check_single_process).
    flush_denormals()
    loss_fn = loss_fn or loss_sum
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)
    per_epoch = math.ceil(len(examples) / batch_size)
    total_steps = max(1, math.ceil(per_epoch * epochs))
    sched = cosine_schedule(opt, math.ceil(warmup_ratio * total_steps), total_steps)
    model.train()
    curve, real_tokens, label_tokens, step = [], 0, 0, 0
    t0 = time.perf_counter()
    bar = tqdm(total=total_steps, desc="train", disable=not progress, mininterval=2)
    epoch = 0
    while step < total_steps:
        batches = length_grouped_batches(examples, batch_size, seed=seed * 1000 + epoch)
        for idx in batches:
            if step >= total_steps:
                break
            batch = collate([examples[i] for i in idx], pad_id)
            with autocast(precision):
                s, n = loss_fn(model, batch)
            loss = s / n
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            opt.step()
            sched.step()
            if step_hook is not None:  # before zero_grad: AdaLoRA scores |w * grad|
                step_hook(step)
            opt.zero_grad(set_to_none=True)
            step += 1
            real_tokens += int(batch["attention_mask"].sum())
            label_tokens += n
            curve.append(round(loss.item(), 5))
            elapsed = time.perf_counter() - t0
            bar.set_postfix(loss=f"{curve[-1]:.3f}", tok_s=f"{real_tokens / elapsed:.0f}", refresh=False)
            bar.update(1)
        epoch += 1
    bar.close()
    seconds = time.perf_counter() - t0
    return {"train_loss_curve": curve, "train_seconds": seconds, "optimizer_steps": total_steps,
            "train_tokens": real_tokens, "train_label_tokens": label_tokens,
            "tokens_per_second": real_tokens / seconds}
