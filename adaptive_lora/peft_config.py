"""Rank map -> PEFT ``LoraConfig``, resolved in one place.

PEFT pitfalls handled here:
- ``rank_pattern``/``alpha_pattern`` keys are regexes matched as ``(.*\\.)?(key)$`` and the FIRST matching key wins;
  keys that match nothing are silently ignored. We key by ``^``-anchored, escaped full module names, so each key
  matches exactly one module, and verify the trainable count after ``get_peft_model``.
- ``target_modules`` as a list is a suffix match (``c_proj`` hits attn.c_proj AND mlp.c_proj); we pass one
  full-match regex of exact names instead. Rank-0 modules are left out.
- LoRA's update is scaled by alpha/r per module: varying r at fixed alpha changes the effective learning rate.
  Scaling conventions: ``constant`` alpha = 2r (alpha/r = 2; the prior work's 32/16), ``rslora`` alpha = 16 with
  use_rslora (scale 16/sqrt(r)), ``fixed-alpha`` alpha = 16 for every module (scale 16/r; PEFT's naive default).
"""
from __future__ import annotations

import re
from collections import Counter

from peft import LoraConfig

from .errors import UserError
from .spec import ModelSpec

SCALINGS = ("constant", "rslora", "fixed-alpha")
FIXED_ALPHA = 16


def alpha_for(rank: int, scaling: str) -> int:
    if scaling == "constant":
        return 2 * rank
    if scaling in ("rslora", "fixed-alpha"):
        return FIXED_ALPHA
    raise UserError(f"unknown scaling '{scaling}'; known: {', '.join(SCALINGS)}")


def target_regex(names) -> str:
    """One full-match regex naming exactly these modules (PEFT full-matches a str ``target_modules``)."""
    return "^(?:" + "|".join(re.escape(n) for n in names) + ")$"


def pattern_key(name: str) -> str:
    return "^" + re.escape(name)


def lora_config(rank_map: dict[str, int], scaling: str = "constant", dropout: float = 0.1,
                **kwargs) -> LoraConfig:
    """A LoraConfig adapting exactly the modules with rank > 0, each with its own rank and alpha."""
    active = {n: r for n, r in rank_map.items() if r > 0}
    if not active:
        raise UserError("rank map adapts no module (all ranks are 0)")
    default_r = Counter(active.values()).most_common(1)[0][0]
    target = target_regex(active)
    return LoraConfig(
        r=default_r,
        lora_alpha=alpha_for(default_r, scaling),
        target_modules=target,
        rank_pattern={pattern_key(n): r for n, r in active.items() if r != default_r},
        alpha_pattern={pattern_key(n): alpha_for(r, scaling) for n, r in active.items()
                       if alpha_for(r, scaling) != alpha_for(default_r, scaling)},
        use_rslora=(scaling == "rslora"),
        lora_dropout=dropout,
        bias="none",
        task_type="CAUSAL_LM",
        **kwargs,
    )


def trainable_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def lora_ranks_in_model(model) -> dict[str, int]:
    """Actual rank per adapted module, read back from a PEFT model (names relative to the base model)."""
    out = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            base = name.split("base_model.model.", 1)[-1]
            out[base] = module.lora_A["default"].weight.shape[0]
    return out


def verify(model, spec: ModelSpec, rank_map: dict[str, int]) -> int:
    """Fail loudly unless the PEFT model trains exactly the rank map's parameters with exactly its ranks."""
    expected = spec.count(rank_map)
    got = trainable_params(model)
    ranks = lora_ranks_in_model(model)
    want = {n: r for n, r in rank_map.items() if r > 0}
    if got != expected or ranks != want:
        bad = sorted(n for n in set(ranks) | set(want) if ranks.get(n) != want.get(n))[:3]
        raise RuntimeError(f"PEFT model trains {got:,} parameters, rank map says {expected:,}; "
                           f"mismatched modules: {bad}")
    return got
