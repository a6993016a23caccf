"""Strategy registry. A strategy is a pure function ``(spec, budget, stats=None, **params) -> rank map``.

``stats`` holds per-module calibration statistics {module name: float} for data- or weight-driven strategies
(computed once and cached by ``adaptive_lora.calibration``); ``needs`` says which kind. Every strategy's map is
within +-0.5 % of the budget (enforced by ``build_rank_map``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..budget import check_budget
from ..errors import UserError
from ..spec import ModelSpec


@dataclass(frozen=True)
class Strategy:
    name: str
    fn: Callable[..., dict[str, int]]
    needs: str | None = None  # None | "weights" | "activations" | "gradients"
    rule: str = ""
    citation: str = ""
    params: dict = field(default_factory=dict)


REGISTRY: dict[str, Strategy] = {}


def register(name: str, needs: str | None = None, rule: str = "", citation: str = "", **params):
    def deco(fn):
        REGISTRY[name] = Strategy(name, fn, needs, rule, citation, params)
        return fn
    return deco


def get_strategy(name: str) -> Strategy:
    """Look up a strategy; ``shuffled:<name>`` wraps another one (see strategies.control)."""
    _load_all()
    if name.startswith("shuffled:"):
        from .control import shuffled
        inner = get_strategy(name.split(":", 1)[1])
        return Strategy(name, shuffled(inner.fn), inner.needs, f"{inner.name}'s ranks permuted across layers",
                        inner.citation)
    if name not in REGISTRY:
        raise UserError(f"unknown strategy '{name}'; known: {', '.join(sorted(REGISTRY))} (or shuffled:<name>)")
    return REGISTRY[name]


def build_rank_map(spec: ModelSpec, budget: int, strategy: str, stats: dict | None = None,
                   **params) -> dict[str, int]:
    """Run a strategy and check its exact count against the budget (+-0.5 %)."""
    strat = get_strategy(strategy)
    if strat.needs and stats is None:
        raise UserError(f"strategy '{strategy}' needs {strat.needs} statistics")
    rank_map = strat.fn(spec, budget, stats=stats, **params)
    check_budget(spec.count(rank_map), budget, f"strategy '{strategy}'")
    return rank_map


def _load_all() -> None:
    # Import the modules that register strategies (kept lazy so that the registry module stays dependency-free).
    from . import adaptive, basic  # noqa: F401
