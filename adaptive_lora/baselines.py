"""Published baselines run through PEFT: AdaLoRA (Zhang et al. 2023) and EVA (Paischer et al. 2024).

AdaLoRA pitfalls handled here:
- ``update_and_allocate(step)`` must run after every optimizer step, before ``zero_grad`` (it scores |w * grad|);
  the HF Trainer never calls it. Our training loop does, through ``step_hook``.
- ``total_step`` is the real number of optimizer steps; ``tinit``/``tfinal`` are fractions of it.
- AdaLoRA adds its orthogonality penalty to ``outputs.loss`` (in eval too). We train on CE + penalty (the method)
  but report the eval loss as plain cross-entropy (``train.evaluate`` never goes through that forward).
- Budget: AdaLoRA budgets *ranks* (target_r x modules), not parameters; we set target_r = budget / sum(in+out)
  (8 for r8) and init_r = 1.5 x target_r, and record the final and peak parameter counts (A, B and the E vector).
"""
from __future__ import annotations

import math

import torch

from .spec import ModelSpec

TINIT_FRAC, TFINAL_FRAC, ORTH_REG = 0.1, 0.2, 0.5


def total_optimizer_steps(n_examples: int, batch_size: int, epochs: float) -> int:
    return max(1, math.ceil(math.ceil(n_examples / batch_size) * epochs))


def orth_penalty(model, adapter: str = "default") -> torch.Tensor:
    """AdaLoRA's regulariser: mean over A and B matrices of ||P P^T - I||_F (A) / ||P^T P - I||_F (B)."""
    terms = []
    for n, p in model.named_parameters():
        if ("lora_A" in n or "lora_B" in n) and adapter in n:
            cov = p @ p.T if "lora_A" in n else p.T @ p
            terms.append(torch.linalg.matrix_norm(cov - torch.eye(cov.shape[0], dtype=cov.dtype), "fro"))
    return torch.stack(terms).mean()


def active_ranks(model, adapter: str = "default") -> dict[str, int]:
    """Active AdaLoRA rank per module = number of non-zero entries of its E vector."""
    out = {}
    for name, module in model.named_modules():
        e = getattr(module, "lora_E", None)
        if e is not None and adapter in e:
            out[name.split("base_model.model.", 1)[-1]] = int((e[adapter] != 0).sum())
    return out


def adalora_model(model, cfg, spec: ModelSpec, budget: int, n_train: int):
    """-> (peft model, step hook, extra dict with 'finalize', loss_fn)."""
    from peft import AdaLoraConfig, get_peft_model

    from .peft_config import target_regex
    from .train import loss_sum

    steps = total_optimizer_steps(n_train, cfg.batch_size, cfg.epochs)
    target_r = max(1, round(budget / sum(m.params_per_rank for m in spec.modules)))
    init_r = max(target_r + 1, round(1.5 * target_r))
    tinit, tfinal = math.ceil(TINIT_FRAC * steps), math.ceil(TFINAL_FRAC * steps)
    if tinit >= steps - tfinal:
        tinit, tfinal = 0, 0
    config = AdaLoraConfig(
        target_r=target_r, init_r=init_r, tinit=tinit, tfinal=tfinal, deltaT=1, total_step=steps,
        lora_alpha=2 * init_r,  # scaling alpha / init_r = 2, as alpha = 2r elsewhere
        lora_dropout=cfg.lora_dropout, orth_reg_weight=ORTH_REG,
        target_modules=target_regex(spec.names()), task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    peak = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    history = []

    def hook(step: int) -> None:
        peft_model.base_model.update_and_allocate(step)
        if step % 10 == 0 or step == steps - 1:
            history.append([step, sum(active_ranks(peft_model).values())])

    def loss_fn(m, batch):
        s, n = loss_sum(m, batch)
        return s + ORTH_REG * orth_penalty(m) * n, n  # the caller divides by n

    def finalize():
        ranks = active_ranks(peft_model)
        by_name = spec.by_name()
        final = sum(r * (by_name[n].params_per_rank + 1) for n, r in ranks.items())
        extra = {"adalora": {"target_r": target_r, "init_r": init_r, "tinit": tinit, "tfinal": tfinal,
                             "total_step": steps, "orth_reg_weight": ORTH_REG, "total_rank_history": history},
                 "final_params": final, "peak_params": peak}
        return ranks, extra

    return peft_model, hook, {"finalize": finalize}, loss_fn


def eva_model(model, cfg, spec: ModelSpec, budget: int, train_ex, pad_id, n_calib: int = 64):
    """PEFT's EVA init: SVD of each module's input activations on calibration batches from the training pool;
    ranks redistributed by explained variance (rho = 2), scaling kept at alpha/r = 2.

    EVA budgets ranks (r x modules), as AdaLoRA does, so the parameter count can differ from the budget; the
    exact count is verified and recorded.
    """
    from peft import EvaConfig, LoraConfig, get_peft_model
    from peft.tuners.lora.eva import initialize_lora_eva_weights

    from .data import collate, length_grouped_batches
    from .peft_config import target_regex

    r = max(1, round(budget / sum(m.params_per_rank for m in spec.modules)))
    config = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=cfg.lora_dropout, init_lora_weights="eva",
                        eva_config=EvaConfig(rho=2.0, adjust_scaling_factors=True),
                        target_modules=target_regex(spec.names()),
                        task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config, low_cpu_mem_usage=True)
    calib = train_ex[:n_calib]
    batches = [collate([calib[i] for i in b], pad_id) for b in length_grouped_batches(calib, 8, seed=0)]
    initialize_lora_eva_weights(peft_model, batches, show_progress_bar=False)
    from .peft_config import lora_ranks_in_model
    ranks = lora_ranks_in_model(peft_model)
    return peft_model, {n: ranks.get(n, 0) for n in spec.names()}
