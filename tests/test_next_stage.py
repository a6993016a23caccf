"""scripts/next_stage.py: stage-1 dev losses -> the extension file while an argmin sits at a grid end, the r8
stage file once every strategy is bracketed (synthetic results, exact expected cells)."""
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import next_stage  # noqa: E402

from adaptive_lora.stats import lr_selection  # noqa: E402

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
    suffix, doc = next_stage.plan(STAGE1, lr_selection(results({"adalora": 1e-2, "eva": 3e-4})))
    assert suffix == "extend" and doc["name"] == "main" and doc["defaults"] == STAGE1["defaults"]
    got = {b["strategy"][0]: b["lr"] for b in doc["grid"]}
    assert got == {"eva": [pytest.approx(1e-4)], "adalora": [pytest.approx(3e-2)]}


def test_all_bracketed_gives_stages_2_and_3_at_the_selected_lrs():
    suffix, doc = next_stage.plan(STAGE1, lr_selection(results({"attn_heavy": 3e-3})))
    assert suffix == "r8" and doc["order"] == ["seed"]
    lrs = {(b["strategy"][0], b.get("eva_rho", [2.0])[0], b["lr"][0]) for b in doc["grid"]}
    assert ("attn_heavy", 2.0, 3e-3) in lrs and ("attn_heavy", 2.0, 1e-3) in lrs   # own lr and uniform's (stage 3)
    assert ("weight_norm", 2.0, 1e-3) in lrs                                        # not swept: uniform's lr
    assert ("eva", 1.0, 1e-3) in lrs and len(doc["grid"]) == len(next_stage.STAGE2) + 1 + 1
    assert all(b["seed"] == [0, 1, 2, 3] for b in doc["grid"])


def test_an_unfinished_stage_1_is_refused():
    rs = [r for r in results({}) if not (r["config"]["strategy"] == "gradient" and r["config"]["lr"] == 1e-2)]
    with pytest.raises(SystemExit, match="gradient"):
        next_stage.plan(STAGE1, lr_selection(rs))


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
