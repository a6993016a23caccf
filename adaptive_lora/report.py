"""Statistics of an experiment: per-strategy summaries and paired comparisons with uniform; CSV, Markdown, LaTeX.

``adaptive-lora report <exp>`` writes ``results/<exp>/summary.csv`` and ``summary.md``, and the strategy table
``paper/generated/strategy_table.tex`` (booktabs; ``\\input`` it inside a table environment) and ``.md``.

Per (model, data, budget, strategy), over seeds:
- n, mean and sample standard deviation (ddof 1) of the eval loss, 95 % confidence interval of the mean
  (t distribution, n - 1 degrees of freedom);
- ``ppl_of_mean_loss`` = exp(mean eval loss) (the geometric mean of the runs' perplexities, NOT the mean
  perplexity);
- mean trainable parameters (exact counts; AdaLoRA's final count), the budget, mean training seconds;
- paired difference to ``uniform`` at the same (model, data, budget, seed), strategy minus uniform (negative =
  better than uniform): mean, 95 % CI (t), two-sided paired t-test p-value (``scipy.stats.ttest_rel``), and the
  Holm-corrected p-value across the strategies of the (model, data, budget) group.
Undefined values (n < 2, no paired uniform run, a constant paired difference) are NaN in the functions, blank in
the CSV and "–" in Markdown and LaTeX, and the ``note`` column says why. All functions are pure on lists of result
dicts.
"""
from __future__ import annotations

import csv
import io
import math
import warnings
from pathlib import Path

from .errors import UserError

NAN = float("nan")
REFERENCE = "uniform"
CONF = 0.95

CSV_COLUMNS = ["model", "data", "budget", "strategy", "n", "seeds", "eval_loss_mean", "eval_loss_std",
               "eval_loss_ci95_low", "eval_loss_ci95_high", "ppl_of_mean_loss", "trainable_params_mean",
               "budget_params", "train_seconds_mean", "n_pairs", "diff_vs_uniform_mean", "diff_ci95_low",
               "diff_ci95_high", "p_paired_t", "p_holm", "note"]


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def data_label(config: dict) -> str:
    """'alpaca', or a custom file's stem (as in the run id)."""
    data = str(config.get("data"))
    return data.rsplit("/", 1)[-1].removesuffix(".jsonl")


def group_key(result: dict) -> tuple[str, str, str]:
    c = result["config"]
    return c["model"], data_label(c), str(c["budget"])


def mean_ci(values, conf: float = CONF) -> dict:
    """n, mean, std (ddof 1), and the t-interval of the mean; std/CI NaN when n < 2."""
    from scipy import stats

    vals = [float(v) for v in values if _finite(v)]
    n = len(vals)
    if n == 0:
        return {"n": 0, "mean": NAN, "std": NAN, "ci_low": NAN, "ci_high": NAN, "half": NAN}
    mean = sum(vals) / n
    if n < 2:
        return {"n": 1, "mean": mean, "std": NAN, "ci_low": NAN, "ci_high": NAN, "half": NAN}
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = float(stats.t.ppf(0.5 + conf / 2, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "half": half}


def paired_test(a: list[float], b: list[float], conf: float = CONF) -> dict:
    """Paired a - b: mean difference, t-interval and two-sided paired t-test p (NaN when n < 2)."""
    from scipy import stats

    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    diffs = [x - y for x, y in zip(a, b)]
    ci = mean_ci(diffs, conf)
    p = NAN
    # all differences equal (zero variance, up to rounding): the t statistic is undefined, not infinite
    constant = len(diffs) >= 2 and max(abs(d - ci["mean"]) for d in diffs) <= 1e-9 * max(1.0, abs(ci["mean"]))
    if len(diffs) >= 2 and not constant:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_rel(a, b).pvalue)
    return {"n_pairs": len(diffs), "diff_mean": ci["mean"], "diff_ci_low": ci["ci_low"],
            "diff_ci_high": ci["ci_high"], "p": p}


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaNs stay NaN and do not count."""
    idx = sorted((i for i, p in enumerate(pvalues) if _finite(p)), key=lambda i: pvalues[i])
    m = len(idx)
    out = [NAN] * len(pvalues)
    running = 0.0
    for k, i in enumerate(idx):
        running = max(running, min(1.0, (m - k) * pvalues[i]))
        out[i] = running
    return out


def _strategy_order(names) -> list[str]:
    names = sorted(set(names))
    return ([REFERENCE] if REFERENCE in names else []) + [s for s in names if s != REFERENCE]


def _by_seed(results: list[dict], warn: list[str]) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for r in results:
        s = r["config"]["seed"]
        if s in out:
            warn.append(f"{r['run_id']}: a second result with seed {s} in its group (other settings differ?); "
                        f"kept {out[s]['run_id']}")
            continue
        out[s] = r
    return out


def _grouped(results: list[dict], warn: list[str]) -> dict[tuple, dict[str, list[dict]]]:
    """{(model, data, budget): {strategy: [results]}} in input order; results without a finite eval loss are
    left out (noted in ``warn``). ``_by_seed`` then keeps the first result per seed."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in results:
        if not _finite(r.get("eval_loss")):
            warn.append(f"{r.get('run_id')}: no finite eval_loss, left out")
            continue
        groups.setdefault(group_key(r), {}).setdefault(r["config"]["strategy"], []).append(r)
    return groups


def summarize(results: list[dict], warnings_out: list[str] | None = None) -> list[dict]:
    """One row per (model, data, budget, strategy), with the paired comparison to uniform and Holm's p."""
    warn = warnings_out if warnings_out is not None else []
    groups = _grouped(results, warn)

    def budget_sort(key):
        params = [r.get("budget_params") or 0 for rs in groups[key].values() for r in rs]
        return key[0], key[1], min(params) if params else 0, key[2]

    rows = []
    for key in sorted(groups, key=budget_sort):
        model, data, budget = key
        by_strategy = {s: _by_seed(rs, warn) for s, rs in groups[key].items()}
        ref = by_strategy.get(REFERENCE, {})
        group_rows = []
        for strat in _strategy_order(by_strategy):
            runs = by_strategy[strat]
            seeds = sorted(runs)
            losses = [runs[s]["eval_loss"] for s in seeds]
            st = mean_ci(losses)
            params = [runs[s]["trainable_params"] for s in seeds if _finite(runs[s].get("trainable_params"))]
            secs = [runs[s]["train_seconds"] for s in seeds if _finite(runs[s].get("train_seconds"))]
            budgets = {runs[s].get("budget_params") for s in seeds} - {None}
            row = {"model": model, "data": data, "budget": budget, "strategy": strat, "n": st["n"],
                   "seeds": " ".join(str(s) for s in seeds), "eval_loss_mean": st["mean"],
                   "eval_loss_std": st["std"], "eval_loss_ci95_low": st["ci_low"],
                   "eval_loss_ci95_high": st["ci_high"],
                   "ppl_of_mean_loss": math.exp(st["mean"]) if _finite(st["mean"]) else NAN,
                   "trainable_params_mean": sum(params) / len(params) if params else NAN,
                   "budget_params": budgets.pop() if len(budgets) == 1 else NAN,
                   "train_seconds_mean": sum(secs) / len(secs) if secs else NAN,
                   "n_pairs": 0, "diff_vs_uniform_mean": NAN, "diff_ci95_low": NAN, "diff_ci95_high": NAN,
                   "p_paired_t": NAN, "p_holm": NAN}
            notes = []
            if st["n"] < 2:
                notes.append("n<2: no std/CI")
            if strat == REFERENCE:
                notes.append("reference")
            else:
                common = [s for s in seeds if s in ref]
                if common:
                    pt = paired_test([runs[s]["eval_loss"] for s in common], [ref[s]["eval_loss"] for s in common])
                    row.update(n_pairs=pt["n_pairs"], diff_vs_uniform_mean=pt["diff_mean"],
                               diff_ci95_low=pt["diff_ci_low"], diff_ci95_high=pt["diff_ci_high"],
                               p_paired_t=pt["p"])
                    if pt["n_pairs"] < 2:
                        notes.append("pairs<2: no diff CI/p")
                    elif not _finite(pt["p"]):
                        notes.append("constant paired difference: no t-test")
                else:
                    notes.append("no paired uniform run")
            row["note"] = "; ".join(notes)
            group_rows.append(row)
        for row, p in zip(group_rows, holm([r["p_paired_t"] for r in group_rows])):
            row["p_holm"] = p
        rows.extend(group_rows)
    return rows


# ------------------------------------------------------------------------------------------- seeds needed
DELTA = 0.01      # the paired difference (nats) the main grid must resolve
BASELINES = ("adalora", "eva")   # PEFT baselines: not layerwise allocations at the exact budget
BASELINES_SHOWN = {"adalora": "AdaLoRA", "eva": "EVA"}
POWER = 0.80
ALPHA = 0.05


def paired_power(n: int, sd_diff: float, delta: float = DELTA, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with n pairs when the true mean difference is ``delta`` and the
    differences have standard deviation ``sd_diff``: P(|T| > c), c = t_{1-alpha/2, n-1}, T = (Z + nc) / sqrt(V/df)
    noncentral t with df = n - 1, nc = delta sqrt(n) / sd_diff, Z ~ N(0, 1), V ~ chi2(df).

    Integrated over the quantiles u of V (exact up to quadrature error, ~1e-8):
    power = int_0^1 [ Phi(nc - c s(u)) + Phi(-nc - c s(u)) ] du, s(u) = sqrt(chi2.ppf(u, df) / df).
    Not ``scipy.stats.nct.sf``: it returns NaN for the large noncentralities that tiny paired spreads give.
    """
    from scipy import integrate, stats

    if n < 2:
        return NAN
    df, nc = n - 1, delta * math.sqrt(n) / sd_diff
    c = float(stats.t.ppf(1 - alpha / 2, df))

    def f(u: float) -> float:
        s = math.sqrt(float(stats.chi2.ppf(u, df)) / df)
        return float(stats.norm.cdf(nc - c * s) + stats.norm.cdf(-nc - c * s))

    val, _ = integrate.quad(f, 0.0, 1.0, limit=200, epsabs=1e-10)
    return min(1.0, max(0.0, val))


def seeds_needed(sd_diff: float, delta: float = DELTA, alpha: float = ALPHA, power: float = POWER,
                 n_max: int = 10_000) -> int | None:
    """Smallest number of seeds (pairs) n >= 2 whose paired t-test reaches ``power``; None if above n_max.

    Effect size d = delta / sd_diff: d = 1 -> 10 pairs, d = 0.5 -> 34 (alpha 0.05, power 0.8; G*Power's values).
    """
    if not (_finite(sd_diff) and sd_diff > 0):
        return None
    lo, hi = 2, 2
    while paired_power(hi, sd_diff, delta, alpha) < power:      # power grows with n: bracket, then bisect
        if hi >= n_max:
            return None
        lo, hi = hi, min(2 * hi, n_max)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if paired_power(mid, sd_diff, delta, alpha) < power else (lo, mid)
    return hi


def _pooled_sd(samples: list[list[float]]) -> tuple[float, int]:
    """Pooled sample standard deviation over groups (each around its own mean) and its degrees of freedom."""
    ss, df = 0.0, 0
    for xs in samples:
        if len(xs) >= 2:
            m = sum(xs) / len(xs)
            ss += sum((x - m) ** 2 for x in xs)
            df += len(xs) - 1
    return (math.sqrt(ss / df) if df else NAN), df


def sd_upper(sd: float, df: int, conf: float = CONF) -> float:
    """One-sided upper confidence bound of a standard deviation: sd * sqrt(df / chi2_{1-conf, df})."""
    from scipy import stats

    if not (_finite(sd) and df >= 1):
        return NAN
    return sd * math.sqrt(df / float(stats.chi2.ppf(1 - conf, df)))


def seed_spread(results: list[dict], delta: float = DELTA, alpha: float = ALPHA, power: float = POWER) -> list[dict]:
    """Per (model, data, budget) group with a uniform reference: seed spread against strategy differences.

    - ``sd_seed``: pooled within-strategy std of the eval loss over seeds (df = sum(n_s - 1));
      ``sd_uniform``: the same for uniform alone;
    - ``sd_diff``: pooled std of the paired differences strategy - uniform (same seed), the noise a paired test
      sees, and ``sd_diff_upper``: its one-sided 95 % upper bound (chi-square; few pairs make it uncertain);
    - ``diff_min``/``diff_max``/``max_abs_diff``: the range of the strategies' mean paired differences;
      ``alloc_min``/``alloc_max``/``alloc_max_abs``: the same without the PEFT baselines (``BASELINES``: AdaLoRA,
      EVA), i.e. among the layerwise allocations at the exact budget;
    - ``seeds_needed`` (alpha), ``seeds_needed_holm`` (alpha / m, Holm's first step over the m strategies compared
      with uniform), ``seeds_needed_upper`` (alpha / m with ``sd_diff_upper``): seeds for a paired difference of
      ``delta`` nats at the given power. None where undefined (fewer than 2 pairs anywhere).
    """
    out = []
    for (model, data, budget), runs in _grouped(results, []).items():
        # {strategy: {seed: eval loss}}, the same runs summarize compares
        by_strategy = {k: {sd: r["eval_loss"] for sd, r in _by_seed(rs, []).items()} for k, rs in runs.items()}
        ref = by_strategy.get(REFERENCE)
        others = [s for s in _strategy_order(by_strategy) if s != REFERENCE]
        if not ref or not others:
            continue
        # paired differences strategy - uniform at the shared seeds; their means are summarize's diff_vs_uniform
        diffs = {k: [by_strategy[k][sd] - ref[sd] for sd in sorted(by_strategy[k]) if sd in ref] for k in others}
        sd_seed, df_seed = _pooled_sd([list(v.values()) for v in by_strategy.values()])
        sd_uni, df_uni = _pooled_sd([list(ref.values())])
        sd_diff, df_diff = _pooled_sd(list(diffs.values()))
        by_mean = {k: sum(d) / len(d) for k, d in diffs.items() if d}
        means = list(by_mean.values())
        alloc = [v for k, v in by_mean.items() if k not in BASELINES]
        m = max(1, len(others))
        upper = sd_upper(sd_diff, df_diff)
        out.append({"model": model, "data": data, "budget": budget, "strategies": len(others),
                    "max_seeds": max(len(v) for v in by_strategy.values()),
                    "sd_seed": sd_seed, "df_seed": df_seed, "sd_uniform": sd_uni, "df_uniform": df_uni,
                    "sd_diff": sd_diff, "df_diff": df_diff, "sd_diff_upper": upper,
                    "diff_min": min(means) if means else NAN, "diff_max": max(means) if means else NAN,
                    "max_abs_diff": max((abs(x) for x in means), default=NAN),
                    "alloc_min": min(alloc) if alloc else NAN, "alloc_max": max(alloc) if alloc else NAN,
                    "alloc_max_abs": max((abs(x) for x in alloc), default=NAN),
                    "baselines": sorted(k for k in by_strategy if k in BASELINES),
                    "seeded_strategies": sum(1 for v in by_strategy.values() if len(v) >= 2),
                    "delta": delta, "alpha": alpha, "power": power,
                    "seeds_needed": seeds_needed(sd_diff, delta, alpha, power),
                    "seeds_needed_holm": seeds_needed(sd_diff, delta, alpha / m, power),
                    "seeds_needed_upper": seeds_needed(upper, delta, alpha / m, power)})
    return out


def seed_spread_markdown(spread: list[dict]) -> list[str]:
    """The 'seeds needed' section of summary.md."""
    if not spread:
        return []
    lines = ["## Seed spread and seeds needed", "",
             f"sd = pooled sample standard deviation over seeds (df in brackets); paired = of strategy − uniform at "
             f"the same seed; seeds needed for a {DELTA} nat paired difference at power {POWER:.0%}, two-sided "
             f"α = {ALPHA} (plain, Holm's first step α/m, and Holm with the 95 % upper bound of the paired sd).", "",
             "| model · data · budget | sd seeds | sd uniform | sd paired [95 % upper] | Δ range | seeds needed "
             "(α / α/m / upper) |", "| --- | --- | --- | --- | --- | --- |"]
    for s in spread:
        def sd(v, df):
            return f"{v:.4f} ({df})" if _finite(v) else DASH
        need = " / ".join(DASH if n is None else str(n) for n in
                          (s["seeds_needed"], s["seeds_needed_holm"], s["seeds_needed_upper"]))
        rng = (f"{s['diff_min']:+.4f} … {s['diff_max']:+.4f}" if _finite(s["diff_min"]) else DASH)
        lines.append(f"| {s['model']} · {s['data']} · {s['budget']} | {sd(s['sd_seed'], s['df_seed'])} | "
                     f"{sd(s['sd_uniform'], s['df_uniform'])} | {sd(s['sd_diff'], s['df_diff'])} "
                     f"[{_f(s['sd_diff_upper'], '.4f')}] | {rng} | {need} |")
    return lines + [""]


def seed_spread_text(s: dict | None, latex: bool = False) -> str:
    """The pilot's 'seed spread vs strategy differences' paragraph (EXPERIMENTS.md, the paper), from one
    ``seed_spread`` row; every number is generated. ``latex`` switches minus signs, alpha, % and thousands."""
    def num(x: float, signed: bool = False) -> str:
        t = f"{x:+.4f}" if signed else f"{x:.4f}"
        return t.replace("-", "$-$") if latex else t.replace("-", "−")

    def count(n: int | None) -> str:
        t = f"{n:,}" if n is not None else "more than 10,000"
        return t.replace(",", "{,}") if latex else t

    pct = r"\,\%" if latex else " %"
    if not s or not s["df_diff"]:
        return ("The seed spread cannot be estimated yet: no strategy at this budget has two seeds paired with "
                "uniform rank, so the number of seeds the main grid needs is still open.")
    test = (rf"$\alpha = {s['alpha']:g}$ (two-sided paired $t$-test)" if latex else
            f"α = {s['alpha']:g} (two-sided paired t-test)")
    n, n_holm, n_up = s["seeds_needed"], s["seeds_needed_holm"], s["seeds_needed_upper"]
    span = f"{num(s['diff_min'], True)} to {num(s['diff_max'], True)} nats"
    largest, what = s["max_abs_diff"], "The largest of them"
    if s["baselines"] and _finite(s["alloc_min"]):
        span += (f" ({num(s['alloc_min'], True)} to {num(s['alloc_max'], True)} among the layerwise allocations, "
                 f"without {' and '.join(BASELINES_SHOWN.get(b, b) for b in s['baselines'])})")
        largest, what = s["alloc_max_abs"], "The largest among the allocations"
    close = largest < s["sd_diff"]
    text = (f"With up to {s['max_seeds']} seeds per strategy at {s['budget']}, the eval loss of uniform rank "
            f"varies with a standard deviation of {num(s['sd_uniform'])} nats ({num(s['sd_seed'])} pooled over the "
            f"{s['seeded_strategies']} strategies with two or more seeds; {s['df_uniform']} and {s['df_seed']} "
            f"degrees of freedom), and the strategies' mean paired differences to uniform span {span}. "
            f"{what} ({num(largest)} nats) is {'smaller' if close else 'larger'} than the seed-to-seed standard "
            f"deviation of a paired difference ({num(s['sd_diff'])} nats with {s['df_diff']} degrees of freedom; "
            f"one-sided 95{pct} upper bound {num(s['sd_diff_upper'])}): "
            + ("with this many seeds the strategies are within each other's noise. " if close else
               ("pairing by seed removes part of the seed-to-seed variation, and differences of this size stand "
                "out with few seeds. " if s["sd_diff"] < s["sd_uniform"] else
                "differences of this size stand out with few seeds. "))
            + f"Resolving a paired difference of {s['delta']:g} nats with {round(100 * s['power'])}{pct} power at "
            f"{test} takes {count(n)} seeds; with Holm's correction over the {s['strategies']} strategies, "
            f"{count(n_holm)}; and {count(n_up)} if the paired standard deviation is at its upper bound. ")
    if n_up is not None:
        return text + (f"The main grid should therefore run {count(n_up)} seeds per cell, enough even if the pilot "
                       f"underestimates the spread.")
    if n_holm is not None:
        return text + (f"The main grid needs at least {count(n_holm)} seeds per cell at the estimated spread, and "
                       "more if the pilot underestimates it.")
    return text + f"Differences of {s['delta']:g} nats are out of reach of any affordable number of seeds."


# --------------------------------------------------------------------------------------------------- writers
def _csv_value(v):
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(round(v, 10))
    return v


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _csv_value(r.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


DASH = "–"


def _f(v, fmt: str, dash: str = DASH) -> str:
    return format(v, fmt) if _finite(v) else dash


def _p(v, dash: str = DASH) -> str:
    if not _finite(v):
        return dash
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def _params(v) -> str:
    if not _finite(v):
        return DASH
    return f"{v / 1e6:.3f}M" if v >= 1e5 else f"{v:,.0f}"


def _groups(rows):
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault((r["model"], r["data"], r["budget"]), []).append(r)
    return out


def summary_markdown(rows: list[dict], experiment: str, warns: list[str] = (), spread: list[dict] = ()) -> str:
    lines = [f"# Summary of experiment `{experiment}`", "",
             "Eval loss: mean ± sample std over seeds, 95 % CI of the mean (t distribution). "
             "PPL = exp(mean eval loss). Δ = strategy − uniform at the same seed (negative = better); "
             "p = paired t-test, Holm-corrected across the strategies of each group. "
             f"{DASH} = undefined (n < 2 or no paired uniform run; see the note).", ""]
    for (model, data, budget), rs in _groups(rows).items():
        lines += [f"## {model} · {data} · budget {budget}", "",
                  "| strategy | n | eval loss | 95 % CI | PPL | trainable | train s | Δ vs uniform [95 % CI] "
                  "| p | p (Holm) | note |",
                  "| --- | ---: | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
        for r in rs:
            ci = (f"[{r['eval_loss_ci95_low']:.4f}, {r['eval_loss_ci95_high']:.4f}]"
                  if _finite(r["eval_loss_ci95_low"]) else DASH)
            diff = _f(r["diff_vs_uniform_mean"], "+.4f")
            if _finite(r["diff_ci95_low"]):
                diff += f" [{r['diff_ci95_low']:+.4f}, {r['diff_ci95_high']:+.4f}]"
            lines.append(f"| {r['strategy']} | {r['n']} | {_f(r['eval_loss_mean'], '.4f')} ± "
                         f"{_f(r['eval_loss_std'], '.4f')} | {ci} | {_f(r['ppl_of_mean_loss'], '.2f')} | "
                         f"{_params(r['trainable_params_mean'])} | {_f(r['train_seconds_mean'], '.0f')} | {diff} | "
                         f"{_p(r['p_paired_t'])} | {_p(r['p_holm'])} | {r['note']} |")
        lines.append("")
    lines += seed_spread_markdown(spread)
    if warns:
        lines += ["## Warnings", "", *(f"- {w}" for w in warns), ""]
    return "\n".join(lines)


def strategy_table_markdown(rows: list[dict]) -> str:
    lines = ["| model · data · budget | strategy | n | trainable | eval loss ± 95 % CI | PPL | Δ vs uniform "
             "[95 % CI] | p (Holm) |", "| --- | --- | ---: | ---: | --- | ---: | --- | ---: |"]
    for (model, data, budget), rs in _groups(rows).items():
        for r in rs:
            loss = _f(r["eval_loss_mean"], ".4f") + (f" ± {r['eval_loss_ci95_high'] - r['eval_loss_mean']:.4f}"
                                                     if _finite(r["eval_loss_ci95_high"]) else "")
            diff = "(reference)" if r["strategy"] == REFERENCE else _f(r["diff_vs_uniform_mean"], "+.4f")
            if _finite(r["diff_ci95_low"]):
                diff += f" [{r['diff_ci95_low']:+.4f}, {r['diff_ci95_high']:+.4f}]"
            lines.append(f"| {model} · {data} · {budget} | {r['strategy']} | {r['n']} | "
                         f"{_params(r['trainable_params_mean'])} | {loss} | {_f(r['ppl_of_mean_loss'], '.2f')} | "
                         f"{diff} | {_p(r['p_holm'])} |")
    return "\n".join(lines) + "\n"


def latex_escape(s: str) -> str:
    repl = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(repl.get(ch, ch) for ch in str(s))


def strategy_table_latex(rows: list[dict], experiment: str = "") -> str:
    """A booktabs tabular (needs \\usepackage{booktabs}); one block per (model, data, budget)."""
    ncol = 7
    out = [f"% generated by `adaptive-lora report {experiment}` from results/{experiment}/ -- do not edit",
           r"\begin{tabular}{lrrlrlr}", r"\toprule",
           r"Strategy & $n$ & Params & Eval loss ($\pm$ 95\,\% CI) & PPL & $\Delta$ vs.\ uniform [95\,\% CI] "
           r"& $p_\mathrm{Holm}$ \\", r"\midrule"]
    groups = _groups(rows)
    for gi, ((model, data, budget), rs) in enumerate(groups.items()):
        if len(groups) > 1:
            if gi:
                out.append(r"\midrule")
            out.append(rf"\multicolumn{{{ncol}}}{{l}}{{\textit{{{latex_escape(model)}, {latex_escape(data)}, "
                       rf"budget {latex_escape(budget)}}}}} \\")
        for r in rs:
            loss = _f(r["eval_loss_mean"], ".4f", "--")
            if _finite(r["eval_loss_ci95_high"]):
                loss += rf" $\pm$ {r['eval_loss_ci95_high'] - r['eval_loss_mean']:.4f}"
            if r["strategy"] == REFERENCE:
                diff = "(reference)"
            else:
                diff = _f(r["diff_vs_uniform_mean"], "+.4f", "--")
                if _finite(r["diff_ci95_low"]):
                    diff += f" [{r['diff_ci95_low']:+.4f}, {r['diff_ci95_high']:+.4f}]"
                if _finite(r["diff_vs_uniform_mean"]):
                    diff = diff.replace("-", "$-$")
            params = _params(r["trainable_params_mean"]).replace(",", "{,}").replace(DASH, "--")
            p = _p(r["p_holm"], "--").replace("<", "$<$")
            out.append(f"{latex_escape(r['strategy'])} & {r['n']} & {params} & {loss} & "
                       f"{_f(r['ppl_of_mean_loss'], '.2f', '--')} & {diff} & {p} " + r"\\")
    out += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(out)


# -------------------------------------------------------------------------------------------------------- CLI
def write_report(experiment: str, results: list[dict], summary_dir: Path, paper_dir: Path | None) -> list[Path]:
    warns: list[str] = []
    rows = summarize(results, warns)
    summary_dir.mkdir(parents=True, exist_ok=True)
    written = []
    md = summary_markdown(rows, experiment, warns, seed_spread(results))
    for name, text in (("summary.csv", to_csv(rows)), ("summary.md", md)):
        (summary_dir / name).write_text(text)
        written.append(summary_dir / name)
    if paper_dir is not None:
        paper_dir.mkdir(parents=True, exist_ok=True)
        for name, text in (("strategy_table.tex", strategy_table_latex(rows, experiment)),
                           ("strategy_table.md", strategy_table_markdown(rows))):
            (paper_dir / name).write_text(text)
            written.append(paper_dir / name)
    for w in warns:
        print(f"warning: {w}")
    return written


def cmd_report(a) -> int:
    from .results import ROOT, load_results, results_root

    results = load_results(a.experiment)
    if not results:
        raise UserError(f"no results in {results_root() / a.experiment}/")
    paper_dir = None if a.no_paper else Path(a.paper_dir) if a.paper_dir else ROOT / "paper" / "generated"
    for p in write_report(a.experiment, results, results_root() / a.experiment, paper_dir):
        print(f"wrote {p}")
    return 0
