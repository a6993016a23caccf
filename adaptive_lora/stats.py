"""Statistics of an experiment: pure functions on lists of result dicts (and on plain numbers). No I/O, no text.

Sign convention everywhere: a difference is **strategy − uniform** in eval (test) loss, nats; negative = the
strategy is better. Undefined values are NaN (never 0); the caller's ``note`` says why.

Result fields read (all optional unless stated):
- ``config.model``, ``config.data``, ``config.budget``, ``config.strategy``, ``config.seed`` (required);
  ``config.lr`` (protocol v2: the learning rate of the cell);
- ``eval_loss`` (required: the TEST loss, token-weighted mean cross-entropy; never used for any choice);
- ``dev_loss`` (protocol v2: the dev-split loss, the only thing learning rates are chosen on);
- ``trainable_params``, ``budget_params``, ``train_seconds``, ``run_id``;
- ``provenance.training_path_hash`` (protocol v2; absent in the pilot cells);
- ``eval_example_losses`` (protocol v2): ``[[sum_nats, n_tokens], ...]``, one pair per test example, in the same
  example order in every cell.

Old (pilot) API, unchanged: ``mean_ci``, ``paired_test``, ``holm``, ``summarize``, ``paired_power``,
``seeds_needed``, ``sd_upper``, ``seed_spread``. Protocol v2 (the pre-specified analysis): ``check_pair``,
``select_lr`` / ``lr_selection``, ``endpoint`` (primary / secondary), ``holm_intervals``, ``block_anova``,
``bootstrap_diff``, ``budget_multiplier`` / ``uniform_frontier``, and ``verdict``.
"""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
from scipy import stats as sps

from .errors import UserError

NAN = float("nan")
REFERENCE = "uniform"
CONF = 0.95
DELTA = 0.01      # the paired difference (nats) the main grid must resolve
BASELINES = ("adalora", "eva")   # PEFT baselines: not layerwise allocations at the exact budget
POWER = 0.80
ALPHA = 0.05
MIXED = "MIXED TRAINING-PATH HASHES"
BOOT_REPS = 2000
# Protocol v2's equivalence margin in nats (EXPERIMENTS.md, amendment 2, fixed before any stage-2 cell from the
# pilot alone): a third to a half of what doubling uniform's rank bought around r8 there (0.023-0.030 nats), 1 %
# perplexity.
EQUIVALENCE_MARGIN = 0.01
# Amendment 3 (EXPERIMENTS.md): seeds per primary arm, re-estimated from the dev split after seeds 0-3, within these
SEEDS_MIN, SEEDS_MAX = 4, 8
# Stage 2's arms (issue #12, protocol v2), uniform first; scripts/next_stage.py runs them
STAGE2 = ("uniform", "linear_decay", "linear_increase", "attn_heavy", "ffn_heavy", "attention_only", "ffn_only",
          "weight_norm", "spectral", "activation", "gradient", "eva", "adalora")
# the primary endpoint's family (amendment 3): stage 2's arms but uniform, plus eva at rho 1 and the shuffled control
PRIMARY_FAMILY = len(STAGE2) - 1 + 2
LR_STEP = 3.0     # the lr grid's ratio: an unbracketed argmin is extended by one x3 step


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def data_label(config: dict) -> str:
    """'alpaca', or a custom file's stem (as in the run id)."""
    data = str(config.get("data"))
    return data.rsplit("/", 1)[-1].removesuffix(".jsonl")


def group_key(result: dict) -> tuple[str, str, str]:
    """(model, data label, budget name): the cells a comparison is made within."""
    c = result["config"]
    return c["model"], data_label(c), str(c["budget"])


# ------------------------------------------------------------------------------------------ basic statistics
def mean_ci(values, conf: float = CONF) -> dict:
    """n, mean, std (ddof 1) and the t-interval of the mean over the finite values.

    ci = mean ± t_{(1+conf)/2, n-1} · std / sqrt(n) (``scipy.stats.t.interval``); ``half`` is the half-width.
    std / CI / half are NaN when n < 2; everything is NaN when n = 0. Non-finite inputs are dropped silently.
    """
    vals = [float(v) for v in values if _finite(v)]
    n = len(vals)
    if n == 0:
        return {"n": 0, "mean": NAN, "std": NAN, "ci_low": NAN, "ci_high": NAN, "half": NAN}
    mean = math.fsum(vals) / n
    if n < 2:
        return {"n": 1, "mean": mean, "std": NAN, "ci_low": NAN, "ci_high": NAN, "half": NAN}
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (n - 1))
    if std == 0.0:
        return {"n": n, "mean": mean, "std": 0.0, "ci_low": mean, "ci_high": mean, "half": 0.0}
    lo, hi = sps.t.interval(conf, n - 1, loc=mean, scale=std / math.sqrt(n))
    return {"n": n, "mean": mean, "std": std, "ci_low": float(lo), "ci_high": float(hi), "half": float(hi) - mean}


def _constant(diffs: list[float], mean: float) -> bool:
    """All differences equal up to rounding: the t statistic is undefined (0/0), not infinite."""
    return max(abs(d - mean) for d in diffs) <= 1e-9 * max(1.0, abs(mean))


def paired_test(a: list[float], b: list[float], conf: float = CONF) -> dict:
    """Paired a − b: ``n_pairs``, ``diff_mean``, its t-interval (``diff_ci_low``/``high``, n − 1 df) and the
    two-sided paired t-test p (``scipy.stats.ttest_rel``). p is NaN when n < 2 or the differences are constant."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    diffs = [x - y for x, y in zip(a, b)]
    ci = mean_ci(diffs, conf)
    p = NAN
    if len(diffs) >= 2 and not _constant(diffs, ci["mean"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(sps.ttest_rel(a, b).pvalue)
    return {"n_pairs": len(diffs), "diff_mean": ci["mean"], "diff_ci_low": ci["ci_low"],
            "diff_ci_high": ci["ci_high"], "p": p}


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values: sort the m finite p ascending, p_adj(k) = max_{i<=k} min(1, (m-i+1) p(i))
    (steps k = 1..m). NaNs stay NaN and do not count towards m. Ties keep input order."""
    idx = sorted((i for i, p in enumerate(pvalues) if _finite(p)), key=lambda i: pvalues[i])
    m = len(idx)
    out = [NAN] * len(pvalues)
    running = 0.0
    for k, i in enumerate(idx):
        running = max(running, min(1.0, (m - k) * pvalues[i]))
        out[i] = running
    return out


def holm_intervals(pt_rows: list[dict], alpha: float = ALPHA, interval=None) -> list[dict]:
    """Holm step-down intervals ("Holm-adjusted intervals") for m paired comparisons, one per input row.

    Input rows carry ``diffs`` (the paired differences) and ``p`` (their paired-t p; NaN = not tested). Steps:
    order the m rows with a finite p ascending (ties: input order); step k (1-based) is rejected when it and all
    earlier steps have p(i) <= alpha / (m - i + 1). Row k's interval is the paired t-interval at level
    1 − alpha / (m − k* + 1), where k* = k while all steps so far are rejected and k* = k0 (the first non-rejected
    step) from then on. Freezing the level at k0 makes the intervals agree with Holm's decisions exactly (t-test
    and t-interval are dual): a rejected step's interval excludes 0; every later p(k) >= p(k0) > alpha/(m-k0+1),
    so every non-rejected step's interval contains 0. Gotcha: only the Bonferroni intervals (level 1 − alpha/m for
    all) have guaranteed simultaneous coverage; these are the step-down analogue, shown beside the unadjusted
    intervals. Rows with NaN p get ``step`` None and NaN intervals. ``interval(row, level) -> (low, high)``: the
    interval the test dual to ``p`` gives (default: the paired t-interval of ``row["diffs"]``; ``effect_changes``
    passes Welch's).

    Returns one dict per input row: ``step``, ``level``, ``adj_ci_low``, ``adj_ci_high``, ``rejected`` (bool).
    """
    out = [{"step": None, "level": NAN, "adj_ci_low": NAN, "adj_ci_high": NAN, "rejected": False}
           for _ in pt_rows]
    idx = sorted((i for i, r in enumerate(pt_rows) if _finite(r["p"])), key=lambda i: pt_rows[i]["p"])
    m = len(idx)
    frozen = None
    for k, i in enumerate(idx, start=1):
        if frozen is None and pt_rows[i]["p"] > alpha / (m - k + 1):
            frozen = k
        kk = k if frozen is None else frozen
        level = 1 - alpha / (m - kk + 1)
        if interval is None:
            ci = mean_ci(pt_rows[i]["diffs"], level)
            low, high = ci["ci_low"], ci["ci_high"]
        else:
            low, high = interval(pt_rows[i], level)
        out[i] = {"step": k, "level": level, "adj_ci_low": low, "adj_ci_high": high, "rejected": frozen is None}
    return out


def welch_change(later: list[float], first: list[float], conf: float = CONF) -> dict:
    """mean(later) − mean(first) of two independent samples (e.g. one arm's per-seed paired differences in two
    experiments): ``change``, Welch's t-interval ``ci_low``/``ci_high`` at ``conf`` and two-sided ``p``
    (``scipy.stats.ttest_ind(equal_var=False)``: se = sqrt(s1²/n1 + s2²/n2), Welch–Satterthwaite df), ``n_later``,
    ``n_first``. Interval and p are NaN with fewer than 2 finite values on a side or zero variance on both."""
    a, b = [float(x) for x in later if _finite(x)], [float(x) for x in first if _finite(x)]
    ma, mb = (math.fsum(a) / len(a) if a else NAN), (math.fsum(b) / len(b) if b else NAN)
    out = {"change": ma - mb, "ci_low": NAN, "ci_high": NAN, "p": NAN, "n_later": len(a), "n_first": len(b)}
    if len(a) < 2 or len(b) < 2 or (_constant(a, ma) and _constant(b, mb)):
        return out
    res = sps.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(conf)
    return dict(out, ci_low=float(ci.low), ci_high=float(ci.high), p=float(res.pvalue))


def change_reading(first_mean: float, later_mean: float, adj_low: float, adj_high: float) -> str:
    """The words for how an effect changed between two experiments, from the ADJUSTED interval of the change:
    "undetermined" (interval undefined: no test, as ``verdict``), "no detectable change" (contains 0), "changed
    sign" (excludes 0, means of opposite signs), otherwise "larger" / "smaller" by |later| against |first|. Table:
    (-0.02, -0.03, ±) -> larger; (-0.02, -0.005, excl.) -> smaller; (-0.02, +0.01, excl.) -> changed sign."""
    if not (_finite(adj_low) and _finite(adj_high)):
        return "undetermined"
    if adj_low <= 0 <= adj_high:
        return "no detectable change"
    if first_mean * later_mean < 0:
        return "changed sign"
    return "larger" if abs(later_mean) > abs(first_mean) else "smaller"


def effect_changes(later: list[dict], first: list[dict], key=lambda r: r["strategy"],
                   alpha: float = ALPHA) -> list[dict]:
    """How the effects of the arms two experiments share changed from ``first`` to ``later`` (amendment 8): rows of
    ``endpoint`` / ``reference_endpoint`` (``diffs`` = per-seed paired differences), matched by ``key`` (default
    the strategy), each ``welch_change(later diffs, first diffs)`` with Holm step-down intervals over the shared
    arms (``holm_intervals`` with Welch's interval). One row per shared key, in ``later``'s order: ``key``,
    ``first_mean``, ``later_mean``, ``change``, ``ci_low``/``ci_high``, ``p``, ``p_holm``, ``adj_ci_low``/
    ``adj_ci_high``, ``n_first``, ``n_later``, ``reading`` (``change_reading``). Arms with fewer than 2 pairs in
    either experiment are left out."""
    before = {key(r): r for r in first if len(r["diffs"]) >= 2}
    rows = []
    for r in later:
        if len(r["diffs"]) >= 2 and (k := key(r)) in before:
            w = welch_change(r["diffs"], before[k]["diffs"], 1 - alpha)
            rows.append(dict(w, key=k, later=r["diffs"], first=before[k]["diffs"],
                             first_mean=before[k]["diff_mean"], later_mean=r["diff_mean"]))
    for row, p in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = p

    def welch(row: dict, level: float) -> tuple[float, float]:
        w = welch_change(row["later"], row["first"], level)
        return w["ci_low"], w["ci_high"]

    for row, adj in zip(rows, holm_intervals(rows, alpha, interval=welch)):
        row.update(adj_ci_low=adj["adj_ci_low"], adj_ci_high=adj["adj_ci_high"],
                   reading=change_reading(row["first_mean"], row["later_mean"], adj["adj_ci_low"], adj["adj_ci_high"]))
    return rows


def inside_margin(ci_low: float, ci_high: float, margin: float = EQUIVALENCE_MARGIN) -> bool:
    """The whole interval lies strictly inside (-margin, +margin) (False when a bound is undefined): the
    equivalence test of ``verdict``, and what makes a detected difference negligible in the paper's text."""
    return _finite(ci_low) and _finite(ci_high) and -margin < ci_low and ci_high < margin


def verdict(ci_low: float, ci_high: float, margin: float | None = None) -> str:
    """The words generated text uses for a strategy − uniform loss difference, from its ADJUSTED interval only:
    "better" (interval entirely below 0: lower loss than uniform), "worse" (entirely above 0), with a ``margin``
    "equivalent" (contains 0 and lies strictly inside (−margin, +margin): a two one-sided tests decision, conservative
    because the adjusted interval is at least as wide as TOST's 1 − 2 alpha one), "no detectable difference"
    (contains 0, endpoints included; with a margin: reaches beyond it, i.e. inconclusive), and "undetermined" when
    the interval is undefined (NaN)."""
    if not (_finite(ci_low) and _finite(ci_high)):
        return "undetermined"
    if ci_high < 0:
        return "better"
    if ci_low > 0:
        return "worse"
    if margin is not None and inside_margin(ci_low, ci_high, margin):
        return "equivalent"
    return "no detectable difference"


# ------------------------------------------------------------------------------------------ grouping (pilot)
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


# Config fields that make a different arm of the same strategy (field, default, label): EVA with rho = 1 (its
# initialisation alone) and rsLoRA scaling are compared with uniform as arms of their own, never pooled with the
# default arm (e.g. ``eva[rho1]``, ``attn_heavy[rslora]``). A missing field (pilot cells) is the default.
VARIANTS = (("eva_rho", 2.0, "rho{:g}"), ("scaling", "constant", "{}"))


def arm(result: dict) -> str:
    """The arm a cell belongs to: its strategy, plus ``[variant,...]`` for non-default VARIANTS fields."""
    c = result["config"]
    tags = [fmt.format(c[k]) for k, default, fmt in VARIANTS if c.get(k) is not None and c[k] != default]
    return c["strategy"] + (f"[{','.join(tags)}]" if tags else "")


def _grouped(results: list[dict], warn: list[str]) -> dict[tuple, dict[str, list[dict]]]:
    """{(model, data, budget): {strategy: [results]}} in input order; results without a finite eval loss are
    left out (noted in ``warn``). ``_by_seed`` then keeps the first result per seed."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in results:
        if not _finite(r.get("eval_loss")):
            warn.append(f"{r.get('run_id')}: no finite eval_loss, left out")
            continue
        groups.setdefault(group_key(r), {}).setdefault(arm(r), []).append(r)
    return groups


# ------------------------------------------------------------------------------------- training-path hash guard
def training_path_hash(result: dict) -> str | None:
    """``provenance.training_path_hash``, or None where the cell predates it (pilot)."""
    return (result.get("provenance") or {}).get("training_path_hash")


def check_pair(a: dict, b: dict, allow_mixed: bool = False) -> str:
    """Guard for pairing cell ``a`` (strategy) with cell ``b`` (uniform, same seed).

    Equal hashes (both None counts as equal: pilot cells pair only with pilot cells) -> "". Different hashes
    (including one missing) -> raises ``UserError`` with one line naming both hashes, unless ``allow_mixed``, in
    which case it returns the loud note "MIXED TRAINING-PATH HASHES (<ha> vs <hb>)" for the row.
    """
    ha, hb = training_path_hash(a), training_path_hash(b)
    if ha == hb:
        return ""
    if not allow_mixed:
        raise UserError(f"refusing to pair {a.get('run_id')} (training_path_hash {ha or 'none'}) with "
                        f"{b.get('run_id')} (training_path_hash {hb or 'none'}): different training paths "
                        f"(allow_mixed=True to pair anyway)")
    return f"{MIXED} ({ha or 'none'} vs {hb or 'none'})"


# -------------------------------------------------------------------------------------------- pilot summary
def summarize(results: list[dict], warnings_out: list[str] | None = None, allow_mixed: bool = False) -> list[dict]:
    """One row per (model, data, budget, strategy), with the paired comparison to uniform and Holm's p.

    Per row: n, mean and sample std (ddof 1) of the eval loss, its t-interval; ``ppl_of_mean_loss`` =
    exp(mean eval loss) (the geometric mean of the perplexities, NOT their mean); mean trainable parameters, the
    budget, mean training seconds; the paired difference to uniform at the same seed (``paired_test``) and Holm's
    p over the strategies of the group. Pairs pass ``check_pair`` (``allow_mixed``). Gotcha: one cell per
    (strategy, seed) — a second one (e.g. another lr in protocol v2) is dropped with a warning; filter protocol
    v2 results with ``at_selected_lr`` first.
    """
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
                mixed = {check_pair(runs[s], ref[s], allow_mixed) for s in common} - {""}
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
                notes += sorted(mixed)
            row["note"] = "; ".join(notes)
            group_rows.append(row)
        for row, p in zip(group_rows, holm([r["p_paired_t"] for r in group_rows])):
            row["p_holm"] = p
        rows.extend(group_rows)
    return rows


# ------------------------------------------------------------------------------------------- power / seeds
def paired_power(n: int, sd_diff: float, delta: float = DELTA, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with n pairs, true mean difference ``delta``, differences' sd
    ``sd_diff``: P(|T| > c) with T ~ noncentral t(df = n − 1, nc = delta sqrt(n) / sd_diff),
    c = t_{1−alpha/2, n−1}; NaN when n < 2.

    power = nct.sf(c, df, nc) + nct.sf(c, df, −nc). Gotchas (scipy 1.17.1, checked against an independent
    quadrature over the chi distribution of the sd to <= 2e-12 for df 1..49, nc 0.05..1e7, alpha 0.05/1..20):
    - the lower tail is taken by symmetry, P(T < −c | nc) = P(T > c | −nc): ``nct.cdf(−c, df, nc)`` returns NaN
      already from nc ≈ 4–8 (any df);
    - ``nct.sf`` itself returns NaN only at huge noncentrality (nc ≳ 3e9 at df 1, the tiny paired spreads a
      near-deterministic pipeline gives). There the power is clamped to 1.0, but only after checking the
      rigorous lower bound power >= Phi(nc/2) · P(chi2_df < df (nc / 2c)^2) (Z > −nc/2 and c·s < nc/2 imply
      T > c) is within 1e-12 of 1; otherwise a ValueError (never observed).
    """
    if n < 2:
        return NAN
    df, nc = n - 1, delta * math.sqrt(n) / sd_diff
    c = float(sps.t.ppf(1 - alpha / 2, df))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        val = float(sps.nct.sf(c, df, nc) + sps.nct.sf(c, df, -nc))
    if math.isfinite(val):
        return min(1.0, max(0.0, val))
    bound = float(sps.norm.cdf(abs(nc) / 2) * sps.chi2.cdf(df * (abs(nc) / (2 * c)) ** 2, df))
    if bound >= 1 - 1e-12:
        return 1.0
    raise ValueError(f"scipy.stats.nct failed at df={df}, nc={nc:g} and the power is not provably 1 "
                     f"(lower bound {bound:.6g})")


def seeds_needed(sd_diff: float, delta: float = DELTA, alpha: float = ALPHA, power: float = POWER,
                 n_max: int = 10_000) -> int | None:
    """Smallest number of seeds (pairs) n >= 2 whose paired t-test reaches ``power``; None if above n_max or if
    sd_diff is not a positive finite number.

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
    if not (_finite(sd) and df >= 1):
        return NAN
    return sd * math.sqrt(df / float(sps.chi2.ppf(1 - conf, df)))


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
      ``delta`` nats at the given power. None where undefined (fewer than 2 pairs anywhere). ``delta`` is the
      smallest effect the data detected (|mean paired difference| of an allocation with Holm-adjusted p < alpha,
      rounded to 0.0001; ``delta_source`` names it) and the argument only when none was detected.
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
        # size the seeds for the effect the pilot actually detected: the smallest |mean paired difference| among
        # the allocations whose Holm-adjusted p < alpha (Holm over all m strategies, as summarize); else ``delta``
        shared = {k: [sd for sd in sorted(by_strategy[k]) if sd in ref] for k in others}
        ps = [paired_test([by_strategy[k][sd] for sd in shared[k]], [ref[sd] for sd in shared[k]])["p"]
              if len(shared[k]) >= 2 else NAN for k in others]
        p_holm = dict(zip(others, holm(ps)))
        detected = {k: abs(by_mean[k]) for k in others if k not in BASELINES and k in by_mean
                    and _finite(p_holm[k]) and p_holm[k] < alpha}
        if detected:
            source = min(detected, key=detected.get)
            delta = round(detected[source], 4)
        else:
            source = None
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
                    "delta": delta, "delta_source": source, "alpha": alpha, "power": power,
                    "seeds_needed": seeds_needed(sd_diff, delta, alpha, power),
                    "seeds_needed_holm": seeds_needed(sd_diff, delta, alpha / m, power),
                    "seeds_needed_upper": seeds_needed(upper, delta, alpha / m, power)})
    return out


# ================================================================================ protocol v2: pre-specified
def _cells(results: list[dict], model=None, data=None, budget=None) -> dict[tuple, list[dict]]:
    """{(model, data, budget): [results with a finite eval_loss]}, optionally restricted to one key part."""
    out: dict[tuple, list[dict]] = {}
    for r in results:
        key = group_key(r)
        if (model is not None and key[0] != model) or (data is not None and key[1] != data) or \
                (budget is not None and key[2] != str(budget)):
            continue
        out.setdefault(key, []).append(r)
    return out


def _one_group(results: list[dict], budget=None, model=None, data=None) -> tuple[tuple, list[dict]]:
    groups = _cells(results, model, data, budget)
    if len(groups) != 1:
        raise UserError(f"expected the cells of one (model, data, budget) group, found {len(groups)}: "
                        f"{sorted(groups)} (pass budget/model/data)")
    return next(iter(groups.items()))


def is_v2(r: dict) -> bool:
    """A protocol-v2 cell: it has a ``dev_loss`` field (possibly NaN: diverged) and ``config.lr``. Pilot cells
    carry ``config.lr`` too (one fixed lr) but no ``dev_loss``."""
    return "dev_loss" in r and r["config"].get("lr") is not None


def _dev(r: dict) -> float:
    """dev_loss; a missing / non-finite one (diverged run) counts as +inf: worse than any finite loss."""
    v = r.get("dev_loss")
    return float(v) if _finite(v) else math.inf


def select_lr(results: list[dict], strategy: str, budget=None, model=None, data=None, seed: int = 0,
              step: float = LR_STEP) -> dict:
    """Learning-rate choice of one strategy at one (model, data, budget): argmin of ``dev_loss`` over its cells
    at ``seed`` (seed 0), one per ``config.lr``. The test loss (``eval_loss``) is never looked at.

    Returns ``strategy``, ``model``, ``data``, ``budget``, ``lr`` (the argmin; ties -> the smallest lr; None when
    no cell), ``dev_loss`` (its value), ``curve`` ([(lr, dev_loss)] sorted by lr: the whole dev-loss-vs-lr
    curve; inf = diverged / missing), ``bracketed`` (a strictly worse lr exists on both sides of the argmin),
    ``extend`` (None, "lower", "higher", or "both": no worse lr on either side, e.g. a one-point or flat grid),
    ``next_lr`` (the lr(s) to add: one x``step`` step beyond the grid's end on each side lacking a worse lr; with
    ties at the minimum that end need not be the argmin itself), ``note``.
    Raises UserError for two seed-``seed`` cells at the same lr, or when the results span several groups and
    none is named.
    """
    mine = [r for r in results if arm(r) == strategy]
    groups = _cells(mine, model, data, budget)
    if len(groups) > 1:
        raise UserError(f"select_lr({strategy}): cells of {len(groups)} groups {sorted(groups)}; pass budget/model/data")
    key, cells = next(iter(groups.items())) if groups else ((model, data, None if budget is None else str(budget)), [])
    by_lr: dict[float, dict] = {}
    for r in cells:
        if r["config"].get("seed") != seed or r["config"].get("lr") is None:
            continue
        lr = float(r["config"]["lr"])
        if lr in by_lr:
            raise UserError(f"two seed-{seed} cells of {strategy} at lr {lr:g}: {by_lr[lr].get('run_id')} and "
                            f"{r.get('run_id')}")
        by_lr[lr] = r
    out = {"strategy": strategy, "model": key[0], "data": key[1], "budget": key[2], "lr": None, "dev_loss": NAN,
           "curve": [], "bracketed": False, "extend": None, "next_lr": [], "note": ""}
    if not by_lr:
        out["note"] = f"no seed-{seed} cell with config.lr"
        return out
    curve = sorted((lr, _dev(r)) for lr, r in by_lr.items())
    best_i = min(range(len(curve)), key=lambda i: (curve[i][1], i))
    best_lr, best = curve[best_i]
    left = any(v > best for _, v in curve[:best_i])
    right = any(v > best for _, v in curve[best_i + 1:])
    out.update(lr=best_lr, dev_loss=best, curve=curve, bracketed=left and right)
    if not math.isfinite(best):
        out.update(lr=None, extend=None, note="no finite dev_loss at any lr")
    elif left and right:
        out["note"] = "bracketed"
    else:      # the next lr(s) go one step beyond the grid's end(s) on the side(s) without a worse lr
        lo, hi = curve[0][0] / step, curve[-1][0] * step
        extend = "both" if not (left or right) else "lower" if not left else "higher"
        nxt = {"both": [lo, hi], "lower": [lo], "higher": [hi]}[extend]
        where = {"both": "no worse lr on either side", "lower": "no worse lr below the argmin",
                 "higher": "no worse lr above the argmin"}[extend]
        out.update(extend=extend, next_lr=nxt,
                   note=f"not bracketed ({where}): extend the grid to lr " + ", ".join(f"{x:g}" for x in nxt))
    return out


def lr_selection(results: list[dict], seed: int = 0) -> list[dict]:
    """``select_lr`` for every (model, data, budget, strategy) with protocol-v2 cells (``is_v2``), in group order,
    uniform first: the data of the dev-loss-vs-lr figure and the bracketing check."""
    out = []
    for key, cells in sorted(_cells([r for r in results if is_v2(r)]).items()):
        for s in _strategy_order(arm(r) for r in cells):
            out.append(select_lr(cells, s, budget=key[2], model=key[0], data=key[1], seed=seed))
    return out


def lr_curves(selection: list[dict]) -> list[dict]:
    """The rows of ``lr_selection`` worth drawing as a dev-loss-vs-lr curve: those with a cell, and, once any arm
    has two or more learning rates, only such arms (an arm run at one lr only, e.g. from stage 2 on, has no curve;
    the lr figure and the paper's lr table both show this set)."""
    rows = [s for s in selection if s["curve"]]
    if any(len(s["curve"]) > 1 for s in rows):
        rows = [s for s in rows if len(s["curve"]) > 1]
    return rows


def same_lr_dev_gaps(selection: list[dict], reference: str = REFERENCE) -> dict[str, list[tuple[float, float]]]:
    """Per arm of an ``lr_selection`` group, its dev loss minus ``reference``'s at every lr both ran (seed 0):
    {arm: [(lr, gap)]}, lr ascending, only finite gaps. Stage 1's view of the step-size confound: the sign of an
    allocation's gap to uniform can change with the shared lr. One seed, dev split: an observation, no test.
    ``selection``: rows of one (model, data, budget) group."""
    ref = next((dict(s["curve"]) for s in selection if s["strategy"] == reference), {})
    out = {}
    for s in selection:
        gaps = [(lr, v - ref[lr]) for lr, v in s["curve"]
                if s["strategy"] != reference and lr in ref and _finite(v) and _finite(ref[lr])]
        if gaps:
            out[s["strategy"]] = gaps
    return out


def _at_lr(cells: list[dict], strategy: str, lr) -> dict[int, dict]:
    """{seed: cell} of ``strategy`` at learning rate ``lr`` (exact float match)."""
    out: dict[int, dict] = {}
    for r in cells:
        c = r["config"]
        if arm(r) == strategy and c.get("lr") is not None and lr is not None and float(c["lr"]) == lr:
            if c["seed"] in out:
                raise UserError(f"two cells of {strategy} at lr {lr:g}, seed {c['seed']}: "
                                f"{out[c['seed']].get('run_id')} and {r.get('run_id')}")
            out[c["seed"]] = r
    return out


def at_selected_lr(results: list[dict], which: str = "primary") -> list[dict]:
    """The protocol-v2 cells the endpoint uses: each strategy at its own selected lr (``which="primary"``) or
    every strategy at uniform's selected lr (``"secondary"``), per (model, data, budget). Cells that are not
    protocol v2 (``is_v2``: pilot cells) pass through unchanged, first."""
    out = [r for r in results if not is_v2(r)]
    for key, cells in sorted(_cells([r for r in results if is_v2(r)]).items()):
        uni = select_lr(cells, REFERENCE, budget=key[2], model=key[0], data=key[1])["lr"]
        for s in _strategy_order(arm(r) for r in cells):
            lr = select_lr(cells, s, budget=key[2], model=key[0], data=key[1])["lr"] \
                if which == "primary" or s == REFERENCE else uni
            out += list(_at_lr(cells, s, lr).values())
    return out


def planned_seeds(results: list[dict]) -> list[dict]:
    """The cells of the planned seeds 0 to SEEDS_MIN - 1: what amendment 3's rule and every later dev-based choice
    read, and the report's "primary (seeds 0-3)" endpoint."""
    return [r for r in results if r["config"]["seed"] < SEEDS_MIN]


def best_on_dev(results: list[dict], candidates: list[str], budget, model=None, data=None) -> str:
    """The candidate arm with the lowest mean ``dev_loss`` over its seeds, each arm at its own selected lr
    (``at_selected_lr``), at one (model, data, budget): the "best data-driven strategy" / "best layer profile" of
    protocol v2. A diverged cell counts as +inf; ties go to the first name in sorted order; the test loss is never
    read. Raises UserError when no candidate has a cell."""
    _, cells = _one_group([r for r in results if is_v2(r)], budget, model, data)
    dev: dict[str, list[float]] = {}
    for r in at_selected_lr(cells):
        if arm(r) in candidates:
            dev.setdefault(arm(r), []).append(_dev(r))
    if not dev:
        raise UserError(f"best_on_dev: none of {', '.join(candidates)} has a protocol-v2 cell at {budget}")
    return min(sorted(dev), key=lambda s: sum(dev[s]) / len(dev[s]))


SCALING_ABLATION = "scaling ablation"


def scaling_ablation(cells: list[dict], name: str) -> bool:
    """Whether arm ``name`` runs a non-default LoRA scaling (stage 5, EXPERIMENTS.md): compared with uniform like
    any arm, but outside the primary family of amendment 3 (stage 2's arms, eva at rho 1 and the shuffled control),
    so ``endpoint`` gives it a Holm family of its own and the primary family keeps the size the plan fixed."""
    return any(arm(r) == name and r["config"].get("scaling", "constant") != "constant" for r in cells)


def endpoint(results: list[dict], budget=None, model=None, data=None, which: str = "primary",
             alpha: float = ALPHA, allow_mixed: bool = False, margin: float | None = EQUIVALENCE_MARGIN,
             metric: str = "eval_loss") -> list[dict]:
    """The pre-specified comparison of protocol v2 at one (model, data, budget); ``metric="dev_loss"`` gives the same
    contrasts on the dev split (amendment 3's sample-size rule reads their spread, never the test loss).

    ``which="primary"``: test loss (``eval_loss``) of each strategy at its own selected lr (``select_lr``, dev
    loss of seed 0) minus uniform at uniform's selected lr; ``"secondary"``: every strategy at uniform's
    selected lr. Paired by seed over the seeds both arms have; each pair passes ``check_pair`` (``allow_mixed``).

    One row per strategy other than uniform (sorted by name): ``strategy``, ``lr``, ``ref_lr``, ``n_pairs``,
    ``seeds``, ``diffs`` ([strategy − uniform] per seed, seed order), ``diff_mean``, ``ci_low``/``ci_high``
    (unadjusted paired t-interval at 1 − alpha), ``p`` (paired t), ``p_holm`` (Holm over the strategies of the
    group), ``step``/``level``/``adj_ci_low``/``adj_ci_high`` (``holm_intervals``), ``verdict`` (from the
    adjusted interval only, with the equivalence ``margin`` of amendment 2), ``endpoint``, ``note``.
    """
    key, cells = _one_group(results, budget, model, data)
    uni_lr = select_lr(cells, REFERENCE, budget=key[2], model=key[0], data=key[1])["lr"]
    ref = _at_lr(cells, REFERENCE, uni_lr)
    families: dict[str, list] = {which: []}
    for s in _strategy_order(arm(r) for r in cells):
        if s == REFERENCE:
            continue
        lr = select_lr(cells, s, budget=key[2], model=key[0], data=key[1])["lr"] if which == "primary" else uni_lr
        pre = ["no lr selected for uniform"] if uni_lr is None else ["no lr selected"] if lr is None else []
        fam = f"{which}, {SCALING_ABLATION}" if scaling_ablation(cells, s) else which
        families.setdefault(fam, []).append(({"model": key[0], "data": key[1], "budget": key[2], "strategy": s,
                                              "endpoint": fam, "lr": lr, "ref_lr": uni_lr},
                                             _at_lr(cells, s, lr), ref, pre))
    return [row for entries in families.values() for row in paired_contrasts(entries, metric, alpha, allow_mixed,
                                                                             margin)]


# protocol v2's planned contrast between two arms that are not uniform: EVA with its rank redistribution (rho 2)
# minus its initialisation alone (rho 1), which separates allocation from initialisation
INIT_CONTRAST = ("eva", "eva[rho1]")


def arm_contrast(results: list[dict], name: str, reference: str, budget=None, model=None, data=None,
                 margin: float | None = EQUIVALENCE_MARGIN, metric: str = "eval_loss", alpha: float = ALPHA,
                 allow_mixed: bool = False) -> dict:
    """One planned contrast between two arms, each at its own selected lr (``select_lr``), ``name`` minus
    ``reference`` on ``metric``, paired by seed, at one (model, data, budget) of the protocol-v2 cells: e.g.
    ``INIT_CONTRAST``. A single pre-planned contrast, so no multiplicity adjustment: its "adjusted" interval is the
    unadjusted one (``paired_contrasts`` with one entry). Row as ``endpoint``'s, with ``reference`` and
    ``ref_lr`` = the reference arm's lr, ``endpoint`` = "contrast"; ``n_pairs`` 0 when either arm has no cell."""
    key, cells = _one_group([r for r in results if is_v2(r)], budget, model, data)
    lr, ref_lr = (select_lr(cells, s, budget=key[2], model=key[0], data=key[1])["lr"] for s in (name, reference))
    base = {"model": key[0], "data": key[1], "budget": key[2], "strategy": name, "reference": reference,
            "endpoint": "contrast", "lr": lr, "ref_lr": ref_lr}
    return paired_contrasts([(base, _at_lr(cells, name, lr), _at_lr(cells, reference, ref_lr), [])], metric, alpha,
                            allow_mixed, margin)[0]


def primary_dev_sd(results: list[dict], budget=None, model=None, data=None) -> tuple[float, int]:
    """(sd, df): the standard deviation of the primary endpoint's paired differences on the *dev* split, pooled over
    the arms with two or more pairs (each around its own mean, ``_pooled_sd``); NaN and 0 without such an arm."""
    rows = endpoint(results, budget, model, data, metric="dev_loss", margin=None)
    return _pooled_sd([r["diffs"] for r in rows if r["n_pairs"] >= 2])


def seeds_for_margin(sd: float, m: int, margin: float = EQUIVALENCE_MARGIN, alpha: float = ALPHA,
                     n_min: int = SEEDS_MIN, n_max: int = SEEDS_MAX) -> int:
    """Amendment 3's seeds per arm: the smallest n in [n_min, n_max] with

        t_{1 - alpha / (2m), n - 1} * sd / sqrt(n) <= margin / 2,

    the half-width of the widest Holm step-down interval over ``m`` arms (level 1 - alpha/m, Bonferroni's) at paired
    sd ``sd`` and n seeds: then an arm whose mean difference is within margin/2 of zero can be called equivalent.
    n_max when no n up to it suffices or ``sd`` is not finite; n_min when sd = 0. Table (m = 14, margin 0.01,
    alpha 0.05): sd 0.001 -> 4, 0.002 -> 6, 0.0025 -> 7, 0.003 -> 8; above sd ~0.0033 not even 8 seeds suffice
    (-> 8, the cap: each seed costs a cell per arm)."""
    if not (_finite(sd) and sd >= 0) or m < 1:
        return n_max
    for n in range(max(n_min, 2), n_max + 1):
        if bonferroni_t(n, m, alpha) * sd / math.sqrt(n) <= margin / 2:
            return n
    return n_max


def bonferroni_t(n: int, m: int, alpha: float = ALPHA) -> float:
    """t_{1 - alpha/(2m), n - 1}: the multiplier of the standard error in the widest Holm step-down interval over m
    comparisons with n pairs each (8.37 at n = 4, m = 14; 4.30 at n = 8)."""
    return float(sps.t.ppf(1 - alpha / (2 * m), n - 1))


def paired_contrasts(entries: list[tuple[dict, dict, dict, list[str]]], metric: str = "eval_loss",
                     alpha: float = ALPHA, allow_mixed: bool = False, margin: float | None = None) -> list[dict]:
    """Arm minus reference on ``metric``, paired by seed, Holm over the entries: the core of ``endpoint`` and
    ``reference_endpoint``. ``entries``: (row fields, {seed: arm cell}, {seed: reference cell}, leading notes).
    Each row gains ``n_pairs``, ``seeds``, ``diffs``, ``diff_mean``, ``ci_low``/``ci_high``, ``p``, ``p_holm``,
    ``step``/``level``/``adj_ci_low``/``adj_ci_high`` (``holm_intervals``), ``verdict`` (``margin``: the
    equivalence margin, None for none) and ``note``."""
    rows = []
    for base, mine, ref, pre in entries:
        both = sorted(sd for sd in mine if sd in ref)
        seeds = [sd for sd in both if _finite(mine[sd].get(metric)) and _finite(ref[sd].get(metric))]
        notes = list(pre) + sorted({check_pair(mine[sd], ref[sd], allow_mixed) for sd in seeds} - {""})
        if len(seeds) < len(both):
            notes.append(f"no finite {metric} at seed(s) " + " ".join(str(sd) for sd in both if sd not in seeds))
        a = [mine[sd][metric] for sd in seeds]
        b = [ref[sd][metric] for sd in seeds]
        pt = paired_test(a, b, 1 - alpha) if seeds else {"n_pairs": 0, "diff_mean": NAN, "diff_ci_low": NAN,
                                                         "diff_ci_high": NAN, "p": NAN}
        if 0 < len(seeds) < 2:
            notes.append("pairs<2: no CI/p")
        elif len(seeds) >= 2 and not _finite(pt["p"]):
            notes.append("constant paired difference: no t-test")
        rows.append({**base, "n_pairs": len(seeds), "seeds": seeds, "diffs": [x - y for x, y in zip(a, b)],
                     "diff_mean": pt["diff_mean"], "ci_low": pt["diff_ci_low"], "ci_high": pt["diff_ci_high"],
                     "p": pt["p"], "note": notes})
    for row, p in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = p
    for row, adj in zip(rows, holm_intervals(rows, alpha)):
        row.update(step=adj["step"], level=adj["level"], adj_ci_low=adj["adj_ci_low"],
                   adj_ci_high=adj["adj_ci_high"], verdict=verdict(adj["adj_ci_low"], adj["adj_ci_high"], margin))
        row["note"] = "; ".join(row["note"])
    return rows


def reference_endpoint(results: list[dict], reference: tuple[str, str], arms: list[tuple[str, str]],
                       metric: str = "eval_loss", alpha: float = ALPHA, allow_mixed: bool = False) -> list[dict]:
    """Arms given as (arm, budget) against one reference (arm, budget), paired by seed, across budgets: the prior
    setting's natural-budget comparison (each placement at its own count vs all modules at r16), where the
    groups of ``endpoint`` (one budget) do not apply. No learning rate is selected: each (arm, budget) must have
    one cell per seed (else UserError). Rows as ``endpoint``'s, with ``strategy`` = the arm, ``budget``, ``lr``,
    ``ref_budget``, ``endpoint`` = metric. Holm over ``arms``."""
    def by_seed(name: str, budget: str) -> dict[int, dict]:
        out: dict[int, dict] = {}
        for r in results:
            if arm(r) == name and str(r["config"]["budget"]) == str(budget):
                sd = r["config"]["seed"]
                if sd in out:
                    raise UserError(f"two cells of {name} at {budget}, seed {sd}: {out[sd].get('run_id')} and "
                                    f"{r.get('run_id')}")
                out[sd] = r
        return out
    ref = by_seed(*reference)
    entries = []
    for name, budget in arms:
        mine = by_seed(name, budget)
        first = next(iter(mine.values()), None)
        base = {"model": first["config"]["model"] if first else None,
                "data": first["config"]["data"] if first else None, "budget": str(budget), "strategy": name,
                "endpoint": metric, "lr": first["config"].get("lr") if first else None,
                "ref_budget": str(reference[1])}
        entries.append((base, mine, ref, [] if mine else ["no cell"]))
    return paired_contrasts(entries, metric, alpha, allow_mixed)


def block_anova(table: dict[str, dict[int, float]], reference: str = REFERENCE, alpha: float = ALPHA) -> dict:
    """Robustness model: two-way ANOVA without interaction on the strategy x seed table (strategy fixed, seed a
    blocking factor), y_ij = mu + a_i + b_j + e_ij, e ~ N(0, sigma^2).

    ``table``: {strategy: {seed: eval loss}}. Only the seeds every strategy has are used (complete blocks; the
    others are listed in ``dropped_seeds``). With k strategies and n seeds:
    residual r_ij = y_ij − ybar_i. − ybar_.j + ybar_.., sigma^2 = sum r_ij^2 / df, df = (k − 1)(n − 1);
    F = [n sum_i (ybar_i. − ybar_..)^2 / (k − 1)] / sigma^2 on (k − 1, df).
    Contrast strategy i − reference: ybar_i. − ybar_ref., SE = sqrt(2 sigma^2 / n), t on df, two-sided p,
    t-interval at 1 − alpha, Holm over the contrasts. In a balanced complete-block design a random seed effect
    (REML mixed model) gives the same contrasts and standard errors, so no mixed-model library is needed. The
    pooled sigma borrows strength across strategies (df (k−1)(n−1) instead of n − 1 per paired test), which
    assumes equal residual variance for all strategies: that is the robustness question, not a free lunch.

    Returns ``k``, ``n``, ``seeds``, ``dropped_seeds``, ``df``, ``sigma``, ``F``, ``p_F`` and ``contrasts``
    (one per non-reference strategy, sorted: ``strategy``, ``diff``, ``se``, ``t``, ``p``, ``p_holm``,
    ``ci_low``, ``ci_high``). Undefined values (df = 0, no reference) are NaN.
    """
    names = _strategy_order(table)
    all_seeds = sorted({sd for v in table.values() for sd in v})
    seeds = [sd for sd in all_seeds if all(sd in table[s] and _finite(table[s][sd]) for s in names)]
    k, n = len(names), len(seeds)
    out = {"k": k, "n": n, "seeds": seeds, "dropped_seeds": [sd for sd in all_seeds if sd not in seeds],
           "df": 0, "sigma": NAN, "F": NAN, "p_F": NAN, "contrasts": []}
    if k == 0 or n == 0:
        return out
    y = np.array([[float(table[s][sd]) for sd in seeds] for s in names])     # k x n
    row_m, col_m, grand = y.mean(axis=1), y.mean(axis=0), y.mean()
    df = (k - 1) * (n - 1)
    resid = y - row_m[:, None] - col_m[None, :] + grand
    ss_res = float((resid ** 2).sum())
    sigma2 = ss_res / df if df else NAN
    out.update(df=df, sigma=math.sqrt(sigma2) if df else NAN)
    if df and k > 1 and sigma2 > 0:
        f = n * float(((row_m - grand) ** 2).sum()) / (k - 1) / sigma2
        out.update(F=f, p_F=float(sps.f.sf(f, k - 1, df)))
    if reference not in names:
        return out
    ri = names.index(reference)
    se = math.sqrt(2 * sigma2 / n) if df else NAN
    tq = float(sps.t.ppf(1 - alpha / 2, df)) if df else NAN
    contrasts = []
    for i, s in enumerate(names):
        if s == reference:
            continue
        d = float(row_m[i] - row_m[ri])
        t = d / se if _finite(se) and se > 0 else NAN
        p = float(2 * sps.t.sf(abs(t), df)) if _finite(t) else NAN
        contrasts.append({"strategy": s, "diff": d, "se": se, "t": t, "p": p,
                          "ci_low": d - tq * se if _finite(se) else NAN, "ci_high": d + tq * se if _finite(se) else NAN})
    for c, p in zip(contrasts, holm([c["p"] for c in contrasts])):
        c["p_holm"] = p
    out["contrasts"] = contrasts
    return out


def endpoint_losses(results: list[dict], budget=None, model=None, data=None, which: str = "primary") -> dict:
    """{strategy: {seed: eval_loss}} of the cells ``endpoint(which)`` uses at one group (``block_anova``'s input)."""
    _, cells = _one_group(results, budget, model, data)
    out: dict[str, dict[int, float]] = {}
    for r in at_selected_lr(cells, which):
        out.setdefault(arm(r), {})[r["config"]["seed"]] = r["eval_loss"]
    return out


def _example_losses(r: dict) -> np.ndarray:
    a = np.asarray(r.get("eval_example_losses"), dtype=float)
    if a.ndim != 2 or a.shape[1] != 2 or not len(a):
        raise UserError(f"{r.get('run_id')}: eval_example_losses must be a non-empty list of [sum_nats, n_tokens]")
    return a


def bootstrap_diff(pairs: list[tuple[dict, dict]], reps: int = BOOT_REPS, seed: int = 0,
                   conf: float = CONF) -> dict:
    """Paired bootstrap over test examples of mean_seeds(token-weighted loss of strategy − of uniform).

    ``pairs``: [(strategy cell, uniform cell)] one per seed; each cell's ``eval_example_losses`` is an E x 2 list
    [sum_nats, n_tokens] in the same example order in every cell (checked: same E). Token-weighted loss of a cell
    on an index multiset I: L(I) = sum_{e in I} nats_e / sum_{e in I} tokens_e. Statistic
    D(I) = (1/S) sum_s [L_strategy,s(I) − L_uniform,s(I)]. Each of ``reps`` replicates draws one I of size E
    with replacement (``numpy.random.default_rng(seed).integers(0, E, (reps, E))``, row r = replicate r), shared
    by both arms AND all seeds (the test set is one sample, common to every cell). Interval: percentiles
    (1 − conf)/2 and (1 + conf)/2 of the replicates (numpy "linear" quantiles). ``estimate`` = D(all examples).
    ``note`` flags cells whose full-sample L differs from their ``eval_loss`` by more than 1e-6 nats (the
    per-example losses would not be the ones the test loss was computed from).
    Gotcha: this interval reflects test-set sampling only, not seed-to-seed training noise; it is a second
    interval beside the paired-t one, not a replacement.
    """
    if not pairs:
        return {"estimate": NAN, "ci_low": NAN, "ci_high": NAN, "reps": 0, "n_examples": 0, "n_seeds": 0, "note": ""}
    arrs = [(_example_losses(a), _example_losses(b)) for a, b in pairs]
    e = len(arrs[0][0])
    if any(len(x) != e or len(y) != e for x, y in arrs):
        raise UserError("eval_example_losses have different lengths across the paired cells")
    notes = []
    for (a, b), (xa, xb) in zip(pairs, arrs):
        for r, x in ((a, xa), (b, xb)):
            full = x[:, 0].sum() / x[:, 1].sum()
            if _finite(r.get("eval_loss")) and abs(full - r["eval_loss"]) > 1e-6:
                notes.append(f"{r.get('run_id')}: eval_example_losses give {full:.6f}, eval_loss {r['eval_loss']:.6f}")
    nats_s = np.stack([x[:, 0] for x, _ in arrs], axis=1)   # E x S
    tok_s = np.stack([x[:, 1] for x, _ in arrs], axis=1)
    nats_u = np.stack([y[:, 0] for _, y in arrs], axis=1)
    tok_u = np.stack([y[:, 1] for _, y in arrs], axis=1)

    def stat(w: np.ndarray) -> np.ndarray:          # w: R x E multiplicities -> R statistics
        return ((w @ nats_s) / (w @ tok_s) - (w @ nats_u) / (w @ tok_u)).mean(axis=1)

    idx = np.random.default_rng(seed).integers(0, e, size=(reps, e))
    w = np.zeros((reps, e))
    np.add.at(w, (np.repeat(np.arange(reps), e), idx.ravel()), 1.0)
    boot = stat(w)
    lo, hi = np.quantile(boot, [(1 - conf) / 2, (1 + conf) / 2])
    return {"estimate": float(stat(np.ones((1, e)))[0]), "ci_low": float(lo), "ci_high": float(hi), "reps": reps,
            "n_examples": e, "n_seeds": len(pairs), "note": "; ".join(notes)}


def endpoint_bootstrap(results: list[dict], strategy: str, budget=None, model=None, data=None,
                       which: str = "primary", reps: int = BOOT_REPS, seed: int = 0, conf: float = CONF,
                       allow_mixed: bool = False) -> dict:
    """``bootstrap_diff`` on the seed pairs ``endpoint(which)`` uses for ``strategy`` at one group."""
    _, cells = _one_group(results, budget, model, data)
    uni_lr = select_lr(cells, REFERENCE)["lr"]
    lr = select_lr(cells, strategy)["lr"] if which == "primary" else uni_lr
    mine, ref = _at_lr(cells, strategy, lr), _at_lr(cells, REFERENCE, uni_lr)
    seeds = sorted(sd for sd in mine if sd in ref)
    for sd in seeds:
        check_pair(mine[sd], ref[sd], allow_mixed)
    return bootstrap_diff([(mine[sd], ref[sd]) for sd in seeds], reps, seed, conf)


def robustness(results: list[dict], budget=None, model=None, data=None, which: str = "primary",
               allow_mixed: bool = False, reps: int = BOOT_REPS) -> list[dict]:
    """The pre-specified robustness checks beside ``endpoint`` at one (model, data, budget), one row per strategy
    with at least two seed pairs: the two-way model (``block_anova`` on ``endpoint_losses`` of those strategies and
    uniform: pooled-variance difference, interval and Holm p; complete blocks only), the paired bootstrap over test
    examples (``endpoint_bootstrap``; NaN with a note when a cell lacks per-example losses) and the equivalent-budget
    multiplier read off uniform's frontier (``uniform_frontier`` made monotone, ``budget_multiplier``: NaN with a
    note while the frontier has fewer than two budgets or the loss lies outside it) at uniform's frontier loss plus
    the arm's paired difference (``paired_loss``), and at the ends of its Holm-adjusted interval (amendment 7).
    Keys: ``strategy``, ``n_pairs``,
    ``anova_seeds`` (the complete blocks the two-way model used: fewer than ``n_pairs`` while an arm of the family
    lacks a seed), ``anova_diff``, ``anova_ci_low``/``anova_ci_high``, ``anova_p_holm``, ``boot_ci_low``/``boot_ci_high``,
    ``multiplier`` (with ``multiplier_side``: "below"/"above" the frontier when NaN for that reason),
    ``multiplier_low`` / ``multiplier_high`` (and their ``_side``) at the adjusted interval's ends,
    ``frontier_multiples`` (the frontier's ends as multiples of the arm's params), ``note``."""
    key, cells = _one_group(results, budget, model, data)
    rows = [r for r in endpoint(cells, which=which, allow_mixed=allow_mixed) if r["n_pairs"] >= 2]
    if not rows:
        return []
    # one model per Holm family of the endpoint (the primary family; the scaling ablation apart), each over its
    # strategies with two seed pairs and uniform: an arm with one seed so far would otherwise cut every block down
    # to that seed while the grid runs seed by seed
    losses, by, fits = endpoint_losses(cells, which=which), {}, {}
    for fam in dict.fromkeys(r["endpoint"] for r in rows):
        family = {r["strategy"] for r in rows if r["endpoint"] == fam} | {REFERENCE}
        fits[fam] = block_anova({s: v for s, v in losses.items() if s in family})
        by.update({c["strategy"]: c for c in fits[fam]["contrasts"]})
    frontier = uniform_frontier(results, key[0], key[1], monotone=True)
    chosen = at_selected_lr(cells, which)
    out = []
    for r in rows:
        s, notes = r["strategy"], []
        c = by.get(s, {})
        try:
            b = endpoint_bootstrap(cells, s, which=which, reps=reps, allow_mixed=allow_mixed)
        except UserError as e:
            b = {"ci_low": NAN, "ci_high": NAN, "note": str(e)}
        loss, params = paired_loss(frontier, r, chosen), mean_params(chosen, s)
        m = budget_multiplier(frontier, loss, params)
        # the frontier falls, so the multiple falls with the loss: the interval's high loss end gives the low multiple
        lo, hi = (budget_multiplier(frontier, loss - r["diff_mean"] + r.get(k, NAN), params)
                  for k in ("adj_ci_high", "adj_ci_low"))
        notes += [n for n in (b.get("note"), m["note"]) if n]
        fit = fits[r["endpoint"]]
        if fit["dropped_seeds"]:
            notes.append("two-way model on seeds " + " ".join(map(str, fit["seeds"])) + " (complete blocks)")
        out.append({"strategy": s, "n_pairs": r["n_pairs"], "anova_seeds": len(fit["seeds"]),
                    "anova_diff": c.get("diff", NAN),
                    "anova_ci_low": c.get("ci_low", NAN), "anova_ci_high": c.get("ci_high", NAN),
                    "anova_p_holm": c.get("p_holm", NAN), "boot_ci_low": b["ci_low"], "boot_ci_high": b["ci_high"],
                    "multiplier": m["multiplier"], "multiplier_side": m["side"],
                    "multiplier_low": lo["multiplier"], "multiplier_low_side": lo["side"],
                    "multiplier_high": hi["multiplier"], "multiplier_high_side": hi["side"],
                    "frontier_multiples": frontier_multiples(frontier, params), "note": "; ".join(notes),
                    "model": key[0], "data": key[1],
                    "budget": key[2], "endpoint": r["endpoint"]})
    return out


def frontier_multiples(frontier: list[tuple[float, float]], params: float) -> tuple[float, float]:
    """(smallest, largest) frontier budget as multiples of ``params``: the bounds a multiplier beyond an end of the
    frontier is reported against ("< 0.125x", "> 4x"); NaNs without a frontier."""
    if not frontier or not (_finite(params) and params > 0):
        return (NAN, NAN)
    return (min(p for p, _ in frontier) / params, max(p for p, _ in frontier) / params)


def mean_params(results: list[dict], strategy: str) -> float:
    """Mean trainable parameters of ``strategy``'s cells in ``results`` (NaN without any)."""
    params = [x["trainable_params"] for x in results if arm(x) == strategy and _finite(x.get("trainable_params"))]
    return sum(params) / len(params) if params else NAN


def paired_loss(frontier: list[tuple[float, float]], row: dict, results: list[dict]) -> float:
    """The loss an endpoint ``row`` stands for on uniform's ``frontier``: the frontier's loss at uniform's budget
    (its point at uniform's mean params in ``results``) plus the row's paired difference ``diff_mean``, so an arm
    with fewer seeds than the frontier point is read over its own seed pairs, not against other seeds' mean (amendment
    7). Without a frontier point there: the arm's own mean loss, as before."""
    p_ref = mean_params(results, REFERENCE)
    at = [l for p, l in frontier if _finite(p_ref) and abs(p - p_ref) <= 1e-6 * p_ref]
    if at and _finite(row.get("diff_mean")):
        return at[0] + row["diff_mean"]
    mine = [x["eval_loss"] for x in results if arm(x) == row["strategy"] and _finite(x.get("eval_loss"))]
    return sum(mine) / len(mine) if mine else NAN


def frontier_falls(frontier: list[tuple[float, float]]) -> bool:
    """Whether a frontier [(params, loss)] loses loss at every step up in params (strictly decreasing once sorted
    by params). Where it does not, a loss may be crossed more than once and a multiplier read off it is rough."""
    pts = sorted(frontier)
    return all(b[1] < a[1] for a, b in zip(pts, pts[1:]))


def budget_multiplier(frontier: list[tuple[float, float]], loss: float, budget_params: float) -> dict:
    """Equivalent-budget multiplier of a strategy with mean test loss ``loss`` at ``budget_params`` parameters.

    ``frontier``: uniform's [(params, mean loss)] at several budgets. Sorted by params, loss is interpolated
    linearly in log(params) between neighbouring points; the params P* where the frontier reaches ``loss``:
    log P* = log p1 + (loss − l1) / (l2 − l1) · (log p2 − log p1) on a segment whose losses bracket ``loss``
    (endpoints included; a flat segment at ``loss`` gives its end nearer ``budget_params``). c = P* / budget_params
    (c > 1: the strategy is worth more parameters than it has). No extrapolation: ``loss`` outside
    [min, max] of the frontier's losses (or fewer than 2 points) -> c NaN with a note, and ``side`` says where:
    "below" (a lower loss than the frontier reaches: worth more than its largest budget) or "above" ("" inside or
    without a frontier).

    Gotcha: a frontier whose loss does not fall at every step (``frontier_falls``; noise between near-equal budgets)
    can reach ``loss`` more than once. Then the crossing nearest ``budget_params`` in log(params) is read (ties: the
    smaller), so uniform rank's own loss at its own budget reads c = 1 (amendment 7; the first crossing from the
    smallest budget read uniform r8 as 0.2x itself), and ``note`` says the frontier is not strictly decreasing.
    Returns ``multiplier``, ``equivalent_params``, ``side``, ``note``.
    """
    pts = sorted((float(p), float(l)) for p, l in frontier if _finite(p) and p > 0 and _finite(l))
    out = {"multiplier": NAN, "equivalent_params": NAN, "side": "", "note": ""}
    notes = []
    if not frontier_falls(pts):
        notes.append("uniform's frontier is not strictly decreasing in params")
    if len(pts) < 2 or not (_finite(loss) and _finite(budget_params) and budget_params > 0):
        out["note"] = "; ".join(notes + ["fewer than 2 frontier points or no loss/budget"])
        return out
    losses = [l for _, l in pts]
    if not (min(losses) <= loss <= max(losses)):
        out["side"] = "below" if loss < min(losses) else "above"
        out["note"] = "; ".join(notes + [f"loss {loss:.4f} {out['side']} uniform's frontier "
                                         f"[{min(losses):.4f}, {max(losses):.4f}]: no extrapolation"])
        return out
    crossings = []   # log P* of every segment that brackets the loss
    for (p1, l1), (p2, l2) in zip(pts, pts[1:]):
        if min(l1, l2) <= loss <= max(l1, l2):
            if l1 == l2:   # flat at the loss: its end nearer the budget
                crossings.append(min((math.log(p1), math.log(p2)), key=lambda x: abs(x - math.log(budget_params))))
            else:
                crossings.append(math.log(p1) + (loss - l1) / (l2 - l1) * (math.log(p2) - math.log(p1)))
    eq = math.exp(min(crossings, key=lambda x: (abs(x - math.log(budget_params)), x)))
    out.update(multiplier=eq / budget_params, equivalent_params=eq, note="; ".join(notes))
    return out


def uniform_rank(budget) -> int | None:
    """The rank N of a uniform-rank budget 'rN' ('r8' -> 8); None for an absolute count ('1.5M') or anything else.
    The paper and its figures read budgets through it. (``budget.parse_budget`` has its own copy of the pattern:
    budget.py is training-path code, frozen with the grids' hash.)"""
    m = re.fullmatch(r"r(\d+)", str(budget).strip())
    return int(m[1]) if m else None


FRONTIER_MIN_SEEDS = 2   # a protocol-v2 frontier point is a mean over seeds (stage 4 runs 3), not one lr-check cell


def uniform_frontier(results: list[dict], model: str, data: str, monotone: bool = False) -> list[tuple[float, float]]:
    """Uniform's [(mean trainable_params, mean eval_loss)] per budget of (model, data), sorted by params; protocol
    v2 cells at uniform's selected lr per budget (``at_selected_lr``), pilot cells as they are. A protocol-v2
    budget counts once it has FRONTIER_MIN_SEEDS seeds there: before stage 4, uniform's r1 / r32 points would be the
    single seed-0 cells of its lr check, too noisy for the multiplier the plan reads off the stage-4 frontier.
    ``monotone``: the losses replaced by their weighted isotonic (non-increasing) fit, ``monotone_fit``, which the
    multipliers are read off (amendment 7)."""
    pts, weights = [], []
    for key, cells in sorted(_cells(at_selected_lr(results), model, data).items()):
        uni = [r for r in cells if arm(r) == REFERENCE and _finite(r.get("eval_loss"))
               and _finite(r.get("trainable_params"))]
        if any(is_v2(r) for r in uni) and len({r["config"]["seed"] for r in uni}) < FRONTIER_MIN_SEEDS:
            continue
        if uni:
            pts.append((sum(r["trainable_params"] for r in uni) / len(uni),
                        sum(r["eval_loss"] for r in uni) / len(uni)))
            weights.append(len(uni))
    pairs = sorted(zip(pts, weights))   # by params
    pts, weights = [p for p, _ in pairs], [w for _, w in pairs]
    return monotone_fit(pts, weights) if monotone else pts


def rank_gains(results: list[dict], model: str, data: str, reference: str = "r8",
               budgets: tuple[str, ...] = ("r16", "r32")) -> list[dict]:
    """Uniform at each of ``budgets`` minus uniform at ``reference``, paired by seed, at the selected lrs
    (``at_selected_lr``; ``reference_endpoint`` rows, Holm over the budgets): what more rank buys (amendment 8).
    Budgets without a uniform cell are left out; [] when the reference has none."""
    uni = [r for r in at_selected_lr(results) if is_v2(r) and arm(r) == REFERENCE and _finite(r.get("eval_loss"))
           and r["config"]["model"] == model and data_label(r["config"]) == data]
    have = {str(r["config"]["budget"]) for r in uni}
    if reference not in have:
        return []
    return reference_endpoint(uni, (REFERENCE, reference), [(REFERENCE, b) for b in budgets if b in have])


def monotone_fit(frontier: list[tuple[float, float]], weights: list[float]) -> list[tuple[float, float]]:
    """A frontier [(params, loss)] sorted by params, its losses replaced by their weighted least-squares fit that
    does not rise with params (isotonic regression, pool-adjacent-violators; ``weights``: cells per point). Where
    noise makes a larger budget's mean loss higher than a smaller one's, the two are pooled into one flat step:
    more rank at a tuned lr is not expected to cost loss, and a frontier that rises can reach a loss more than once,
    so that a multiplier read off it jumps (stage 4 with 2-3 seeds read uniform r8 as 0.2x itself)."""
    if len(frontier) < 2:
        return list(frontier)
    from scipy.optimize import isotonic_regression
    fit = isotonic_regression([l for _, l in frontier], weights=weights, increasing=False).x
    return [(p, float(l)) for (p, _), l in zip(frontier, fit)]
