"""scripts/next_stage.py: stage-1 dev losses -> the extension file while an argmin sits at a grid end, the r8
stage file once every strategy is bracketed (synthetic results, exact expected cells)."""
import math
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import next_stage  # noqa: E402

from adaptive_lora.sweep import expand  # noqa: E402

STAGE1 = yaml.safe_load((ROOT / "experiments" / "main.yaml").read_text())
LRS = [3e-4, 1e-3, 3e-3, 1e-2]


def cell(strategy, lr, dev):
    return {"run_id": f"{strategy}-{lr}", "eval_loss": 9.9, "dev_loss": dev,
            "config": {"model": "smollm2-135m", "data": "alpaca", "budget": "r8", "strategy": strategy,
                       "seed": 0, "lr": lr}}


def results(best: dict[str, float]) -> list[dict]:
    """Every stage-1 strategy at every lr; dev loss = 1 + |log10(lr / best lr)|, so the argmin is best[s]."""
    import math
    out = []
    for s in STAGE1["grid"][0]["strategy"]:
        for lr in LRS:
            out.append(cell(s, lr, 1 + abs(math.log10(lr / best.get(s, 1e-3)))))
    return out


def test_an_argmin_at_the_grid_end_asks_for_the_next_lr_first():
    suffix, doc = next_stage.plan(STAGE1, results({"adalora": 1e-2, "eva": 3e-4}))
    assert suffix == "extend" and doc["name"] == "main" and doc["defaults"] == STAGE1["defaults"]
    got = {b["strategy"][0]: b["lr"] for b in doc["grid"]}
    assert got == {"eva": [1e-4], "adalora": [3e-2]}          # exact: 3e-4 / 3 written as 1e-4 (3 digits)
    assert "lr:\n  - 0.0001\n" in yaml.safe_dump(doc, sort_keys=False)


def test_an_odd_extension_is_filled_with_stage_2s_first_cell():
    _, doc = next_stage.plan(STAGE1, results({"eva": 3e-4}))   # one cell to run: the second core would idle
    assert doc["grid"] == [{"strategy": ["eva"], "lr": [1e-4], "seed": [0], "budget": ["r8"]},
                           {"strategy": ["uniform"], "lr": [1e-3], "seed": [1], "budget": ["r8"]}]
    _, stage2 = next_stage.plan(STAGE1, results({}))            # ... the very cell stage 2 asks for
    uniform = next(b for b in stage2["grid"] if b["strategy"] == ["uniform"])
    assert uniform["lr"] == [1e-3] and 1 in uniform["seed"]


def test_all_bracketed_gives_stages_2_and_3_at_the_selected_lrs():
    suffix, doc = next_stage.plan(STAGE1, results({"attn_heavy": 3e-3}))
    assert suffix == "r8" and doc["order"] == ["seed"]
    lrs = {(b["strategy"][0], b.get("eva_rho", [2.0])[0], b["lr"][0]) for b in doc["grid"]}
    assert ("attn_heavy", 2.0, 3e-3) in lrs and ("attn_heavy", 2.0, 1e-3) in lrs   # own lr and uniform's (stage 3)
    assert ("weight_norm", 2.0, 1e-3) in lrs                                        # not swept: uniform's lr
    assert ("eva", 1.0, 1e-3) in lrs and len(doc["grid"]) == len(next_stage.STAGE2) + 1 + 1
    assert all(b["seed"] == [0, 1, 2, 3] for b in doc["grid"])


def key(c: dict) -> tuple:
    return (c["strategy"], c["budget"], c["lr"], c["seed"], c.get("eva_rho", 2.0), c.get("scaling", "constant"))


def run_doc(doc: dict, dev, have: list[dict]) -> list[dict]:
    """What the sweep would add for a stage file: one cell per grid cell not already done (same config = same run
    id), dev loss = dev(config)."""
    out, done = [], {key(r["config"]) for r in have}
    for c in expand(doc):
        c.setdefault("eva_rho", 2.0)
        c.setdefault("scaling", "constant")
        if key(c) in done:
            continue
        out.append({"run_id": f"{c['strategy']}-{c['budget']}-{c['lr']}-{c['seed']}-{c['eva_rho']}-{c['scaling']}",
                    "eval_loss": 9.9, "dev_loss": dev(c), "config": c})
    return out


def stage2_dev(c):
    """gradient is the best layer profile and the best data-driven strategy; eva next."""
    return {"gradient": 1.0, "eva": 1.1, "linear_decay": 1.2}.get(c["strategy"], 1.5) + 0.01 * c["seed"]


def post_stage() -> tuple[list[dict], dict]:
    """Stage 1 (attn_heavy at 3e-3, the rest at 1e-3), stages 2-3 run -> (results, the post file)."""
    rs = results({"attn_heavy": 3e-3})
    suffix, doc = next_stage.plan(STAGE1, rs)
    rs += run_doc(doc, stage2_dev, rs)
    suffix, doc = next_stage.plan(STAGE1, rs)
    assert suffix == "post"
    return rs, doc


def test_after_stage_2_the_post_file_holds_shuffled_lr_checks_and_the_scaling_ablation():
    rs = results({"attn_heavy": 3e-3})
    suffix, doc = next_stage.plan(STAGE1, rs)
    rs += run_doc(doc, stage2_dev, rs)
    suffix, doc = next_stage.plan(STAGE1, rs)
    assert suffix == "post" and doc.get("training_path") == STAGE1.get("training_path")
    got = {(b["strategy"][0], b.get("scaling", ["constant"])[0], tuple(b["budget"]), tuple(b["lr"]),
            tuple(b["seed"])) for b in doc["grid"]}
    # stage2_dev's seed-0 cells differ from seeds 1-3 by up to 0.5 nats (pooled dev sd 0.20): amendment 3's cap of
    # 8 seeds, so the primary family (stage 2's arms, eva at rho 1, the shuffled control) also runs seeds 4-7
    extra = {(s, "constant", ("r8",), (3e-3 if s == "attn_heavy" else 1e-3,), (4, 5, 6, 7))
             for s in next_stage.STAGE2}
    assert got - extra == {("shuffled:gradient", "constant", ("r8",), (1e-3,), tuple(range(8))),
                           ("uniform", "constant", ("r1", "r32"), (3.33e-4, 1e-3, 3e-3), (0,)),
                           ("attn_heavy", "fixed-alpha", ("r8",), (3e-3,), (0, 1, 2, 3)),
                           ("ffn_heavy", "fixed-alpha", ("r8",), (1e-3,), (0, 1, 2, 3)),
                           ("gradient", "fixed-alpha", ("r8",), (1e-3,), (0, 1, 2, 3))}
    assert extra <= got and [b.get("eva_rho") for b in doc["grid"] if b["strategy"] == ["eva"]] == [None, [1.0]]
    assert "the primary family runs 8 seeds (stage 2's arms also at seeds 4-7)" in doc["description"]


def test_amendment_3_adds_no_seed_when_the_dev_differences_are_steady():
    """Paired dev differences constant over seeds 0-3 (sd 0): 4 seeds suffice, the post file adds none."""
    rs = results({"attn_heavy": 3e-3})
    _, doc = next_stage.plan(STAGE1, rs)
    rs += run_doc(doc, lambda c: 1.0 + 0.01 * c["seed"] + 0.001 * (c["strategy"] == "gradient"), rs)
    suffix, doc = next_stage.plan(STAGE1, rs)
    assert suffix == "post" and "runs 4 seeds." in doc["description"]
    assert max(max(b["seed"]) for b in doc["grid"]) == 3


def test_amendment_3_counts_seeds_0_to_3_only():
    """Cells of seeds 4+ never move n (it is fixed once seeds 0-3 are in)."""
    rs = results({"attn_heavy": 3e-3})
    _, doc = next_stage.plan(STAGE1, rs)
    rs += run_doc(doc, lambda c: 1.0 + 0.01 * c["seed"], rs)
    late = [dict(r, config=dict(r["config"], seed=5), dev_loss=r["dev_loss"] + (0.3 if r["config"]["strategy"] ==
                                                                               "uniform" else 0.0))
            for r in rs if r["config"]["seed"] == 1]
    assert next_stage.primary_seeds(rs, "r8")[0] == next_stage.primary_seeds(rs + late, "r8")[0] == 4
    # ... nor arms that arrive with the post stage (the shuffled control, the scaling ablation) at seeds 0-3
    post = [dict(r, config=dict(r["config"], strategy=f"shuffled:{r['config']['strategy']}"),
                 dev_loss=r["dev_loss"] + 0.05 * r["config"]["seed"]) for r in rs if r["config"]["strategy"] == "gradient"]
    post += [dict(r, config=dict(r["config"], scaling="fixed-alpha"), dev_loss=r["dev_loss"] - 0.04 * r["config"]["seed"])
             for r in rs if r["config"]["strategy"] == "attn_heavy"]
    assert next_stage.primary_seeds(rs + post, "r8") == next_stage.primary_seeds(rs, "r8")
    # ... nor the best layer profile / data-driven strategy (ties -> first name); seed 6 alone would pick others
    late += [dict(r, config=dict(r["config"], seed=6), dev_loss=0.0) for r in rs if r["config"]["seed"] == 1
             and r["config"]["strategy"] in ("linear_decay", "eva") and r["config"].get("eva_rho", 2.0) == 2.0]
    assert next_stage.best_choices(rs, "r8") == next_stage.best_choices(rs + late, "r8") == ("activation",
                                                                                            "activation")


def test_the_frontier_follows_uniforms_dev_checks_at_r1_and_r32():
    rs, doc = post_stage()
    # r1 prefers the highest checked lr (3e-3, an end: extend to 9e-3); r32 the middle one (1e-3)
    best = {"r1": 3e-3, "r32": 1e-3, "r8": 1e-3}
    dev = lambda c: 1 + abs(math.log10(c["lr"] / best[c["budget"]])) if c["budget"] != "r8" else stage2_dev(c)  # noqa
    rs += run_doc(doc, dev, rs)
    suffix, ext = next_stage.plan(STAGE1, rs)
    assert suffix == "extend" and ext["grid"] == [{"strategy": ["uniform"], "lr": [pytest.approx(9e-3)],
                                                    "seed": [0], "budget": ["r1"]}]
    rs += run_doc(ext, dev, rs)
    suffix, doc = next_stage.plan(STAGE1, rs)
    assert suffix == "frontier" and all(b["seed"] == [0, 1, 2] for b in doc["grid"])
    lrs = {(b["strategy"][0], b["budget"][0]): b["lr"][0] for b in doc["grid"]}
    # log-linear between (1, 3e-3), (8, 1e-3), (32, 1e-3): r2 = 3e-3^(2/3) 1e-3^(1/3) = 2.08e-3, r4 = 1.44e-3
    assert lrs == {("uniform", "r1"): 3e-3, ("uniform", "r2"): 2.08e-3, ("uniform", "r4"): 1.44e-3,
                   ("uniform", "r16"): 1e-3, ("uniform", "r32"): 1e-3,
                   ("attn_heavy", "r2"): 6.24e-3, ("attn_heavy", "r32"): 3e-3,
                   ("gradient", "r2"): 2.08e-3, ("gradient", "r32"): 1e-3}


@pytest.mark.parametrize("rank, checked, expected", [
    (8, {1: 1e-3, 8: 2e-3, 32: 4e-3}, 2e-3), (2, {1: 1e-3, 8: 1e-3, 32: 1e-3}, 1e-3),
    (16, {1: 1e-3, 8: 1e-3, 32: 4e-3}, 2e-3), (4, {1: 4e-3, 8: 1e-3, 32: 1e-3}, 1.59e-3)])
def test_interpolated_lr_table(rank, checked, expected):
    assert next_stage.interpolated_lr(rank, checked) == pytest.approx(expected)


def test_an_unfinished_stage_1_is_refused():
    rs = [r for r in results({}) if not (r["config"]["strategy"] == "gradient" and r["config"]["lr"] == 1e-2)]
    with pytest.raises(SystemExit, match="gradient"):
        next_stage.plan(STAGE1, rs)


def test_lr_figure_draws_the_dev_curves_and_skips_without_cells(tmp_path, monkeypatch):
    import json
    monkeypatch.setenv("ADAPTIVE_LORA_RESULTS", str(tmp_path / "results"))
    import fig_lr_curves
    out = tmp_path / "fig"
    assert fig_lr_curves.main(["--exp", "main", "--out", str(out)]) == 0 and not out.exists()   # no cells: skip
    (tmp_path / "results" / "main").mkdir(parents=True)
    for r in results({})[:8]:                                   # uniform and attn_heavy at 4 lrs each
        (tmp_path / "results" / "main" / f"{r['run_id']}.json").write_text(json.dumps(r))
    assert fig_lr_curves.main(["--exp", "main", "--out", str(out)]) == 0
    assert (out / "lr_curves.pdf").exists() and (out / "lr_curves.png").exists()
    # legible at print size, both panels drawn, one legend entry per strategy
    import _plotting
    figs = []
    monkeypatch.setattr(fig_lr_curves, "save", lambda fig, o, stem: figs.append(fig))
    for r in results({})[8:]:                                   # all seven strategies
        (tmp_path / "results" / "main" / f"{r['run_id']}.json").write_text(json.dumps(r))
    assert fig_lr_curves.main(["--exp", "main", "--out", str(out)]) == 0
    fig = figs[0]
    assert _plotting.small_texts(fig) == [] and all(ax.has_data() for ax in fig.axes)
    assert len(fig.legends[0].get_texts()) == len(STAGE1["grid"][0]["strategy"])
    # tick labels are plain text: a mathtext exponent would print at 70 % of 8 pt
    fig.canvas.draw()
    ticks = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()]
    assert ticks and not [t for t in ticks if "$" in t] and "1e-3" in ticks
    _plotting.plt.close(fig)
    for r in results({}):                                       # one strategy's best is 0.03 nats above the rest
        if r["config"]["strategy"] == "adalora":
            r["dev_loss"] += 0.03
            (tmp_path / "results" / "main" / f"{r['run_id']}.json").write_text(json.dumps(r))
    assert fig_lr_curves.main(["--exp", "main", "--out", str(out)]) == 0
    lo, hi = figs[1].axes[1].get_ylim()                         # the zoom still shows every chosen point
    assert lo < 1.0 and hi > 1.03
    _plotting.plt.close(figs[1])


# ------------------------------------------------------------------------------------------- replications
def part1_done() -> list[dict]:
    """Part 1 through its post stage: gradient is the best data-driven strategy; uniform prefers 1e-3 at r1, r8
    and r32 (bracketed)."""
    rs, doc = post_stage()
    flat = lambda c: 1 + abs(math.log10(c["lr"] / 1e-3)) if c["budget"] != "r8" else stage2_dev(c)  # noqa: E731
    return rs + run_doc(doc, flat, rs)


def test_gsm8k_replication_selects_its_own_lrs_then_adds_part_1s_best_data_driven():
    import next_replication as nr
    p1 = nr.part1(STAGE1, part1_done())
    assert p1["best"] == "gradient" and p1["checked"] == {1: 1e-3, 8: 1e-3, 32: 1e-3}
    stage1 = yaml.safe_load((ROOT / "experiments" / "replication_gsm8k.yaml").read_text())
    best = {"uniform": 3e-3, "attn_heavy": 1e-3, "adalora": 3e-3, "gradient": 1e-3, "eva": 3.33e-4}
    dev = lambda c: 1 + abs(math.log10(c["lr"] / best[c["strategy"]]))  # noqa: E731
    rs = run_doc(stage1, dev, [])
    # amendment 6: the data-driven arms (part 1's best, and eva on GSM8K) check their own lr around uniform's
    suffix, doc = nr.plan_task("gsm8k", stage1, rs, p1)
    assert suffix == "data_driven" and doc["name"] == "replication_gsm8k" and doc["defaults"]["data"] == "gsm8k"
    assert doc["grid"] == [{"strategy": ["gradient", "eva"], "lr": [3.33e-4, 1e-3, 3e-3, 9e-3], "seed": [0],
                            "budget": ["r8"]}]
    rs += run_doc(doc, dev, rs)
    suffix, ext = nr.plan_task("gsm8k", stage1, rs, p1)     # eva's argmin is the bottom of its check: extend
    assert suffix == "data_driven_extend" and ext["grid"] == [{"strategy": ["eva"], "lr": [1.11e-4], "seed": [0],
                                                                "budget": ["r8"]}]
    rs += run_doc(ext, dev, rs)
    suffix, doc = nr.plan_task("gsm8k", stage1, rs, p1)
    assert suffix == "r8" and doc["defaults"]["data"] == "gsm8k"
    got = {b["strategy"][0]: b["lr"][0] for b in doc["grid"]}
    assert got == {"uniform": 3e-3, "attn_heavy": 1e-3, "ffn_heavy": 3e-3, "gradient": 1e-3, "eva": 3.33e-4,
                   "adalora": 3e-3}
    assert all(b["seed"] == [0, 1, 2, 3] for b in doc["grid"])


def test_gemma_replication_checks_the_best_data_driven_lr_then_runs_r8():
    import next_replication as nr
    p1 = nr.part1(STAGE1, part1_done())
    stage1 = yaml.safe_load((ROOT / "experiments" / "replication_gemma.yaml").read_text())
    best = {"uniform": 1e-3, "gradient": 1.11e-4}
    dev = lambda c: 1 + abs(math.log10(c["lr"] / best[c["strategy"]]))  # noqa: E731
    rs = run_doc(stage1, dev, [])
    suffix, doc = nr.plan_task("gemma", stage1, rs, p1)
    assert suffix == "data_driven" and doc["defaults"]["model"] == "gemma3-270m"
    assert doc["grid"] == [{"strategy": ["gradient"], "lr": [1.11e-4, 3.33e-4, 1e-3, 3e-3], "seed": [0],
                            "budget": ["r8"]}]
    with pytest.raises(SystemExit, match="stage 1 of replication_gemma is not finished"):
        nr.plan_task("gemma", stage1, rs[1:], p1)
    rs += run_doc(doc, dev, rs)
    suffix, ext = nr.plan_task("gemma", stage1, rs, p1)
    assert suffix == "data_driven_extend" and ext["grid"][0]["lr"] == [3.7e-5]
    rs += run_doc(ext, dev, rs)
    suffix, doc = nr.plan_task("gemma", stage1, rs, p1)
    assert suffix == "r8" and {b["strategy"][0]: b["lr"][0] for b in doc["grid"]} == {
        "uniform": 1e-3, "attn_heavy": 1e-3, "ffn_heavy": 1e-3, "gradient": 1.11e-4}
    assert all(b["seed"] == [0, 1, 2, 3] for b in doc["grid"])


def test_long_replication_checks_lrs_then_runs_r8_and_uniforms_r16_r32():
    import next_replication as nr
    p1 = nr.part1(STAGE1, part1_done())
    suffix, doc = nr.plan_long(STAGE1, [], p1)
    assert suffix == "" and doc["name"] == "replication_long" and doc["defaults"]["train_examples"] == 4000
    assert {b["strategy"][0]: b["lr"] for b in doc["grid"]} == {"uniform": [3.33e-4, 1e-3, 3e-3],
                                                                "attn_heavy": [1e-3, 3e-3, 9e-3]}
    best = {"uniform": 3e-3, "attn_heavy": 3e-3}
    dev = lambda c: 1 + abs(math.log10(c["lr"] / best[c["strategy"]]))  # noqa: E731
    rs = run_doc(doc, dev, [])
    suffix, ext = nr.plan_long(STAGE1, rs, p1)        # uniform's argmin 3e-3 is the top of its check: extend
    assert suffix == "extend" and ext["grid"] == [{"strategy": ["uniform"], "lr": [pytest.approx(9e-3)],
                                                    "seed": [0], "budget": ["r8"]}]
    rs += run_doc(ext, dev, rs)
    suffix, doc = nr.plan_long(STAGE1, rs, p1)
    got = {(b["strategy"][0], b["budget"][0]): (b["lr"][0], b["seed"]) for b in doc["grid"]}
    assert suffix == "r8" and got == {("uniform", "r8"): (3e-3, [0, 1, 2]), ("attn_heavy", "r8"): (3e-3, [0, 1, 2]),
                                      ("ffn_heavy", "r8"): (1e-3, [0, 1, 2]), ("gradient", "r8"): (1e-3, [0, 1, 2]),
                                      ("uniform", "r16"): (3e-3, [0, 1, 2]), ("uniform", "r32"): (3e-3, [0, 1, 2])}


def test_replications_wait_for_part_1():
    import next_replication as nr
    with pytest.raises(SystemExit, match="stage 1 of main is not finished"):
        nr.part1(STAGE1, results({})[:5])
    with pytest.raises(SystemExit, match="best data-driven strategy is not chosen yet"):
        nr.part1(STAGE1, results({}))


def test_the_papers_main_seeds_are_the_stage_files_seeds():
    from adaptive_lora.paper import MAIN_SEEDS, PRIMARY_FAMILY
    from adaptive_lora.stats import SEEDS_MIN
    assert MAIN_SEEDS == len(next_stage.SEEDS) == SEEDS_MIN and PRIMARY_FAMILY == next_stage.PRIMARY_FAMILY == 14
