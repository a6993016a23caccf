"""One typed config per run, validated on construction, saved inside its result; the run id derives from it."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import MISSING, asdict, dataclass, field, fields

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


def _f(default, help: str, v2: bool = False, **kw):
    """A RunConfig field with its CLI help text; ``v2`` marks fields added by protocol v2 (see ``config_hash``)."""
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": help, "v2": v2, **kw})
    return field(default=default, metadata={"help": help, "v2": v2, **kw})


@dataclass
class RunConfig:
    """One run. Defaults = the pilot protocol (prior work's hyperparameters, 1,000 examples; EXPERIMENTS.md);
    protocol v2 sets its fields in experiments/main*.yaml. The CLI (``adaptive-lora run``) is derived from these
    fields and their ``help`` metadata, so the two cannot disagree."""
    model: str = _f("smollm2-135m", "model name (registry) or hub id org/name")
    data: str = _f("alpaca", "alpaca | gsm8k | path/to/train.jsonl")
    eval_data: str | None = _f(None, "held-out JSONL for a custom --data file")
    split: str = _f("default", "default (pool / 500 held out) | prior (train[:100] / train[100:120])")
    strategy: str = _f("uniform", "rank-allocation strategy, shuffled:<strategy>, or a baseline (adalora, eva)")
    budget: str = _f("r8", "rN (count of uniform rank N) or a count like 1.5M")
    seed: int = _f(0, "LoRA init, batch order, and (train_sampling=seeded) the training draw")
    train_examples: int | None = _f(1000, "training examples (first N of the pool, or a seeded draw)")
    eval_examples: int | None = _f(None, "first N of the held-out (test) set (default: all)")
    epochs: float = _f(1.0, "passes over the training examples")
    batch_size: int = _f(8, "examples per optimizer step")
    lr: float = _f(2e-4, "peak learning rate (AdamW)")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    warmup_ratio: float = _f(0.1, "fraction of steps of linear warm-up before the cosine decay")
    max_grad_norm: float = _f(1.0, "gradient-norm clip")
    lora_dropout: float = _f(0.1, "LoRA dropout (0 = none: PEFT uses Identity, no mask is drawn)")
    max_length: int = _f(256, "tokens per example (prompt + response + EOS), truncated")
    scaling: str = _f("constant", "constant (alpha = 2r) | rslora (alpha/sqrt(r)) | fixed-alpha")
    precision: str = _f("auto", "auto | bf16 (bf16 base + autocast) | fp32; auto = bf16 only on native-bf16 CPUs")
    compile: bool = _f(False, "torch.compile the backbone (inductor; cache in .cache/inductor)")
    min_rank: int = _f(0, "smallest rank a strategy may give an adapted module")
    max_rank: int | None = _f(None, "largest rank a strategy may give a module")
    strategy_params: dict = _f({}, "strategy keyword arguments as JSON, e.g. '{\"power\": 2}'")
    rank_map_file: str | None = _f(None, "a JSON rank map to use instead of running the strategy")
    experiment: str = _f("default", "results/<experiment>/ (not part of the config hash)")
    # ---- protocol v2 (EXPERIMENTS.md); at their defaults they leave the config hash of older cells unchanged
    threads: int | None = _f(None, "torch threads (None: ADAPTIVE_LORA_THREADS or all cores); recorded", True)
    dev_examples: int = _f(0, "examples cut from the front of the training pool as the dev split (never trained "
                              "on; dev loss recorded); 0 = none", True)
    train_sampling: str = _f("first", "first (first N of the pool after the dev split) | seeded (the seed draws "
                                      "the N examples from the rest of the pool)", True)
    transfer_data: str | None = _f(None, "secondary eval on another data set's held-out split (e.g. gsm8k)", True)
    transfer_examples: int = _f(200, "examples of the transfer eval (first N of its held-out split)", True)
    shuffle_from_seed: bool = _f(False, "shuffled:<s> draws its permutation from the run seed (else a fixed one)",
                                 True)
    match_params: bool = _f(False, "adalora/eva: meet the parameter budget within +-0.5 %% (else their rank "
                                   "budget r x modules)", True)
    adalora_tinit: float = _f(0.1, "AdaLoRA: fraction of steps before rank reduction starts", True)
    adalora_tfinal: float = _f(0.2, "AdaLoRA: fraction of final steps at the final ranks", True)
    adalora_orth: float = _f(0.5, "AdaLoRA: orthogonality-penalty weight", True)
    eva_rho: float = _f(2.0, "EVA: max rank per module / r (1 = EVA's initialisation alone, no redistribution)",
                        True)
    grad_checkpoint: bool = _f(False, "recompute each block in backward (less memory, more time)", True)

    def __post_init__(self):
        from .models import check_model_name
        from .peft_config import SCALINGS
        from .strategies import get_strategy

        for f in fields(self):          # one place for type coercion (YAML, CLI and Python callers alike)
            setattr(self, f.name, coerce(f.name, getattr(self, f.name), str(f.type)))
        check_model_name(self.model)
        from .adapters import BUILDERS
        if not self.rank_map_file and self.strategy not in BUILDERS:
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
        if self.threads is not None and self.threads <= 0:
            raise UserError("threads must be positive")
        if self.dev_examples < 0 or self.transfer_examples <= 0:
            raise UserError("dev_examples must be >= 0 and transfer_examples positive")
        if self.train_sampling not in ("first", "seeded"):
            raise UserError(f"unknown train_sampling '{self.train_sampling}'; known: first, seeded")
        if self.transfer_data is not None and self.transfer_data not in ("alpaca", "gsm8k"):
            raise UserError(f"transfer_data must be alpaca or gsm8k, not '{self.transfer_data}'")
        if not (0 <= self.adalora_tinit < 1 and 0 <= self.adalora_tfinal < 1
                and self.adalora_tinit + self.adalora_tfinal < 1):
            raise UserError("adalora_tinit and adalora_tfinal are fractions in [0, 1) with a sum below 1")
        if self.adalora_orth < 0 or self.eva_rho < 1:
            raise UserError("adalora_orth must be >= 0 and eva_rho >= 1")
        if self.compile and self.grad_checkpoint:
            raise UserError("compile and grad_checkpoint cannot be combined")
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
        for f in fields(self):  # v2 fields at their defaults are left out: the pilot's run ids stay as they were
            if f.metadata.get("v2") and d[f.name] == (f.default if f.default_factory is MISSING else f.default_factory()):
                d.pop(f.name)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]

    @property
    def run_id(self) -> str:
        data = self.data if "/" not in self.data and not self.data.endswith(".jsonl") else self.data.rsplit("/", 1)[-1].removesuffix(".jsonl")
        slug = f"{self.model}_{data}_{self.strategy}_{self.budget}_s{self.seed}"
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", slug.replace(":", "-").replace("/", "-"))
        return f"{slug}_{self.config_hash()}"
