"""Rank map -> LoraConfig -> PEFT model: exact ranks, exact counts, none of PEFT's matching pitfalls."""
import pytest
from peft import get_peft_model
from peft.utils.other import get_pattern_key

from adaptive_lora.models import load_model, model_spec
from adaptive_lora.peft_config import alpha_for, lora_config, lora_ranks_in_model, pattern_key, verify


def test_pattern_keys_match_exactly_one_module():
    # With bare suffix keys "layers.1.q_proj" would be checked first-match-wins against "layers.11.q_proj" too;
    # anchored, escaped full names cannot collide.
    names = [f"model.layers.{i}.self_attn.q_proj" for i in (1, 11, 21)]
    keys = [pattern_key(n) for n in names]
    for n, k in zip(names, keys):
        assert get_pattern_key(keys, n) == k


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-gpt2"])
@pytest.mark.parametrize("scaling", ["constant", "rslora", "fixed-alpha"])
def test_nonuniform_rank_map_trains_exactly_its_count(model, scaling):
    spec = model_spec(model)
    rank_map = {m.name: (i % 4) * 2 for i, m in enumerate(spec.modules)}  # ranks 0, 2, 4, 6 incl. rank 0
    peft_model = get_peft_model(load_model(model)[0], lora_config(rank_map, scaling))
    assert verify(peft_model, spec, rank_map) == spec.count(rank_map)
    assert lora_ranks_in_model(peft_model) == {n: r for n, r in rank_map.items() if r}
    for name, module in peft_model.named_modules():
        if isinstance(getattr(module, "scaling", None), dict) and "default" in module.scaling:
            r = module.r["default"]
            expected = alpha_for(r, scaling) / (r ** 0.5 if scaling == "rslora" else r)
            assert module.scaling["default"] == pytest.approx(expected)


def test_gpt2_attention_only_leaves_mlp_c_proj_alone():
    spec = model_spec("tiny-gpt2")
    rank_map = {m.name: (4 if m.group == "attn" else 0) for m in spec.modules}
    peft_model = get_peft_model(load_model("tiny-gpt2")[0], lora_config(rank_map))
    adapted = lora_ranks_in_model(peft_model)
    assert adapted and all(".attn." in n for n in adapted)
    assert verify(peft_model, spec, rank_map) == spec.select(["c_attn", "attn.c_proj"]).uniform_count(4)


def test_verify_fails_loudly_on_mismatch():
    spec = model_spec("tiny-llama")
    rank_map = {m.name: 2 for m in spec.modules}
    peft_model = get_peft_model(load_model("tiny-llama")[0], lora_config(rank_map))
    wrong = dict(rank_map, **{spec.modules[0].name: 3})
    with pytest.raises(RuntimeError, match="mismatched"):
        verify(peft_model, spec, wrong)


@pytest.mark.parametrize("scaling, scale_at", [
    # module scale in PEFT at ranks 4, 8, 16: the default is 2 everywhere; fixed-alpha (stage 5 of the main grid)
    # equals it at r = 8 only; the frozen rslora (alpha 16 / sqrt(r)) is 2.83x the default at r = 8
    ("constant", {4: 2.0, 8: 2.0, 16: 2.0}),
    ("fixed-alpha", {4: 4.0, 8: 2.0, 16: 1.0}),
    ("rslora", {4: 8.0, 8: 16 / 8 ** 0.5, 16: 4.0}),
])
def test_module_scale_by_rank_table(scaling, scale_at):
    spec = model_spec("tiny-llama")
    ranks = list(scale_at)
    rank_map = {m.name: ranks[i % len(ranks)] for i, m in enumerate(spec.modules)}
    peft_model = get_peft_model(load_model("tiny-llama")[0], lora_config(rank_map, scaling))
    seen = {module.r["default"]: module.scaling["default"] for _, module in peft_model.named_modules()
            if isinstance(getattr(module, "scaling", None), dict) and "default" in module.scaling}
    assert seen == pytest.approx(scale_at)
