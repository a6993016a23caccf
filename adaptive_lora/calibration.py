"""Per-module statistics for the statistics-driven strategies, computed once and cached with their provenance.

Kinds (``Strategy.needs``):
- ``weights``: RMS entry of the pretrained weight, ||W||_F / sqrt(in*out).
- ``spectrum``: stable rank of the pretrained weight, ||W||_F^2 / ||W||_2^2 (exact singular values).
- ``activations``: mean L2 norm of the module's input rows over the non-pad tokens of the calibration sample.
- ``gradients``: RMS per-entry empirical Fisher, sqrt(mean_n ||dL_n/dW||_F^2 / (in*out)), with L_n the plain LM loss
  (response tokens + EOS, mean over tokens) of example n, one backward per example, no LoRA attached.

The calibration sample is the first ``CALIB_EXAMPLES`` records of the run's training records, cut to
``CALIB_MAX_LENGTH`` tokens. Under the pilot protocol those records are the fixed training subset (the pool is in a
fixed hash order, data/README.md), so every seed gets the same sample and the same rank map. Under protocol v2 the
seed draws the training examples (``train_sampling``), so the sample, and with it the rank map, is the seed's own
draw (EXPERIMENTS.md); the cache key holds the sample's sha256. The base model is used in fp32, in eval mode.

Cache: ``cache_dir()/stats/<model>-<kind>-<weights sha>[-<sample sha>-<n>x<len>]-v<VERSION>.json`` holding the
statistics and their provenance (model name, weights sha256 if known, data label, sha256 of the sample, sample
definition, torch version, time taken).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import torch

from .errors import UserError
from .models import REGISTRY as MODEL_REGISTRY
from .models import cache_dir, load_model, model_spec
from .spec import ModelSpec

KINDS = ("weights", "spectrum", "activations", "gradients")
DATA_KINDS = ("activations", "gradients")
CALIB_EXAMPLES = 32
CALIB_MAX_LENGTH = 128
CALIB_BATCH = 8  # examples per forward for activations (gradients: one example per backward)
VERSION = 1


# ----------------------------------------------------------------------------------------------- entry points
def statistics(kind: str, cfg, spec: ModelSpec, model=None, tokenizer=None, train_recs=None) -> dict[str, float]:
    """{module name: statistic} for a run (``cfg`` is a RunConfig). ``model`` / ``tokenizer`` may be the run's
    already loaded base model (used only when fp32; otherwise the fp32 weights are loaded); ``train_recs`` the
    run's training records (the sample is their first CALIB_EXAMPLES)."""
    split = "prior-train" if getattr(cfg, "split", "default") == "prior" else "train"
    return _statistics(kind, cfg.model, spec, model, tokenizer, train_recs, data=cfg.data, split=split,
                       eval_data=getattr(cfg, "eval_data", None))


def statistics_for(kind: str, model_name: str, data: str = "alpaca") -> dict[str, float]:
    """Convenience for the allocate tool: statistics on the default training split of ``data``."""
    return _statistics(kind, model_name, model_spec(model_name), None, None, None, data=data, split="train")


def load_cached(kind: str, model_name: str, data: str = "alpaca") -> dict | None:
    """The cached document (statistics + provenance) that ``statistics_for`` would use, or None."""
    spec = model_spec(model_name)
    sample = _sample(kind, None, data, "train", None)
    path = _cache_path(kind, model_name, _known_sha(model_name), sample)
    doc = _read(path, spec)
    return doc


def provenance(kind: str, model_name: str, data: str = "alpaca") -> dict | None:
    """Provenance of the cached statistics (the document without the numbers), or None when not cached."""
    doc = load_cached(kind, model_name, data)
    return None if doc is None else {k: v for k, v in doc.items() if k != "stats"}


# ----------------------------------------------------------------------------------------------- internals
def _known_sha(model_name: str) -> str | None:
    """sha256 of a GGUF-backed model's weights without loading it (from the conversion cache's metadata)."""
    if model_name not in MODEL_REGISTRY:
        return None
    meta = cache_dir() / "models" / model_name / "adaptive_lora_meta.json"
    if meta.exists():
        try:
            return json.loads(meta.read_text()).get("gguf_sha256")
        except (OSError, json.JSONDecodeError):
            return None
    return None


def _sample(kind: str, train_recs, data: str, split: str, eval_data) -> dict | None:
    """The calibration sample (records + identity) for data-driven kinds; None for weight-only kinds."""
    if kind not in DATA_KINDS:
        return None
    if train_recs is None:
        from .data import load_split
        train_recs, _ = load_split(data, split, eval_data)
    recs = list(train_recs[:CALIB_EXAMPLES])
    if not recs:
        raise UserError("calibration needs at least one training record")
    blob = "\n".join(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in recs).encode()
    return {"records": recs, "sha256": hashlib.sha256(blob).hexdigest(), "n": len(recs),
            "data": data if ("/" not in data and not data.endswith(".jsonl")) else Path(data).name, "split": split}


def _cache_path(kind: str, model_name: str, sha: str | None, sample: dict | None) -> Path:
    key = f"{model_name.replace('/', '__')}-{kind}-{(sha or 'nosha')[:12]}"
    if sample is not None:
        key += f"-{sample['sha256'][:12]}-{sample['n']}x{CALIB_MAX_LENGTH}"
    return cache_dir() / "stats" / f"{key}-v{VERSION}.json"


def _read(path: Path, spec: ModelSpec) -> dict | None:
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    stats = doc.get("stats") or {}
    if set(stats) != set(spec.names()):
        return None  # stale or foreign file: recompute
    return doc


def _statistics(kind, model_name, spec, model, tokenizer, train_recs, data, split, eval_data=None) -> dict:
    if kind not in KINDS:
        raise UserError(f"unknown statistics kind '{kind}'; known: {', '.join(KINDS)}")
    sample = _sample(kind, train_recs, data, split, eval_data)
    sha = _known_sha(model_name)  # None for random-init and hub models, and before a GGUF's first conversion
    doc = _read(_cache_path(kind, model_name, sha, sample), spec)
    if doc is not None:
        return {k: float(v) for k, v in doc["stats"].items()}

    if model is not None and _is_fp32(model) and (tokenizer is not None or kind not in DATA_KINDS):
        base, tok = model, tokenizer
    else:
        base, tok, loaded_sha = load_model(model_name)  # fp32 (a GGUF's first load converts it: sha known after)
        if (loaded_sha or sha) != sha:
            sha = loaded_sha
            doc = _read(_cache_path(kind, model_name, sha, sample), spec)
            if doc is not None:
                return {k: float(v) for k, v in doc["stats"].items()}
    path = _cache_path(kind, model_name, sha, sample)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        if kind in ("weights", "spectrum"):
            stats = _weight_stats(kind, base, spec)
            n_tokens = None
        else:
            stats, n_tokens = _data_stats(kind, base, tok, spec, sample["records"])
    seconds = time.perf_counter() - t0
    bad = [n for n, v in stats.items() if not math.isfinite(v)]
    if bad:
        raise RuntimeError(f"non-finite {kind} statistic for {bad[0]}")
    doc = {
        "kind": kind,
        "model": model_name,
        "weights_sha256": sha,
        "definition": _DEFINITIONS[kind],
        "data": sample and sample["data"],
        "data_split": sample and sample["split"],
        "data_sha256": sample and sample["sha256"],  # sha256 of the sample's records (canonical JSON lines)
        "sample": None if sample is None else {
            "rule": f"first {CALIB_EXAMPLES} records of the training split (fixed hash order; no RNG)",
            "n_examples": sample["n"], "max_length": CALIB_MAX_LENGTH, "n_tokens": n_tokens, "seed": None},
        "dtype": "float32",
        "torch": torch.__version__,
        "seconds": round(seconds, 2),
        "version": VERSION,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "stats": stats,
    }
    from .results import write_json_atomic
    write_json_atomic(path, doc)
    return stats


_DEFINITIONS = {
    "weights": "||W||_F / sqrt(in*out) of the pretrained weight (RMS entry)",
    "spectrum": "stable rank ||W||_F^2 / sigma_max(W)^2 of the pretrained weight",
    "activations": "mean over non-pad tokens of ||x_t||_2, x_t the module's input row",
    "gradients": "sqrt(mean_n ||dL_n/dW||_F^2 / (in*out)), L_n = mean LM loss of example n (base model, no LoRA)",
}


def _is_fp32(model) -> bool:
    p = next(model.parameters(), None)
    return p is not None and p.dtype == torch.float32


def _modules(model, spec: ModelSpec) -> dict:
    named = dict(model.named_modules())
    missing = [n for n in spec.names() if n not in named]
    if missing:
        raise UserError(f"model lacks spec modules, e.g. {missing[0]}")
    return {n: named[n] for n in spec.names()}


@torch.no_grad()
def _weight_stats(kind: str, model, spec: ModelSpec) -> dict[str, float]:
    out = {}
    for name, mod in _modules(model, spec).items():
        w = mod.weight.detach().float()
        fro = float(torch.linalg.norm(w))
        if kind == "weights":
            out[name] = fro / math.sqrt(w.numel())
        else:
            top = float(torch.linalg.svdvals(w)[0])
            out[name] = fro ** 2 / top ** 2 if top > 0 else 0.0
    return out


def _data_stats(kind: str, model, tokenizer, spec: ModelSpec, recs: list[dict]):
    from .data import collate, tokenize

    examples, _ = tokenize(recs, tokenizer, CALIB_MAX_LENGTH)
    if not examples:
        raise UserError("no calibration example keeps a response token within the calibration length")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    mods = _modules(model, spec)
    was_training = model.training
    model.eval()
    try:
        if kind == "activations":
            return _activation_stats(model, mods, examples, pad_id, collate)
        return _gradient_stats(model, mods, examples, pad_id, collate)
    finally:
        model.train(was_training)


@torch.no_grad()
def _activation_stats(model, mods: dict, examples, pad_id, collate):
    sums = {n: 0.0 for n in mods}
    state = {"mask": None}
    tokens = 0

    def hook_for(name):
        def hook(module, args):
            x = args[0].detach().float()
            norms = x.norm(dim=-1)  # (B, T)
            sums[name] += float((norms * state["mask"]).sum())
        return hook

    handles = [m.register_forward_pre_hook(hook_for(n)) for n, m in mods.items()]
    backbone = getattr(model, model.base_model_prefix)
    try:
        for s in range(0, len(examples), CALIB_BATCH):
            batch = collate(examples[s:s + CALIB_BATCH], pad_id)
            state["mask"] = batch["attention_mask"].float()
            tokens += int(batch["attention_mask"].sum())
            backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for h in handles:
            h.remove()
    return {n: v / tokens for n, v in sums.items()}, tokens


def _gradient_stats(model, mods: dict, examples, pad_id, collate):
    from .train import loss_sum

    params = list(model.parameters())
    saved = [p.requires_grad for p in params]
    weights = {n: m.weight for n, m in mods.items()}
    sq = {n: 0.0 for n in mods}
    tokens = 0
    try:
        for p in params:
            p.requires_grad_(False)
            p.grad = None
        for w in weights.values():
            w.requires_grad_(True)
        for ex in examples:
            batch = collate([ex], pad_id)
            tokens += len(ex.input_ids)
            with torch.enable_grad():
                total, n = loss_sum(model, batch)
                (total / max(n, 1)).backward()
            for name, w in weights.items():
                sq[name] += float(w.grad.float().pow(2).sum())
                w.grad = None
    finally:
        for p, flag in zip(params, saved):
            p.grad = None
            p.requires_grad_(flag)
    return {n: math.sqrt(v / len(examples) / weights[n].numel()) for n, v in sq.items()}, tokens
