"""Non-uniform strategies: placements (the prior work's target sets at a matched budget), layer profiles,
attention/FFN splits, and weight-, activation- and gradient-driven allocations.

Every strategy is a pure function of (spec, budget, stats, bounds, params): it turns per-module scores into an
integer rank map with ``allocation.allocate`` (rank proportional to score, largest remainder, +-0.5 % of the budget).

Statistics-driven strategies (``weight_norm``, ``spectral``, ``activation``, ``gradient``) take ``stats``
{module name: float} from ``adaptive_lora.calibration`` and by default (``per_kind=True``) divide each module's
statistic by the mean over its kind: the statistic then decides how a kind's share of the budget is spread over
the layers, while each kind keeps its uniform share. Raw statistics are not comparable across kinds (q/k/v read
RMS-normed hidden states, down_proj reads the gated 1536-d intermediate; weight entries scale with 1/sqrt(fan_in));
which kind deserves more rank is what ``attn_heavy`` / ``ffn_heavy`` and the placements test directly.
``per_kind=False`` compares the raw statistics across all modules; ``power`` sharpens (>1) or flattens (<1).
"""
from __future__ import annotations

import math

from ..allocation import allocate
from ..errors import UserError
from ..spec import ModelSpec, ModuleSpec
from . import register

# Output projection of the FFN: GPT-2 mlp.c_proj, Llama mlp.down_proj, OPT/BERT fc2 / output.dense, NeoX, Mixtral w2
FFN_OUT = ("c_proj", "down_proj", "fc2", "dense_4h_to_h", "w2")


def _leaf(m: ModuleSpec) -> str:
    return m.kind.rsplit(".", 1)[-1]


# ------------------------------------------------------------------------------------------------ placements
PLACEMENTS = {
    "all_modules": lambda m: True,
    "attention_only": lambda m: m.group == "attn",
    "attention_cproj": lambda m: m.group == "attn" or (m.group == "ffn" and _leaf(m) in FFN_OUT),
    "ffn_only": lambda m: m.group == "ffn",
    "ffn_in": lambda m: m.group == "ffn" and _leaf(m) not in FFN_OUT,
}


def placement_modules(spec: ModelSpec, placement: str) -> list[ModuleSpec]:
    if placement not in PLACEMENTS:
        raise UserError(f"unknown placement '{placement}'; known: {', '.join(PLACEMENTS)}")
    mods = [m for m in spec.modules if PLACEMENTS[placement](m)]
    if not mods:
        raise UserError(f"placement '{placement}' selects no module of {spec.model} (kinds: {', '.join(spec.kinds)})")
    return mods


def natural_budget(spec: ModelSpec, placement: str, rank: int) -> int:
    """The placement's own budget in the prior work's sense: uniform rank ``rank`` on its modules only
    (the budget string rN evaluated on that subset), e.g. 4,325,376 for attention_cproj at r16 on DialoGPT-medium."""
    return rank * sum(m.params_per_rank for m in placement_modules(spec, placement))


def _placement(placement: str):
    def strategy(spec: ModelSpec, budget: int, stats=None, min_rank: int = 0, max_rank: int | None = None):
        keep = {m.name for m in placement_modules(spec, placement)}
        return allocate(spec, budget, [1.0 if m.name in keep else 0.0 for m in spec.modules], min_rank, max_rank)
    strategy.__name__ = placement
    return strategy


register("all_modules", rule="uniform rank on every adaptable module (= uniform)",
         citation="hu2022lora")(_placement("all_modules"))
register("attention_only", rule="uniform rank on the attention projections only, FFN rank 0, rescaled to the budget",
         citation="hu2022lora")(_placement("attention_only"))
register("attention_cproj",
         rule="uniform rank on attention + the FFN output projection (GPT-2 mlp.c_proj, Llama mlp.down_proj), "
              "rescaled to the budget: what the prior work's 'attention only' (targets c_attn,c_proj) adapted",
         citation="selectivelora")(_placement("attention_cproj"))
register("ffn_only", rule="uniform rank on all FFN projections, attention rank 0, rescaled to the budget",
         citation="selectivelora")(_placement("ffn_only"))
register("ffn_in",
         rule="uniform rank on the FFN input projections (GPT-2 mlp.c_fc, Llama gate_proj+up_proj), rescaled to "
              "the budget: the prior work's 'FFN only' (targets c_fc)",
         citation="selectivelora")(_placement("ffn_in"))


# ------------------------------------------------------------------------------------------------ layer profiles
def _layer_scores(spec: ModelSpec, ratio: float, increasing: bool) -> list[float]:
    """Score falling (rising) linearly with depth from ``ratio`` at the first layer to 1 at the last (reverse)."""
    ratio = float(ratio)
    if not math.isfinite(ratio) or ratio < 1:
        raise UserError(f"ratio (first/last layer score) must be >= 1, got {ratio}")
    first, last = min(m.layer for m in spec.modules), max(m.layer for m in spec.modules)
    span = max(1, last - first)
    out = []
    for m in spec.modules:
        t = (m.layer - first) / span  # 0 at the first layer, 1 at the last
        out.append(1 + (ratio - 1) * (t if increasing else 1 - t))
    return out


@register("linear_decay", rule="rank proportional to a score falling linearly over depth, first/last = ratio "
                               "(default 3: the last layer keeps a third of the first layer's rank)",
          citation="prilora (mirrored)", ratio=3.0)
def linear_decay(spec: ModelSpec, budget: int, stats=None, min_rank: int = 0, max_rank: int | None = None,
                 ratio: float = 3.0):
    return allocate(spec, budget, _layer_scores(spec, ratio, increasing=False), min_rank, max_rank)


@register("linear_increase", rule="rank proportional to a score rising linearly over depth, last/first = ratio "
                                  "(default 3, as PRILoRA's 4 -> 12)",
          citation="prilora, zhang2023adalora", ratio=3.0)
def linear_increase(spec: ModelSpec, budget: int, stats=None, min_rank: int = 0, max_rank: int | None = None,
                    ratio: float = 3.0):
    return allocate(spec, budget, _layer_scores(spec, ratio, increasing=True), min_rank, max_rank)


# ------------------------------------------------------------------------------------------------ attention vs FFN
def _group_scores(spec: ModelSpec, heavy: str, k: float) -> list[float]:
    k = float(k)
    if not math.isfinite(k) or k <= 0:
        raise UserError(f"k must be > 0, got {k}")
    groups = {m.group for m in spec.modules}
    if not {"attn", "ffn"} <= groups:
        raise UserError(f"{spec.model} lacks attention or FFN modules (groups: {', '.join(sorted(groups))})")
    return [k if m.group == heavy else 1.0 for m in spec.modules]


@register("attn_heavy", rule="every attention module gets k x the rank of every FFN module (default k = 3), "
                             "at the same total", citation="hu2022lora", k=3.0)
def attn_heavy(spec: ModelSpec, budget: int, stats=None, min_rank: int = 0, max_rank: int | None = None,
               k: float = 3.0):
    return allocate(spec, budget, _group_scores(spec, "attn", k), min_rank, max_rank)


@register("ffn_heavy", rule="every FFN module gets k x the rank of every attention module (default k = 3), "
                            "at the same total", citation="zhang2023adalora", k=3.0)
def ffn_heavy(spec: ModelSpec, budget: int, stats=None, min_rank: int = 0, max_rank: int | None = None,
              k: float = 3.0):
    return allocate(spec, budget, _group_scores(spec, "ffn", k), min_rank, max_rank)


# ------------------------------------------------------------------------------------------------ statistics-driven
def stat_scores(spec: ModelSpec, stats: dict | None, what: str, per_kind: bool = True,
                power: float = 1.0) -> list[float]:
    """Scores from per-module statistics: validated, raised to ``power``, optionally divided by the kind's mean."""
    if not stats:
        raise UserError(f"this strategy needs {what} statistics (adaptive_lora.calibration)")
    missing = [m.name for m in spec.modules if m.name not in stats]
    if missing:
        raise UserError(f"{what} statistics lack {len(missing)} module(s) of {spec.model}, e.g. {missing[0]}")
    vals = [float(stats[m.name]) for m in spec.modules]
    bad = [m.name for m, v in zip(spec.modules, vals) if not math.isfinite(v) or v < 0]
    if bad:
        raise UserError(f"{what} statistics must be finite and >= 0; not so for {bad[0]}")
    power = float(power)
    if not math.isfinite(power) or power < 0:
        raise UserError(f"power must be >= 0, got {power}")
    vals = [v ** power for v in vals]
    if per_kind:
        for kind in spec.kinds:
            idx = [i for i, m in enumerate(spec.modules) if m.kind == kind]
            mean = sum(vals[i] for i in idx) / len(idx)
            for i in idx:
                vals[i] = vals[i] / mean if mean > 0 else 1.0
    return vals


def _stat_strategy(what: str):
    def strategy(spec: ModelSpec, budget: int, stats=None, min_rank: int = 0, max_rank: int | None = None,
                 per_kind: bool = True, power: float = 1.0):
        return allocate(spec, budget, stat_scores(spec, stats, what, per_kind, power), min_rank, max_rank)
    return strategy


register("weight_norm", needs="weights",
         rule="rank proportional to the pretrained weight's Frobenius norm, relative to its kind's mean "
              "(statistic: RMS entry ||W||_F / sqrt(in*out), so per_kind=False compares kinds without the shape "
              "factor). Frobenius, not nuclear: it is the weight's total energy; the spectrum's shape is 'spectral'",
         citation="han2015learning", per_kind=True, power=1.0)(_stat_strategy("weights"))
register("spectral", needs="spectrum",
         rule="rank proportional to the pretrained weight's stable rank ||W||_F^2 / ||W||_2^2 (a smooth count of "
              "the directions the weight uses), relative to its kind's mean",
         citation="alphalora", per_kind=True, power=1.0)(_stat_strategy("spectrum"))
register("activation", needs="activations",
         rule="rank proportional to the mean L2 norm of the module's input rows (non-pad tokens) on a fixed "
              "calibration sample of the training pool, relative to its kind's mean",
         citation="eva", per_kind=True, power=1.0)(_stat_strategy("activations"))
register("gradient", needs="gradients",
         rule="rank proportional to the RMS per-entry empirical Fisher of the weight, sqrt(mean_n ||dL_n/dW||_F^2 "
              "/ (in*out)) over per-example LM losses on the calibration sample, relative to its kind's mean",
         citation="gora, fimlora", per_kind=True, power=1.0)(_stat_strategy("gradients"))
