"""Model spec: the adaptable linear modules of a transformer, as (layer, kind, name, in, out).

A LoRA adapter of rank r on a module with weight W (out x in) adds A (r x in) and B (out x r):
r * (in + out) trainable parameters. GPT-2's Conv1D stores W transposed (in x out); shapes are read accordingly.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import torch.nn as nn

# A module inside a block is named "<prefix>.<layer>.<kind>", e.g. "model.layers.3.self_attn.q_proj" (Llama)
# or "transformer.h.3.mlp.c_proj" (GPT-2). The kind keeps the sub-module path so that attn.c_proj != mlp.c_proj.
_BLOCK_RE = re.compile(r"^(?P<prefix>.*?\b(?:layers|h|blocks|layer))\.(?P<layer>\d+)\.(?P<kind>.+)$")
ATTN_WORDS = ("attn", "attention")
FFN_WORDS = ("mlp", "ffn", "feed_forward")


@dataclass(frozen=True)
class ModuleSpec:
    name: str  # full module name as in model.named_modules()
    layer: int
    kind: str  # e.g. "self_attn.q_proj", "mlp.c_proj"
    in_features: int
    out_features: int

    @property
    def params_per_rank(self) -> int:
        """LoRA parameters added per unit of rank: in + out."""
        return self.in_features + self.out_features

    @property
    def group(self) -> str:
        """'attn' or 'ffn' (by the sub-module path), else 'other'."""
        head = self.kind.split(".")[0].lower()
        if any(w in head for w in ATTN_WORDS):
            return "attn"
        if any(w in head for w in FFN_WORDS):
            return "ffn"
        return "other"


@dataclass(frozen=True)
class ModelSpec:
    model: str
    modules: tuple[ModuleSpec, ...]

    @property
    def n_layers(self) -> int:
        return 1 + max(m.layer for m in self.modules)

    @property
    def kinds(self) -> list[str]:
        """Module kinds in first-seen order."""
        return list(dict.fromkeys(m.kind for m in self.modules))

    def names(self) -> list[str]:
        return [m.name for m in self.modules]

    def by_name(self) -> dict[str, ModuleSpec]:
        return {m.name: m for m in self.modules}

    def count(self, rank_map: dict[str, int]) -> int:
        """Exact LoRA trainable parameters of a rank map: sum r_m * (in_m + out_m)."""
        spec = self.by_name()
        unknown = sorted(set(rank_map) - set(spec))
        if unknown:
            raise KeyError(f"rank map names modules not in the spec: {unknown[:3]}")
        return sum(r * spec[n].params_per_rank for n, r in rank_map.items())

    def uniform_count(self, rank: int) -> int:
        return rank * sum(m.params_per_rank for m in self.modules)

    def select(self, targets: list[str]) -> "ModelSpec":
        """Modules whose name equals a target or ends with '.' + target (PEFT's list semantics: suffix match)."""
        keep = [m for m in self.modules if any(m.name == t or m.name.endswith("." + t) for t in targets)]
        return ModelSpec(self.model, tuple(keep))

    def to_json(self) -> list[dict]:
        return [asdict(m) for m in self.modules]


def _shape(module: nn.Module) -> tuple[int, int] | None:
    """(in, out) for nn.Linear and GPT-2 Conv1D, else None."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D":  # transformers.pytorch_utils.Conv1D: weight is (in, out)
        return int(module.weight.shape[0]), int(module.nf)
    return None


def spec_from_model(model: nn.Module, name: str) -> ModelSpec:
    """All linear modules inside the transformer blocks (the LM head and embeddings are excluded)."""
    mods = []
    for full, module in model.named_modules():
        shape = _shape(module)
        m = _BLOCK_RE.match(full)
        if shape is None or m is None:
            continue
        mods.append(ModuleSpec(full, int(m["layer"]), m["kind"], *shape))
    if not mods:
        raise ValueError(f"no adaptable linear modules found in {name}")
    return ModelSpec(name, tuple(mods))
