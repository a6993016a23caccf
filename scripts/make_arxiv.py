#!/usr/bin/env python
"""Pack the paper for arXiv: ``paper/build/arxiv.tar.gz`` with exactly the files a build reads, plus the .bbl.

    python scripts/make_arxiv.py [--paper paper] [--build paper/build] [--out paper/build/arxiv.tar.gz]

Run after a build (``make arxiv`` runs ``make paper`` first). The file list comes from the build's recorder file
(``main.fls``: every file pdflatex opened) restricted to the paper folder, so the tarball holds main.tex, the
sections, the generated tables and numbers and the figures actually included, and nothing else (no .aux, .log,
unused figures or YAML). The bibliography goes in as ``main.bbl`` (arXiv does not run BibTeX). The archive is
deterministic: sorted names, mtime 0, owner 0. tests/test_paper.py compiles it in an empty folder.
"""
from __future__ import annotations

import argparse
import gzip
import io
import sys
import tarfile
from pathlib import Path

PAPER = Path(__file__).resolve().parents[1] / "paper"
JUNK = (".aux", ".log", ".fls", ".fdb_latexmk", ".out", ".blg", ".synctex.gz", ".toc", ".pdf~")


def source_files(paper: Path, build: Path) -> list[Path]:
    """Paper files read by the build, relative to ``paper`` (from ``build/main.fls``)."""
    fls = build / "main.fls"
    if not fls.exists():
        raise SystemExit(f"{fls} not found: build the paper first (make paper)")
    pwd = None
    files = set()
    for line in fls.read_text().splitlines():
        if line.startswith("PWD "):
            pwd = Path(line[4:])
        elif line.startswith("INPUT "):
            p = Path(line[6:])
            if not p.is_absolute():
                p = (pwd or paper) / p
            p = p.resolve()
            try:
                rel = p.relative_to(paper.resolve())
            except ValueError:
                continue  # a TeX Live file
            if rel.parts and rel.parts[0] == build.resolve().relative_to(paper.resolve()).parts[0]:
                continue  # the build's own outputs (aux, bbl, out)
            if p.is_file() and p.suffix not in JUNK:
                files.add(rel)
    return sorted(files)


def make_tarball(paper: Path, build: Path, out: Path) -> list[str]:
    files = source_files(paper, build)
    bbl = build / "main.bbl"
    if not bbl.exists():
        raise SystemExit(f"{bbl} not found: the build did not run BibTeX")
    members = [(str(f), (paper / f).read_bytes()) for f in files] + [("main.bbl", bbl.read_bytes())]
    members.sort()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
            tar.addfile(info, io.BytesIO(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
        gz.write(raw.getvalue())
    return [name for name, _ in members]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paper", default=str(PAPER))
    ap.add_argument("--build", default=None, help="build folder (default: <paper>/build)")
    ap.add_argument("--out", default=None, help="tarball (default: <build>/arxiv.tar.gz)")
    a = ap.parse_args(argv)
    paper = Path(a.paper)
    build = Path(a.build) if a.build else paper / "build"
    out = Path(a.out) if a.out else build / "arxiv.tar.gz"
    names = make_tarball(paper, build, out)
    print(f"wrote {out} ({len(names)} files: {', '.join(names)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
