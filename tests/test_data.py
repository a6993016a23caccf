"""Data: committed subsets match the manifest, the prompt template, labels masked by position."""
import json

import pytest

from adaptive_lora.data import (DATA_DIR, IGNORE, collate, format_example, length_grouped_batches, load_split,
                                tokenize)
from adaptive_lora.models import byte_tokenizer


@pytest.mark.parametrize("data,split,n", [("alpaca", "train", 5000), ("alpaca", "eval", 500),
                                          ("alpaca", "prior-train", 100), ("alpaca", "prior-eval", 20),
                                          ("gsm8k", "train", 5000), ("gsm8k", "eval", 500)])
def test_committed_splits(data, split, n):
    recs, sha = load_split(data, split)
    assert len(recs) == n and len(sha) == 64


def test_splits_are_disjoint_and_prior_split_is_original_order():
    idx = {s: [r["index"] for r in load_split("alpaca", s)[0]] for s in ("train", "eval", "prior-train", "prior-eval")}
    assert idx["prior-train"] == list(range(100)) and idx["prior-eval"] == list(range(100, 120))
    assert not set(idx["train"]) & set(idx["eval"])
    assert min(idx["train"] + idx["eval"]) >= 120
    gsm = {s: {r["question"] for r in load_split("gsm8k", s)[0]} for s in ("train", "eval")}
    assert not gsm["train"] & gsm["eval"]


def test_prompt_template():
    assert format_example({"instruction": "Add.", "input": "2, 3", "output": "5"}) == (
        "### Instruction:\nAdd.\n\nInput: 2, 3\n\n### Response:\n", "5")
    assert format_example({"instruction": "Hi.", "input": "", "output": "Hello"})[0] == \
        "### Instruction:\nHi.\n\n### Response:\n"
    assert format_example({"question": "1+1?", "answer": "2\n#### 2"}) == (
        "### Instruction:\n1+1?\n\n### Response:\n", "2\n#### 2")


def test_labels_cover_response_and_eos_only_by_position():
    tok = byte_tokenizer()
    (ex,), dropped = tokenize([{"instruction": "Hi.", "input": "", "output": "Yo"}], tok, 256)
    prompt_len = len("### Instruction:\nHi.\n\n### Response:\n")
    assert dropped == 0
    assert ex.labels[:prompt_len] == [IGNORE] * prompt_len
    assert ex.labels[prompt_len:] == ex.input_ids[prompt_len:] == [*b"Yo", tok.eos_token_id]
    batch = collate([ex, tokenize([{"instruction": "A", "output": "B"}], tok, 256)[0][0]], tok.pad_token_id)
    # the EOS (== pad id) inside the labels survives; padding after it is ignored
    assert (batch["labels"] == tok.eos_token_id).sum() == 2
    assert batch["input_ids"].shape[1] % 8 == 0


def test_truncation_drops_examples_without_response_tokens():
    tok = byte_tokenizer()
    exs, dropped = tokenize([{"instruction": "x" * 100, "output": "y"}, {"instruction": "a", "output": "b"}], tok, 40)
    assert dropped == 1 and len(exs) == 1 and len(exs[0].input_ids) <= 40


def test_length_grouped_batches_partition_and_are_seeded():
    tok = byte_tokenizer()
    recs = [{"instruction": "i" * (k % 37), "output": "o" * (k % 11 + 1)} for k in range(100)]
    exs, _ = tokenize(recs, tok, 256)
    b1 = length_grouped_batches(exs, 8, seed=1)
    assert sorted(i for b in b1 for i in b) == list(range(100))
    assert b1 == length_grouped_batches(exs, 8, seed=1) != length_grouped_batches(exs, 8, seed=2)


def test_manifest_lists_every_committed_file():
    manifest = json.loads((DATA_DIR / "manifest.json").read_text())
    files = {str(p.relative_to(DATA_DIR)) for p in DATA_DIR.rglob("*.jsonl")}
    assert files == set(manifest)
