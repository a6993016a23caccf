"""Every speed-up kept in the training path computes the same loss as the plain fp32 path (tiny models)."""
import pytest
import torch
from peft import get_peft_model

from adaptive_lora.data import collate, tokenize
from adaptive_lora.models import load_model, model_spec
from adaptive_lora.peft_config import lora_config
from adaptive_lora.train import evaluate, loss_sum, train
from conftest import SHORT


def _setup(model_name="tiny-llama", dtype=torch.float32):
    model, tok, _ = load_model(model_name, dtype)
    torch.manual_seed(0)
    model = get_peft_model(model, lora_config({m.name: 4 for m in model_spec(model_name).modules}))
    exs, _ = tokenize(SHORT, tok, 128)
    return model, tok, exs


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-gpt2"])
def test_head_on_labelled_positions_only_equals_full_logits(model_name):
    """Speed-up: LM head + CE only where a label exists, instead of full (B, T, V) logits."""
    model, tok, exs = _setup(model_name)
    model.eval()
    batch = collate(exs, tok.pad_token_id)
    with torch.no_grad():
        s_sel, n_sel = loss_sum(model, batch, selected=True)
        s_full, n_full = loss_sum(model, batch, selected=False)
    assert n_sel == n_full > 0
    assert float(s_sel) == pytest.approx(float(s_full), rel=1e-5)


def test_length_grouped_eval_equals_one_big_batch():
    """Speed-up: length-grouped, sorted eval batches (little padding) give the token-weighted mean of one batch."""
    model, tok, exs = _setup()
    grouped = evaluate(model, exs, tok.pad_token_id, "fp32", batch_size=3)["loss"]
    single = evaluate(model, exs, tok.pad_token_id, "fp32", batch_size=len(exs), selected=False)["loss"]
    assert grouped == pytest.approx(single, rel=1e-5)


def test_bf16_path_matches_fp32_within_tolerance():
    """Speed-up (CPUs with native bf16): bf16 base weights + autocast. Tolerance: 2 % of the loss after training."""
    losses = {}
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        model, tok, exs = _setup(dtype=dtype)
        train(model, exs, tok.pad_token_id, seed=0, epochs=2, batch_size=4, lr=1e-2, weight_decay=0.0,
              warmup_ratio=0.1, max_grad_norm=1.0, precision=precision, progress=False)
        losses[precision] = evaluate(model, exs, tok.pad_token_id, precision)["loss"]
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)


def test_selected_head_applies_final_logit_softcapping():
    """Models that squash logits in their LM wrapper (Gemma-2 style) get the same squashing on the fast path."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    cfg = Gemma2Config(vocab_size=260, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=8, final_logit_softcapping=0.5,
                       pad_token_id=256, eos_token_id=256, bos_token_id=256)
    model = Gemma2ForCausalLM(cfg).eval()
    from adaptive_lora.models import byte_tokenizer
    tok = byte_tokenizer()
    exs, _ = tokenize(SHORT, tok, 128)
    batch = collate(exs, tok.pad_token_id)
    with torch.no_grad():
        s_sel, _ = loss_sum(model, batch, selected=True)
        s_full, _ = loss_sum(model, batch, selected=False)
    assert float(s_sel) == pytest.approx(float(s_full), rel=1e-5)
