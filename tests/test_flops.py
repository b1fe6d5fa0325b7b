"""FLOPs per token against Megatron-LM's published formula and hand arithmetic."""

from fractions import Fraction

import numpy as np
import pytest

from moeplan.accounting.flops import (
    attended_keys,
    attention_flops_per_key,
    flops_per_token,
    matmul_params,
    ssm_scan_flops_per_token,
    training_flops_per_token,
)
from moeplan.spec.model import AttentionSpec, ModelSpec
from moeplan.spec.presets import load_preset


def dense_gpt(layers: int, hidden: int, heads: int, vocab: int) -> ModelSpec:
    """A GPT-style dense spec: MHA, plain (non-gated) 4h MLP, LayerNorm, untied vocabulary, no biases."""
    return ModelSpec(
        num_layers=layers,
        hidden_size=hidden,
        vocab_size=vocab,
        attention=AttentionSpec(num_heads=heads),
        intermediate_size=4 * hidden,
        dense_mlp_gated=False,
        norm="layernorm",
        tie_word_embeddings=False,
    )


def megatron_flops(batch: int, s: int, l: int, h: int, vocab: int, recompute: bool) -> Fraction:
    """Narayanan et al. 2021 (Efficient Large-Scale Language Model Training on GPU Clusters), eq. 3 and its
    no-recomputation form: 96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h)) and 72·B·s·l·h²·(1 + s/(6h) + V/(12·l·h))."""
    if recompute:
        return 96 * batch * s * l * h**2 * (1 + Fraction(s, 6 * h) + Fraction(vocab, 16 * l * h))
    return 72 * batch * s * l * h**2 * (1 + Fraction(s, 6 * h) + Fraction(vocab, 12 * l * h))


@pytest.mark.parametrize(
    "layers, hidden, heads, vocab, seq",
    [(96, 12288, 96, 51200, 2048), (2, 64, 4, 1000, 128), (24, 2048, 16, 50257, 1024)],
    ids=["gpt3-175b", "tiny", "gpt-1.3b"],
)
def test_training_flops_reproduce_megatron_exactly(layers, hidden, heads, vocab, seq):
    spec = dense_gpt(layers, hidden, heads, vocab)
    batch = 8
    assert training_flops_per_token(spec, seq) * batch * seq == megatron_flops(batch, seq, layers, hidden, vocab, False)
    assert training_flops_per_token(spec, seq, "full") * batch * seq == megatron_flops(batch, seq, layers, hidden, vocab, True)
    # selective recomputation re-runs QKᵀ and AV once: + 4·B·s²·h per layer (2·B·s²·h each)
    selective = megatron_flops(batch, seq, layers, hidden, vocab, False) + 4 * batch * seq**2 * hidden * layers
    assert training_flops_per_token(spec, seq, "selective") * batch * seq == selective


def test_matmul_params_of_dense_gpt_are_12lh2_plus_vh():
    spec = dense_gpt(96, 12288, 96, 51200)
    assert matmul_params(spec) == 12 * 96 * 12288**2 + 51200 * 12288


def test_tied_lm_head_still_costs_a_matmul():
    untied = dense_gpt(4, 256, 4, 3000)
    tied = untied.model_copy(update={"tie_word_embeddings": True})
    assert matmul_params(tied) == matmul_params(untied)


def test_mixtral_decode_step_by_hand():
    # Mixtral-8x7B: 32 layers, H 4096, 32 query / 8 kv heads of 128, experts 3·4096·14336, top-2 of 8, V 32000.
    attention = 4096 * (4096 + 2 * 1024) + 4096 * 4096  # q, k, v, o = 41,943,040
    experts = 2 * 3 * 4096 * 14336  # two active experts = 352,321,536
    router = 8 * 4096
    lm_head = 32000 * 4096
    params = 32 * (attention + experts + router) + lm_head
    assert params == 12_748_587_008
    per_key = 2 * 32 * (128 + 128)  # QKᵀ and AV, per layer and key
    context = 4096
    flops = flops_per_token(load_preset("mixtral-8x7b"), context)
    assert flops.matmul_params == params
    assert flops.attention_decode_per_token == 32 * per_key * context == 2_147_483_648
    assert flops.decode_per_token == 2 * params + 2_147_483_648 == 27_644_657_664
    # prefill of a 4096-token prompt: each query sees (S+1)/2 keys on average
    assert flops.attention_prefill_per_token == 32 * per_key * (context + 1) / 2


def test_mla_uses_its_own_head_dims():
    spec = load_preset("deepseek-v3")
    # 128 heads, q/k 128 nope + 64 rope = 192, v 128: 2·128·(192 + 128) per key and layer, 61 layers
    assert attention_flops_per_key(spec.attention, spec.head_dim) == 81_920
    assert flops_per_token(spec, 32768).attention_decode_per_token == 81_920 * 61 * 32768


def brute_force_keys(tokens: int, count: str, span: int | None, chunked: bool) -> float:
    """Keys per query by listing every query position: full, sliding (last w including itself), chunked."""
    position = np.arange(tokens)
    if span is None:
        visible = position + 1
        whole = np.full(tokens, tokens)
    elif chunked:
        visible = position % span + 1
        chunk_end = np.minimum((position // span + 1) * span, tokens)
        whole = chunk_end - position // span * span
    else:
        visible = np.minimum(position + 1, span)
        whole = np.full(tokens, min(tokens, span))
    if count == "decode":
        return float(visible[-1])
    return float((visible if count == "causal" else whole).mean())


@pytest.mark.parametrize("tokens", [1, 7, 128, 1000, 4096])
@pytest.mark.parametrize("span, chunked", [(None, False), (128, False), (3000, False), (128, True), (8192, True), (1000, True)])
@pytest.mark.parametrize("count", ["decode", "causal", "full"])
def test_attended_keys_match_position_by_position_count(tokens, span, chunked, count):
    assert attended_keys(tokens, count, span, chunked) == pytest.approx(brute_force_keys(tokens, count, span, chunked), rel=1e-12)


def test_sliding_window_caps_gpt_oss_attention():
    spec = load_preset("gpt-oss-120b")  # 36 layers alternating sliding (128) and full, 64 heads of 64
    per_key = 2 * 64 * 2 * 64
    prompt = 10_000
    sliding = (128 * 129 / 2 + (prompt - 128) * 128) / prompt
    expected = 18 * per_key * (sliding + (prompt + 1) / 2)
    assert flops_per_token(spec, 32768, prompt).attention_prefill_per_token == pytest.approx(expected, rel=1e-12)
    assert flops_per_token(spec, 32768).attention_decode_per_token == 18 * per_key * (128 + 32768)


def test_jamba_scan_and_attention_layers():
    spec = load_preset("jamba-v0.1")  # 32 layers, 4 with attention, 28 Mamba; inner 2·4096, d_state 16
    assert ssm_scan_flops_per_token(spec) == 8 * 2 * 4096 * 16 * 28
    flops = flops_per_token(spec, 1000)
    assert flops.attention_decode_per_token == 4 * 2 * 32 * 2 * 128 * 1000
    assert flops.decode_per_token == flops.matmul_per_token + flops.ssm_scan_per_token + flops.attention_decode_per_token


def test_training_is_three_forwards_without_recompute():
    flops = flops_per_token(load_preset("qwen3-30b-a3b"), 4096)
    assert flops.training_per_token == 3 * flops.forward_per_token
    causal = flops_per_token(load_preset("qwen3-30b-a3b"), 4096, causal_training=True)
    assert causal.forward_per_token == causal.prefill_per_token  # the same count when S = C
