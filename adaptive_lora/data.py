"""Data: the committed subsets in data/, the prior work's prompt, response-only labels, length-grouped batches.

Datasets (``--data``): ``alpaca`` and ``gsm8k`` (splits ``train`` = data/<d>/train_pool.jsonl, ``eval`` =
data/<d>/eval.jsonl, for alpaca also ``prior`` = the prior work's train[:100] / train[100:120]) or a path to a JSONL
file of {instruction, input?, output} records (then ``--eval-data`` names the held-out file).
Each file's sha256 is checked against data/manifest.json.

Prompt (prior work): ``### Instruction:\\n{instruction}[\\n\\nInput: {input}]\\n\\n### Response:\\n{output}<eos>``.
Loss is on the response tokens and EOS only; masking is by position (SmolLM2's pad token IS its EOS, so masking
pads by token id would also drop the real EOS).
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"
IGNORE = -100
DATASETS = {
    "alpaca": {"train": "alpaca/train_pool.jsonl", "eval": "alpaca/eval.jsonl",
               "prior-train": "alpaca/prior_train.jsonl", "prior-eval": "alpaca/prior_eval.jsonl"},
    "gsm8k": {"train": "gsm8k/train_pool.jsonl", "eval": "gsm8k/eval.jsonl"},
}


def format_example(rec: dict) -> tuple[str, str]:
    """(prompt, response) with the prior work's template. GSM8K: question -> instruction, answer -> output."""
    if "question" in rec and "answer" in rec:
        rec = {"instruction": rec["question"], "input": "", "output": rec["answer"]}
    instruction = rec["instruction"]
    if rec.get("input"):
        instruction += f"\n\nInput: {rec['input']}"
    return f"### Instruction:\n{instruction}\n\n### Response:\n", rec["output"]


def _validate(rec, where: str) -> dict:
    if not isinstance(rec, dict):
        raise UserError(f"{where}: expected a JSON object")
    if "question" in rec and "answer" in rec:
        return rec
    for key in ("instruction", "output"):
        if not isinstance(rec.get(key), str):
            raise UserError(f"{where}: missing or non-string field '{key}'")
    if not isinstance(rec.get("input", ""), str):
        raise UserError(f"{where}: field 'input' must be a string")
    return rec


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        raise UserError(f"data file not found: {path}")
    out = []
    # split on "\n" only: str.splitlines() would also split inside strings at U+2028 etc.
    for i, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{i}: malformed JSON ({e.msg})") from None
        out.append(_validate(rec, f"{path}:{i}"))
    return out


def sha256_json(recs) -> str:
    """sha256 of records as canonical JSON (identifies a seeded draw)."""
    return hashlib.sha256(json.dumps(recs, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def sha256_bytes(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resolve(data: str, split: str, eval_data: str | None = None) -> Path:
    """Path of a split. split in {'train', 'eval'} with an optional 'prior-' prefix."""
    if data in DATASETS:
        files = DATASETS[data]
        if split not in files:
            raise UserError(f"dataset '{data}' has no split '{split}'; known: {', '.join(files)}")
        return DATA_DIR / files[split]
    if data.endswith(".jsonl") or Path(data).exists():
        if split.endswith("eval"):
            if not eval_data:
                raise UserError(f"custom data '{data}' needs --eval-data FILE for the held-out set")
            return Path(eval_data)
        return Path(data)
    raise UserError(f"unknown data '{data}'; known: {', '.join(DATASETS)} or a .jsonl file")


def load_split(data: str, split: str, eval_data: str | None = None, n: int | None = None) -> tuple[list[dict], str]:
    """-> (records, sha256 of the file). The committed files are checked against data/manifest.json."""
    path = resolve(data, split, eval_data)
    recs = read_jsonl(path)
    digest = sha256_bytes(path)
    if data in DATASETS:
        want = json.loads((DATA_DIR / "manifest.json").read_text())[DATASETS[data][split]]["sha256"]
        if digest != want:
            raise UserError(f"{path} differs from data/manifest.json (sha256 {digest[:12]} != {want[:12]})")
    if n is not None:
        if n > len(recs):
            raise UserError(f"asked for {n} examples but {path.name} has only {len(recs)}")
        recs = recs[:n]
    if not recs:
        raise UserError(f"split '{split}' of '{data}' is empty")
    return recs, digest


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE on prompt positions


def split_pool(recs: list[dict], dev_examples: int, n_train: int | None, sampling: str, seed: int):
    """Training pool -> (train records, dev records).

    The dev split is the first ``dev_examples`` records of the pool (the pool is in a fixed hash order,
    data/README.md), never trained on. Training examples come from the rest: its first ``n_train``
    (``sampling="first"``, the pilot) or a draw of ``n_train`` without replacement seeded by the run seed
    (``"seeded"``: each seed trains on other examples, so intervals include data sampling; every strategy at a
    seed sees the same draw). The draw uses its own RNG stream (``random.Random("train-draw-<seed>")``), separate
    from the batch order.
    """
    dev, rest = recs[:dev_examples], recs[dev_examples:]
    n = len(rest) if n_train is None else n_train
    if n > len(rest):
        raise UserError(f"asked for {n} training examples but the pool has {len(rest)} after the dev split")
    if sampling == "seeded":
        return random.Random(f"train-draw-{seed}").sample(rest, n), dev
    return rest[:n], dev


def adds_bos(tokenizer) -> bool:
    """True when the tokenizer itself puts its BOS token first (``add_special_tokens=True``), as Gemma's does.
    Such models were trained with BOS and degrade badly without it; SmolLM2's tokenizer adds none."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == bos


def tokenize(recs: list[dict], tokenizer, max_length: int) -> tuple[list[Example], int]:
    """Tokenise prompt and response separately (so the boundary is known by position), append EOS, truncate.
    A BOS token leads the prompt where the tokenizer would add one itself (``adds_bos``).

    Returns (examples, n_dropped): examples whose response was truncated away entirely are dropped.
    """
    eos = tokenizer.eos_token_id
    lead = [tokenizer.bos_token_id] if adds_bos(tokenizer) else []
    prompts, responses = zip(*(format_example(r) for r in recs))
    p_ids = [lead + p for p in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    r_ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    out, dropped = [], 0
    for p, r in zip(p_ids, r_ids):
        ids = (p + r + [eos])[:max_length]
        labels = ([IGNORE] * len(p) + r + [eos])[:max_length]
        if all(x == IGNORE for x in labels):
            dropped += 1
            continue
        out.append(Example(ids, labels))
    return out, dropped


def length_grouped_batches(examples: list[Example], batch_size: int, seed: int, shuffle: bool = True,
                           group: int = 16) -> list[list[int]]:
    """Indices in batches of similar length: shuffle (seeded), sort within mega-chunks of ``group`` batches by
    length, cut into batches, shuffle the batch order. Wasted padding drops from ~65 % to a few %."""
    idx = list(range(len(examples)))
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(idx)
    chunk = batch_size * group
    batches = []
    for s in range(0, len(idx), chunk):
        part = sorted(idx[s:s + chunk], key=lambda i: len(examples[i].input_ids), reverse=True)
        batches += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
    if shuffle:
        rng.shuffle(batches)
    return batches


def collate(examples: list[Example], pad_id: int, multiple: int = 8) -> dict[str, torch.Tensor]:
    """Right-pad to the batch's longest sequence rounded up to ``multiple`` (fewer distinct shapes)."""
    longest = max(len(e.input_ids) for e in examples)
    T = -(-longest // multiple) * multiple
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), T), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
