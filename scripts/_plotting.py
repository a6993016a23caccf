"""Shared helpers of the fig_*.py scripts: arguments, loading results, picking a budget group, saving PDF + PNG."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from adaptive_lora.report import REFERENCE, group_key, summarize  # noqa: E402
from adaptive_lora.results import ROOT, load_results, results_root  # noqa: E402

DEFAULT_OUT = ROOT / "paper" / "figures"


def parse_args(description: str, argv=None, budget: bool = False, extra=None) -> argparse.Namespace:
    """--exp, --out (and --budget); ``extra(parser)`` adds a script's own options."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--exp", default="pilot", help="experiment name (results/<exp>/; ADAPTIVE_LORA_RESULTS moves it)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the PDF and PNG")
    if budget:
        ap.add_argument("--budget", default=None, help="budget group to plot (default: the one with most strategies)")
    if extra is not None:
        extra(ap)
    return ap.parse_args(argv)


def skip(msg: str) -> int:
    print(f"skip: {msg}", file=sys.stderr)
    return 0


def load(exp: str) -> list[dict]:
    """Finished results of an experiment (an empty list, with a message, when there are none)."""
    results = [r for r in load_results(exp) if isinstance(r.get("config"), dict) and "eval_loss" in r]
    if not results:
        print(f"no results in {results_root() / exp}/", file=sys.stderr)
    return results


def pick_group(results: list[dict], budget: str | None = None) -> tuple[tuple, list[dict]] | tuple[None, list]:
    """The (model, data, budget) group with most strategies (ties: most runs, then first), or the asked budget."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault(group_key(r), []).append(r)
    if budget is not None:
        groups = {k: v for k, v in groups.items() if k[2] == budget}
    if not groups:
        return None, []
    key = max(groups, key=lambda k: (len({r["config"]["strategy"] for r in groups[k]}), len(groups[k])))
    return key, groups[key]


def strategies_in_order(results: list[dict]) -> list[str]:
    names = sorted({r["config"]["strategy"] for r in results})
    return ([REFERENCE] if REFERENCE in names else []) + [s for s in names if s != REFERENCE]


def colors(strategies: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {s: cmap(i % 10) for i, s in enumerate(strategies)}


def save(fig, out: str | Path, name: str) -> list[Path]:
    """Write <out>/<name>.pdf and .png (PDF without a creation date, so reruns give the same file)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    fig.savefig(paths[0], bbox_inches="tight", metadata={"CreationDate": None, "ModDate": None})
    fig.savefig(paths[1], bbox_inches="tight", dpi=200)
    plt.close(fig)
    for p in paths:
        print(f"wrote {os.path.relpath(p)}")
    return paths


__all__ = ["parse_args", "skip", "load", "pick_group", "strategies_in_order", "colors", "save", "summarize", "plt"]
