"""Report statistics on synthetic results with known answers; writers; figure scripts on synthetic results."""
import csv
import importlib.util
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from adaptive_lora import report
from adaptive_lora.cli import main
from adaptive_lora.results import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
FIGURES = ["forest", "params_vs_loss", "rank_per_layer", "pareto", "loss_curves"]
KINDS = ["self_attn.q_proj", "mlp.down_proj"]
BUDGET_PARAMS = {"r2": 1000, "r8": 4000}


def fake(strategy, seed, loss, budget="r8", model="tiny-llama", data="alpaca", params=None, curve=True,
         rank_map=True):
    """A result dict with the fields the report and the figures read."""
    ranks = {"uniform": [8, 8, 8], "linear_decay": [12, 8, 4]}.get(strategy, [4, 8, 12])
    return {
        "run_id": f"{model}_{data}_{strategy.replace(':', '-')}_{budget}_s{seed}_0000000000",
        "config": {"model": model, "data": data, "strategy": strategy, "budget": budget, "seed": seed,
                   "experiment": "syn"},
        "rank_map": {f"model.layers.{layer}.{k}": r for layer, r in enumerate(ranks) for k in KINDS}
        if rank_map else None,
        "budget_params": BUDGET_PARAMS.get(budget, 2000),
        "trainable_params": params if params is not None else BUDGET_PARAMS.get(budget, 2000),
        "eval_loss": loss, "eval_ppl": math.exp(loss), "train_seconds": 10.0 + seed,
        "train_loss_curve": [3.0 - 0.01 * i - 0.1 * seed for i in range(40)] if curve else [],
    }


U = [2.0, 2.1, 2.3]
A = [1.9, 2.05, 2.2]  # linear_decay
B = [2.1, 2.2, 2.2]  # attn_heavy


def synthetic() -> list[dict]:
    rs = [fake("uniform", s, v) for s, v in enumerate(U)]
    rs += [fake("linear_decay", s, v, params=3990 + s) for s, v in enumerate(A)]
    rs += [fake("attn_heavy", s, v) for s, v in enumerate(B)]
    rs += [fake("ffn_heavy", 0, 2.5)]  # n = 1
    rs += [fake("uniform", 0, 2.4, budget="r2")]  # a budget group with uniform only
    return rs


# ------------------------------------------------------------------------------------------------ statistics
def test_mean_ci_matches_the_hand_computation():
    st = report.mean_ci([1.0, 2.0, 4.0])
    mean = 7 / 3
    std = math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2) / 2)  # = sqrt(7/3)
    # t_{0.975, 2} in closed form (df = 2: t_p = (2p - 1) sqrt(2 / (4p(1 - p)))) = 4.30265...
    t = 0.95 * math.sqrt(2 / (4 * 0.975 * 0.025))
    assert t == pytest.approx(stats.t.ppf(0.975, 2), rel=1e-12) and t == pytest.approx(4.302653, abs=1e-6)
    assert st["n"] == 3 and st["mean"] == pytest.approx(mean) and st["std"] == pytest.approx(math.sqrt(7 / 3))
    assert st["std"] == pytest.approx(std)
    assert st["ci_low"] == pytest.approx(mean - t * std / math.sqrt(3))
    assert st["ci_high"] == pytest.approx(mean + t * std / math.sqrt(3))
    one = report.mean_ci([2.5])
    assert one["n"] == 1 and one["mean"] == 2.5 and math.isnan(one["std"]) and math.isnan(one["ci_low"])
    assert report.mean_ci([])["n"] == 0


def test_paired_test_matches_scipy():
    pt = report.paired_test(A, U)
    assert pt["n_pairs"] == 3 and pt["diff_mean"] == pytest.approx(sum(A) / 3 - sum(U) / 3)
    assert pt["p"] == pytest.approx(stats.ttest_rel(A, U).pvalue, rel=1e-12)
    diffs = [a - u for a, u in zip(A, U)]
    m, s = sum(diffs) / 3, stats.tstd(diffs)
    half = stats.t.ppf(0.975, 2) * s / math.sqrt(3)
    assert (pt["diff_ci_low"], pt["diff_ci_high"]) == (pytest.approx(m - half), pytest.approx(m + half))
    single = report.paired_test([1.0], [2.0])
    assert single["diff_mean"] == -1.0 and math.isnan(single["p"]) and math.isnan(single["diff_ci_low"])
    const = report.paired_test([2.15, 2.25], [2.0, 2.1])  # equal differences up to rounding: no t-test
    assert const["diff_mean"] == pytest.approx(0.15) and math.isnan(const["p"])


def test_holm_on_known_p_values():
    assert report.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = report.holm([float("nan"), 0.02, 0.5])
    assert math.isnan(out[0]) and out[1:] == pytest.approx([0.04, 0.5])
    assert report.holm([0.6, 0.7]) == [1.0, 1.0]
    assert report.holm([]) == []


def test_summarize_synthetic_results():
    warns = []
    rows = report.summarize(synthetic(), warns)
    assert [(r["budget"], r["strategy"]) for r in rows] == [
        ("r2", "uniform"), ("r8", "uniform"), ("r8", "attn_heavy"), ("r8", "ffn_heavy"), ("r8", "linear_decay")]
    by = {(r["budget"], r["strategy"]): r for r in rows}
    u, a, b, f = by["r8", "uniform"], by["r8", "linear_decay"], by["r8", "attn_heavy"], by["r8", "ffn_heavy"]
    assert u["n"] == 3 and u["eval_loss_mean"] == pytest.approx(sum(U) / 3)
    assert u["eval_loss_std"] == pytest.approx(stats.tstd(U))
    assert u["ppl_of_mean_loss"] == pytest.approx(math.exp(sum(U) / 3))
    assert u["note"] == "reference" and math.isnan(u["p_paired_t"]) and u["seeds"] == "0 1 2"
    assert a["trainable_params_mean"] == pytest.approx(3991) and a["budget_params"] == 4000
    assert a["train_seconds_mean"] == pytest.approx(11.0)
    pa, pb = stats.ttest_rel(A, U).pvalue, stats.ttest_rel(B, U).pvalue
    assert a["p_paired_t"] == pytest.approx(pa) and b["p_paired_t"] == pytest.approx(pb)
    assert a["diff_vs_uniform_mean"] == pytest.approx((sum(A) - sum(U)) / 3) and a["n_pairs"] == 3
    # Holm over the two strategies with a p-value in the r8 group; ffn_heavy (one pair) has none
    assert [a["p_holm"], b["p_holm"]] == pytest.approx(report.holm([pa, pb]))
    assert f["n"] == 1 and f["n_pairs"] == 1 and math.isnan(f["p_paired_t"]) and math.isnan(f["p_holm"])
    assert f["diff_vs_uniform_mean"] == pytest.approx(2.5 - 2.0)
    assert "n<2" in f["note"] and "pairs<2" in f["note"]
    r2 = by["r2", "uniform"]
    assert r2["n"] == 1 and math.isnan(r2["eval_loss_ci95_low"]) and "n<2" in r2["note"]
    assert not warns


def test_no_uniform_and_duplicate_seeds_are_marked():
    warns = []
    rows = report.summarize([fake("attn_heavy", 0, 2.0), fake("attn_heavy", 1, 2.1),
                             {**fake("attn_heavy", 1, 9.9), "run_id": "dup"}], warns)
    (row,) = rows
    assert row["n"] == 2 and row["eval_loss_mean"] == pytest.approx(2.05)
    assert "no paired uniform run" in row["note"] and math.isnan(row["p_holm"])
    assert len(warns) == 1 and "dup" in warns[0]


# (sd of the paired differences, alpha) -> pairs for 80 % power at delta = 0.01: effect sizes d = delta / sd of
# 1, 0.8 and 0.5 give G*Power's 10, 15 and 34 pairs (two-sided paired t, alpha 0.05)
SEEDS_NEEDED_CASES = [(0.01, 0.05, 10), (0.0125, 0.05, 15), (0.02, 0.05, 34), (0.001, 0.05, 3),
                      (0.0007, 0.05, 2), (0.0007, 0.05 / 6, 3),
                      (0.0, 0.05, None), (float("nan"), 0.05, None)]


@pytest.mark.parametrize("sd, alpha, expected", SEEDS_NEEDED_CASES)
def test_seeds_needed_table(sd, alpha, expected):
    assert report.seeds_needed(sd, delta=0.01, alpha=alpha, power=0.8) == expected


def test_paired_power_is_exact_and_monotone():
    assert report.paired_power(10, 0.01, 0.01) == pytest.approx(0.8031, abs=1e-4)   # G*Power, d = 1, n = 10
    assert report.paired_power(9, 0.01, 0.01) < 0.8 < report.paired_power(10, 0.01, 0.01)
    assert math.isnan(report.paired_power(1, 0.01, 0.01))
    # large noncentrality (tiny paired spread; nct.cdf(-c) is NaN here, stats.paired_power takes the lower tail by
    # symmetry): for df = 1, T = (Z + nc) / |W|, so power = E_W[Phi(nc - c|W|) + Phi(-nc - c|W|)], integrated over W
    from scipy import integrate
    nc, c = 0.01 * math.sqrt(2) / 0.0007, stats.t.ppf(1 - 0.05 / 12, 1)
    direct = 2 * integrate.quad(lambda w: stats.norm.pdf(w) * (stats.norm.cdf(nc - c * w)
                                                               + stats.norm.cdf(-nc - c * w)), 0, math.inf)[0]
    assert report.paired_power(2, 0.0007, 0.01, 0.05 / 6) == pytest.approx(direct, abs=1e-6)
    assert 0.2 < direct < 0.22
    # a stricter alpha (Holm's first step over m = 6) needs more seeds
    assert report.seeds_needed(0.01, alpha=0.05 / 6) > report.seeds_needed(0.01)


def test_seed_spread_on_synthetic_results():
    (s,) = report.seed_spread(synthetic())          # the r2 group has uniform only: no row
    assert (s["model"], s["budget"], s["strategies"], s["max_seeds"]) == ("tiny-llama", "r8", 3, 3)

    def ss(xs):
        m = sum(xs) / len(xs)
        return sum((x - m) ** 2 for x in xs)

    d_a = [a - u for a, u in zip(A, U)]
    d_b = [b - u for b, u in zip(B, U)]               # ffn_heavy has one pair: no degrees of freedom
    assert s["df_diff"] == 4 and s["sd_diff"] == pytest.approx(math.sqrt((ss(d_a) + ss(d_b)) / 4))
    assert s["df_seed"] == 6 and s["sd_seed"] == pytest.approx(math.sqrt((ss(U) + ss(A) + ss(B)) / 6))
    assert s["df_uniform"] == 2 and s["sd_uniform"] == pytest.approx(math.sqrt(ss(U) / 2))
    assert s["diff_min"] == pytest.approx(sum(d_a) / 3) and s["diff_max"] == pytest.approx(0.5)
    assert s["sd_diff_upper"] == pytest.approx(s["sd_diff"] * math.sqrt(4 / stats.chi2.ppf(0.05, 4)))
    assert s["seeds_needed"] == report.seeds_needed(s["sd_diff"])
    assert s["seeds_needed_holm"] == report.seeds_needed(s["sd_diff"], alpha=0.05 / 3)
    assert s["seeds_needed_upper"] == report.seeds_needed(s["sd_diff_upper"], alpha=0.05 / 3)
    assert s["seeds_needed"] < s["seeds_needed_holm"] < s["seeds_needed_upper"]


def test_seed_spread_separates_the_peft_baselines():
    rs = synthetic() + [fake("adalora", 0, 3.0), fake("adalora", 1, 3.1)]
    (s,) = report.seed_spread(rs)
    assert s["baselines"] == ["adalora"] and s["strategies"] == 4 and s["seeded_strategies"] == 4
    assert s["diff_max"] == pytest.approx(1.0) and s["alloc_max"] == pytest.approx(0.5)
    assert s["alloc_min"] == pytest.approx(sum(a - u for a, u in zip(A, U)) / 3)
    text = report.seed_spread_text(s)
    assert "among the layerwise allocations, without AdaLoRA" in text and "The largest among the allocations (0.5000" in text


def test_seed_spread_with_one_seed_is_undefined_and_printed_as_dashes():
    (s,) = report.seed_spread([fake("uniform", 0, 2.0), fake("attn_heavy", 0, 1.9)])
    assert s["seeds_needed"] is None and math.isnan(s["sd_diff"]) and s["diff_min"] == pytest.approx(-0.1)
    table = "\n".join(report.seed_spread_markdown([s]))
    assert "– / – / –" in table and "-0.1000 … -0.1000" in table


def test_writers():
    rows = report.summarize(synthetic())
    parsed = list(csv.DictReader(io.StringIO(report.to_csv(rows))))
    assert list(parsed[0]) == report.CSV_COLUMNS and len(parsed) == 5
    ffn = next(r for r in parsed if r["strategy"] == "ffn_heavy")
    assert ffn["eval_loss_std"] == "" and ffn["p_holm"] == "" and "n<2" in ffn["note"]  # blank, marked
    md = report.summary_markdown(rows, "syn")
    assert "## tiny-llama · alpaca · budget r8" in md and "–" in md and "n<2" in md
    tex = report.strategy_table_latex(rows, "syn")
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"linear\_decay" in tex and "_decay" not in \
        tex.replace(r"\_decay", "")
    assert tex.count(r"\multicolumn") == 2  # two groups: r2, r8
    body = [ln for ln in tex.splitlines() if ln.endswith(r"\\") and "&" in ln]
    assert all(ln.count("&") == 6 for ln in body)
    table = report.strategy_table_markdown(rows)
    assert table.count("\n") == 2 + 5 and "(reference)" in table
    assert all(ln.count("|") == 9 for ln in table.splitlines())
    assert report.latex_escape("a_b%c&d#") == r"a\_b\%c\&d\#"


def _write_results(root: Path, exp: str, results: list[dict]):
    for r in results:
        write_json_atomic(root / exp / f"{r['run_id']}.json", r)


def test_report_cli_writes_summary_and_tables(sandbox, capsys):
    _write_results(sandbox / "results", "syn", synthetic())
    paper = sandbox / "paper" / "generated"
    assert main(["report", "syn", "--paper-dir", str(paper)]) == 0
    for p in (sandbox / "results" / "syn" / "summary.csv", sandbox / "results" / "syn" / "summary.md",
              paper / "strategy_table.tex", paper / "strategy_table.md"):
        assert p.exists() and p.stat().st_size > 0, p
    assert main(["report", "nothing-here"]) == 2
    assert "no results" in capsys.readouterr().err
    # another experiment's report leaves the paper's strategy table (the pilot's) alone unless asked
    assert main(["report", "syn"]) == 0
    assert "strategy_table" not in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------- figures
def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"fig_{name}", SCRIPTS / f"fig_{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", FIGURES)
def test_figure_scripts_on_synthetic_results(name, sandbox):
    _write_results(sandbox / "results", "syn", synthetic() + [fake("uniform", 0, 1.9, budget="r16")])
    out = sandbox / "figs"
    assert _script(name).main(["--exp", "syn", "--out", str(out)]) == 0
    for ext in ("pdf", "png"):
        assert (out / f"{name}.{ext}").stat().st_size > 1000


@pytest.mark.parametrize("name", FIGURES)
def test_figure_scripts_on_partial_or_missing_results(name, sandbox, capsys):
    out = sandbox / "figs"
    assert _script(name).main(["--exp", "empty", "--out", str(out)]) == 0
    assert "skip" in capsys.readouterr().err and not out.exists()
    # one run, no rank map, no curve, no CI: plots what it can or skips, never crashes
    _write_results(sandbox / "results", "one", [fake("adalora", 0, 2.0, curve=False, rank_map=False)])
    assert _script(name).main(["--exp", "one", "--out", str(out)]) == 0


def test_frontier_and_smoothing():
    frontier = _script("pareto").frontier
    assert frontier([(1, 3.0), (2, 2.0), (2, 2.5), (3, 2.2), (4, 1.0)]) == [(1, 3.0), (2, 2.0), (4, 1.0)]
    smooth = _script("loss_curves").smooth
    assert smooth([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert _script("rank_per_layer").ranks_by_kind([{"model.layers.0.mlp.up_proj": 4, "lm_head": 9},
                                                    {"model.layers.0.mlp.up_proj": 8}]) == {"mlp.up_proj": {0: 6.0}}


def test_loss_curves_leave_out_adaloras_penalised_objective():
    mod = _script("loss_curves")
    ada = fake("adalora", 0, 2.0)
    ada["adalora"] = {"orth_reg_weight": 0.5}
    assert mod.penalised(ada) and not mod.penalised(fake("uniform", 0, 2.0))
    assert not mod.penalised(dict(ada, adalora={"orth_reg_weight": 0}))


def test_loss_curve_paired_differences_are_exact():
    mod = _script("loss_curves")
    group = [fake("uniform", s, 2.0) for s in (0, 1)] + [fake("linear_decay", s, 2.0) for s in (0, 1, 2)]
    for r in group[2:]:
        r["train_loss_curve"] = [v - 0.05 * (1 + r["config"]["seed"]) for v in r["train_loss_curve"]]
    curves = mod.paired(group, "linear_decay", window=1)
    assert len(curves) == 2 and all(len(c) == 40 for c in curves)    # seed 2 has no uniform partner
    assert curves[0] == pytest.approx([-0.05] * 40) and curves[1] == pytest.approx([-0.10] * 40)
    mean, lo, hi, n = mod.band(curves)
    assert n == 2 and mean == pytest.approx([-0.075] * 40)
    assert lo[0] == pytest.approx(-0.075 - 12.7062 * 0.025, abs=1e-4)  # t(0.975, 1) * sd / sqrt(2)
    assert mod.paired(group, "attn_heavy", window=1) == []
    _, lo1, hi1, n1 = mod.band(curves[:1])
    assert n1 == 1 and all(math.isnan(v) for v in lo1 + hi1)        # n = 1: no interval


def test_forest_reads_summarize_and_sorts(sandbox, monkeypatch):
    """The forest plot's points and intervals are summarize's paired differences, best (lowest) at the top."""
    mod = _script("forest")
    _write_results(sandbox / "results", "syn", synthetic())
    drawn = []
    monkeypatch.setattr(mod, "save", lambda fig, out, name: drawn.append(fig))
    assert mod.main(["--exp", "syn", "--out", str(sandbox / "figs")]) == 0
    ax = drawn[0].axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    rows = {r["strategy"]: r for r in report.summarize(synthetic()) if r["strategy"] != "uniform"}
    order = sorted(rows, key=lambda s: rows[s]["diff_vs_uniform_mean"])
    assert [lab.split(" ")[0] for lab in labels] == order                # ticks top to bottom: best first
    right = [t.get_text() for t in drawn[0].axes[-1].get_yticklabels()]  # the twin axis: values and intervals
    best = rows[order[0]]
    assert right[0] == mod.fmt(best["diff_vs_uniform_mean"]) + (
        f" [{mod.fmt(best['diff_ci95_low'])}, {mod.fmt(best['diff_ci95_high'])}]")


def test_figure_script_runs_as_a_program(sandbox):
    _write_results(sandbox / "results", "syn", synthetic())
    proc = subprocess.run([sys.executable, str(SCRIPTS / "fig_pareto.py"), "--exp", "syn", "--out",
                           str(sandbox / "figs")], env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (sandbox / "figs" / "pareto.pdf").exists() and (sandbox / "figs" / "pareto.png").exists()


# -------------------------------------------------------------------------- generated blocks of the docs
def _docs():
    spec = importlib.util.spec_from_file_location("update_docs", SCRIPTS / "update_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pilot_seeds_paragraph_from_synthetic_results(tmp_path):
    docs = _docs()
    for r in synthetic():
        write_json_atomic(tmp_path / "pilot" / f"{r['run_id']}.json", r)
    text = docs.pilot_seeds_block(tmp_path)
    (s,) = report.seed_spread(synthetic())
    assert f"from the {len(synthetic())} cells" in text
    assert f"takes {s['seeds_needed']:,} seeds" in text and f"strategies, {s['seeds_needed_holm']:,};" in text
    assert f"({s['sd_diff']:.4f} nats with 4 degrees of freedom" in text and "larger than" in text
    assert "among the layerwise allocations" not in text     # no baseline in the synthetic group
    assert f"run {s['seeds_needed_upper']:,} seeds per arm" in text
    assert "cannot be estimated yet" in docs.pilot_seeds_block(tmp_path / "nothing")


def test_readme_and_experiments_generated_blocks_are_fresh():
    assert _docs().main(["--check"]) == 0, "run `python scripts/update_docs.py` and commit"


def test_seeds_are_sized_for_the_smallest_effect_detected_after_holm():
    """A clearly detected allocation effect sets delta (rounded to 0.0001) and is named in the text; without a
    detected effect the argument's delta stays."""
    u = [2.000, 2.010, 2.020, 2.030]
    rs = [fake("uniform", s, v) for s, v in enumerate(u)]
    rs += [fake("attn_heavy", s, v - 0.00423 + 0.00001 * (s % 2)) for s, v in enumerate(u)]   # tight: detected
    rs += [fake("ffn_heavy", s, v + (0.01 if s % 2 else -0.008)) for s, v in enumerate(u)]    # noisy: not
    (s,) = report.seed_spread(rs)
    assert s["delta_source"] == "attn_heavy" and s["delta"] == 0.0042
    assert s["seeds_needed"] == report.seeds_needed(s["sd_diff"], delta=0.0042)
    assert "Sized for the smallest effect the pilot detected (attn_heavy, 0.0042 nats" in report.seed_spread_text(s)
    (t,) = report.seed_spread([r for r in rs if r["config"]["strategy"] != "attn_heavy"])
    assert t["delta_source"] is None and t["delta"] == report.DELTA


def test_prior_setting_section_compares_natural_and_matched_budgets():
    def c(strategy, budget, seed, held, twenty):
        return {"run_id": f"{strategy}-{budget}-{seed}", "eval_loss": twenty, "transfer_loss": held,
                "config": {"model": "smollm2-135m", "data": "alpaca", "split": "prior", "strategy": strategy,
                           "budget": budget, "seed": seed, "lr": 2e-4}}
    rs = []
    for s in range(3):
        rs += [c("uniform", "r16", s, 1.5 + 0.01 * s, 2.0), c("attention_only", "r16", s, 1.52 + 0.01 * s, 2.1),
               c("attention_only", "1843200", s, 1.6 + 0.01 * s + 0.001 * s * s, 2.2)]
    rows = report.prior_setting(rs)
    got = {(r["comparison"], r["endpoint"], r["strategy"], r["budget"]): r for r in rows}
    assert set(got) == {("natural", m, "attention_only", "1843200") for m in ("transfer_loss", "eval_loss")} | \
        {("matched", m, "attention_only", "r16") for m in ("transfer_loss", "eval_loss")}
    assert got[("natural", "transfer_loss", "attention_only", "1843200")]["diffs"] == \
        pytest.approx([0.1, 0.101, 0.104])
    assert got[("matched", "transfer_loss", "attention_only", "r16")]["diff_mean"] == pytest.approx(0.02)
    md = "\n".join(report.prior_setting_markdown(rows))
    assert "**natural budgets, 500 held-out examples (primary)**" in md and "**matched budget, the prior 20" in md
    assert "| attention_only | 1,843,200 | 3 | +0.1017 |" in md
    assert report.prior_setting([r for r in rs if r["config"]["strategy"] != "uniform"]) == []   # no reference


@pytest.mark.parametrize("planned, needed, words", [
    (4, (3, 4, 5), "meets the Holm-adjusted figure but not the upper bound"),
    (5, (3, 4, 5), "meets all three"),
    (3, (3, 4, 5), "meets the unadjusted figure only"),
    (2, (3, 4, None), "meets none of them"),
    (4, (3, 4, None), "meets the Holm-adjusted figure but not the upper bound"),
])
def test_planned_seeds_against_the_seeds_needed(planned, needed, words):
    from adaptive_lora.writers import planned_seeds_text
    text = planned_seeds_text(planned, *needed, str)
    assert text.startswith(f"The main grid planned {planned} seeds per arm, which {words};")



@pytest.mark.parametrize("lo, hi, md", [
    (-0.0007, 0.0002, "[-0.0007, +0.0002]"),
    (-0.0007, -0.00003, "[-0.0007, -0.00003]"),       # excludes 0: must not print as -0.0000
    (0.000004, 0.0011, "[+0.000004, +0.0011]"),
    (-0.0007, 0.0, "[-0.0007, +0.0000]"),              # a bound at exactly 0 stays 0
    (-1e-9, 0.001, "[-0.0000, +0.0010]"),              # at most 3 extra decimals
])
def test_interval_bounds_never_print_a_nonzero_bound_as_zero(lo, hi, md):
    from adaptive_lora import writers
    assert writers.interval(lo, hi).md == md
