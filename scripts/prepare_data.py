"""Build the committed data subsets in data/ from the byte-verified copies in ../shared/data/.

Selection rule (documented in data/README.md): candidates are ranked by
sha256(f"{SEED}:{dataset}:{index}") (hex, ascending) -- independent of any RNG implementation --
and taken in that order. Records are copied verbatim with their original 0-based index added as "index".

Usage: python scripts/prepare_data.py [--shared ../shared/data]   (idempotent; prints sha256 of every file)
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from pathlib import Path

SEED = 0
ROOT = Path(__file__).resolve().parents[1]
SOURCE_SHA256 = {
    "alpaca/alpaca_data.jsonl.gz": "3211b318dbc838de0e8fefdb37a1563611f4898c51502b12f1cb2db33dbe1603",
    "gsm8k/train.jsonl.gz": "d52a31668743a4f18e4a284514e54eea07a06ae31fcf4293af2506c198c05bda",
    "gsm8k/test.jsonl.gz": "bb13a52c31b1fa4805ebab294dce067e337ccd4b61c3e6461c85c92965282c62",
}
N_EVAL, N_POOL = 500, 5000


def _read(shared: Path, rel: str) -> list[dict]:
    raw = (shared / rel).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SOURCE_SHA256[rel]:
        raise SystemExit(f"error: {rel} sha256 {digest} != expected {SOURCE_SHA256[rel]}")
    return [json.loads(line) for line in gzip.decompress(raw).decode("utf-8").splitlines()]


def _rank(dataset: str, indices) -> list[int]:
    return sorted(indices, key=lambda i: hashlib.sha256(f"{SEED}:{dataset}:{i}".encode()).hexdigest())


def _write(path: Path, records: list[dict], indices: list[int]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"index": i, **records[i]}, ensure_ascii=False) for i in indices]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    shared = Path(ap.parse_args().shared)
    manifest = {}
    alpaca = _read(shared, "alpaca/alpaca_data.jsonl.gz")
    assert len(alpaca) == 52002
    order = _rank("alpaca", range(120, len(alpaca)))  # 0..119 are the prior work's split
    splits = {
        "alpaca/eval.jsonl": order[:N_EVAL],
        "alpaca/train_pool.jsonl": order[N_EVAL:N_EVAL + N_POOL],
        "alpaca/prior_train.jsonl": list(range(0, 100)),
        "alpaca/prior_eval.jsonl": list(range(100, 120)),
    }
    for rel, idx in splits.items():
        manifest[rel] = {"n": len(idx), "sha256": _write(ROOT / "data" / rel, alpaca, idx)}
    train = _read(shared, "gsm8k/train.jsonl.gz")
    test = _read(shared, "gsm8k/test.jsonl.gz")
    manifest["gsm8k/train_pool.jsonl"] = {
        "n": N_POOL, "sha256": _write(ROOT / "data/gsm8k/train_pool.jsonl", train, _rank("gsm8k-train", range(len(train)))[:N_POOL])}
    manifest["gsm8k/eval.jsonl"] = {
        "n": N_EVAL, "sha256": _write(ROOT / "data/gsm8k/eval.jsonl", test, _rank("gsm8k-test", range(len(test)))[:N_EVAL])}
    (ROOT / "data" / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for rel, m in sorted(manifest.items()):
        print(f"{rel:28s} n={m['n']:5d} sha256={m['sha256']}")


if __name__ == "__main__":
    main()
