"""Adapter builders: one interface for every way a run attaches its trainable adapter to the base model.

A builder is ``(model, cfg, spec, budget, ctx) -> Adapter``; ``ctx`` carries what some builders need besides the
model (tokenizer, training records and tokenised examples, pad id). ``run.execute`` calls ``build_adapter`` and
never special-cases a method by name:

- ``lora`` (every rank-allocation strategy): rank map from the strategy (pure ``(spec, budget) -> ranks``, with
  cached statistics for data-driven ones), then ``LoraConfig`` with per-module ``rank_pattern`` / ``alpha_pattern``;
- ``adalora`` (Zhang et al. 2023): PEFT's AdaLoRA; the training loop calls ``step_hook`` after every optimizer step
  and trains on ``loss_fn`` (CE + orthogonality penalty); the rank map is known only at the end (``finalize``);
- ``eva`` (Paischer et al. 2024): data-driven initialisation (and, with rho > 1, redistribution) of LoRA ranks.

The Adapter's ``finalize() -> (rank_map, trainable_params, extra)`` is called after training; ``extra`` goes into
the result JSON as is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .spec import ModelSpec


@dataclass
class Adapter:
    model: object  # the PEFT model
    finalize: Callable[[], tuple[dict, int, dict]]
    step_hook: Callable[[int], None] | None = None  # after each optimizer step, before zero_grad
    loss_fn: Callable | None = None  # (model, batch) -> (loss sum, label count); None = plain CE
    info: dict = field(default_factory=dict)


@dataclass
class BuildContext:
    tokenizer: object
    train_recs: list
    train_ex: list
    pad_id: int


def _fixed(model, rank_map: dict, spec: ModelSpec, extra: dict | None = None) -> Adapter:
    """An adapter whose ranks are fixed at build time; checks the PEFT model against the rank map."""
    from .peft_config import trainable_params, verify

    verify(model, spec, rank_map)
    n = trainable_params(model)
    return Adapter(model, finalize=lambda: (rank_map, n, dict(extra or {})))


def lora_adapter(model, cfg, spec: ModelSpec, budget: int, ctx: BuildContext) -> Adapter:
    from peft import get_peft_model

    from .peft_config import lora_config
    from .run import resolve_rank_map

    rank_map = resolve_rank_map(cfg, spec, budget, model, ctx.tokenizer, ctx.train_recs)
    return _fixed(get_peft_model(model, lora_config(rank_map, cfg.scaling, cfg.lora_dropout)), rank_map, spec)


def adalora_adapter(model, cfg, spec: ModelSpec, budget: int, ctx: BuildContext) -> Adapter:
    from .baselines import adalora_model

    peft_model, hook, extra, loss_fn = adalora_model(model, cfg, spec, budget, len(ctx.train_ex))

    def finalize():
        ranks, info = extra["finalize"]()
        return {n: ranks.get(n, 0) for n in spec.names()}, info["final_params"], info

    return Adapter(peft_model, finalize, step_hook=hook, loss_fn=loss_fn)


def eva_adapter(model, cfg, spec: ModelSpec, budget: int, ctx: BuildContext) -> Adapter:
    from .baselines import eva_matched, eva_model

    if cfg.match_params:
        peft_model, rank_map, info = eva_matched(model, cfg, spec, budget, ctx.train_ex, ctx.pad_id)
        return _fixed(peft_model, rank_map, spec, {"eva": info})
    peft_model, rank_map = eva_model(model, cfg, spec, budget, ctx.train_ex, ctx.pad_id)
    return _fixed(peft_model, rank_map, spec)


BUILDERS: dict[str, Callable[..., Adapter]] = {"adalora": adalora_adapter, "eva": eva_adapter}


def builder_for(strategy: str) -> Callable[..., Adapter]:
    """The builder of a config's ``strategy``: a named baseline, else plain LoRA with the strategy's rank map."""
    return BUILDERS.get(strategy, lora_adapter)


def build_adapter(model, cfg, spec: ModelSpec, budget: int, ctx: BuildContext) -> Adapter:
    build = lora_adapter if cfg.rank_map_file else builder_for(cfg.strategy)
    return build(model, cfg, spec, budget, ctx)
