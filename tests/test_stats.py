"""Protocol-v2 statistics (adaptive_lora.stats) on synthetic results with hand-computed answers; v2 writers."""
import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from adaptive_lora import report, stats, writers
from adaptive_lora.errors import UserError

NAN = float("nan")


def cell(strategy, seed, lr, dev, test, budget="r8", h="h1", params=4000, examples=None, run_id=None):
    r = {"run_id": run_id or f"{strategy}_{budget}_lr{lr:g}_s{seed}",
         "config": {"model": "tiny", "data": "alpaca", "strategy": strategy, "budget": budget, "seed": seed,
                    "lr": lr},
         "dev_loss": dev, "eval_loss": test, "budget_params": params, "trainable_params": params}
    if h is not None:
        r["provenance"] = {"training_path_hash": h}
    if examples is not None:
        r["eval_example_losses"] = examples
    return r


# ------------------------------------------------------------------------------------------------ hash guard
@pytest.mark.parametrize("ha, hb, allow, expected", [
    ("h1", "h1", False, ""), (None, None, False, ""), ("h1", "h2", True, "MIXED TRAINING-PATH HASHES (h1 vs h2)"),
    (None, "h2", True, "MIXED TRAINING-PATH HASHES (none vs h2)"), ("h1", "h2", False, UserError),
    ("h1", None, False, UserError)])
def test_check_pair_table(ha, hb, allow, expected):
    a, b = cell("attn_heavy", 0, 1e-4, 2, 2, h=ha), cell("uniform", 0, 1e-4, 2, 2, h=hb)
    if expected is UserError:
        with pytest.raises(UserError) as e:
            stats.check_pair(a, b, allow)
        msg = str(e.value)
        assert "\n" not in msg and f"training_path_hash {ha or 'none'}" in msg and f"hash {hb or 'none'}" in msg
    else:
        assert stats.check_pair(a, b, allow) == expected


def test_summarize_refuses_mixed_hashes_unless_allowed():
    rs = [cell("uniform", s, 1e-4, 2, 2.0 + s, h="h1") for s in (0, 1)]
    rs += [cell("attn_heavy", 0, 1e-4, 2, 1.9, h="h1"), cell("attn_heavy", 1, 1e-4, 2, 2.8, h="h2")]
    with pytest.raises(UserError, match="h2"):
        stats.summarize(rs)
    rows = stats.summarize(rs, allow_mixed=True)
    assert "MIXED TRAINING-PATH HASHES (h2 vs h1)" in rows[1]["note"]
    # pilot cells (no field) pair with each other
    for r in rs:
        del r["provenance"]
    assert "MIXED" not in stats.summarize(rs)[1]["note"]


# ------------------------------------------------------------------------------------------------ lr selection
LR = [1e-4, 3e-4, 1e-3]
SELECT_CASES = [  # dev losses at LR -> (selected lr, bracketed, extend, next_lr)
    ([2.0, 1.9, 2.1], 3e-4, True, None, []),
    ([1.8, 1.9, 2.1], 1e-4, False, "lower", [1e-4 / 3]),
    ([2.0, 1.9, 1.8], 1e-3, False, "higher", [3e-3]),
    ([2.0, 1.9, NAN], 3e-4, True, None, []),             # diverged (NaN) counts as worse
    ([1.9, 1.9, 2.0], 1e-4, False, "lower", [1e-4 / 3]),  # tie -> the smaller lr
    ([1.9, 1.9, 1.9], 1e-4, False, "both", [1e-4 / 3, 3e-3]),       # flat: extend both ends
    ([2.0, 1.9, 1.9], 3e-4, False, "higher", [3e-3]),               # tie at the top: beyond the grid's end
]


@pytest.mark.parametrize("devs, lr, bracketed, extend, next_lr", SELECT_CASES)
def test_select_lr_table(devs, lr, bracketed, extend, next_lr):
    # test losses would pick the opposite lr: they must not matter; seed-1 cells must not matter either
    rs = [cell("uniform", 0, x, d, 3.0 - i) for i, (x, d) in enumerate(zip(LR, devs))]
    rs += [cell("uniform", 1, x, 0.5 * (i == 2), 1.0) for i, x in enumerate(LR)]
    sel = stats.select_lr(rs, "uniform")
    assert sel["lr"] == lr and sel["bracketed"] is bracketed and sel["extend"] == extend
    assert sel["next_lr"] == pytest.approx(next_lr)
    assert [x for x, _ in sel["curve"]] == LR
    assert [v for _, v in sel["curve"]] == [d if math.isfinite(d) else math.inf for d in devs]
    assert (extend is None) == (sel["note"] == "bracketed")


def test_select_lr_edge_cases():
    one = stats.select_lr([cell("uniform", 0, 2e-4, 1.5, 1.5)], "uniform")
    assert one["extend"] == "both" and one["next_lr"] == pytest.approx([2e-4 / 3, 6e-4])
    none = stats.select_lr([cell("uniform", 1, 2e-4, 1.5, 1.5)], "uniform")
    assert none["lr"] is None and "no seed-0 cell" in none["note"]
    with pytest.raises(UserError, match="two seed-0 cells"):
        stats.select_lr([cell("uniform", 0, 2e-4, 1.5, 1.5), cell("uniform", 0, 2e-4, 1.6, 1.5, run_id="x")],
                        "uniform")
    two_budgets = [cell("uniform", 0, 2e-4, 1.5, 1.5), cell("uniform", 0, 2e-4, 1.4, 1.4, budget="r2")]
    with pytest.raises(UserError, match="groups"):
        stats.select_lr(two_budgets, "uniform")
    assert stats.select_lr(two_budgets, "uniform", budget="r2")["dev_loss"] == 1.4


# --------------------------------------------------------------------------------------------- the endpoints
U_TEST = [2.0, 2.1, 2.3]
A_DIFF = [-0.10, -0.11, -0.12]      # mean −0.11, sd 0.01: t = −11 sqrt(3), df 2
B_DIFF = [0.10, 0.10, 0.40]         # mean 0.2, sd sqrt(0.03): t = 2, df 2


def t2_p(t):
    """Two-sided p of Student t with 2 df, closed form: 1 − |t| / sqrt(2 + t^2)."""
    return 1 - abs(t) / math.sqrt(2 + t * t)


def t2_q(p):
    """Quantile of Student t with 2 df, closed form: (2p − 1) / sqrt(2 p (1 − p))."""
    return (2 * p - 1) / math.sqrt(2 * p * (1 - p))


def v2_results(hash_b1="h1"):
    """uniform selects 3e-4 (dev), attn_heavy 1e-4, ffn_heavy 3e-4; test losses at the other lr are decoys."""
    rs = []
    for s in range(3):
        rs += [cell("uniform", s, 1e-4, 2.5, 9.0), cell("uniform", s, 3e-4, 2.4, U_TEST[s])]
        rs += [cell("attn_heavy", s, 1e-4, 2.3, U_TEST[s] + A_DIFF[s]), cell("attn_heavy", s, 3e-4, 2.35, U_TEST[s] + 1)]
        rs += [cell("ffn_heavy", s, 1e-4, 2.6, 9.0),
               cell("ffn_heavy", s, 3e-4, 2.5, U_TEST[s] + B_DIFF[s], h=hash_b1 if s == 1 else "h1")]
    return rs


def test_primary_endpoint_exact():
    a, b = stats.endpoint(v2_results(), which="primary")
    assert (a["strategy"], a["lr"], a["ref_lr"], b["strategy"], b["lr"]) == ("attn_heavy", 1e-4, 3e-4, "ffn_heavy", 3e-4)
    assert a["diffs"] == pytest.approx(A_DIFF) and a["diff_mean"] == pytest.approx(-0.11) and a["n_pairs"] == 3
    pa, pb = t2_p(11 * math.sqrt(3)), t2_p(2.0)
    assert pa == pytest.approx(1 - math.sqrt(363 / 365)) and pb == pytest.approx(1 - 2 / math.sqrt(6))
    assert a["p"] == pytest.approx(pa, rel=1e-9) and b["p"] == pytest.approx(pb, rel=1e-9)
    assert a["p_holm"] == pytest.approx(2 * pa) and b["p_holm"] == pytest.approx(pb)
    # unadjusted 95 %: ± t_{0.975,2} sd / sqrt(3)
    half_a = t2_q(0.975) * 0.01 / math.sqrt(3)
    assert (a["ci_low"], a["ci_high"]) == (pytest.approx(-0.11 - half_a), pytest.approx(-0.11 + half_a))
    # Holm step 1 (attn_heavy, p 0.0027 <= 0.025): level 1 − 0.05/2; step 2 (p 0.18 > 0.05): level 0.95
    assert (a["step"], a["level"], b["step"], b["level"]) == (1, pytest.approx(0.975), 2, pytest.approx(0.95))
    adj_a = t2_q(1 - 0.025 / 2) * 0.01 / math.sqrt(3)
    assert (a["adj_ci_low"], a["adj_ci_high"]) == (pytest.approx(-0.11 - adj_a), pytest.approx(-0.11 + adj_a))
    adj_b = t2_q(0.975) * math.sqrt(0.03) / math.sqrt(3)
    assert (b["adj_ci_low"], b["adj_ci_high"]) == (pytest.approx(0.2 - adj_b), pytest.approx(0.2 + adj_b))
    assert (a["verdict"], b["verdict"]) == ("better", "no detectable difference")
    assert a["note"] == b["note"] == ""


@pytest.mark.parametrize("extra, expected", [
    ({}, "eva"), ({"eva_rho": 2.0}, "eva"), ({"eva_rho": 1.0}, "eva[rho1]"), ({"scaling": "constant"}, "eva"),
    ({"scaling": "rslora"}, "eva[rslora]"), ({"eva_rho": 1.0, "scaling": "rslora"}, "eva[rho1,rslora]"),
    ({"eva_rho": None}, "eva")])
def test_arm_table(extra, expected):
    r = cell("eva", 0, 1e-3, 2, 2)
    r["config"].update(extra)
    assert stats.arm(r) == expected


def test_variant_arms_are_compared_on_their_own_not_pooled():
    """eva with rho 1 at seed 0 beside eva (rho 2) at the same lr is a second arm, not a duplicate cell."""
    rs = v2_results()
    for s in range(3):
        r = cell("attn_heavy", s, 3e-4, 2.0, U_TEST[s] + 0.5)
        r["config"]["scaling"] = "rslora"
        rs.append(r)
    rows = {r["strategy"]: r for r in stats.endpoint(rs, which="primary")}
    assert set(rows) == {"attn_heavy", "attn_heavy[rslora]", "ffn_heavy"}
    assert rows["attn_heavy"]["lr"] == 1e-4 and rows["attn_heavy"]["diffs"] == pytest.approx(A_DIFF)
    assert rows["attn_heavy[rslora]"]["lr"] == 3e-4 and rows["attn_heavy[rslora]"]["diffs"] == pytest.approx([0.5] * 3)


def test_secondary_endpoint_uses_uniforms_lr():
    a, b = stats.endpoint(v2_results(), which="secondary")
    assert a["lr"] == b["lr"] == 3e-4
    assert a["diffs"] == pytest.approx([1.0, 1.0, 1.0]) and math.isnan(a["p"]) and "constant" in a["note"]
    assert b["diffs"] == pytest.approx(B_DIFF)


def test_endpoint_hash_guard():
    with pytest.raises(UserError, match="h9"):
        stats.endpoint(v2_results(hash_b1="h9"))
    _, b = stats.endpoint(v2_results(hash_b1="h9"), allow_mixed=True)
    assert b["note"] == "MIXED TRAINING-PATH HASHES (h9 vs h1)"


def test_holm_intervals_freeze_at_the_first_non_rejection():
    d = [-0.1, -0.2, -0.3]
    rows = [{"p": 0.04, "diffs": d}, {"p": 0.001, "diffs": d}, {"p": NAN, "diffs": d}, {"p": 0.045, "diffs": d}]
    out = stats.holm_intervals(rows)
    assert [o["step"] for o in out] == [2, 1, None, 3]
    assert [o["rejected"] for o in out] == [False, True, False, False]
    # m = 3: step 1 at 1 − 0.05/3; step 2 fails (0.04 > 0.025): level 1 − 0.05/2, frozen for step 3 (0.045 <= 0.05
    # would pass on its own, but Holm stopped)
    assert out[1]["level"] == pytest.approx(1 - 0.05 / 3)
    assert out[0]["level"] == out[3]["level"] == pytest.approx(0.975) and math.isnan(out[2]["level"])
    half = t2_q(1 - 0.025 / 2) * 0.1 / math.sqrt(3)
    assert (out[3]["adj_ci_low"], out[3]["adj_ci_high"]) == (pytest.approx(-0.2 - half), pytest.approx(-0.2 + half))


@pytest.mark.parametrize("lo, hi, expected", [(-0.3, -0.1, "better"), (0.1, 0.3, "worse"),
                                              (-0.1, 0.1, "no detectable difference"),
                                              (0.0, 0.2, "no detectable difference"),
                                              (-0.2, 0.0, "no detectable difference"), (NAN, 0.1, "undetermined")])
def test_verdict_table(lo, hi, expected):
    assert stats.verdict(lo, hi) == expected


@pytest.mark.parametrize("lo, hi, expected", [
    (-0.009, 0.009, "equivalent"), (0.0, 0.0099, "equivalent"),              # inside (-0.01, 0.01), contains 0
    (-0.011, 0.005, "no detectable difference"), (-0.005, 0.01, "no detectable difference"),   # reaches the margin
    (-0.009, -0.001, "better"), (0.001, 0.009, "worse"),                     # excludes 0: significance first
    (NAN, 0.0, "undetermined")])
def test_verdict_with_an_equivalence_margin(lo, hi, expected):
    assert stats.verdict(lo, hi, margin=0.01) == expected
    assert stats.verdict(lo, hi) == expected.replace("equivalent", "no detectable difference")


def test_endpoint_calls_a_tight_null_effect_equivalent_and_a_loose_one_inconclusive():
    """Protocol v2's endpoint uses the pre-specified margin (amendment 2); the prior setting's reference_endpoint
    keeps the three verdicts it was planned with."""
    assert stats.EQUIVALENCE_MARGIN == 0.01
    rs = []
    for s in range(4):
        rs.append(cell("uniform", s, 1e-3, 1.8, 2.0 + 0.01 * s))
        rs.append(cell("attn_heavy", s, 1e-3, 1.8, 2.0 + 0.01 * s + [0.001, -0.001, 0.0005, -0.0005][s]))
        rs.append(cell("ffn_heavy", s, 1e-3, 1.8, 2.0 + 0.01 * s + [0.02, -0.02, 0.01, -0.01][s]))
    rows = {r["strategy"]: r for r in stats.endpoint(rs, "r8")}
    assert rows["attn_heavy"]["verdict"] == "equivalent"
    assert rows["ffn_heavy"]["verdict"] == "no detectable difference"
    assert stats.endpoint(rs, "r8", margin=None)[0]["verdict"] == "no detectable difference"


# ------------------------------------------------------------------------------------------------- robustness
def test_block_anova_exact():
    # y_ij = 1 + a_i + b_j + e_ij, a = (0, −0.5, 0.3), b = (0, 1, 2), e with zero row and column sums
    a, b = {"uniform": 0.0, "attn_heavy": -0.5, "ffn_heavy": 0.3}, [0.0, 1.0, 2.0]
    e = {"uniform": [0.1, -0.1, 0.0], "attn_heavy": [-0.1, 0.1, 0.0], "ffn_heavy": [0.0, 0.0, 0.0]}
    table = {s: {j: 1 + a[s] + b[j] + e[s][j] for j in range(3)} for s in a}
    table["uniform"][3] = 5.0                                    # incomplete block: dropped
    fit = stats.block_anova(table)
    assert (fit["k"], fit["n"], fit["seeds"], fit["dropped_seeds"], fit["df"]) == (3, 3, [0, 1, 2], [3], 4)
    assert fit["sigma"] == pytest.approx(0.1)                    # SS_res 0.04 / 4
    assert fit["F"] == pytest.approx(49.0) and fit["p_F"] == pytest.approx(sps.f.sf(49.0, 2, 4))
    se = math.sqrt(2 * 0.01 / 3)
    ca, cb = fit["contrasts"]
    assert (ca["strategy"], ca["diff"], ca["se"]) == ("attn_heavy", pytest.approx(-0.5), pytest.approx(se))
    assert ca["t"] == pytest.approx(-0.5 / se) and ca["p"] == pytest.approx(2 * sps.t.sf(0.5 / se, 4))
    assert cb["diff"] == pytest.approx(0.3)
    q = sps.t.ppf(0.975, 4)
    assert (cb["ci_low"], cb["ci_high"]) == (pytest.approx(0.3 - q * se), pytest.approx(0.3 + q * se))
    assert [ca["p_holm"], cb["p_holm"]] == pytest.approx(stats.holm([ca["p"], cb["p"]]))


def test_block_anova_with_two_strategies_is_the_paired_t_test():
    u, x = [2.0, 2.1, 2.3, 2.2], [1.9, 2.05, 2.2, 2.25]
    fit = stats.block_anova({"uniform": dict(enumerate(u)), "linear_decay": dict(enumerate(x))})
    (c,) = fit["contrasts"]
    pt = stats.paired_test(x, u)
    assert c["p"] == pytest.approx(pt["p"]) and c["ci_low"] == pytest.approx(pt["diff_ci_low"])


def test_block_anova_matches_least_squares():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(4, 5))
    names = ["uniform", "a", "b", "c"]
    fit = stats.block_anova({s: dict(enumerate(y[i])) for i, s in enumerate(names)})
    # dummy-coded OLS: intercept, 3 strategy effects (vs uniform), 4 seed effects
    X = np.zeros((20, 8))
    for i in range(4):
        for j in range(5):
            X[i * 5 + j, 0] = 1
            if i:
                X[i * 5 + j, i] = 1
            if j:
                X[i * 5 + j, 3 + j] = 1
    beta, res, *_ = np.linalg.lstsq(X, y.ravel(), rcond=None)
    assert fit["sigma"] == pytest.approx(math.sqrt(res[0] / 12))
    assert [c["diff"] for c in fit["contrasts"]] == pytest.approx(list(beta[1:4]))


# -------------------------------------------------------------------------------------------------- bootstrap
def test_bootstrap_constant_shift_is_exact():
    ex_u = [[2.0 * t, t] for t in (3, 5, 7, 11)]
    ex_s = [[n - 0.1 * t, t] for n, t in ex_u]
    pairs = [(cell("a", s, 1e-4, 1, 1.9, examples=ex_s), cell("uniform", s, 1e-4, 1, 2.0, examples=ex_u))
             for s in range(3)]
    out = stats.bootstrap_diff(pairs, reps=500)
    assert out["estimate"] == pytest.approx(-0.1) and out["ci_low"] == pytest.approx(-0.1)
    assert out["ci_high"] == pytest.approx(-0.1) and out["note"] == "" and (out["n_examples"], out["n_seeds"]) == (4, 3)


def test_bootstrap_two_examples_exact():
    # strategy 8/4 = 2.0, uniform 9/4 = 2.25; replicates: {0,0} -> 2 − 3 = −1 (p 1/4), {0,1} -> −0.25, {1,1} -> 0
    s = cell("a", 0, 1e-4, 1, 2.0, examples=[[2.0, 1], [6.0, 3]])
    u = cell("uniform", 0, 1e-4, 1, 2.3, examples=[[3.0, 1], [6.0, 3]])
    out = stats.bootstrap_diff([(s, u)], reps=2000, seed=0)
    assert out["estimate"] == pytest.approx(-0.25) and (out["ci_low"], out["ci_high"]) == (-1.0, 0.0)
    assert "eval_loss 2.300000" in out["note"]                 # 9/4 = 2.25 != the recorded 2.3


def test_bootstrap_matches_a_plain_loop():
    rng = np.random.default_rng(7)
    mk = lambda: [[float(rng.uniform(1, 30)), int(rng.integers(1, 10))] for _ in range(6)]  # noqa: E731
    pairs = [(cell("a", s, 1e-4, 1, NAN, examples=mk()), cell("uniform", s, 1e-4, 1, NAN, examples=mk()))
             for s in range(2)]
    out = stats.bootstrap_diff(pairs, reps=300, seed=11, conf=0.9)
    idx = np.random.default_rng(11).integers(0, 6, size=(300, 6))
    reps = []
    for row in idx:
        d = []
        for a, b in pairs:
            la = sum(a["eval_example_losses"][i][0] for i in row) / sum(a["eval_example_losses"][i][1] for i in row)
            lb = sum(b["eval_example_losses"][i][0] for i in row) / sum(b["eval_example_losses"][i][1] for i in row)
            d.append(la - lb)
        reps.append(sum(d) / len(d))
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(tuple(np.quantile(reps, [0.05, 0.95])), rel=1e-12)
    with pytest.raises(UserError, match="different lengths"):
        stats.bootstrap_diff([pairs[0], (pairs[1][0], cell("u", 1, 1e-4, 1, 1, examples=[[1.0, 1]]))])


def test_endpoint_bootstrap_uses_the_endpoint_pairs():
    rs = v2_results()
    for r in rs:
        r["eval_example_losses"] = [[r["eval_loss"] * 2, 2], [r["eval_loss"] * 3, 3]]
    out = stats.endpoint_bootstrap(rs, "attn_heavy", reps=200)
    assert out["estimate"] == pytest.approx(-0.11) and out["n_seeds"] == 3 and out["note"] == ""


# ------------------------------------------------------------------------------------ equivalent budget
FRONTIER = [(4000, 1.8), (1000, 2.0), (16000, 1.7)]


@pytest.mark.parametrize("loss, budget, c", [(1.9, 1000, 2.0), (1.8, 2000, 2.0), (1.75, 4000, 2.0), (2.0, 1000, 1.0),
                                             (1.9, 4000, 0.5), (1.7, 16000, 1.0), (2.1, 1000, NAN), (1.6, 1000, NAN)])
def test_budget_multiplier_table(loss, budget, c):
    out = stats.budget_multiplier(FRONTIER, loss, budget)
    if math.isnan(c):
        assert math.isnan(out["multiplier"]) and "no extrapolation" in out["note"]
        assert out["side"] == ("above" if loss > 2 else "below") and out["side"] in out["note"]
    else:
        assert out["multiplier"] == pytest.approx(c) and out["equivalent_params"] == pytest.approx(c * budget)
        assert out["note"] == "" and out["side"] == ""


@pytest.mark.parametrize("frontier, falls", [
    (FRONTIER, True),                                   # unsorted input is read sorted by params
    ([(1000, 2.0), (4000, 2.1)], False),                # rises
    ([(1000, 2.0), (2000, 1.9), (4000, 1.9)], False),   # flat step: a loss may be crossed more than once
    ([(1000, 2.0)], True), ([], True),                  # nothing to fall: vacuously true
])
def test_frontier_falls(frontier, falls):
    assert stats.frontier_falls(frontier) is falls


# not monotone, as stage 4's was with 2-3 seeds: r4 (2000) below r8 (4000); 1.95 is reached three times
BUMPY = [(1000, 2.0), (2000, 1.9), (4000, 1.95), (8000, 1.8)]


FLAT = [(1000, 2.0), (2000, 1.9), (4000, 1.9), (8000, 1.8)]


@pytest.mark.parametrize("loss, budget, c, frontier", [
    (1.95, 4000, 1.0, BUMPY),        # uniform's own loss at its own budget reads 1 (the first crossing gave 0.35)
    (1.95, 1000, 2 ** 0.5, BUMPY),   # from 1000 the nearest crossing is the first one (log 1414)
    # 1.92 is crossed at 1000 * 2^0.8, 2000 * 2^0.4 and 4000 * 2^0.2: from 4000 the last is nearest, from 2000 the first
    (1.92, 4000, 2 ** 0.2, BUMPY), (1.92, 2000, 2 ** -0.2, BUMPY),
    (1.9, 4000, 1.0, FLAT), (1.9, 1000, 2.0, FLAT),      # flat at the loss: its end nearer the budget
])
def test_budget_multiplier_reads_the_crossing_nearest_the_budget(loss, budget, c, frontier):
    out = stats.budget_multiplier(frontier, loss, budget)
    assert out["multiplier"] == pytest.approx(c) and "not strictly decreasing" in out["note"]


def test_budget_multiplier_gotchas():
    assert "not strictly decreasing" in stats.budget_multiplier([(1000, 2.0), (4000, 2.1)], 2.05, 1000)["note"]
    assert math.isnan(stats.budget_multiplier([(1000, 2.0)], 2.0, 1000)["multiplier"])


def test_uniform_frontier_from_v2_results():
    rs = v2_results() + [cell("uniform", s, 3e-4, 2.4, 2.5, budget="r2", params=1000) for s in range(2)]
    rs += [cell("uniform", 0, 1e-4, 2.3, 9.9, budget="r2", params=1000)]      # selected at r2 (seed 0's dev)
    # one seed at the selected lr is an lr-check cell, not yet a frontier point (stage 4 runs 3 seeds)
    ((p2, l2),) = stats.uniform_frontier(rs, "tiny", "alpaca")
    assert p2 == 4000 and l2 == pytest.approx(sum(U_TEST) / 3)
    rs += [cell("uniform", 1, 1e-4, 2.3, 9.7, budget="r2", params=1000)]
    (p1, l1), (p2, l2) = stats.uniform_frontier(rs, "tiny", "alpaca")
    assert (p1, p2) == (1000, 4000) and l1 == pytest.approx(9.8)


# -------------------------------------------------------------------------------------------- power via nct
def test_paired_power_where_nct_cdf_fails_and_the_clamp():
    # nc = 7.625 at df 1: nct.cdf(-c) is NaN there, the symmetric nct.sf(c, df, -nc) is not
    sd = 0.01 * math.sqrt(2) / 7.625
    c = sps.t.ppf(0.975, 1)
    assert math.isnan(sps.nct.cdf(-c, 1, 7.625))
    from scipy import integrate        # df 1: power = E_W[Phi(nc − c|W|) + Phi(−nc − c|W|)], W ~ N(0, 1)
    direct = 2 * integrate.quad(lambda w: sps.norm.pdf(w) * (sps.norm.cdf(7.625 - c * w)
                                                             + sps.norm.cdf(-7.625 - c * w)), 0, math.inf)[0]
    assert stats.paired_power(2, sd) == pytest.approx(direct, abs=1e-9)
    # nc = 4e9: nct.sf itself is NaN; the lower bound proves power 1 -> clamped
    tiny = 0.01 * math.sqrt(2) / 4e9
    assert math.isnan(sps.nct.sf(c, 1, 4e9)) and stats.paired_power(2, tiny) == 1.0


def test_paired_power_refuses_an_unprovable_clamp(monkeypatch):
    monkeypatch.setattr(stats.sps.nct, "sf", lambda *a, **k: NAN)
    with pytest.raises(ValueError, match="not provably 1"):
        stats.paired_power(10, 0.01)


# ---------------------------------------------------------------------------------------------------- writers
def test_endpoint_table_writers_and_report(tmp_path):
    rows = stats.endpoint(v2_results()) + stats.endpoint(v2_results(), which="secondary")
    t = writers.endpoint_table(rows)
    md, tex = writers.table_markdown(t), writers.table_latex(t, "generated")
    assert all(ln.count("|") == 10 for ln in md.splitlines())
    assert "| attn_heavy | 0.0001 | 3 | -0.1100 |" in md and "better" in md and "**tiny, alpaca, budget r8, primary" in md
    body = [ln for ln in tex.splitlines() if ln.endswith(r"\\") and "multicolumn" not in ln]
    assert all(ln.count("&") == 8 for ln in body) and "$-$0.1100" in tex and r"\texttt{attn\_heavy} &" in tex
    assert tex.count(r"\multicolumn") == 2 and tex.startswith("% generated")
    lr_md = writers.table_markdown(writers.lr_table(stats.lr_selection(v2_results())))
    assert "| uniform | 0.0001: 2.5000, 0.0003: 2.4000 | 0.0003 | no |" in lr_md
    report.write_report("syn", v2_results(), tmp_path, None)
    text = (tmp_path / "summary.md").read_text()
    assert "## Primary endpoint" in text and "## Secondary endpoint" in text and "## Learning-rate selection" in text
    # summary table at each strategy's selected lr: 3 seeds each, no duplicate-seed warnings
    assert "| uniform | 3 | 2.1333" in text and "## Warnings" not in text


def test_endpoint_losses_feed_the_block_anova():
    table = stats.endpoint_losses(v2_results())
    assert table["uniform"] == {0: 2.0, 1: 2.1, 2: 2.3} and table["attn_heavy"][2] == pytest.approx(2.18)
    ca, cb = stats.block_anova(table)["contrasts"]
    assert (ca["diff"], cb["diff"]) == (pytest.approx(-0.11), pytest.approx(0.2))
    sec = stats.endpoint_losses(v2_results(), which="secondary")
    assert sec["attn_heavy"] == pytest.approx({0: 3.0, 1: 3.1, 2: 3.3})


def test_reference_endpoint_pairs_across_budgets_on_the_chosen_metric():
    """The prior setting: placements at their natural budgets against uniform at r16, on transfer_loss."""
    rs = []
    for s in range(3):
        u = cell("uniform", s, 2e-4, NAN, 2.0, budget="r16")
        u["transfer_loss"] = 1.50 + 0.01 * s
        a = cell("attention_only", s, 2e-4, NAN, 2.0, budget="1843200")
        a["transfer_loss"] = u["transfer_loss"] + [0.05, 0.06, 0.07][s]
        f = cell("ffn_in", s, 2e-4, NAN, 2.0, budget="2027520")
        f["transfer_loss"] = u["transfer_loss"] + [0.01, -0.01, 0.0][s]
        m = cell("attention_only", s, 2e-4, NAN, 9.0, budget="r16")     # same arm, other budget: not used
        rs += [u, a, f, m]
    rows = stats.reference_endpoint(rs, ("uniform", "r16"), [("attention_only", "1843200"), ("ffn_in", "2027520")],
                                    metric="transfer_loss")
    a, f = rows
    assert (a["strategy"], a["budget"], a["ref_budget"], a["n_pairs"]) == ("attention_only", "1843200", "r16", 3)
    assert a["diffs"] == pytest.approx([0.05, 0.06, 0.07]) and a["diff_mean"] == pytest.approx(0.06)
    assert f["diffs"] == pytest.approx([0.01, -0.01, 0.0]) and f["verdict"] == "no detectable difference"
    # attention_only: t = 0.06 / (0.01 / sqrt 3) = 6 sqrt 3 on 2 df; Holm step 1 at level 1 - 0.05/2
    assert a["p"] == pytest.approx(t2_p(6 * math.sqrt(3))) and a["p_holm"] == pytest.approx(2 * a["p"])
    assert a["verdict"] == "worse" and a["level"] == pytest.approx(0.975)
    dup = rs + [cell("uniform", 0, 2e-4, NAN, 2.0, budget="r16", run_id="again")]
    with pytest.raises(UserError, match="two cells of uniform at r16, seed 0"):
        stats.reference_endpoint(dup, ("uniform", "r16"), [("ffn_in", "2027520")])


def test_robustness_two_way_model_uses_complete_blocks_and_says_how_many():
    """attn_heavy and uniform have seeds 0-2, ffn_heavy only 0-1 (still in the family: two pairs): the two-way model
    fits seeds 0-1 (the blocks every arm has), so attn_heavy's row reports n = 3 paired seeds but 2 blocks, and the
    two-way difference is the mean over seeds 0-1 (-0.105), not the paired mean over 0-2 (-0.10)."""
    rs = []
    for s, d in enumerate([-0.11, -0.10, -0.09]):
        rs += [cell("uniform", s, 1e-3, 2.0, 1.80), cell("attn_heavy", s, 1e-3, 2.0, 1.80 + d)]
    rs += [cell("ffn_heavy", s, 1e-3, 2.0, 1.82) for s in (0, 1)]
    rows = {r["strategy"]: r for r in stats.robustness(rs, budget="r8", reps=20)}
    assert (rows["attn_heavy"]["n_pairs"], rows["attn_heavy"]["anova_seeds"]) == (3, 2)
    assert (rows["ffn_heavy"]["n_pairs"], rows["ffn_heavy"]["anova_seeds"]) == (2, 2)
    assert rows["attn_heavy"]["anova_diff"] == pytest.approx(-0.105)
    assert "two-way model on seeds 0 1 (complete blocks)" in rows["attn_heavy"]["note"]


def test_robustness_rows_combine_two_way_model_bootstrap_and_multiplier():
    """uniform at r8 (4000 params) 1.80 at every seed; attn_heavy 1.70 ± 0.01; uniform's frontier r4 (2000
    params) 1.90, r16 (8000) 1.70: attn_heavy's 1.70 = uniform at 8000 params -> multiplier 2."""
    rs = []
    for s, d in enumerate([-0.11, -0.10, -0.09]):
        ex_u = [[1.80 * 2, 2], [1.80 * 3, 3]]
        ex_a = [[(1.80 + d) * 2, 2], [(1.80 + d) * 3, 3]]
        rs += [cell("uniform", s, 1e-3, 2.0, 1.80, examples=ex_u), cell("attn_heavy", s, 1e-3, 2.0, 1.80 + d,
                                                                         examples=ex_a)]
        rs += [cell("uniform", s, 1e-3, 2.0, 1.90, budget="r4", params=2000),
               cell("uniform", s, 1e-3, 2.0, 1.70, budget="r16", params=8000)]
    rs.append(cell("ffn_heavy", 0, 1e-3, 2.0, 1.85, examples=[[3.7, 2]]))  # one seed: outside the family and model
    (row,) = stats.robustness(rs, budget="r8", reps=200)
    assert row["strategy"] == "attn_heavy" and row["n_pairs"] == 3 and row["anova_seeds"] == 3
    assert row["anova_diff"] == pytest.approx(-0.10)
    half = t2_q(0.975) * 0.01 / math.sqrt(3)        # two strategies: the two-way model is the paired t-test
    assert (row["anova_ci_low"], row["anova_ci_high"]) == (pytest.approx(-0.10 - half), pytest.approx(-0.10 + half))
    # per-example losses shift uniformly: every bootstrap replicate gives the same -0.10
    assert (row["boot_ci_low"], row["boot_ci_high"]) == (pytest.approx(-0.10), pytest.approx(-0.10))
    assert row["multiplier"] == pytest.approx(2.0) and row["note"] == ""
    md = "\n".join(writers.protocol_v2_markdown([], [], [], [row]))
    # at the interval's ends: 1.80 - 0.0752 = 1.7248, 2^0.752 x; 1.80 - 0.1248 lies below the frontier (> 2x)
    assert row["multiplier_low"] == pytest.approx(2 ** ((0.10 - half) / 0.10)) and math.isnan(row["multiplier_high"])
    assert row["multiplier_high_side"] == "below" and row["frontier_multiples"] == (0.5, 2.0)
    assert "Robustness of the primary endpoint" in md and "| attn_heavy | 3 | 3 | -0.1000 |" in md
    assert "| 2.0 [1.7, >2] |" in md and "2.0 [1.7, $>$2]" in writers.table_latex(writers.robustness_table([row]))
    # without per-example losses or a frontier: NaN with notes, never an exception
    bare = [r for r in rs if r["config"]["budget"] == "r8"]
    for r in bare:
        r.pop("eval_example_losses")
    (row,) = stats.robustness(bare, budget="r8", reps=50)
    assert math.isnan(row["boot_ci_low"]) and math.isnan(row["multiplier"]) and "frontier" in row["note"]


@pytest.mark.parametrize("value, side, text", [
    (1.005, "", "1.0"), (0.2249, "", "0.22"), (41.3, "", "41"), (NAN, "", "–"),
    (NAN, "above", "<0.125"), (NAN, "below", ">4"),   # beyond the frontier's ends (0.125x, 4x): no extrapolation
])
def test_multiple_text_table(value, side, text):
    assert writers.multiple_text(value, side, (0.125, 4.0)) == text


def test_robustness_reads_the_multiplier_over_the_arms_own_seed_pairs():
    """uniform r8 (4000 params) 1.80, 1.80, 1.90, 1.90 at seeds 0-3 (frontier point 1.85); attn_heavy has seeds 0-1
    only, 0.01 below uniform there (1.79): it stands for 1.85 - 0.01 = 1.84 on the frontier (r8 1.85 -> r16 1.75 at
    8000 params: 2^0.1 x), not for its mean 1.79 against other seeds' uniform (2^0.6 x, the reading before
    amendment 7)."""
    rs = []
    for s, u in enumerate([1.80, 1.80, 1.90, 1.90]):
        rs += [cell("uniform", s, 1e-3, 2.0, u), cell("uniform", s, 1e-3, 2.0, 1.95, budget="r4", params=2000),
               cell("uniform", s, 1e-3, 2.0, 1.75, budget="r16", params=8000)]
    rs += [cell("attn_heavy", s, 1e-3, 2.0, 1.79) for s in (0, 1)]
    (row,) = stats.robustness(rs, budget="r8", reps=20)
    assert row["n_pairs"] == 2 and row["multiplier"] == pytest.approx(2 ** 0.1)


@pytest.mark.parametrize("curves, kept", [
    ({"a": [], "b": [(1e-3, 1.0)]}, ["b"]),                                   # no cell: never drawn
    ({"a": [(1e-3, 1.0), (3e-3, 0.9)], "b": [(1e-3, 1.0)]}, ["a"]),           # one-lr arms drop once a curve exists
    ({"a": [(1e-3, 1.0)], "b": [(3e-3, 1.1)]}, ["a", "b"]),                   # no arm has a curve yet: all points
    ({}, []),
])
def test_lr_curves_keeps_the_arms_with_a_curve(curves, kept):
    rows = [{"strategy": s, "curve": c} for s, c in curves.items()]
    assert [r["strategy"] for r in stats.lr_curves(rows)] == kept


def test_same_lr_dev_gaps_table():
    sel = [{"strategy": "uniform", "curve": [(3e-4, 1.80), (1e-3, 1.79), (3e-3, 1.78), (1e-2, math.inf)]},
           {"strategy": "attn_heavy", "curve": [(3e-4, 1.79), (1e-3, 1.80), (1e-2, 2.0)]},   # no 3e-3 cell yet
           {"strategy": "ffn_heavy", "curve": [(3e-2, 1.9)]}]                                  # no common lr
    gaps = stats.same_lr_dev_gaps(sel)
    assert list(gaps) == ["attn_heavy"]                       # a diverged uniform (inf) gives no gap at 1e-2
    assert gaps["attn_heavy"] == [(3e-4, pytest.approx(-0.01)), (1e-3, pytest.approx(0.01))]


def test_primary_dev_sd_pools_the_dev_differences_exact():
    """attn_heavy's paired dev differences -0.1, -0.08, -0.12 (ss 0.0008, 2 df), ffn_heavy's 0.1 three times (ss 0,
    2 df): pooled sd sqrt(0.0008 / 4); the test losses (decoys) play no part."""
    rs = v2_results()
    for r in rs:
        c = r["config"]
        if c["strategy"] == "attn_heavy" and c["lr"] == 1e-4 and c["seed"] > 0:
            r["dev_loss"] += 0.02 if c["seed"] == 1 else -0.02
    sd, df = stats.primary_dev_sd(rs)
    assert sd == pytest.approx(math.sqrt(0.0002)) and df == 4
    for r in rs:
        r["eval_loss"] += 5 * r["config"]["seed"] * (r["config"]["strategy"] == "uniform")
    assert stats.primary_dev_sd(rs) == (pytest.approx(math.sqrt(0.0002)), 4)


@pytest.mark.parametrize("sd, m, expected", [
    (0.0, 14, 4), (0.001, 14, 4), (0.002, 14, 6), (0.0025, 14, 7), (0.003, 14, 8), (0.0034, 14, 8),
    (0.01, 14, 8), (float("nan"), 14, 8), (0.003, 1, 4), (0.004, 1, 5)])
def test_seeds_for_margin_table(sd, m, expected):
    assert stats.seeds_for_margin(sd, m) == expected


def test_seeds_for_margin_is_the_first_n_whose_bonferroni_half_width_fits():
    from scipy import stats as sps
    half = lambda n, sd, m: sps.t.ppf(1 - 0.05 / (2 * m), n - 1) * sd / math.sqrt(n)  # noqa: E731
    assert stats.bonferroni_t(4, 14) == pytest.approx(8.374, abs=1e-3) and stats.bonferroni_t(2, 1) == \
        pytest.approx(12.706, abs=1e-3)
    for sd in (0.0015, 0.002, 0.0025, 0.003):
        n = stats.seeds_for_margin(sd, 14)
        assert half(n, sd, 14) <= 0.005 < half(n - 1, sd, 14)
    assert half(8, 0.0034, 14) > 0.005     # the cap: 8 seeds even though they do not suffice


def test_protocol_v2_reports_the_planned_seeds_beside_the_extra_ones():
    """Amendment 3: once a primary arm has a seed >= 4, the report also gives the primary endpoint over seeds 0-3
    alone (as a separately labelled endpoint); before, it does not."""
    from adaptive_lora.report import PLANNED_SEEDS, protocol_v2
    rs = v2_results()
    primary, secondary, _ = protocol_v2(rs)
    assert {r["endpoint"] for r in secondary} == {"secondary"}
    for seed in (4, 5):   # uniform and attn_heavy at seeds 4-5, attn_heavy now 0.5 nats worse there
        rs += [cell("uniform", seed, 3e-4, 2.4, 1.0), cell("attn_heavy", seed, 1e-4, 2.3, 1.5)]
    primary, secondary, _ = protocol_v2(rs)
    a = next(r for r in primary if r["strategy"] == "attn_heavy")
    assert a["seeds"] == [0, 1, 2, 4, 5] and a["diff_mean"] == pytest.approx((-0.33 + 1.0) / 5)
    planned = {r["strategy"]: r for r in secondary if r["endpoint"] == PLANNED_SEEDS}
    assert planned["attn_heavy"]["seeds"] == [0, 1, 2] and planned["attn_heavy"]["diffs"] == pytest.approx(A_DIFF)
    assert planned["ffn_heavy"]["diffs"] == pytest.approx(B_DIFF)


# ------------------------------------------------------------------------- families and the planned contrast
def with_variant(r, **config):
    """A copy of cell ``r`` as another arm of its strategy (``stats.VARIANTS`` fields in its config)."""
    out = json.loads(json.dumps(r))
    out["config"].update(config)
    out["run_id"] += "-" + "-".join(f"{k}{v}" for k, v in config.items())
    return out


def test_scaling_ablation_is_a_holm_family_of_its_own():
    """A stage-5 arm (non-default scaling) is compared with uniform in its own Holm family: the primary family's
    rows, Holm p and adjusted intervals are exactly those without it (amendment 3 fixed that family)."""
    base = v2_results()
    fixed = [with_variant(r, scaling="fixed-alpha") for r in base if r["config"]["strategy"] == "attn_heavy"]
    rows = stats.endpoint(base + fixed, which="primary")
    assert [(r["strategy"], r["endpoint"]) for r in rows] == [
        ("attn_heavy", "primary"), ("ffn_heavy", "primary"),
        ("attn_heavy[fixed-alpha]", "primary, scaling ablation")]
    for a, b in zip(rows[:2], stats.endpoint(base, which="primary")):
        assert (a["p_holm"], a["adj_ci_low"], a["adj_ci_high"]) == (b["p_holm"], b["adj_ci_low"], b["adj_ci_high"])
    alone = rows[2]     # a family of one: Holm leaves its p and interval unadjusted
    assert alone["diff_mean"] == pytest.approx(-0.11) and alone["p_holm"] == pytest.approx(alone["p"])
    assert (alone["adj_ci_low"], alone["adj_ci_high"]) == (alone["ci_low"], alone["ci_high"])
    # the report keeps the primary rows to the primary family; the ablation goes with the secondary rows
    primary, secondary, _ = report.protocol_v2(base + fixed)
    assert [r["strategy"] for r in primary] == ["attn_heavy", "ffn_heavy"]
    assert ("attn_heavy[fixed-alpha]", "primary, scaling ablation") in [(r["strategy"], r["endpoint"])
                                                                        for r in secondary]


def test_arm_contrast_pairs_two_arms_at_their_own_lrs():
    """eva minus eva[rho1]-style contrast: each arm at its own dev-selected lr, paired by seed, unadjusted."""
    base = v2_results()
    rho1 = [with_variant(r, eva_rho=1.0) for r in base if r["config"]["strategy"] == "ffn_heavy"]
    for r, d in zip([r for r in rho1 if r["config"]["lr"] == 3e-4], (0.002, -0.001, 0.002)):
        r["eval_loss"] -= d          # ffn_heavy minus ffn_heavy[rho1] at 3e-4 = +0.002, -0.001, +0.002
    row = stats.arm_contrast(base + rho1, "ffn_heavy", "ffn_heavy[rho1]")
    assert (row["lr"], row["ref_lr"], row["n_pairs"], row["endpoint"]) == (3e-4, 3e-4, 3, "contrast")
    assert row["diffs"] == pytest.approx([0.002, -0.001, 0.002]) and row["diff_mean"] == pytest.approx(0.001)
    half = t2_q(0.975) * math.sqrt(0.003 ** 2 * 2 / 3 / 2) / math.sqrt(3)     # sd of (2, -1, 2) e-3 = sqrt(3) e-3
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(0.001 - half), pytest.approx(0.001 + half))
    assert (row["adj_ci_low"], row["adj_ci_high"]) == (row["ci_low"], row["ci_high"]) and row["verdict"] == "equivalent"
    assert stats.arm_contrast(base, "ffn_heavy", "ffn_heavy[rho1]")["n_pairs"] == 0     # no reference cell
    md = writers.table_markdown(writers.contrast_table([row]))
    assert "| ffn_heavy − ffn_heavy[rho1] | 0.0003 / 0.0003 | 3 | +0.0010 |" in md and "| equivalent |" in md


def test_lr_table_says_which_arms_were_not_swept():
    """An arm run at one lr, the lr of the arm it borrows from (its parent variant, else uniform), is not an lr
    selection: no "extend the grid" advice. A lone point in a group where nothing was swept keeps it."""
    base = v2_results()
    extra = [cell("weight_norm", s, 3e-4, 2.45, 2.1) for s in range(3)] + \
        [with_variant(r, eva_rho=1.0) for r in base if r["config"]["strategy"] == "attn_heavy"
         and r["config"]["lr"] == 1e-4] + [cell("uniform", 0, 1e-3, 2.0, 2.0, budget="r1")]
    md = writers.table_markdown(writers.lr_table(stats.lr_selection(base + extra)))
    assert "| weight_norm | 0.0003: 2.4500 | 0.0003 | – | not swept: runs at uniform's selected lr (protocol v2) |" in md
    assert "| attn_heavy[rho1] | 0.0001: 2.3000 | 0.0001 | – | not swept: runs at attn_heavy's selected lr" in md
    assert "| uniform | 0.001: 2.0000 | 0.001 | no | not bracketed (no worse lr on either side): extend" in md


# ------------------------------------------------------------------------------------------------ amendment 8
def test_welch_change_matches_the_welch_satterthwaite_formula():
    a, b = [1.0, 2.0, 3.0], [1.0, 1.5, 2.0, 2.5]
    out = stats.welch_change(a, b)
    va, vb = 1.0 / 3, (5 / 12) / 4                     # s^2 / n of each sample
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)   # Welch-Satterthwaite
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert out["change"] == pytest.approx(0.25) and (out["n_later"], out["n_first"]) == (3, 4)
    assert (out["ci_low"], out["ci_high"]) == (pytest.approx(0.25 - half), pytest.approx(0.25 + half))
    assert out["p"] == pytest.approx(2 * sps.t.sf(0.25 / math.sqrt(va + vb), df))
    one, flat = stats.welch_change([1.0], b), stats.welch_change([1.0, 1.0], [2.0, 2.0])
    assert one["change"] == pytest.approx(-0.75) and math.isnan(one["p"]) and math.isnan(one["ci_low"])
    assert flat["change"] == -1.0 and math.isnan(flat["p"]) and math.isnan(flat["ci_high"])


@pytest.mark.parametrize("first, later, lo, hi, expected", [
    (-0.02, -0.03, -0.02, -0.001, "larger"), (-0.02, -0.005, 0.001, 0.03, "smaller"),
    (-0.02, 0.01, 0.01, 0.05, "changed sign"), (0.01, 0.03, 0.005, 0.04, "larger"),
    (-0.02, -0.03, -0.02, 0.0, "no detectable change"), (-0.02, -0.03, NAN, NAN, "undetermined")])
def test_change_reading_table(first, later, lo, hi, expected):
    assert stats.change_reading(first, later, lo, hi) == expected


def test_effect_changes_compare_shared_arms_with_holm_adjusted_welch_intervals():
    def row(name, diffs):
        return {"strategy": name, "diffs": diffs, "diff_mean": sum(diffs) / len(diffs)}
    later = [row("a", [-0.030, -0.031, -0.029]), row("b", [0.001, -0.001, 0.0]), row("c", [0.1, 0.2]),
             row("d", [0.05])]
    first = [row("a", [-0.010, -0.011, -0.009, -0.010]), row("b", [0.002, -0.002, 0.0, 0.0]), row("d", [0.0, 0.1])]
    out = stats.effect_changes(later, first)
    assert [o["key"] for o in out] == ["a", "b"]          # c: not in first; d: one pair in later
    a, b = out
    wa = stats.welch_change(later[0]["diffs"], first[0]["diffs"])
    wb = stats.welch_change(later[1]["diffs"], first[1]["diffs"])
    assert a["change"] == pytest.approx(-0.02) and a["p_holm"] == pytest.approx(2 * wa["p"])
    step1 = stats.welch_change(later[0]["diffs"], first[0]["diffs"], 1 - 0.05 / 2)   # step 1 of m = 2
    assert (a["adj_ci_low"], a["adj_ci_high"]) == (pytest.approx(step1["ci_low"]), pytest.approx(step1["ci_high"]))
    assert a["reading"] == "larger" and b["reading"] == "no detectable change"
    assert (b["adj_ci_low"], b["adj_ci_high"]) == (pytest.approx(wb["ci_low"]), pytest.approx(wb["ci_high"]))
    assert (a["first_mean"], a["later_mean"]) == (pytest.approx(-0.01), pytest.approx(-0.03))


def test_rank_gains_pair_uniform_at_more_rank_with_r8_by_seed():
    cells = [cell("uniform", s, 1e-3, 1.0, 2.0 + 0.01 * s) for s in range(3)] + \
        [cell("uniform", 0, 3e-3, 1.5, 9.0)] + \
        [cell("uniform", s, 1e-3, 1.0, 1.99 + 0.01 * s + 0.001 * (s == 2), budget="r16") for s in range(3)] + \
        [cell("attn_heavy", s, 1e-3, 1.0, 1.5, budget="r16") for s in range(3)]
    out = stats.rank_gains(cells, "tiny", "alpaca")
    assert [(r["budget"], r["ref_budget"], r["n_pairs"]) for r in out] == [("r16", "r8", 3)]
    assert out[0]["diffs"] == pytest.approx([-0.01, -0.01, -0.009])   # the dev-rejected 3e-3 cell is not paired
    assert stats.rank_gains([c for c in cells if c["config"]["budget"] == "r16"], "tiny", "alpaca") == []
