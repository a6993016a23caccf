"""Parameter accounting against the prior work's reported counts (DialoGPT-medium, r = 16)."""
import json

import pytest

from adaptive_lora.budget import parse_budget, within_budget
from adaptive_lora.cli import main
from adaptive_lora.errors import UserError
from adaptive_lora.models import model_spec

# (model, targets, rank, expected trainable params)
CASES = [
    ("dialogpt-medium", "c_attn,c_proj,c_fc", 16, 6_291_456),  # prior work: "all modules", 6.29M
    ("dialogpt-medium", "c_attn,c_proj", 16, 4_325_376),  # prior work's "attention only": c_proj suffix hits mlp too
    ("dialogpt-medium", "c_attn,attn.c_proj", 16, 2_359_296),  # true attention only
    ("dialogpt-medium", "c_fc", 16, 1_966_080),  # prior work: FFN only, 1.97M
    ("smollm2-135m", None, 8, 2_442_240),  # 30 layers x 8 x (2*1152 + 2*768 + 3*2112)
    ("smollm2-135m", "q_proj,v_proj", 8, 30 * 8 * (1152 + 768)),
    ("tiny-llama", None, 8, 3 * 8 * (64 + 48 + 48 + 64 + 3 * 96)),
    ("tiny-gpt2", None, 8, 3 * 8 * (128 + 64 + 160 + 160)),
]


@pytest.mark.parametrize("model,targets,rank,expected", CASES)
def test_params_cli(model, targets, rank, expected, capsys):
    argv = ["params", "--model", model, "--rank", str(rank), "--json"] + (["--targets", targets] if targets else [])
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trainable_params"] == expected


def test_gpt2_kinds_keep_attn_and_mlp_c_proj_apart():
    spec = model_spec("dialogpt-medium")
    assert spec.kinds == ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]
    assert {m.group for m in spec.modules if m.kind == "mlp.c_proj"} == {"ffn"}
    assert spec.n_layers == 24 and len(spec.modules) == 96


@pytest.mark.parametrize("text,expected", [("r8", 2_442_240), ("r1", 305_280), ("1.5M", 1_500_000),
                                           ("500k", 500_000), ("2442240", 2_442_240)])
def test_parse_budget(text, expected):
    assert parse_budget(text, model_spec("smollm2-135m")) == expected


@pytest.mark.parametrize("bad", ["r0", "8r", "lots", "-5", "1.5G", ""])
def test_parse_budget_rejects(bad):
    with pytest.raises(UserError):
        parse_budget(bad, model_spec("smollm2-135m"))


@pytest.mark.parametrize("text,rank", [("r8", 8), ("r32", 32), (" r1 ", 1), ("r0", 0), ("1.5M", None), ("8r", None),
                                       ("r8x", None), ("", None), (None, None)])
def test_uniform_rank(text, rank):
    from adaptive_lora.stats import uniform_rank
    assert uniform_rank(text) == rank


def test_within_budget_is_half_a_percent():
    assert within_budget(1005, 1000) and within_budget(995, 1000)
    assert not within_budget(1006, 1000) and not within_budget(994, 1000)


def test_counts_quoted_in_readme_are_the_code_s():
    """The README quotes two parameter counts; they must be what the code computes."""
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"{model_spec('smollm2-135m').uniform_count(8):,} parameters" in readme
    assert f"# {model_spec('dialogpt-medium').select(['c_attn', 'c_proj', 'c_fc']).uniform_count(16):,}" in readme
