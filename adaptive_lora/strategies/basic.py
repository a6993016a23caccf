"""Data-free strategies."""
from __future__ import annotations

from ..allocation import allocate
from ..spec import ModelSpec
from . import register


@register("uniform", rule="the same rank r on every module: r * sum(in+out) = budget",
          citation="hu2022lora")
def uniform(spec: ModelSpec, budget: int, stats=None, min_rank: int = 0, max_rank: int | None = None):
    return allocate(spec, budget, [1.0] * len(spec.modules), min_rank, max_rank)
