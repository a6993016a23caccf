#!/usr/bin/env python
"""Write the paper's generated LaTeX from the committed results: ``paper/generated/numbers.tex`` (one
``\\newcommand`` per number or result-dependent sentence) and the tables the paper inputs from ``generated/``.

    python scripts/make_paper_numbers.py            # (re)write paper/generated/*
    python scripts/make_paper_numbers.py --check    # exit 1 when a committed file differs from a regeneration

The command line only: the generator is ``adaptive_lora.paper`` (sources, sections, statistics: see its
docstring). Its public names (``build``, ``read_macros``, ``write``, ``stale``, ``OUTPUTS``, ...) are importable
from here too, for tests/test_paper.py and older callers.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adaptive_lora.paper import (GENERATED, OUTPUTS, IncompleteResults, build, load_experiments,  # noqa: E402,F401
                                 read_macros, stale, write)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the files in --out instead of writing")
    ap.add_argument("--out", default=str(GENERATED), help="folder of the generated files (default paper/generated)")
    ap.add_argument("--results", default=None, help="results root (default: results/ or $ADAPTIVE_LORA_RESULTS)")
    a = ap.parse_args(argv)
    try:
        files = build(Path(a.results) if a.results else None)
    except IncompleteResults as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(a.out)
    if a.check:
        bad = stale(files, out)
        for name in bad:
            print(f"stale: {out / name} differs from a regeneration (run `make paper`)", file=sys.stderr)
        return 1 if bad else 0
    for p in write(files, out):
        print(f"wrote {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
