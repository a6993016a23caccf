"""Integer rank allocation: real-valued per-module scores -> integer ranks that meet a parameter budget.

Problem: given scores s_m >= 0, costs c_m = in_m + out_m and budget B, find integer r_m in [lo, hi] with
sum r_m c_m ~= B and r_m ~ proportional to s_m. We solve for the continuous ranks
r*_m = clip(lambda * s_m, lo, hi) with lambda found by bisection so that sum r*_m c_m = B, round down, then hand
out the remaining budget by largest remainder.

Largest remainder with unequal costs: modules with the same cost form a class (within a module kind all modules
have the same cost). Class k receives n_k = round(sum of its fractional parts) extra units, each to its modules
with the largest fractional parts (ties: module order). When these quotas miss the budget's tolerance (costs that
are coarse relative to +-0.5 %, as in tiny models), the quotas are moved the least possible away from n_k (in
max-norm) until the total fits, and among the fits the total closest to the budget is taken. A class's units go
in passes over its modules in fractional-part order (so a module gets more than one only when every module of the
class got one), to modules with score > 0 only (a module with score 0 keeps ``lo``); units taken away come from the
smallest fractional parts. Within a kind the map therefore stays monotone in the continuous ranks (a linear
profile stays monotone). Deterministic: same inputs -> same map. No fit (e.g. every module costs 160 and no
multiple of 160 lies within +-0.5 % of the budget) is a UserError.
"""
from __future__ import annotations

import itertools
import math

from .budget import TOLERANCE, within_budget
from .errors import UserError
from .spec import ModelSpec

DEFAULT_MAX_RANK = 256
_SEARCH_LIMIT = 300_000  # quota vectors examined at most when the plain quotas miss the tolerance


def allocate(spec: ModelSpec, budget: int, scores: dict[str, float] | list[float],
             min_rank: int = 0, max_rank: int | None = None) -> dict[str, int]:
    """Integer rank map {module name: rank} proportional to scores, within +-0.5 % of ``budget``.

    ``scores`` may be a dict by module name or a list aligned with ``spec.modules``. Modules with score 0 get
    ``min_rank`` (all scores 0 = uniform). Raises UserError when no map within the bounds can meet the budget.
    """
    mods = spec.modules
    s = [float(scores[m.name]) for m in mods] if isinstance(scores, dict) else [float(x) for x in scores]
    if len(s) != len(mods) or any(not math.isfinite(x) or x < 0 for x in s):
        raise ValueError("scores must be finite, >= 0 and one per module")
    lo = int(min_rank)
    hi = int(max_rank) if max_rank is not None else max(DEFAULT_MAX_RANK, lo)
    if lo < 0 or hi < lo:
        raise UserError(f"rank bounds must satisfy 0 <= min_rank <= max_rank (got {lo}, {hi})")
    if sum(s) == 0:
        s = [1.0] * len(s)
    cost = [m.params_per_rank for m in mods]
    lo_total = lo * sum(cost)
    hi_total = sum((hi if x > 0 else lo) * c for x, c in zip(s, cost))
    if budget < lo_total * (1 - TOLERANCE) or budget > hi_total * (1 + TOLERANCE):
        raise UserError(f"no rank map with ranks in [{lo}, {hi}] (score-0 modules at {lo}) can meet the budget "
                        f"{budget:,} (possible: {lo_total:,} .. {hi_total:,})")

    def spend(lam: float) -> float:
        return sum(min(hi, max(lo, lam * x)) * c for x, c in zip(s, cost))

    a, b = 0.0, 1.0
    while spend(b) < budget and b < 1e30:
        b *= 2
    for _ in range(200):  # bisection to float precision
        mid = (a + b) / 2
        a, b = (mid, b) if spend(mid) < budget else (a, mid)
        if b - a <= 1e-13 * b:
            break
    cont = [min(hi, max(lo, b * x)) for x in s]
    ranks = [max(lo, min(hi, math.floor(r + 1e-9))) for r in cont]
    frac = [c - r for c, r in zip(cont, ranks)]

    # Cost classes; in each, modules by fractional part, largest first (ties: module order).
    classes: dict[int, list[int]] = {}
    for i, c in enumerate(cost):
        classes.setdefault(c, []).append(i)
    plan = []  # (cost, up-candidates, down-candidates, quota)
    for c, idx in classes.items():
        idx = sorted(idx, key=lambda i: (-frac[i], i))
        up = [i for i in idx if ranks[i] < hi and s[i] > 0]
        down = [i for i in reversed(idx) if ranks[i] > lo]
        quota = min(len(up), round(sum(max(0.0, frac[i]) for i in idx)))
        plan.append((c, up, down, quota))
    left = budget - sum(r * c for r, c in zip(ranks, cost))
    bounds = [(-sum(ranks[i] - lo for i in down), sum(hi - ranks[i] for i in up)) for _, up, down, _ in plan]
    counts = _fit_quotas([p[0] for p in plan], bounds, [p[3] for p in plan], left, TOLERANCE * budget)
    if counts is None:
        raise UserError(f"could not meet the budget {budget:,} within {TOLERANCE:.1%} with ranks in [{lo}, {hi}]")
    for (_, up, down, _), k in zip(plan, counts):
        # k units in passes over the class: the first |k| mod n modules in order get one more than the rest
        todo, order, step = abs(k), (up if k > 0 else down), (1 if k > 0 else -1)
        while todo:
            for i in order:
                if todo and lo <= ranks[i] + step <= hi:
                    ranks[i] += step
                    todo -= 1
    rank_map = {m.name: r for m, r in zip(mods, ranks)}
    assert within_budget(spec.count(rank_map), budget)
    return rank_map


def _fit_quotas(costs: list[int], bounds: list[tuple[int, int]], quota: list[int], left: int,
                window: float) -> list[int] | None:
    """Units per cost class, k_j in bounds_j, with |left - sum k_j c_j| <= window.

    Finds the smallest max-norm distance D* from the quotas at which a fit exists; among the fits within
    distance D* + 1 it takes the one closest to the budget (then the smaller max- and sum-distance, then the
    lexicographically smallest vector). None when no fit exists (or none within _SEARCH_LIMIT steps).
    """
    live = [c for c, (a, b) in zip(costs, bounds) if a < b]
    g = math.gcd(*live) if live else 0
    if g == 0 or math.floor((left + window) / g) < math.ceil((left - window) / g):
        return None if abs(left) > window else [0] * len(costs)  # no multiple of the gcd within the window
    max_d = max(max(q - a, b - q) for q, (a, b) in zip(quota, bounds))
    work = [0]

    def fits(d: int) -> list[tuple]:
        ranges = [range(max(a, q - d), min(b, q + d) + 1) for q, (a, b) in zip(quota, bounds)]
        out, c_last, r_last = [], costs[-1], ranges[-1]
        for head in itertools.product(*ranges[:-1]):
            work[0] += 1
            if work[0] > _SEARCH_LIMIT:
                raise OverflowError
            rest = left - sum(k * c for k, c in zip(head, costs))
            # the last class directly: every k with |rest - k c_last| <= window, inside its range
            k_lo = max(r_last.start, math.ceil((rest - window) / c_last))
            k_hi = min(r_last.stop - 1, math.floor((rest + window) / c_last))
            for k in range(k_lo, k_hi + 1):
                ks = (*head, k)
                dev = [abs(x - q) for x, q in zip(ks, quota)]
                out.append((abs(rest - k * c_last), max(dev), sum(dev), ks))
        return out

    try:
        for d in range(max_d + 1):
            found = fits(d)
            if found:
                if d < max_d:
                    found = fits(d + 1)
                return list(min(found)[3])
    except OverflowError:
        return None
    return None
