"""Published baselines run through PEFT: AdaLoRA (Zhang et al. 2023) and EVA (Paischer et al. 2024).

AdaLoRA pitfalls handled here:
- ``update_and_allocate(step)`` must run after every optimizer step, before ``zero_grad`` (it scores |w * grad|);
  the HF Trainer never calls it. Our training loop does, through ``step_hook``.
- ``total_step`` is the real number of optimizer steps; ``tinit``/``tfinal`` are fractions of it.
- AdaLoRA adds its orthogonality penalty to ``outputs.loss`` (in eval too). We train on CE + penalty (the method)
  but report the eval loss as plain cross-entropy (``train.evaluate`` never goes through that forward).
- Budget: AdaLoRA budgets *ranks* (target_r x modules), not parameters; we set target_r = budget / sum(in+out)
  (8 for r8) and init_r = 1.5 x target_r, and record the final and peak parameter counts (A, B and the E vector).
  With ``match_params`` (protocol v2) the masking step keeps triplets by importance under a *parameter* budget
  (``param_budget_masker``), so the final count (A, B and E) lands within one triplet below the budget.
- Schedule: ``tinit`` / ``tfinal`` are fractions of the real step count (``adalora_tinit`` / ``adalora_tfinal``;
  the pilot used 0.1 / 0.2, protocol v2 0.25 / 0.25: rank reduction over the middle half, as the authors advise).

EVA (``eva_matched``, protocol v2): the principal components of each module's input activations on calibration
batches initialise lora_A (lora_B = 0); ranks go to the components with the largest explained-variance ratio, at
most rho x r per module, until the *parameter* budget is met (cost in + out per component). rho = 1 gives every
module rank r (EVA's initialisation alone); rho = 2 also redistributes ranks.
"""
from __future__ import annotations

import math

import torch

from .spec import ModelSpec



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
    orth = cfg.adalora_orth
    target_r = max(1, round(budget / sum(m.params_per_rank for m in spec.modules)))
    init_r = max(target_r + 1, round(1.5 * target_r))
    tinit, tfinal = math.ceil(cfg.adalora_tinit * steps), math.ceil(cfg.adalora_tfinal * steps)
    if tinit >= steps - tfinal:
        tinit, tfinal = 0, 0
    config = AdaLoraConfig(
        target_r=target_r, init_r=init_r, tinit=tinit, tfinal=tfinal, deltaT=1, total_step=steps,
        lora_alpha=2 * init_r,  # scaling alpha / init_r = 2, as alpha = 2r elsewhere
        lora_dropout=cfg.lora_dropout, orth_reg_weight=orth,
        target_modules=target_regex(spec.names()), task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    peak = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    if cfg.match_params:
        alloc = peft_model.base_model.rankallocator
        alloc.mask_to_budget = param_budget_masker(alloc, peft_model, spec, budget)
    history = []

    def hook(step: int) -> None:
        peft_model.base_model.update_and_allocate(step)
        if step % 10 == 0 or step == steps - 1:
            history.append([step, sum(active_ranks(peft_model).values())])

    def loss_fn(m, batch):
        s, n = loss_sum(m, batch)
        return s + orth * orth_penalty(m) * n, n  # the caller divides by n

    def finalize():
        ranks = active_ranks(peft_model)
        by_name = spec.by_name()
        final = sum(r * (by_name[n].params_per_rank + 1) for n, r in ranks.items())
        extra = {"adalora": {"target_r": target_r, "init_r": init_r, "tinit": tinit, "tfinal": tfinal,
                             "total_step": steps, "orth_reg_weight": orth, "match_params": cfg.match_params,
                             "total_rank_history": history},
                 "final_params": final, "peak_params": peak}
        return ranks, extra

    return peft_model, hook, {"finalize": finalize}, loss_fn


def _triplet_scores(alloc, model) -> dict[str, torch.Tensor]:
    """AdaLoRA's importance of each triplet (E_i, A row i, B column i), as PEFT's ``mask_to_budget`` defines it:
    s_i = score(E_i) + mean_j score(A_ij) + mean_j score(B_ji), score = smoothed sensitivity x uncertainty.
    Keyed by the lora_E parameter name; each value has shape (r_init,)."""
    a = alloc.adapter_name
    out = {}
    params = dict(model.named_parameters())
    for n in params:
        if f"lora_E.{a}" in n:
            e = alloc._element_score(n).view(-1)
            sa = alloc._element_score(n.replace("lora_E", "lora_A")).mean(dim=1)
            sb = alloc._element_score(n.replace("lora_E", "lora_B")).mean(dim=0)
            out[n] = e + sa + sb
    return out


def param_budget_masker(alloc, peft_model, spec: ModelSpec, budget: int):
    """A drop-in for ``RankAllocator.mask_to_budget`` that budgets parameters instead of triplets.

    PEFT's schedule gives a triplet budget b(t) falling cubically from init_bgt to target_bgt; we map it to a
    parameter budget P(t) = P_budget + f (P_init - P_budget) with f = (b - target_bgt) / (init_bgt - target_bgt),
    then keep triplets in descending importance whenever their cost (in + out + 1: a row of A, a column of B, an
    entry of E) still fits in P(t). The final count is below the budget by less than the cheapest skipped
    triplet (<= 0.1 % for SmolLM2 at r8). Returns PEFT's rank_pattern ({lora_E name: [kept?] * r_init}) and masks E in place.
    """
    by_name = spec.by_name()

    def cost(e_name: str) -> int:
        module = e_name.split("base_model.model.", 1)[-1].rsplit(".lora_E", 1)[0]
        return by_name[module].params_per_rank + 1

    def mask_to_budget(model, b: int):
        scores = _triplet_scores(alloc, model)
        p_init = sum(cost(n) * len(s) for n, s in scores.items())
        f = (b - alloc.target_bgt) / max(1, alloc.init_bgt - alloc.target_bgt)
        p_budget = budget + max(0.0, f) * (p_init - budget)
        ranked = sorted(((float(v), n, i) for n, s in scores.items() for i, v in enumerate(s.tolist())),
                        key=lambda t: (-t[0], t[1], t[2]))
        keep = {n: [False] * len(s) for n, s in scores.items()}
        used = 0
        for _, n, i in ranked:  # greedy fill: a triplet that does not fit is skipped, cheaper ones may follow
            if used + cost(n) > p_budget:
                continue
            keep[n][i] = True
            used += cost(n)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in keep:
                    p.masked_fill_(~torch.tensor(keep[n]).view(-1, 1), 0.0)
        return keep

    return mask_to_budget


@torch.no_grad()
def input_covariances(model, spec: ModelSpec, batches) -> dict[str, tuple[torch.Tensor, torch.Tensor, int]]:
    """Per module: (sum of x x^T (in x in, float64), sum of x (in), token count) over the non-pad tokens of the
    calibration batches; modules that share an input (q/k/v, gate/up) are hooked separately but cheaply."""
    mods = dict(model.named_modules())
    acc, handles, mask_box = {}, [], {}

    def hook_for(name):
        def hook(module, args):
            x = args[0].detach()
            x = x[mask_box["m"]].double() if x.dim() == 3 else x.double()
            c, s, n = acc.get(name, (0, 0, 0))
            acc[name] = (c + x.T @ x, s + x.sum(0), n + x.shape[0])
        return hook

    for m in spec.modules:
        handles.append(mods[m.name].register_forward_pre_hook(hook_for(m.name)))
    was = model.training
    model.eval()
    try:
        for batch in batches:
            mask_box["m"] = batch["attention_mask"].bool()
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return acc


def principal_components(cov_sum: torch.Tensor, x_sum: torch.Tensor, n: int, k: int):
    """Top-k principal directions of the centred inputs -> (components (k x in), explained-variance ratios (k,)).
    Covariance C = (sum x x^T - n mu mu^T) / (n - 1); ratio_i = lambda_i / trace(C)."""
    mu = x_sum / n
    cov = (cov_sum - n * torch.outer(mu, mu)) / max(1, n - 1)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
    ratio = evals / evals.sum().clamp_min(1e-30)
    return evecs[:, :k].T.contiguous(), ratio[:k]


def eva_allocate(ratios: dict[str, list[float]], costs: dict[str, int], budget: int) -> dict[str, int]:
    """Ranks by explained variance under a parameter budget: components in descending ratio (ties by name, index;
    each module's list is already capped at rho x r), each taken if its cost still fits (a component of a module
    must follow its predecessors: a module's ratios are descending, so once one is skipped the rest are too
    expensive as well). Pure; table-tested."""
    ranked = sorted(((v, n, i) for n, vs in ratios.items() for i, v in enumerate(vs)), key=lambda t: (-t[0], t[1], t[2]))
    ranks, used = {n: 0 for n in ratios}, 0
    for _, n, _i in ranked:
        if used + costs[n] > budget:
            continue
        ranks[n] += 1
        used += costs[n]
    return ranks


def eva_matched(model, cfg, spec: ModelSpec, budget: int, train_ex, pad_id, n_calib: int = 64):
    """EVA at a parameter budget (module docstring) -> (peft model, rank map, info)."""
    from peft import get_peft_model

    from .data import collate, length_grouped_batches
    from .peft_config import lora_config

    r = max(1, round(budget / sum(m.params_per_rank for m in spec.modules)))
    cap = max(1, round(cfg.eva_rho * r))
    calib = train_ex[:n_calib]
    batches = [collate([calib[i] for i in b], pad_id) for b in length_grouped_batches(calib, 8, seed=0)]
    acc = input_covariances(model, spec, batches)
    comps, ratios = {}, {}
    for m in spec.modules:
        c, s, n = acc[m.name]
        comps[m.name], ratio = principal_components(c, s, n, min(cap, m.in_features))
        ratios[m.name] = ratio.tolist()
    rank_map = eva_allocate(ratios, {m.name: m.params_per_rank for m in spec.modules}, budget)
    peft_model = get_peft_model(model, lora_config(rank_map, cfg.scaling, cfg.lora_dropout))
    mods = dict(peft_model.base_model.model.named_modules())
    with torch.no_grad():
        for name, rank in rank_map.items():
            if rank > 0:
                w = mods[name].lora_A["default"].weight
                w.copy_(comps[name][:rank].to(w.dtype))
                mods[name].lora_B["default"].weight.zero_()
    info = {"rho": cfg.eva_rho, "r": r, "max_rank": cap, "n_calib": len(calib),
            "explained_variance_kept": sum(sum(ratios[n][:k]) for n, k in rank_map.items()) / len(rank_map)}
    return peft_model, rank_map, info


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
                        eva_config=EvaConfig(rho=cfg.eva_rho, adjust_scaling_factors=True),
                        target_modules=target_regex(spec.names()),
                        task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config, low_cpu_mem_usage=True)
    calib = train_ex[:n_calib]
    batches = [collate([calib[i] for i in b], pad_id) for b in length_grouped_batches(calib, 8, seed=0)]
    initialize_lora_eva_weights(peft_model, batches, show_progress_bar=False)
    from .peft_config import lora_ranks_in_model
    ranks = lora_ranks_in_model(peft_model)
    return peft_model, {n: ranks.get(n, 0) for n in spec.names()}
