#!/usr/bin/env python
"""Write the paper's generated LaTeX from the committed results: ``paper/generated/numbers.tex`` (one
``\\newcommand`` per number or result-dependent sentence) and the tables the paper inputs from ``generated/``.

    python scripts/make_paper_numbers.py            # (re)write paper/generated/*
    python scripts/make_paper_numbers.py --check    # exit 1 when a committed file differs from a regeneration

Sources, and nothing else: ``results/<exp>/*.json`` (``ADAPTIVE_LORA_RESULTS`` moves the root), the grid file
``experiments/pilot.yaml`` (what is planned), ``paper/prior_work.yaml`` (the prior work's printed numbers),
``paper/metadata.yaml`` (title page), and the code itself (``RunConfig`` defaults, model specs, the data-free
strategies' rank maps). Output is deterministic: macros sorted by name, fixed number formats, no timestamps, so a
regeneration from the same inputs gives the same bytes, which tests/test_paper.py checks.

Macro names are letters only (LaTeX): digits are spelled out (``r8`` -> ``REight``) and strategy names are
camel-cased (``shuffled:weight_norm`` -> ``ShuffledWeightNorm``). Whatever is missing degrades to ``n/a``,
"not yet run" or "not yet tested"; null results are stated as such.

Statistics (the same definitions as ``adaptive_lora.report``, re-implemented here so the paper does not depend on
that module's presentation): mean and 95 % t-interval over seeds; paired difference strategy - uniform at the same
seed (negative = lower loss than uniform) with its t-interval and two-sided paired t-test; Holm's correction over
the strategies tested at the same budget; significant = Holm-corrected p < 0.05.
"""
from __future__ import annotations

import argparse
import json
import re
import math
import sys
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAPER = ROOT / "paper"
GENERATED = PAPER / "generated"
FIGURES = PAPER / "figures"
GRID = ROOT / "experiments" / "pilot.yaml"
MAIN_EXP = "pilot"
DEFAULT_EXP = "default"
MAIN_BUDGET = "r8"
MODEL = "smollm2-135m"
REFERENCE = "uniform"
ALPHA = 0.05
CONF = 0.95
NA = "n/a"

# files this script owns in paper/generated/ (strategy_table.* belongs to `adaptive-lora report`)
OUTPUTS = ("numbers.tex", "prior_work_table.tex", "budget_table.tex", "runs_table.tex", "rank_maps.tex",
           "scaling_ablation.tex", "prior_replication.tex", "main_lr_figure.tex")
KIND_SHORT = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "gate_proj": "gate", "up_proj": "up",
              "down_proj": "down", "c_attn": "c\\_attn", "c_proj": "c\\_proj", "c_fc": "c\\_fc"}

# ------------------------------------------------------------------------------------------------ formatting
_ONES = ["Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten", "Eleven", "Twelve",
         "Thirteen", "Fourteen", "Fifteen", "Sixteen", "Seventeen", "Eighteen", "Nineteen"]
_TENS = ["", "", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety"]


def number_word(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + (_ONES[n % 10] if n % 10 else "")
    if n < 1000:
        return _ONES[n // 100] + "Hundred" + (number_word(n % 100) if n % 100 else "")
    if n < 1_000_000:
        return number_word(n // 1000) + "Thousand" + (number_word(n % 1000) if n % 1000 else "")
    return number_word(n // 1_000_000) + "Million" + (number_word(n % 1_000_000) if n % 1_000_000 else "")


def camel(text: str) -> str:
    """Any identifier -> letters-only CamelCase: 'shuffled:weight_norm' -> 'ShuffledWeightNorm', 'r8' -> 'REight',
    '1.5M' -> 'OnePointFiveM'."""
    import re

    out = []
    for tok in re.findall(r"[A-Za-z]+|\d+|\.", str(text)):
        if tok == ".":
            out.append("Point")
        elif tok.isdigit():
            out.append(number_word(int(tok)))
        else:
            out.append(tok[0].upper() + tok[1:].lower())
    return "".join(out)


def finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def tex_int(n) -> str:
    return f"{int(round(n)):,}".replace(",", "{,}") if finite(n) else NA


def tex_num(x, digits: int = 4) -> str:
    return f"{x:.{digits}f}" if finite(x) else NA


def tex_signed(x, digits: int = 4) -> str:
    if not finite(x):
        return NA
    return f"${'+' if x >= 0 else '-'}{abs(x):.{digits}f}$"


def tex_interval(lo, hi, digits: int = 4, signed: bool = False) -> str:
    if not (finite(lo) and finite(hi)):
        return NA
    f = (lambda v: f"{'+' if v >= 0 else '-'}{abs(v):.{digits}f}") if signed else (lambda v: f"{v:.{digits}f}")
    return f"$[{f(lo)}, {f(hi)}]$"


def p_value(p) -> str:
    """'0.43', '0.004', '< 0.001' (no math mode)."""
    if not finite(p):
        return NA
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def p_math(p, sub: str = "") -> str:
    s = p_value(p)
    name = f"p_{{\\mathrm{{{sub}}}}}" if sub else "p"
    return f"${name} {s}$" if s.startswith("<") else f"${name} = {s}$"


def millions(n) -> str:
    return f"{n / 1e6:.2f}M" if finite(n) else NA


def tt(name: str) -> str:
    return "\\texttt{" + str(name).replace("_", "\\_") + "}"


def escape(s: str) -> str:
    repl = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(repl.get(c, c) for c in str(s))


def join_words(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + (", and " if len(items) > 2 else " and ") + items[-1]


# ------------------------------------------------------------------------------------------------ statistics
def mean_ci(values: list[float]) -> dict:
    """adaptive_lora.report.mean_ci (the one implementation of the statistics), with this script's key names."""
    from adaptive_lora.report import mean_ci as report_mean_ci

    r = report_mean_ci(values, CONF)
    return {"n": r["n"], "mean": r["mean"], "std": r["std"], "lo": r["ci_low"], "hi": r["ci_high"], "half": r["half"]}


def paired(a: list[float], b: list[float]) -> dict:
    """a - b paired, via adaptive_lora.report.paired_test: mean difference, its t-interval, two-sided paired
    t-test p (NaN when n < 2 or when the differences have no spread), so the paper and summary.md agree."""
    from adaptive_lora.report import paired_test

    r = paired_test(a, b, CONF)
    return {"n": r["n_pairs"], "diff": r["diff_mean"], "lo": r["diff_ci_low"], "hi": r["diff_ci_high"], "p": r["p"]}


def holm(pvalues: list[float]) -> list[float]:
    from adaptive_lora.report import holm as report_holm

    return report_holm(pvalues)


# ------------------------------------------------------------------------------------------------ inputs
def results_root() -> Path:
    from adaptive_lora.results import results_root as rr
    return rr()


def load_experiments(root: Path) -> dict[str, list[dict]]:
    """{experiment: finished results, sorted by run id}; files that are not result dicts are skipped."""
    out: dict[str, list[dict]] = {}
    if not root.is_dir():
        return out
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        rs = []
        for f in sorted(d.glob("*.json")):
            try:
                r = json.loads(f.read_text())
            except (OSError, ValueError):
                print(f"warning: {f} is not valid JSON, skipped", file=sys.stderr)
                continue
            if isinstance(r, dict) and isinstance(r.get("config"), dict) and finite(r.get("eval_loss")):
                rs.append(r)
        if rs:
            out[d.name] = sorted(rs, key=lambda r: str(r.get("run_id")))
    return out


def planned_cells(grid_path: Path = GRID) -> tuple[list[tuple[str, str, int]], dict]:
    """(strategy, budget, seed) cells of the grid file (cartesian product per block), and its defaults."""
    import itertools

    import yaml

    if not grid_path.exists():
        return [], {}
    doc = yaml.safe_load(grid_path.read_text()) or {}
    blocks = doc.get("grid") or [{}]
    if isinstance(blocks, dict):
        blocks = [blocks]
    cells = []
    for block in blocks:
        keys = list(block)
        vals = [v if isinstance(v, list) else [v] for v in block.values()]
        for combo in itertools.product(*vals):
            c = dict(zip(keys, combo))
            cell = (str(c.get("strategy", REFERENCE)), str(c.get("budget", MAIN_BUDGET)), int(c.get("seed", 0)))
            if cell not in cells:
                cells.append(cell)
    return cells, doc.get("defaults") or {}


def config_defaults() -> dict:
    """RunConfig's field defaults, read without constructing one (construction resolves 'auto' per machine)."""
    from dataclasses import MISSING

    from adaptive_lora.config import RunConfig

    return {f.name: f.default for f in fields(RunConfig) if f.default is not MISSING}


def per_rank_count(spec) -> int:
    return sum(m.params_per_rank for m in spec.modules)


def base_model_params(name: str) -> int:
    """All parameters of the base model (tied embeddings once), counted on the meta device from its config."""
    import torch
    from transformers import AutoModelForCausalLM

    from adaptive_lora.models import REGISTRY

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(REGISTRY[name].config())
    return sum(p.numel() for p in model.parameters())


def budget_key(budget: str, spec) -> tuple:
    from adaptive_lora.budget import parse_budget
    try:
        return (parse_budget(budget, spec), budget)
    except Exception:
        return (math.inf, budget)


# ------------------------------------------------------------------------------------------------ the pilot
class Cell:
    """One (strategy, budget) of an experiment: its runs by seed."""

    def __init__(self, strategy: str, budget: str):
        self.strategy, self.budget = strategy, budget
        self.runs: dict[int, dict] = {}

    def add(self, r: dict) -> None:
        seed = int(r["config"].get("seed", 0))
        if seed in self.runs:
            print(f"warning: two results for {self.strategy} {self.budget} seed {seed}; kept "
                  f"{self.runs[seed]['run_id']}", file=sys.stderr)
            return
        self.runs[seed] = r

    @property
    def seeds(self) -> list[int]:
        return sorted(self.runs)

    def values(self, key: str) -> list[float]:
        return [self.runs[s][key] for s in self.seeds if finite(self.runs[s].get(key))]


def cells_of(results: list[dict]) -> dict[tuple[str, str], Cell]:
    cells: dict[tuple[str, str], Cell] = {}
    for r in results:
        c = r["config"]
        key = (str(c.get("strategy")), str(c.get("budget")))
        cells.setdefault(key, Cell(*key)).add(r)
    return cells


def compare(cells: dict[tuple[str, str], Cell], budget: str) -> dict[str, dict]:
    """Paired comparison of every strategy at ``budget`` with uniform at the same seeds, Holm over strategies."""
    ref = cells.get((REFERENCE, budget))
    out = {}
    for (strat, b), cell in sorted(cells.items()):
        if b != budget or strat == REFERENCE:
            continue
        common = [s for s in cell.seeds if ref is not None and s in ref.runs]
        a = [cell.runs[s]["eval_loss"] for s in common]
        u = [ref.runs[s]["eval_loss"] for s in common]
        out[strat] = paired(a, u) if common else {"n": 0, "diff": math.nan, "lo": math.nan, "hi": math.nan,
                                                  "p": math.nan}
    names = sorted(out)
    for name, ph in zip(names, holm([out[n]["p"] for n in names])):
        out[name]["p_holm"] = ph
        out[name]["m"] = sum(1 for n in names if finite(out[n]["p"]))
    return out


def verdict(cmp: dict | None, against: str = "uniform") -> tuple[str, str]:
    """(code, sentence): code in better / worse / same / untested / degenerate."""
    if cmp is None or cmp["n"] < 2:
        n = 0 if cmp is None else cmp["n"]
        return "untested", f"not yet tested against {against} ($n = {n}$ paired seeds; at least 2 are needed)"
    detail = (f"$\\Delta$ loss {tex_signed(cmp['diff'])}, 95\\,\\% CI {tex_interval(cmp['lo'], cmp['hi'], signed=True)}, "
              f"{p_math(cmp.get('p_holm', cmp['p']), 'Holm' if 'p_holm' in cmp else '')}, $n = {cmp['n']}$")
    p = cmp.get("p_holm", cmp["p"])
    if not finite(p):
        return "degenerate", (f"identical to {against} on every paired seed, so no test is possible "
                              f"($\\Delta$ loss {tex_signed(cmp['diff'])}, $n = {cmp['n']}$)")
    if p < ALPHA:
        word = "better" if cmp["diff"] < 0 else "worse"
        return word, f"significantly {word} than {against} ({detail})"
    return "same", f"not significantly different from {against} ({detail})"


# ------------------------------------------------------------------------------------------------ tables
def tabular(spec: str, header: list[str], rows: list[list[str]]) -> str:
    out = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule", " & ".join(header) + " \\\\", "\\midrule"]
    out += [" & ".join(r) + " \\\\" for r in rows]
    out += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(out)


def float_table(caption: str, label: str, body: str, size: str = "\\small") -> str:
    return "\n".join(["\\begin{table}[htbp]", "\\centering", size, f"\\caption{{{caption}}}\\label{{{label}}}",
                      body, "\\end{table}"])


HEADER = "% generated by scripts/make_paper_numbers.py from {src} -- do not edit\n"


def prior_work_table(prior: dict, counts: dict) -> str:
    rows = []
    for key, row in prior["rows"].items():
        rows.append([row["label"], ", ".join(tt(t) for t in row["targets"]), escape(row["reported_params"]),
                     tex_int(counts[key]), "yes" if counts[key + "_matches"] else "no"])
    rows.append(["attention only (true)", ", ".join(tt(t) for t in prior["true_attention_only_targets"]), "--",
                 tex_int(counts["true_attention_only"]), "--"])
    body = tabular("llrrl", ["Row", "PEFT targets", "Printed", "Exact count", "Match"], rows)
    cap = (f"The prior work's parameter counts (DialoGPT-medium, rank {prior['rank']}) recomputed with "
           "\\texttt{adaptive\\_lora.models.model\\_spec}: PEFT's list targets match module names by suffix, so "
           "its ``attention only'' row also adapted \\texttt{mlp.c\\_proj}. Printed values from "
           "\\texttt{paper/prior\\_work.yaml}.")
    return HEADER.format(src="paper/prior_work.yaml and the model spec") + float_table(cap, "tab:prior-counts", body) + "\n"


def budget_table(spec, budgets: list[str], maps: dict[str, dict], budget: int) -> str:
    from adaptive_lora.budget import parse_budget

    rows = [[tt(b), f"{parse_budget(b, spec) // sum(m.params_per_rank for m in spec.modules)}",
             tex_int(parse_budget(b, spec))] for b in budgets]
    body1 = tabular("lrr", ["Budget", "Uniform rank", "Parameters"], rows)
    rows2 = []
    for name, m in maps.items():
        count = spec.count(m)
        ranks = list(m.values())
        dev = (count - budget) / budget * 100
        rows2.append([tt(name), tex_int(count), f"{'$-$' if dev < 0 else '+'}{abs(dev):.2f}\\,\\%",
                      f"{min(ranks)}" if min(ranks) == max(ranks) else f"{min(ranks)}--{max(ranks)}"])
    body2 = tabular("lrrr", ["Strategy", "Exact count", "vs.\\ budget", "Ranks"], rows2)
    cap = (f"Budgets on SmolLM2-135M (left: $r_N$ = the count of uniform rank $N$ on all "
           f"{len(spec.modules)} adapted modules) and the exact trainable counts of the data-free strategies at "
           f"{tt(MAIN_BUDGET)} (right), computed by the allocation code.")
    body = body1 + "\n\\hspace{2em}\n" + body2
    return HEADER.format(src="the model spec and the allocation code") + float_table(cap, "tab:budgets", body) + "\n"


def runs_table(exps: dict[str, list[dict]], spec) -> str:
    """Every committed run once: a run committed under several experiments (the main job's ``default`` run is
    also a pilot cell) is one row that names them all, listed with its first experiment other than ``default``."""
    where: dict[str, list[str]] = {}
    first: dict[str, tuple[str, dict]] = {}
    for exp, rs in sorted(exps.items(), key=lambda kv: (kv[0] == DEFAULT_EXP, kv[0])):
        for r in rs:
            rid = str(r.get("run_id"))
            where.setdefault(rid, []).append(exp)
            first.setdefault(rid, (exp, r))
    rows = []
    for rid, (exp, r) in sorted(first.items(), key=lambda kv: (
            kv[1][0] == DEFAULT_EXP, kv[1][0], budget_key(str(kv[1][1]["config"].get("budget")), spec),
            str(kv[1][1]["config"].get("strategy")), int(kv[1][1]["config"].get("seed", 0)), kv[0])):
        c = r["config"]
        secs = r.get("train_seconds")
        rows.append([", ".join(tt(e) for e in where[rid]), tt(c.get("strategy")), tt(c.get("budget")),
                     str(c.get("seed")), tex_int(r.get("trainable_params")), tex_num(r.get("eval_loss")),
                     tex_num(math.exp(r["eval_loss"]), 2) if finite(r.get("eval_loss")) else NA,
                     tex_num(secs / 60, 1) if finite(secs) else NA])
    if not rows:
        return HEADER.format(src="results/") + ("\\noindent\\emph{No run has been committed under "
                                                "\\texttt{results/} yet, so there is no per-run table.}\n")
    body = tabular("lllrrrrr", ["Experiment", "Strategy", "Budget", "Seed", "Trainable", "Eval loss",
                                "PPL", "Train min"], rows)
    cap = ("Every committed run (\\texttt{results/<experiment>/*.json}), each once: a run committed under two "
           "experiments is one row naming both. PPL $= \\exp(\\text{eval loss})$; AdaLoRA's trainable count is its "
           "final count.") if any(len(v) > 1 for v in where.values()) else (
           "Every committed run (\\texttt{results/<experiment>/*.json}). PPL $= \\exp(\\text{eval loss})$; "
           "AdaLoRA's trainable count is its final count.")
    return HEADER.format(src="results/") + float_table(cap, "tab:runs", body, "\\scriptsize") + "\n"


def compress_ranks(ranks: list[int]) -> str:
    """A block's ranks in kind order, runs of equal ranks written once with their length: [14,14,14,14,5,5,5] ->
    '14x4 5x3' (typeset with a times sign); all equal -> the single rank."""
    if len(set(ranks)) == 1:
        return str(ranks[0])
    runs: list[list[int]] = []
    for r in ranks:
        if runs and runs[-1][0] == r:
            runs[-1][1] += 1
        else:
            runs.append([r, 1])
    return " ".join(f"{r}$\\times${n}" if n > 1 else str(r) for r, n in runs)


def rank_maps_table(spec, maps: dict[str, tuple[dict, str]]) -> str:
    """One table: a row per block, a column per strategy, each cell the block's ranks (compressed)."""
    names = list(maps)
    by_layer: dict[str, dict[int, list[int]]] = {}
    for name, (rank_map, _) in maps.items():
        layers: dict[int, list[int]] = {}
        for m in spec.modules:  # spec order = kind order within a block
            layers.setdefault(m.layer, []).append(int(rank_map.get(m.name, 0)))
        by_layer[name] = layers
    layers = sorted({m.layer for m in spec.modules})
    rows = [[str(layer)] + [compress_ranks(by_layer[n][layer]) for n in names] for layer in layers]
    rows.append(["Parameters"] + [tex_int(spec.count(maps[n][0])) for n in names])
    body = tabular("r" + "l" * len(names), ["Block"] + [tt(n) for n in names], rows)
    kinds = ", ".join(KIND_SHORT.get(k.rsplit(".", 1)[-1], escape(k)) for k in spec.kinds)
    sources = "; ".join(f"{tt(n)}: {src}" for n, (_, src) in maps.items())
    cap = (f"Rank maps of the pilot's strategies at {tt(MAIN_BUDGET)}, one row per block. A cell lists the ranks of "
           f"the block's projections in the order {kinds}; $r\\times n$ stands for $n$ consecutive projections of "
           f"rank $r$, and a single number for the same rank on all of them. Sources: {sources}.")
    return float_table(cap, "tab:rank-maps", "\\setlength{\\tabcolsep}{4pt}\n" + body, "\\scriptsize")


# ------------------------------------------------------------------------------------------------ build
def build(results_dir: Path | None = None) -> dict[str, str]:
    """All generated files: {file name in paper/generated/: content}. Pure apart from reading the inputs."""
    import yaml

    from adaptive_lora.budget import TOLERANCE, parse_budget
    from adaptive_lora.models import model_spec
    from adaptive_lora.strategies import build_rank_map, get_strategy

    root = results_dir or results_root()
    exps = load_experiments(root)
    meta = yaml.safe_load((PAPER / "metadata.yaml").read_text())
    prior = yaml.safe_load((PAPER / "prior_work.yaml").read_text())
    cells_planned, grid_defaults = planned_cells()
    defaults = config_defaults()
    spec = model_spec(MODEL)
    budget_main = parse_budget(MAIN_BUDGET, spec)
    M: dict[str, str] = {}

    # --- title page
    # \\@ after a capital that ends a phrase, so that TeX does not take the space after "LoRA:" for an
    # inter-sentence space (chktex warning 13)
    M["PaperTitle"] = re.sub(r"([A-Z])([.:])", r"\1\\@\2", escape(meta["title"]))
    M["PaperShortTitle"] = escape(meta.get("short_title", meta["title"]))
    M["PaperAuthors"] = " \\and ".join(escape(a["name"]) for a in meta["authors"])
    M["PaperAuthorsPlain"] = join_words([escape(a["name"]) for a in meta["authors"]])
    M["PaperAuthorBlock"] = " \\and ".join(f"{escape(a['name'])}\\\\ {escape(a['affiliation'])}"
                                          for a in meta["authors"])
    M["PaperAffiliations"] = "; ".join(dict.fromkeys(escape(a["affiliation"]) for a in meta["authors"]))

    # --- protocol (code + grid file, not results)
    planned_strats = list(dict.fromkeys(s for s, b, _ in cells_planned if b == MAIN_BUDGET))
    planned_budgets = sorted({b for _, b, _ in cells_planned}, key=lambda b: budget_key(b, spec))
    planned_seeds = sorted({s for st, b, s in cells_planned if b == MAIN_BUDGET})
    M["HyperLearningRate"] = f"${defaults['lr'] / 10 ** math.floor(math.log10(defaults['lr'])):g} \\times 10^{{{math.floor(math.log10(defaults['lr']))}}}$"
    M["HyperBatchSize"] = str(defaults["batch_size"])
    M["HyperMaxLength"] = str(defaults["max_length"])
    M["HyperDropout"] = f"{defaults['lora_dropout']:g}"
    M["HyperWeightDecay"] = f"{defaults['weight_decay']:g}"
    M["HyperWarmup"] = f"{defaults['warmup_ratio'] * 100:g}\\,\\%"
    M["HyperGradClip"] = f"{defaults['max_grad_norm']:.1f}"
    M["HyperEpochs"] = f"{grid_defaults.get('epochs', defaults['epochs']):g}"
    M["HyperTrainExamples"] = tex_int(grid_defaults.get("train_examples", defaults["train_examples"]))
    M["HyperPrecision"] = escape(grid_defaults.get("precision", defaults["precision"]))
    M["PilotPlannedStrategies"] = str(len(planned_strats))
    M["PilotPlannedSeeds"] = str(len(planned_seeds))
    M["PilotPlannedStrategyList"] = join_words([tt(s) for s in planned_strats]) or NA
    M["PilotPlannedBudgetList"] = join_words([tt(b) for b in planned_budgets]) or NA
    M["BudgetTolerance"] = f"{TOLERANCE * 100:g}\\,\\%"
    M["BudgetToleranceFraction"] = f"{TOLERANCE:g}"
    M["MainBudget"] = tt(MAIN_BUDGET)
    M["SignificanceLevel"] = f"{ALPHA:g}"

    # --- data (the committed subsets' manifest)
    manifest = json.loads((ROOT / "data" / "manifest.json").read_text())
    for path, entry in sorted(manifest.items()):
        M[f"Data{camel(path.removesuffix('.jsonl'))}"] = tex_int(entry["n"])
    M["DataPriorTrain"] = M.get("DataAlpacaPriorTrain", NA)
    M["DataPriorEval"] = M.get("DataAlpacaPriorEval", NA)
    prior_records = sum(manifest[k]["n"] for k in ("alpaca/prior_train.jsonl", "alpaca/prior_eval.jsonl")
                        if k in manifest)
    M["DataPriorRecords"] = tex_int(prior_records)

    # --- model spec and budgets
    per_rank = sum(m.params_per_rank for m in spec.modules)
    attn_per_rank = sum(m.params_per_rank for m in spec.modules if m.group == "attn")
    M["SmolLayers"] = str(spec.n_layers)
    M["SmolModules"] = str(len(spec.modules))
    M["SmolKinds"] = str(len(spec.kinds))
    M["SmolParamsPerRank"] = tex_int(per_rank)
    M["SmolAttnShare"] = f"{attn_per_rank / per_rank * 100:.1f}\\,\\%"
    for b in sorted(set(planned_budgets) | {"r2", "r4", "r8", "r16"}, key=lambda b: budget_key(b, spec)):
        M[f"Budget{camel(b)}Params"] = tex_int(parse_budget(b, spec))
    by_kind = {m.kind.rsplit(".", 1)[-1]: m for m in spec.modules}
    M["SmolWidth"] = str(by_kind["q_proj"].in_features)
    M["SmolFfnWidth"] = str(by_kind["gate_proj"].out_features)
    total = base_model_params(MODEL)
    M["SmolTotalParams"] = f"{total / 1e6:.1f}M"
    M["BudgetREightShare"] = f"{budget_main / total * 100:.1f}\\,\\%"

    # --- constants of the code that the method section states
    from adaptive_lora import allocation, peft_config

    M["DefaultMaxRank"] = str(allocation.DEFAULT_MAX_RANK)
    M["FixedAlpha"] = str(peft_config.FIXED_ALPHA)
    M["ConstantScale"] = f"{peft_config.alpha_for(8, 'constant') / 8:g}"
    M["LinearDecayRatio"] = f"{get_strategy('linear_decay').params['ratio']:g}"
    M["GroupFactor"] = f"{get_strategy('attn_heavy').params['k']:g}"
    target_r = round(budget_main / per_rank_count(spec))
    M["AdaloraTargetRank"] = str(target_r)
    M["AdaloraInitRank"] = str(max(target_r + 1, round(1.5 * target_r)))
    # the pilot's AdaLoRA schedule = the RunConfig defaults (protocol v2 sets its own in experiments/main*.yaml)
    M["AdaloraPruneStart"] = f"{defaults['adalora_tinit'] * 100:g}\\,\\%"
    M["AdaloraPruneEnd"] = f"{(1 - defaults['adalora_tfinal']) * 100:g}\\,\\%"

    # --- the prior work (DialoGPT-medium accounting)
    dspec = model_spec(prior["model"])
    rank = int(prior["rank"])
    counts = {}
    for key, row in prior["rows"].items():
        counts[key] = dspec.select(row["targets"]).uniform_count(rank)
        counts[key + "_matches"] = f"{counts[key] / 1e6:.2f}M" == str(row["reported_params"])
        M[f"PriorCount{camel(key)}"] = tex_int(counts[key])
        M[f"PriorPrinted{camel(key)}"] = escape(row["reported_params"])
    counts["true_attention_only"] = dspec.select(prior["true_attention_only_targets"]).uniform_count(rank)
    M["PriorCountTrueAttentionOnly"] = tex_int(counts["true_attention_only"])
    mlp_cproj = counts["attention_only"] - counts["true_attention_only"]
    M["PriorCountMlpCproj"] = tex_int(mlp_cproj)
    M["PriorMlpCprojShare"] = f"{mlp_cproj / counts['attention_only'] * 100:.1f}\\,\\%"
    M["PriorAttentionOverstatement"] = f"{counts['attention_only'] / counts['true_attention_only']:.2f}"
    M["PriorCountsAllMatch"] = "all three" if all(counts[k + "_matches"] for k in prior["rows"]) else "not all"
    M["PriorRank"] = str(rank)
    M["PriorAlpha"] = str(prior["alpha"])
    M["PriorLayers"] = str(dspec.n_layers)
    loss, ppl = float(prior["reported_loss"]), float(prior["reported_perplexity"])
    M["PriorLoss"] = f"{loss:g}"
    M["PriorPPL"] = tex_int(ppl)
    M["PriorExpLoss"] = f"{math.exp(loss):.1f}"
    M["PriorLogPPL"] = f"{math.log(ppl):.2f}"
    M["PriorPPLRatio"] = f"{ppl / math.exp(loss):.0f}"

    # --- the pilot
    pilot = [r for r in exps.get(MAIN_EXP, []) if r["config"].get("model") == MODEL]
    cells = cells_of(pilot)
    planned_keys = list(dict.fromkeys((s, b) for s, b, _ in cells_planned))
    all_keys = sorted(set(planned_keys) | set(cells), key=lambda k: (budget_key(k[1], spec), k[0]))
    present = {(str(r["config"].get("strategy")), str(r["config"].get("budget")), int(r["config"].get("seed", 0)))
               for r in pilot}
    M["PilotRuns"] = str(len(pilot))
    missing = sum(1 for c in cells_planned if c not in present)
    M["PilotStatus"] = ("not yet run (no result is committed under \\texttt{results/pilot/})" if not pilot else
                        "complete" if not missing else
                        f"partial: {len(present & set(cells_planned))} of the {len(cells_planned)} planned runs "
                        "are committed")
    M["PilotGridSentence"] = (
        f"The pilot grid is complete: all {len(cells_planned)} planned runs are committed." if pilot and not missing
        else f"The pilot grid is {M['PilotStatus']}, so statements in this paper cover only those runs, and "
             "sentences that depend on missing runs say so.")
    for strat, b in all_keys:
        cell = cells.get((strat, b), Cell(strat, b))
        st = mean_ci(cell.values("eval_loss"))
        pre = f"Pilot{camel(strat)}{camel(b)}"
        M[pre + "N"] = str(st["n"])
        M[pre + "Loss"] = tex_num(st["mean"])
        M[pre + "LossCI"] = tex_interval(st["lo"], st["hi"])
        M[pre + "LossHalfWidth"] = f"$\\pm {st['half']:.4f}$" if finite(st["half"]) else NA
        M[pre + "PPL"] = tex_num(math.exp(st["mean"]), 2) if finite(st["mean"]) else NA
        params = cell.values("trainable_params")
        M[pre + "Params"] = tex_int(sum(params) / len(params)) if params else NA
        secs = cell.values("train_seconds")
        M[pre + "TrainMinutes"] = tex_num(sum(secs) / len(secs) / 60, 1) if secs else NA
    comparisons = {b: compare(cells, b) for b in sorted({b for _, b in all_keys}, key=lambda b: budget_key(b, spec))}
    verdicts = {}
    for b, cmps in comparisons.items():
        for strat in sorted({s for s, bb in all_keys if bb == b and s != REFERENCE}):
            cmp = cmps.get(strat)
            pre = f"Pilot{camel(strat)}{camel(b)}"
            M[pre + "Diff"] = tex_signed(cmp["diff"]) if cmp else NA
            M[pre + "DiffCI"] = tex_interval(cmp["lo"], cmp["hi"], signed=True) if cmp else NA
            M[pre + "P"] = p_value(cmp["p"]) if cmp else NA
            M[pre + "PHolm"] = p_value(cmp["p_holm"]) if cmp else NA
            M[pre + "Pairs"] = str(cmp["n"]) if cmp else "0"
            if b == MAIN_BUDGET:
                code, sentence = verdict(cmp)
                verdicts[strat] = code
                M[f"Verdict{camel(strat)}"] = sentence
                M[f"VerdictCode{camel(strat)}"] = code
    tested = sorted(s for s, c in verdicts.items() if c != "untested")
    better = [s for s in tested if verdicts[s] == "better"]
    worse = [s for s in tested if verdicts[s] == "worse"]
    same = [s for s in tested if verdicts[s] in ("same", "degenerate")]
    untested = sorted(s for s, c in verdicts.items() if c == "untested")
    m_tested = max((c.get("m", 0) for c in comparisons.get(MAIN_BUDGET, {}).values()), default=0)
    M["PilotTestedStrategies"] = str(len(tested))
    M["PilotComparisons"] = str(m_tested)
    if not tested:
        headline = ("no allocation strategy has yet been compared with uniform rank, because the pilot grid is "
                    + M["PilotStatus"])
    else:
        def were(names: list[str]) -> str:
            return f"{join_words([tt(s) for s in names])} {'was' if len(names) == 1 else 'were'}"

        parts = []
        if better:
            parts.append(f"{were(better)} significantly better than uniform rank")
        if worse:
            parts.append(f"{were(worse)} significantly worse")
        if same:
            parts.append(f"{were(same)} not significantly different from uniform rank")
        headline = (f"after Holm's correction over the {len(tested)} strateg{'ies' if len(tested) != 1 else 'y'} "
                    f"tested at {tt(MAIN_BUDGET)}, " + "; ".join(parts))
        if untested:
            headline += f", while {were(untested)} not yet tested"
    M["PilotHeadline"] = headline
    # seed spread against strategy differences, and the seeds the main grid needs (adaptive_lora.report)
    from adaptive_lora.report import seed_spread, seed_spread_text

    spread = next((r for r in seed_spread(pilot) if r["budget"] == MAIN_BUDGET), None)
    M["PilotSeedSpread"] = seed_spread_text(spread, latex=True)
    # guideline for practitioners, conditional on the verdicts
    if better:
        best = min(better, key=lambda s: comparisons[MAIN_BUDGET][s]["diff"])
        M["GuidelineAllocation"] = (
            f"At a fixed budget, try {tt(best)} before uniform rank: it lowered the held-out loss by "
            f"{-comparisons[MAIN_BUDGET][best]['diff']:.4f} nats on average in our "
            f"pilot ({100 * (1 - math.exp(comparisons[MAIN_BUDGET][best]['diff'])):.1f}\\,\\% lower perplexity), "
            "a difference that survived Holm's correction but is small; check that it transfers to your model and task, "
            "since our evidence comes from one small model and one task family.")
    elif tested:
        M["GuidelineAllocation"] = (
            "Keep uniform rank as the default: none of the non-uniform allocations we tested beat it at the same "
            "parameter budget, so the extra machinery of a layerwise allocation buys nothing measurable at this "
            "scale" + (f" (and {join_words([tt(s) for s in worse])} made the loss significantly worse)"
                       if worse else "") + ".")
    else:
        M["GuidelineAllocation"] = (
            "Use uniform rank as the default until a layerwise allocation has been shown to beat it at the same "
            "parameter budget; the pilot comparison that would show this has not been run yet.")
    # the shuffled-rank control: weight_norm against its own ranks permuted across layers
    ctrl_name = next((s for s in sorted({s for s, _ in all_keys}) if s.startswith("shuffled:")), None)
    inner = ctrl_name.split(":", 1)[1] if ctrl_name else None
    ctrl_cmp = None
    if ctrl_name and (inner, MAIN_BUDGET) in cells and (ctrl_name, MAIN_BUDGET) in cells:
        a, c = cells[(inner, MAIN_BUDGET)], cells[(ctrl_name, MAIN_BUDGET)]
        common = [s for s in a.seeds if s in c.runs]
        if common:
            ctrl_cmp = paired([a.runs[s]["eval_loss"] for s in common], [c.runs[s]["eval_loss"] for s in common])
    code, sentence = verdict(ctrl_cmp, f"its shuffled control" if inner else "its control")
    M["ShuffledControlInner"] = tt(inner) if inner else NA
    M["ShuffledControlName"] = tt(ctrl_name) if ctrl_name else NA
    M["VerdictShuffledControl"] = sentence
    M["VerdictCodeShuffledControl"] = code
    if code == "better":
        M["GuidelinePlacement"] = (f"Where a layer profile helps, check it against the same ranks shuffled across "
                                   f"layers: in our pilot {tt(inner)} was {sentence}, so its placement, not only "
                                   "its rank distribution, carried the effect.")
    elif code == "worse":
        # worse than its own shuffle: the profile put rank in the wrong layers; say so, not "carried the effect"
        M["GuidelinePlacement"] = (f"Check a layer profile against the same ranks shuffled across layers: in our "
                                   f"pilot {tt(inner)} was {sentence}, so placing its ranks by the profile hurt; "
                                   "the same ranks did better in random layers.")
    elif code in ("same", "degenerate"):
        M["GuidelinePlacement"] = (f"Test a layer profile against the same ranks shuffled across layers before "
                                   f"crediting the placement: in our pilot {tt(inner)} was {sentence}, so which "
                                   "layer receives which rank made no measurable difference.")
    else:
        M["GuidelinePlacement"] = ("Test any layer profile against the same ranks shuffled across layers before "
                                   "crediting the placement; our shuffled-rank control has not been run yet.")

    # the base model and the default run
    base = [r["base_eval_loss"] for r in pilot + exps.get(DEFAULT_EXP, []) if finite(r.get("base_eval_loss"))]
    M["BaseEvalLoss"] = tex_num(base[0]) if base else NA
    M["BaseEvalPPL"] = tex_num(math.exp(base[0]), 2) if base else NA
    default = sorted(exps.get(DEFAULT_EXP, []), key=lambda r: (r["config"].get("strategy") != REFERENCE,
                                                               r["config"].get("budget") != MAIN_BUDGET,
                                                               r["config"].get("seed", 0), r["run_id"]))
    d = default[0] if default else {}
    M["DefaultRuns"] = str(len(default))
    M["DefaultLoss"] = tex_num(d.get("eval_loss"))
    M["DefaultPPL"] = tex_num(math.exp(d["eval_loss"]), 2) if d else NA
    M["DefaultBaseLoss"] = tex_num(d.get("base_eval_loss"))
    M["DefaultParams"] = tex_int(d.get("trainable_params")) if d else NA
    M["DefaultTrainMinutes"] = tex_num(d["train_seconds"] / 60, 1) if finite(d.get("train_seconds")) else NA
    M["DefaultTokensPerSecond"] = tex_int(d.get("tokens_per_second")) if d else NA
    M["DefaultPeakMemoryGB"] = tex_num(d["peak_rss_mb"] / 1024, 1) if finite(d.get("peak_rss_mb")) else NA
    M["DefaultGain"] = (tex_num(d["base_eval_loss"] - d["eval_loss"], 3)
                        if finite(d.get("base_eval_loss")) and finite(d.get("eval_loss")) else NA)

    # provenance: hardware, packages, precision (over all runs of the pilot and the default experiment)
    runs = pilot + exps.get(DEFAULT_EXP, [])
    machines = sorted({json.dumps((r.get("provenance") or {}).get("machine") or {}, sort_keys=True) for r in runs}
                      - {"{}"})
    descs = []
    for mj in machines:
        m = json.loads(mj)
        descs.append(f"{escape(m.get('processor', 'unknown CPU'))} with {m.get('cpu_count', '?')} logical CPUs "
                     f"({m.get('torch_threads', '?')} PyTorch threads), {escape(m.get('platform', 'unknown OS'))}")
    M["Hardware"] = ("; ".join(descs) if descs else
                     "not recorded yet (no committed result carries \\texttt{provenance.machine})")
    M["HardwareMachines"] = str(len(descs))
    pins = {}  # the pinned environment, used only while no run records its versions
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line.strip())
        if m:
            pins[m[1].lower()] = m[2]
    for pkg in ("torch", "transformers", "peft", "python"):
        vers = sorted({(r.get("provenance") or {}).get("packages", {}).get(pkg) for r in runs} - {None})
        M[f"Version{camel(pkg)}"] = escape(", ".join(vers)) if vers else escape(pins.get(pkg, NA))
    precisions = sorted({str(r["config"].get("precision")) for r in runs})
    M["RunPrecision"] = escape(", ".join(precisions)) if precisions else M["HyperPrecision"]
    lora_runs = [r for r in runs if r["config"].get("strategy") not in ("adalora", "eva")
                 and finite(r.get("trainable_params")) and finite(r.get("budget_params"))]
    dev = [abs(r["trainable_params"] - r["budget_params"]) / r["budget_params"] * 100 for r in lora_runs]
    M["MaxBudgetDeviation"] = f"{max(dev):.2f}\\,\\%" if dev else NA
    commits = sorted({(r.get("provenance") or {}).get("git_commit") for r in runs} - {None})
    M["ResultCommits"] = str(len(commits))
    M["DirtyRuns"] = str(sum(1 for r in runs if (r.get("provenance") or {}).get("git_dirty")))

    # AdaLoRA's rank budget vs its parameter count
    ada = cells.get(("adalora", MAIN_BUDGET))
    finals = ada.values("final_params") if ada else []
    peaks = ada.values("peak_params") if ada else []
    M["AdaloraFinalParams"] = tex_int(sum(finals) / len(finals)) if finals else NA
    M["AdaloraPeakParams"] = tex_int(sum(peaks) / len(peaks)) if peaks else NA
    M["AdaloraFinalShare"] = (f"{sum(finals) / len(finals) / budget_main * 100:.1f}\\,\\%" if finals else NA)

    # --- result sentences (generated so that they read correctly whatever is committed)
    uni = cells.get((REFERENCE, MAIN_BUDGET))
    st = mean_ci(uni.values("eval_loss")) if uni else {"n": 0}
    if st["n"]:
        extra = f"95\\,\\% CI {tex_interval(st['lo'], st['hi'])}, " if st["n"] >= 2 else ""
        s = (f"Uniform rank at {tt(MAIN_BUDGET)} reached a held-out loss of {tex_num(st['mean'])} ({extra}"
             f"$n = {st['n']}$ seed{'s' if st['n'] != 1 else ''}; perplexity $\\exp(\\text{{loss}}) = "
             f"{math.exp(st['mean']):.2f}$)")
        if base:
            s += f", against {tex_num(base[0])} for the untrained base model"
        M["ResultUniformSentence"] = s + "."
    else:
        M["ResultUniformSentence"] = f"No uniform run at {tt(MAIN_BUDGET)} is committed yet."
    sweep = [(b, mean_ci(cells[(REFERENCE, b)].values("eval_loss"))["mean"])
             for b in sorted({b for s_, b in cells if s_ == REFERENCE}, key=lambda b: budget_key(b, spec))]
    sweep_planned = sorted({b for s_, b in planned_keys if s_ == REFERENCE}, key=lambda b: budget_key(b, spec))
    if len(sweep) >= 2:
        losses = [v for _, v in sweep]
        trend = ("decreased monotonically with the budget" if all(x > y for x, y in zip(losses, losses[1:]))
                 else "did not decrease monotonically with the budget")
        M["ResultBudgetSweepSentence"] = (
            f"Uniform rank's held-out loss at {join_words([tt(b) for b, _ in sweep])} was "
            f"{join_words([tex_num(v) for _, v in sweep])}, respectively: it {trend}"
            + (f" (still missing: {join_words([tt(b) for b in sweep_planned if b not in dict(sweep)])})"
               if any(b not in dict(sweep) for b in sweep_planned) else "") + ".")
    else:
        M["ResultBudgetSweepSentence"] = (f"The budget sweep of uniform rank ({join_words([tt(b) for b in sweep_planned])}) "
                                          "is not yet run." if sweep_planned else "No budget sweep is planned.")
    if finals:
        M["ResultAdaloraSentence"] = (
            f"AdaLoRA, which budgets ranks rather than parameters, ended with {tex_int(sum(finals) / len(finals))} "
            f"trainable parameters on average ({M['AdaloraFinalShare']} of the {tt(MAIN_BUDGET)} budget), after "
            f"starting from {M['AdaloraPeakParams']} at its initial rank.")
        # how far it moved from the base model, against uniform at the same seeds (both: base - trained)
        common = [sd for sd in ada.seeds if uni and sd in uni.runs]

        def gain(c: Cell) -> float:
            return sum(c.runs[sd]["base_eval_loss"] - c.runs[sd]["eval_loss"] for sd in common) / len(common)

        if common and gain(uni) > 0:
            share = gain(ada) / gain(uni)
            M["ResultAdaloraSentence"] += (
                f" With the shared learning rate and {tex_int(ada.runs[common[0]]['optimizer_steps'])} optimiser "
                f"steps it lowered the held-out loss by {tex_num(gain(ada))} nats from the base model, "
                f"{share * 100:.0f}\\,\\% of uniform rank's {tex_num(gain(uni))} at the same "
                f"seed{'s' if len(common) != 1 else ''}"
                + (". It barely left the base model, so this comparison says more about AdaLoRA's training budget "
                   "than about its allocation; a likely reason (not tested here) is PEFT's initialisation, "
                   "singular values at zero and singular vectors drawn with standard deviation 0.02, under which "
                   "Adam at this learning rate moves the update little in so few steps." if share < 0.5 else "."))
    else:
        M["ResultAdaloraSentence"] = "AdaLoRA's final and peak parameter counts are reported once its runs are committed."
    if d:
        M["ResultDefaultSentence"] = (
            f"The main job (uniform rank at {tt(MAIN_BUDGET)}, seed {d['config'].get('seed', 0)}) trained for "
            f"{M['DefaultTrainMinutes']} minutes at {M['DefaultTokensPerSecond']} tokens per second with a peak "
            f"resident memory of {M['DefaultPeakMemoryGB']}\\,GiB, and reached a held-out loss of {M['DefaultLoss']}"
            + (f", {M['DefaultGain']} nats below the untrained base model ({M['DefaultBaseLoss']})"
               if M["DefaultGain"] != NA else "") + ".")
    else:
        M["ResultDefaultSentence"] = "The main job's result (\\texttt{results/default/}) is not committed yet."

    # --- ablations found anywhere under results/
    all_runs = [r for rs in exps.values() for r in rs]
    scaling_runs = [r for r in all_runs if r["config"].get("scaling", "constant") != "constant"]
    prior_runs = [r for r in all_runs if r["config"].get("split") == "prior"]
    files: dict[str, str] = {}
    files["scaling_ablation.tex"], M["ScalingAblationStatus"] = ablation_table(
        scaling_runs, all_runs, "scaling", "tab:scaling", spec,
        "The scaling ablation (\\texttt{-{}-scaling rslora} and \\texttt{-{}-scaling fixed-alpha} against "
        "$\\alpha = 2r$)")
    files["prior_replication.tex"], M["PriorReplicationStatus"] = ablation_table(
        prior_runs, prior_runs, "prior", "tab:prior-replication", spec,
        "The replication of the prior work's setting (its 100/20-example Alpaca split, \\texttt{-{}-split prior})")

    # --- tables
    files["prior_work_table.tex"] = prior_work_table(prior, counts)
    def is_data_free(name: str) -> bool:
        if name in ("adalora", "eva"):  # baselines that allocate during training / from activations
            return False
        try:
            return not get_strategy(name).needs
        except Exception:  # a strategy the code no longer knows: only its recorded map can be shown
            return False

    data_free = [s for s in planned_strats if is_data_free(s)] or ["uniform"]
    maps = {s: build_rank_map(spec, budget_main, s) for s in data_free}
    files["budget_table.tex"] = budget_table(spec, [b for b in planned_budgets if b.startswith("r")] or ["r8"],
                                             maps, budget_main)
    files["runs_table.tex"] = runs_table(exps, spec)
    shown: dict[str, tuple[dict, str]] = {}
    pending = []
    for strat in planned_strats or sorted({s for s, b in cells if b == MAIN_BUDGET}):
        cell = cells.get((strat, MAIN_BUDGET))
        if cell and cell.runs and isinstance(cell.runs[cell.seeds[0]].get("rank_map"), dict):
            seed = cell.seeds[0]
            src = f"the seed-{seed} run" + (" (final ranks)" if strat == "adalora" else "")
            shown[strat] = (cell.runs[seed]["rank_map"], src)
        elif strat in maps:
            shown[strat] = (maps[strat], "the allocation code")
        else:
            pending.append(strat)
    parts = [HEADER.format(src="results/pilot/ and the allocation code").rstrip("\n")]
    if shown:
        parts.append(rank_maps_table(spec, shown))
    if pending:
        parts.append(f"The rank map{'s' if len(pending) > 1 else ''} of {join_words([tt(s) for s in pending])} "
                     f"depend{'' if len(pending) > 1 else 's'} on training or on statistics of the model and "
                     f"appear{'' if len(pending) > 1 else 's'} here once {'their runs are' if len(pending) > 1 else 'its run is'} committed.")
    files["rank_maps.tex"] = "\n\n".join(parts) + "\n"

    M["RankMapStrategies"] = str(len(planned_strats))
    M.update(main_grid_macros(exps))
    files["main_lr_figure.tex"] = main_lr_figure(FIGURES / "lr_curves.pdf")
    lines = [HEADER.format(src="results/, experiments/pilot.yaml, paper/prior_work.yaml, paper/metadata.yaml and "
                               "the code"),
             "% Every number in the paper that comes from a result or a computation is one of these macros.\n"]
    for name in sorted(M):
        if not name.isalpha():
            raise ValueError(f"macro name {name!r} is not letters only")
        value = M[name]
        if "\n" in value:
            raise ValueError(f"macro {name} spans lines")
        lines.append(f"\\newcommand{{\\{name}}}{{{value}}}")
    files["numbers.tex"] = "\n".join(lines) + "\n"
    return files


def fmt_lr(lr: float) -> str:
    """1e-3 -> $10^{-3}$, 3e-4 -> $3 \\times 10^{-4}$ (LaTeX math)."""
    e = math.floor(math.log10(lr) + 1e-9)
    m = lr / 10 ** e
    mant = "" if abs(m - 1) < 1e-9 else f"{m:g} \\times "
    return f"${mant}10^{{{e}}}$"


def main_lr_figure(pdf: Path) -> str:
    """The main grid's dev-loss-vs-lr figure environment, or nothing while the figure does not exist yet."""
    if not pdf.exists():
        return HEADER.format(src="paper/figures/") + "% no main-grid cell yet: no learning-rate figure\n"
    return HEADER.format(src="paper/figures/") + (
        "\\begin{figure}[htbp]\n\\centering\n\\PaperGraphic{lr_curves}\n"
        "\\caption{Development loss against the peak learning rate per strategy (seed~0, stage~1 of the main grid). "
        "The large marker is the learning rate chosen; a hollow one is not yet bracketed by a worse value on both "
        "sides. The test set plays no part in this choice.}\\label{fig:lr-curves}\n\\end{figure}\n")


def main_grid_macros(exps: dict[str, list[dict]], grid: Path = ROOT / "experiments" / "main.yaml") -> dict[str, str]:
    """Macros of the main grid (protocol v2): stage-1 progress, the training-path hash its cells share, and the
    learning rate chosen on the dev split per strategy so far (``adaptive_lora.stats.lr_selection``; the test loss
    plays no part)."""
    from adaptive_lora.provenance import training_path_hash
    from adaptive_lora.stats import lr_selection
    from adaptive_lora.stats import training_path_hash as result_hash
    from adaptive_lora.sweep import cells, load_grid

    main = [r for r in exps.get("main", []) if "eval_loss" in r]
    planned = cells(load_grid(grid))
    done = {r["run_id"] for r in main}
    hashes = sorted({result_hash(r) or "none" for r in main})
    M = {"MainStageOnePlanned": str(len(planned)),
         "MainStageOneDone": str(sum(c.run_id in done for c in planned)),
         "MainStageOneStrategies": str(len({c.strategy for c in planned})),
         "MainStageOneLrs": join_words([fmt_lr(x) for x in sorted({c.lr for c in planned})]),
         "MainTrainingPathHash": tt(hashes[0] if len(hashes) == 1 else training_path_hash()),
         "MainHashesAgree": "all share it" if len(hashes) <= 1 else f"MIXED: {len(hashes)} hashes"}
    parts = []
    for s in lr_selection(main):
        if not s["curve"]:
            continue
        runs = len(s["curve"])
        if s["lr"] is None:
            parts.append(f"{tt(s['strategy'])} has no finite dev loss yet ({runs} learning rate{'s' * (runs > 1)})")
            continue
        state = "bracketed" if s["bracketed"] else (f"not yet bracketed, {runs} of the grid's learning rates run")
        parts.append(f"{tt(s['strategy'])} {fmt_lr(s['lr'])} (dev loss {tex_num(s['dev_loss'])}; {state})")
    M["MainLrSentence"] = ("So far the dev split selects: " + "; ".join(parts) + "." if parts else
                           "No cell of the main grid has finished yet, so no learning rate is selected.")
    return M


def ablation_table(runs: list[dict], pool: list[dict], kind: str, label: str, spec, what: str) -> tuple[str, str]:
    """(generated file, status macro) for an ablation: a table of mean loss per configuration, or 'not yet run'."""
    if not runs:
        status = ("is stage 5 of the main grid (protocol v2): its cells are not yet committed" if kind == "scaling"
                  else "is replication 4 of the main grid's second part: its cells are not yet committed")
        return (HEADER.format(src="results/") + f"\\noindent\\emph{{{what} {status}: no such result is "
                "committed under \\texttt{results/}.}\n"), status
    # group by the fields that define the configuration (not the seed)
    keyf = (lambda r: (r["config"].get("model"), r["config"].get("split"), r["config"].get("scaling"),
                       r["config"].get("strategy"), r["config"].get("budget")))
    if kind == "scaling":
        wanted = {(r["config"].get("model"), r["config"].get("strategy"), r["config"].get("budget"),
                   r["config"].get("train_examples")) for r in runs}
        rows_runs = [r for r in pool if (r["config"].get("model"), r["config"].get("strategy"),
                                          r["config"].get("budget"), r["config"].get("train_examples")) in wanted
                     and r["config"].get("split", "default") == "default"]
    else:
        rows_runs = runs
    groups: dict[tuple, list[dict]] = {}
    for r in rows_runs:
        groups.setdefault(keyf(r), []).append(r)
    rows = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        rs = groups[key]
        seeds = {}
        for r in sorted(rs, key=lambda r: r["run_id"]):
            seeds.setdefault(r["config"].get("seed", 0), r)
        st = mean_ci([r["eval_loss"] for r in seeds.values()])
        params = [r["trainable_params"] for r in seeds.values() if finite(r.get("trainable_params"))]
        model, split, scaling, strat, budget = key
        rows.append([tt(model), tt(scaling if kind == "scaling" else split), tt(strat), tt(budget), str(st["n"]),
                     tex_int(sum(params) / len(params)) if params else NA, tex_num(st["mean"]),
                     f"$\\pm {st['half']:.4f}$" if finite(st["half"]) else NA,
                     tex_num(math.exp(st["mean"]), 2)])
    body = tabular("llllrrrrr", ["Model", "Scaling" if kind == "scaling" else "Split", "Strategy", "Budget", "$n$",
                                 "Trainable", "Eval loss", "95\\,\\% CI", "PPL"], rows)
    cap = f"{what}: mean eval loss over seeds; PPL $= \\exp(\\text{{mean loss}})$."
    n_cfg = len({keyf(r) for r in runs})
    status = f"has been run for {n_cfg} configuration{'s' if n_cfg != 1 else ''} (Table~\\ref{{{label}}})"
    return HEADER.format(src="results/") + float_table(cap, label, body) + "\n", status


def read_macros(numbers_tex: str) -> dict[str, str]:
    """{name: value} of a numbers.tex this script wrote (one ``\\newcommand{\\Name}{value}`` per line)."""
    return dict(re.findall(r"^\\newcommand\{\\([A-Za-z]+)\}\{(.*)\}$", numbers_tex, flags=re.M))


def write(files: dict[str, str], out: Path = GENERATED) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(files.items()):
        p = out / name
        if not p.exists() or p.read_text() != text:
            p.write_text(text)
            written.append(p)
    return written


def stale(files: dict[str, str], out: Path = GENERATED) -> list[str]:
    """Names of generated files whose committed content differs from ``files`` (missing files count)."""
    return [name for name, text in sorted(files.items())
            if not (out / name).exists() or (out / name).read_text() != text]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the files in --out instead of writing")
    ap.add_argument("--out", default=str(GENERATED), help="folder of the generated files (default paper/generated)")
    ap.add_argument("--results", default=None, help="results root (default: results/ or $ADAPTIVE_LORA_RESULTS)")
    a = ap.parse_args(argv)
    files = build(Path(a.results) if a.results else None)
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
