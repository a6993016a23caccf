"""The shuffled-rank control: same multiset of ranks (so the same budget), placement across layers randomised."""
from __future__ import annotations

import random

from ..spec import ModelSpec


def shuffled(fn, seed: int = 0):
    """Wrap a strategy: permute its ranks across layers within each module kind, with ``seed`` (the pilot: a fixed
    0) or the ``shuffle_seed`` parameter (protocol v2 passes the run seed: a new permutation per seed).

    Within a kind every module has the same shape, so the parameter count is unchanged exactly.
    """
    def strategy(spec: ModelSpec, budget: int, stats=None, shuffle_seed: int | None = None, **params):
        rank_map = fn(spec, budget, stats=stats, **params)
        rng = random.Random(seed if shuffle_seed is None else shuffle_seed)
        out = dict(rank_map)
        for kind in spec.kinds:
            names = [m.name for m in spec.modules if m.kind == kind]
            ranks = [rank_map[n] for n in names]
            rng.shuffle(ranks)
            out.update(zip(names, ranks))
        return out
    return strategy
