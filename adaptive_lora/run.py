"""One run: config -> spec -> budget -> rank map -> PEFT model -> train -> eval -> result JSON (+ adapter)."""
from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import torch

from . import provenance
from .budget import parse_budget
from .config import RunConfig
from .data import load_split, sha256_json, split_pool, tokenize
from .errors import UserError
from .models import REGISTRY as MODEL_REGISTRY
from .models import cache_dir, load_model, model_spec
from .results import ROOT, result_path, write_json_atomic


def data_splits(cfg: RunConfig) -> tuple[str, str]:
    return ("prior-train", "prior-eval") if cfg.split == "prior" else ("train", "eval")


def resolve_rank_map(cfg: RunConfig, spec, budget: int, model=None, tokenizer=None, train_recs=None) -> dict:
    """The run's rank map: from --rank-map-file, or from the strategy (with cached statistics if it needs them)."""
    from .budget import check_budget
    from .strategies import build_rank_map, get_strategy

    if cfg.rank_map_file:
        path = Path(cfg.rank_map_file)
        if not path.exists():
            raise UserError(f"rank map file not found: {path}")
        doc = json.loads(path.read_text())
        rank_map = doc.get("rank_map", doc)
        unknown = sorted(set(rank_map) - set(spec.names()))
        if unknown:
            raise UserError(f"rank map names modules the model does not have: {unknown[:3]}")
        check_budget(spec.count(rank_map), budget, f"rank map {path.name}")
        return {n: int(rank_map.get(n, 0)) for n in spec.names()}
    stats = None
    if get_strategy(cfg.strategy).needs:
        from .calibration import statistics
        stats = statistics(get_strategy(cfg.strategy).needs, cfg, spec, model, tokenizer, train_recs)
    params = dict(cfg.strategy_params)
    if cfg.shuffle_from_seed and cfg.strategy.startswith("shuffled:"):
        params["shuffle_seed"] = cfg.seed
    return build_rank_map(spec, budget, cfg.strategy, stats, min_rank=cfg.min_rank, max_rank=cfg.max_rank, **params)


def calibration_provenance(cfg: RunConfig) -> dict | None:
    """Where a data- or weight-driven strategy's statistics came from (model, data and sample hashes), or None."""
    from .adapters import BUILDERS
    from .strategies import get_strategy

    if cfg.rank_map_file or cfg.strategy in BUILDERS or not get_strategy(cfg.strategy).needs:
        return None
    from .calibration import provenance as stats_provenance
    return stats_provenance(get_strategy(cfg.strategy).needs, cfg.model, cfg.data)


def base_eval(cfg, model, eval_ex, pad_id, model_sha, eval_sha) -> dict:
    """Eval loss of the untrained base model, cached per (model, eval set, length, precision)."""
    from .train import evaluate

    key = f"{cfg.model}-{(model_sha or 'init')[:12]}-{eval_sha[:12]}-{cfg.max_length}-{cfg.precision}-{len(eval_ex)}"
    path = cache_dir() / "base_eval" / f"{key.replace('/', '_')}.json"
    if path.exists():
        return json.loads(path.read_text())
    out = evaluate(model, eval_ex, pad_id, cfg.precision, desc="base eval")
    write_json_atomic(path, out)
    return out


def load_data(cfg: RunConfig) -> dict:
    """Records of every split a run uses: train, test ("eval"), optional dev and transfer; with their sha256."""
    tr_split, ev_split = data_splits(cfg)
    pool, pool_sha = load_split(cfg.data, tr_split, cfg.eval_data)
    if cfg.dev_examples == 0 and cfg.train_sampling == "first" and cfg.train_examples is not None \
            and cfg.train_examples > len(pool):
        raise UserError(f"asked for {cfg.train_examples} examples but the training split has only {len(pool)}")
    train_recs, dev_recs = split_pool(pool, cfg.dev_examples, cfg.train_examples, cfg.train_sampling, cfg.seed)
    eval_recs, eval_sha = load_split(cfg.data, ev_split, cfg.eval_data, cfg.eval_examples)
    out = {"train": train_recs, "dev": dev_recs, "eval": eval_recs, "transfer": [],
           "sha256": {"train": pool_sha, "eval": eval_sha,
                      "train_draw": sha256_json(train_recs), "dev": sha256_json(dev_recs) if dev_recs else None}}
    if cfg.transfer_data:
        out["transfer"], out["sha256"]["transfer"] = load_split(cfg.transfer_data, "eval", None, cfg.transfer_examples)
    return out


def set_threads(cfg: RunConfig) -> int:
    """torch threads: the config's (recorded; results can depend on it), else ADAPTIVE_LORA_THREADS, else all."""
    n = cfg.threads or int(os.environ.get("ADAPTIVE_LORA_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(n)
    return n


def check_single_process() -> None:
    """Multi-process (DDP) training was removed: it silently changed the experiment (effective batch, loss mean,
    AdaLoRA's step count). Parallelism is across cells: ``adaptive-lora sweep --jobs N``."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("multi-process training is not supported (it changes the experiment); "
                        "run cells in parallel with 'adaptive-lora sweep --jobs N' instead")


def execute(cfg: RunConfig, allow_dirty: bool = False, force: bool = False, progress: bool = True) -> tuple[Path, dict | None]:
    """Run one config; returns (result path, result or None when it already existed)."""
    from .adapters import BuildContext, build_adapter
    from .train import check_selected_head, evaluate, train

    check_single_process()
    dirty = provenance.git_dirty()
    out_path = result_path(cfg.experiment, cfg.run_id, dirty=dirty and not allow_dirty)
    if out_path.exists() and not force:
        return out_path, None
    # Everything cheap (names, budget, data) is checked before the model is loaded.
    spec = model_spec(cfg.model)
    budget = parse_budget(cfg.budget, spec)
    data = load_data(cfg)
    from .adapters import builder_for, lora_adapter
    if cfg.rank_map_file or builder_for(cfg.strategy) is lora_adapter:
        # data-free strategies are resolved now, so an impossible budget fails before any model work
        from .strategies import get_strategy
        if cfg.rank_map_file or not get_strategy(cfg.strategy).needs:
            resolve_rank_map(cfg, spec, budget)

    threads = set_threads(cfg)
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
    model, tok, model_sha = load_model(cfg.model, dtype)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    train_ex, dropped_train = tokenize(data["train"], tok, cfg.max_length)
    eval_ex, dropped_eval = tokenize(data["eval"], tok, cfg.max_length)
    dev_ex = tokenize(data["dev"], tok, cfg.max_length)[0] if data["dev"] else []
    transfer_ex = tokenize(data["transfer"], tok, cfg.max_length)[0] if data["transfer"] else []
    if not train_ex or not eval_ex:
        raise UserError("no example keeps a response token within max_length")
    if cfg.model not in MODEL_REGISTRY:
        check_selected_head(model, train_ex, pad_id, cfg.precision)
    base = base_eval(cfg, model, eval_ex, pad_id, model_sha, data["sha256"]["eval"])

    torch.manual_seed(cfg.seed)  # fixes LoRA init and dropout; the data order is seeded separately
    ctx = BuildContext(tok, data["train"], train_ex, pad_id)
    adapter = build_adapter(model, cfg, spec, budget, ctx)
    model = adapter.model
    if cfg.grad_checkpoint:
        from .speed import enable_checkpointing
        enable_checkpointing(model)
    if cfg.compile:
        from .speed import compile_model
        compile_model(model)

    log = train(model, train_ex, pad_id, seed=cfg.seed, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio, max_grad_norm=cfg.max_grad_norm,
                precision=cfg.precision, step_hook=adapter.step_hook, loss_fn=adapter.loss_fn, progress=progress)
    rank_map, n_trainable, extra = adapter.finalize()
    ev = evaluate(model, eval_ex, pad_id, cfg.precision, per_example=cfg.dev_examples > 0)
    dev = evaluate(model, dev_ex, pad_id, cfg.precision, desc="dev eval") if dev_ex else None
    transfer = evaluate(model, transfer_ex, pad_id, cfg.precision, desc="transfer eval") if transfer_ex else None

    run_dir = Path(os.environ.get("ADAPTIVE_LORA_RUNS", ROOT / "runs")) / cfg.experiment / cfg.run_id
    model.save_pretrained(run_dir)
    (run_dir / "run_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    result = {
        "run_id": cfg.run_id,
        "config": cfg.to_dict(),
        "rank_map": rank_map,
        "budget_params": budget,
        "budget_matched": abs(n_trainable - budget) <= 0.005 * budget,
        "calibration": calibration_provenance(cfg),
        "trainable_params": n_trainable,
        "eval_loss": ev["loss"],
        "eval_ppl": ev["ppl"],
        "eval_tokens": ev["tokens"],
        "eval_seconds": ev["seconds"],
        "base_eval_loss": base["loss"],
        "base_eval_ppl": base["ppl"],
        "n_train_examples": len(train_ex),
        "n_eval_examples": len(eval_ex),
        "dropped_examples": {"train": dropped_train, "eval": dropped_eval},
        **log,
        **extra,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "adapter_dir": str(run_dir.relative_to(ROOT)) if run_dir.is_relative_to(ROOT) else str(run_dir),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "provenance": {
            "git_commit": provenance.git_commit(),
            "git_dirty": dirty,
            "packages": provenance.packages(),
            "machine": {**provenance.machine(), "torch_threads": threads},
            "data_sha256": data["sha256"],
            "model_sha256": model_sha,
            "config_hash": cfg.config_hash(),
            "training_path_hash": provenance.training_path_hash(),
        },
    }
    if dev is not None:
        result.update(dev_loss=dev["loss"], dev_tokens=dev["tokens"], n_dev_examples=len(dev_ex))
    if transfer is not None:
        result.update(transfer_loss=transfer["loss"], transfer_tokens=transfer["tokens"],
                      n_transfer_examples=len(transfer_ex))
    if "example_losses" in ev:
        result["eval_example_losses"] = ev["example_losses"]
    write_json_atomic(out_path, result)
    return out_path, result
