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
from .data import load_split, tokenize
from .errors import UserError
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
    return build_rank_map(spec, budget, cfg.strategy, stats, min_rank=cfg.min_rank, max_rank=cfg.max_rank,
                          **cfg.strategy_params)


def calibration_provenance(cfg: RunConfig) -> dict | None:
    """Where a data- or weight-driven strategy's statistics came from (model, data and sample hashes), or None."""
    from .strategies import get_strategy

    if cfg.rank_map_file or cfg.strategy in ("adalora", "eva") or not get_strategy(cfg.strategy).needs:
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


def execute(cfg: RunConfig, allow_dirty: bool = False, force: bool = False, progress: bool = True) -> tuple[Path, dict | None]:
    """Run one config; returns (result path, result or None when it already existed)."""
    from .peft_config import verify
    from .train import evaluate, train

    dirty = provenance.git_dirty()
    out_path = result_path(cfg.experiment, cfg.run_id, dirty=dirty and not allow_dirty)
    if out_path.exists() and not force:
        return out_path, None
    # Everything cheap (names, budget, data) is checked before the model is loaded.
    spec = model_spec(cfg.model)
    budget = parse_budget(cfg.budget, spec)
    tr_split, ev_split = data_splits(cfg)
    train_recs, train_sha = load_split(cfg.data, tr_split, cfg.eval_data, cfg.train_examples)
    eval_recs, eval_sha = load_split(cfg.data, ev_split, cfg.eval_data, cfg.eval_examples)
    if cfg.strategy not in ("adalora", "eva"):
        # data-free strategies are resolved now, so an impossible budget fails before any model work
        from .strategies import get_strategy
        if cfg.rank_map_file or not get_strategy(cfg.strategy).needs:
            resolve_rank_map(cfg, spec, budget)

    torch.set_num_threads(int(os.environ.get("ADAPTIVE_LORA_THREADS", os.cpu_count() or 1)))
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
    model, tok, model_sha = load_model(cfg.model, dtype)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    train_ex, dropped_train = tokenize(train_recs, tok, cfg.max_length)
    eval_ex, dropped_eval = tokenize(eval_recs, tok, cfg.max_length)
    if not train_ex or not eval_ex:
        raise UserError("no example keeps a response token within max_length")
    base = base_eval(cfg, model, eval_ex, pad_id, model_sha, eval_sha)

    torch.manual_seed(cfg.seed)  # fixes LoRA init and dropout; the data order is seeded separately
    if cfg.strategy == "adalora":
        from .baselines import adalora_model
        model, hook, extra, loss_fn = adalora_model(model, cfg, spec, budget, len(train_ex))
        rank_map = None
    else:
        from peft import get_peft_model
        from .peft_config import lora_config
        if cfg.strategy == "eva":
            from .baselines import eva_model
            model, rank_map = eva_model(model, cfg, spec, budget, train_ex, pad_id)
        else:
            rank_map = resolve_rank_map(cfg, spec, budget, model, tok, train_recs)
            model = get_peft_model(model, lora_config(rank_map, cfg.scaling, cfg.lora_dropout))
        hook, extra, loss_fn = None, {}, None
        verify(model, spec, rank_map)
    from .peft_config import trainable_params
    n_trainable = trainable_params(model)
    if cfg.compile:
        from .speed import compile_model
        compile_model(model)

    log = train(model, train_ex, pad_id, seed=cfg.seed, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio, max_grad_norm=cfg.max_grad_norm,
                precision=cfg.precision, step_hook=hook, loss_fn=loss_fn, progress=progress)
    if cfg.strategy == "adalora":
        ranks, extra = extra["finalize"]()
        rank_map = {n: ranks.get(n, 0) for n in spec.names()}
        n_trainable = extra["final_params"]
    ev = evaluate(model, eval_ex, pad_id, cfg.precision)
    from accelerate import PartialState
    if not PartialState().is_main_process:  # under accelerate launch only the main process writes
        return out_path, None

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
        **{k: v for k, v in extra.items() if k != "finalize"},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "adapter_dir": str(run_dir.relative_to(ROOT)) if run_dir.is_relative_to(ROOT) else str(run_dir),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "provenance": {
            "git_commit": provenance.git_commit(),
            "git_dirty": dirty,
            "packages": provenance.packages(),
            "machine": provenance.machine(),
            "data_sha256": {"train": train_sha, "eval": eval_sha},
            "model_sha256": model_sha,
            "config_hash": cfg.config_hash(),
        },
    }
    write_json_atomic(out_path, result)
    return out_path, result
