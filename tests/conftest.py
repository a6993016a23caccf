import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Results, adapters and caches go to a temp dir; the tree counts as clean unless a test says otherwise."""
    monkeypatch.setenv("ADAPTIVE_LORA_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("ADAPTIVE_LORA_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("ADAPTIVE_LORA_CACHE", str(tmp_path / "cache"))
    from adaptive_lora import provenance, run
    monkeypatch.setattr(provenance, "git_dirty", lambda: False)
    monkeypatch.setattr(run.provenance, "git_dirty", lambda: False)
    return tmp_path


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


SHORT = [{"instruction": f"Say {w}.", "input": "" if i % 2 else "now", "output": f"{w} {w}!"}
         for i, w in enumerate(["hi", "yes", "no", "ok", "red", "blue", "one", "two", "cat", "dog", "sun", "sky"])]

# A tiny, fast run: custom short data, the tiny Llama, a few steps.
TINY_RUN = ["run", "--model", "tiny-llama", "--train-examples", "12", "--batch-size", "4", "--epochs", "2",
            "--max-length", "64", "--lr", "1e-2", "--experiment", "t"]


@pytest.fixture
def short_data(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", SHORT)
    ev = write_jsonl(tmp_path / "eval.jsonl", SHORT[:6])
    return ["--data", str(train), "--eval-data", str(ev)]
