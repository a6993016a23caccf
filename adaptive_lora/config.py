"""One typed config per run, validated on construction, saved inside its result; the run id derives from it."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields

from .errors import UserError

PRECISIONS = ("bf16", "fp32")


def best_precision() -> str:
    """bf16 only where the CPU has native bf16 matmuls (AMX or AVX512-BF16); elsewhere bf16 is emulated and ~3x
    slower than fp32 (measured: 44 vs 115 GFLOP/s on an AVX512 Xeon without either)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return "fp32"
    return "bf16" if ("amx_bf16" in flags or "avx512_bf16" in flags) else "fp32"


def coerce(key: str, value, ftype: str):
    """Make a value match a RunConfig field type, so that the same setting hashes the same from YAML, the CLI or
    Python (``epochs: 1`` -> 1.0, ``lr: "2e-4"`` -> 0.0002, ``budget: 1000`` -> "1000"); None and bools pass."""
    if value is None or isinstance(value, bool):
        return value
    base = ftype.split("|")[0].strip()
    try:
        if base == "float" and isinstance(value, (int, str)):
            return float(value)
        if base == "int" and isinstance(value, str):
            return int(value)
        if base == "int" and isinstance(value, float) and value.is_integer():
            return int(value)
        if base == "str" and isinstance(value, (int, float)):
            return str(value)
    except ValueError:
        raise UserError(f"config key '{key}': cannot read {value!r} as {base}") from None
    return value


@dataclass
class RunConfig:
    """Defaults = the prior work's hyperparameters (Selective LoRA), except the data size and batch (see EXPERIMENTS.md)."""
    model: str = "smollm2-135m"
    data: str = "alpaca"
    eval_data: str | None = None  # only for a custom --data file
    split: str = "default"  # "default": train_pool / eval (500); "prior": train[:100] / train[100:120]
    strategy: str = "uniform"
    budget: str = "r8"
    seed: int = 0
    train_examples: int | None = 1000  # first N of the training pool (None = all)
    eval_examples: int | None = None  # first N of the held-out set (None = all)
    epochs: float = 1.0
    batch_size: int = 8  # examples per optimizer step
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    lora_dropout: float = 0.1
    max_length: int = 256
    scaling: str = "constant"  # alpha = 2r
    precision: str = "auto"  # "auto" resolves to bf16 or fp32 for this CPU (recorded resolved)
    compile: bool = False
    min_rank: int = 0
    max_rank: int | None = None
    strategy_params: dict = field(default_factory=dict)
    rank_map_file: str | None = None  # a JSON rank map to use instead of running the strategy
    experiment: str = "default"

    def __post_init__(self):
        from .models import check_model_name
        from .peft_config import SCALINGS
        from .strategies import get_strategy

        for f in fields(self):          # one place for type coercion (YAML, CLI and Python callers alike)
            setattr(self, f.name, coerce(f.name, getattr(self, f.name), str(f.type)))
        check_model_name(self.model)
        if not self.rank_map_file and self.strategy not in ("adalora", "eva"):
            get_strategy(self.strategy)
        if self.scaling not in SCALINGS:
            raise UserError(f"unknown scaling '{self.scaling}'; known: {', '.join(SCALINGS)}")
        if self.precision == "auto":
            self.precision = best_precision()
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision '{self.precision}'; known: {', '.join(PRECISIONS)}")
        if self.split not in ("default", "prior"):
            raise UserError(f"unknown split '{self.split}'; known: default, prior")
        for name in ("batch_size", "max_length"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be positive")
        for name in ("train_examples", "eval_examples"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise UserError(f"{name} must be positive")
        if self.epochs <= 0 or self.lr <= 0 or not 0 <= self.warmup_ratio < 1 or not 0 <= self.lora_dropout < 1:
            raise UserError("epochs and lr must be > 0, warmup_ratio and lora_dropout in [0, 1)")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.experiment):
            raise UserError(f"experiment name '{self.experiment}' may use letters, digits, '_', '.', '-' only")

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

    def config_hash(self) -> str:
        """Hash of everything that changes the result (the experiment name does not)."""
        d = self.to_dict()
        d.pop("experiment")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]

    @property
    def run_id(self) -> str:
        data = self.data if "/" not in self.data and not self.data.endswith(".jsonl") else self.data.rsplit("/", 1)[-1].removesuffix(".jsonl")
        slug = f"{self.model}_{data}_{self.strategy}_{self.budget}_s{self.seed}"
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", slug.replace(":", "-").replace("/", "-"))
        return f"{slug}_{self.config_hash()}"
