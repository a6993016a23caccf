"""Optional speed and memory levers of the training path (each a config field, so cells record which ran).

- ``compile_model`` (``--compile``): ``torch.compile`` (inductor) of the backbone's forward. Batches are padded
  to a multiple of 8 tokens (``data.collate``), so a sweep sees at most max_length / 8 shapes; ``dynamic=None``
  lets inductor mark the sequence axis dynamic after the first recompile instead of compiling every shape. The
  on-disk cache (``.cache/inductor``, or ``TORCHINDUCTOR_CACHE_DIR``) makes later runs start warm. Fused kernels
  reorder floating-point sums: a compiled cell is not bit-identical to an eager one (hence a config field).
- ``enable_checkpointing`` (``--grad-checkpoint``): recompute each decoder block in backward instead of keeping its
  activations (peak memory falls from ~activations of 30 blocks to ~one block's, at the cost of one more forward).
"""
from __future__ import annotations

import os

import torch

from .models import cache_dir


def _backbone(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, base.base_model_prefix)


def compile_model(model) -> None:
    """Compile the backbone in place (the LM head at labelled positions stays eager: its row count varies)."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
    backbone = _backbone(model)
    backbone.forward = torch.compile(backbone.forward, dynamic=None)


def enable_checkpointing(model) -> None:
    """Non-reentrant activation checkpointing per decoder block (works with a frozen base: no input grads
    needed)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
