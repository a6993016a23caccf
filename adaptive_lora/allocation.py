"""Integer rank allocation: real-valued per-module scores -> integer ranks that meet a parameter budget.

Problem: given scores s_m >= 0, costs c_m = in_m + out_m and budget B, find integer r_m in [lo, hi] with
sum r_m c_m ~= B and r_m ~ proportional to s_m. We solve for the continuous ranks
r*_m = clip(lambda * s_m, lo, hi) with lambda found by bisection so that sum r*_m c_m = B, then round down and
hand out the remaining budget by largest remainder (fractional part, ties broken by module order), one unit of
rank at a time, while it fits. Deterministic: same inputs -> same map.
"""
from __future__ import annotations

import math

from .budget import TOLERANCE, within_budget
from .errors import UserError
from .spec import ModelSpec

DEFAULT_MAX_RANK = 256


def allocate(spec: ModelSpec, budget: int, scores: dict[str, float] | list[float],
             min_rank: int = 0, max_rank: int | None = None) -> dict[str, int]:
    """Integer rank map {module name: rank} proportional to scores, within +-0.5 % of ``budget``.

    ``scores`` may be a dict by module name or a list aligned with ``spec.modules``. Modules with score 0 get
    ``min_rank``. Raises UserError when no map within the bounds can meet the budget.
    """
    mods = spec.modules
    s = [float(scores[m.name]) for m in mods] if isinstance(scores, dict) else [float(x) for x in scores]
    if len(s) != len(mods) or any(not math.isfinite(x) or x < 0 for x in s):
        raise ValueError("scores must be finite, >= 0 and one per module")
    cost = [m.params_per_rank for m in mods]
    hi = max_rank if max_rank is not None else max(DEFAULT_MAX_RANK, min_rank)
    lo = min_rank
    lo_total, hi_total = lo * sum(cost), hi * sum(cost)
    if budget < lo_total * (1 - TOLERANCE) or budget > hi_total * (1 + TOLERANCE):
        raise UserError(f"no rank map with ranks in [{lo}, {hi}] can meet the budget {budget:,} "
                        f"(possible: {lo_total:,} .. {hi_total:,})")
    if sum(s) == 0:
        s = [1.0] * len(s)

    def spend(lam: float) -> float:
        return sum(min(hi, max(lo, lam * x)) * c for x, c in zip(s, cost))

    a, b = 0.0, 1.0
    while spend(b) < budget and b < 1e30:
        b *= 2
    for _ in range(200):  # bisection to float precision
        mid = (a + b) / 2
        a, b = (mid, b) if spend(mid) < budget else (a, mid)
    cont = [min(hi, max(lo, b * x)) for x in s]
    ranks = [max(lo, min(hi, math.floor(r + 1e-9))) for r in cont]
    left = budget - sum(r * c for r, c in zip(ranks, cost))
    order = sorted(range(len(mods)), key=lambda i: (-(cont[i] - ranks[i]), i))
    # Largest remainder: one extra unit to the modules with the biggest fractional parts, while it fits.
    for i in order:
        if ranks[i] < hi and cost[i] <= left + TOLERANCE * budget and cont[i] - ranks[i] > 0:
            ranks[i] += 1
            left -= cost[i]
    rank_map = {m.name: r for m, r in zip(mods, ranks)}
    total = sum(r * c for r, c in zip(ranks, cost))
    if not within_budget(total, budget):
        rank_map = _repair(spec, rank_map, budget, lo, hi)
    return rank_map


def _repair(spec: ModelSpec, rank_map: dict[str, int], budget: int, lo: int, hi: int) -> dict[str, int]:
    """Greedy fix-up when rounding left the total outside the tolerance: add (or remove) one rank unit on the
    module whose cost best closes the gap, until within tolerance."""
    rank_map = dict(rank_map)
    mods = spec.modules
    for _ in range(100000):
        total = spec.count(rank_map)
        if within_budget(total, budget):
            return rank_map
        gap = budget - total
        cands = [m for m in mods if (rank_map[m.name] < hi if gap > 0 else rank_map[m.name] > lo)]
        if not cands:
            break
        m = min(cands, key=lambda m: (abs(abs(gap) - m.params_per_rank), m.name))
        rank_map[m.name] += 1 if gap > 0 else -1
    raise UserError(f"could not meet the budget {budget:,} within {TOLERANCE:.1%} with ranks in [{lo}, {hi}]")
