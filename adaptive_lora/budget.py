"""Budgets: how many LoRA parameters a run may train.

``r8`` = the count of uniform rank 8 on every module of the spec (sum_m 8 * (in_m + out_m));
``1.5M`` / ``500k`` / ``2442240`` = an absolute count. A rank map meets a budget when its exact count is within
``TOLERANCE`` (relative) of it.
"""
from __future__ import annotations

import re

from .errors import UserError
from .spec import ModelSpec

TOLERANCE = 0.005  # +-0.5 %
_ABS_RE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")


def parse_budget(budget: str, spec: ModelSpec) -> int:
    """Budget string -> trainable-parameter count for this spec."""
    b = str(budget).strip()
    if re.fullmatch(r"r\d+", b):
        rank = int(b[1:])
        if rank <= 0:
            raise UserError(f"budget '{budget}': rank must be positive")
        return spec.uniform_count(rank)
    m = _ABS_RE.match(b)
    if not m:
        raise UserError(f"unknown budget '{budget}'; use rN (uniform-rank equivalent) or a count like 1.5M, 500k")
    value = float(m[1]) * {"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}[m[2]]
    if value < 1:
        raise UserError(f"budget '{budget}' must be at least one parameter")
    return int(round(value))


def within_budget(count: int, budget: int, tol: float = TOLERANCE) -> bool:
    return abs(count - budget) <= tol * budget


def check_budget(count: int, budget: int, what: str = "rank map") -> None:
    if not within_budget(count, budget):
        raise UserError(f"{what} has {count:,} parameters, not within {TOLERANCE:.1%} of the budget {budget:,}")
