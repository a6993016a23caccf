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
