"""KV cache and Mamba state: exact bytes for named models, computed by hand here from their configs."""

import random

import pytest

from moeplan.accounting.kv_cache import (
    kv_bytes_per_token_per_layer,
    kv_cache_bytes,
    kv_cache_bytes_per_token,
    kv_cache_summary,
    sequence_kv,
)
from moeplan.layout import stage_layers
from moeplan.spec.hf import spec_from_hf_config
from moeplan.spec.presets import load_preset


def test_mixtral_gqa():
    # Mixtral-8x7B config: 32 layers, 8 KV heads, head_dim 4096/32 = 128; K and V in bf16
    spec = load_preset("mixtral-8x7b")
    assert kv_cache_bytes_per_token(spec, "bf16") == 2 * 8 * 128 * 2 * 32 == 131072
    assert kv_cache_bytes_per_token(spec, "fp8") == 65536
    assert kv_cache_bytes(spec, batch=4, context=32768, kv_dtype="bf16") == 4 * 32768 * 131072  # 16 GiB


def test_deepseek_v3_mla_latent_and_uncompressed():
    # DeepSeek-V3 config: kv_lora_rank 512, qk_rope_head_dim 64, 61 layers, 128 heads, qk_nope 128, v_head 128
    summary = kv_cache_summary(load_preset("deepseek-v3"), "bf16")
    assert summary.kv_cache_bytes_per_token == (512 + 64) * 2 * 61 == 70272
    assert summary.uncompressed_bytes_per_token == 128 * (128 + 64 + 128) * 2 * 61 == 4_997_120
    assert kv_cache_bytes_per_token(load_preset("deepseek-v3"), "fp8") == 35136


def test_gpt_oss_120b_sliding_window_on_half_the_layers():
    # gpt-oss-120b: 36 layers alternating sliding (window 128) and full, 8 KV heads of 64
    spec = load_preset("gpt-oss-120b")
    per_layer = 2 * 8 * 64 * 2
    assert kv_bytes_per_token_per_layer(spec, "bf16") == per_layer == 2048
    assert kv_cache_bytes_per_token(spec, "bf16") == 36 * per_layer == 73728
    summary = kv_cache_summary(spec, "bf16")
    assert summary.capped_layers == {128: 18}
    assert summary.bytes_per_token_beyond_windows == 18 * per_layer
    assert kv_cache_bytes(spec, 1, 100, "bf16") == 100 * 36 * per_layer  # below the window: every layer grows
    assert kv_cache_bytes(spec, 2, 131072, "bf16") == 2 * (18 * per_layer * 131072 + 18 * per_layer * 128)


def test_llama_4_scout_chunked_attention():
    # Llama-4-Scout: 48 layers, every 4th full (NoPE), the other 36 chunked at 8192; 8 KV heads of 128
    spec = load_preset("llama-4-scout")
    per_layer = 2 * 8 * 128 * 2
    assert kv_cache_summary(spec, "bf16").capped_layers == {8192: 36}
    assert kv_cache_bytes_per_token(spec, "bf16") == 48 * per_layer == 196608
    context = 1024 * 1024
    assert kv_cache_bytes(spec, 1, context, "bf16") == 12 * per_layer * context + 36 * per_layer * 8192


def test_jamba_attention_layers_and_mamba_state():
    # Jamba-v0.1: 32 layers, attention at i % 8 == 4 (4 layers, 8 KV heads of 128); 28 Mamba layers with
    # inner 2·4096 = 8192, d_conv 4, d_state 16: conv state 4·8192 bf16 + SSM state 8192·16 fp32 per sequence
    spec = load_preset("jamba-v0.1")
    assert kv_cache_bytes_per_token(spec, "bf16") == 4 * 2 * 8 * 128 * 2 == 16384
    state = 28 * (4 * 8192 * 2 + 8192 * 16 * 4)
    assert kv_cache_summary(spec, "bf16").state_bytes_per_sequence == state == 16_515_072
    assert kv_cache_bytes(spec, 3, 1000, "bf16") == 3 * (1000 * 16384 + state)
    assert kv_cache_bytes(spec, 1, 1000, "fp8") == 1000 * 8192 + state  # the Mamba state keeps its own dtypes


def test_tp_splits_kv_heads_and_replicates_when_fewer():
    mixtral = load_preset("mixtral-8x7b")  # 8 KV heads
    assert kv_bytes_per_token_per_layer(mixtral, "bf16", tp=4) == 2 * 2 * 128 * 2
    assert kv_bytes_per_token_per_layer(mixtral, "bf16", tp=8) == 2 * 1 * 128 * 2
    assert kv_bytes_per_token_per_layer(mixtral, "bf16", tp=16) == 2 * 1 * 128 * 2  # one head, held by 2 ranks
    deepseek = load_preset("deepseek-v3")  # the MLA latent is replicated on every TP rank
    assert kv_bytes_per_token_per_layer(deepseek, "bf16", tp=8) == (512 + 64) * 2
    jamba = load_preset("jamba-v0.1")
    assert sequence_kv(jamba, "bf16", tp=2).state_bytes == 28 * (4 * 4096 * 2 + 4096 * 16 * 4)


@pytest.mark.parametrize("name", ["gpt-oss-120b", "llama-4-scout", "jamba-v0.1", "deepseek-v3"])
def test_pipeline_stages_add_up(name):
    spec = load_preset(name)
    whole = kv_cache_bytes(spec, 5, 20000, "bf16")
    assert sum(kv_cache_bytes(spec, 5, 20000, "bf16", layers=stage) for stage in stage_layers(spec.num_layers, 3)) == whole


@pytest.mark.parametrize("name", ["gpt-oss-120b", "llama-4-scout", "jamba-v0.1", "mixtral-8x7b"])
def test_max_context_inverts_bytes(name):
    """The piecewise-linear inversion against a brute-force scan of bytes(C)."""
    sequence = sequence_kv(load_preset(name), "bf16")
    rng = random.Random(name)
    for _ in range(20):
        budget = rng.randrange(0, sequence.bytes(20000))
        brute = max((c for c in range(0, 20001) if sequence.bytes(c) <= budget), default=0)
        assert sequence.max_context(budget) == brute


def test_max_context_unbounded_when_every_layer_is_windowed():
    spec = load_preset("mixtral-8x7b").model_copy(deep=True)
    spec.attention.sliding_window = 4096
    spec.attention.layer_pattern = ["sliding"]
    sequence = sequence_kv(spec, "bf16")
    assert sequence.bytes(10**6) == 4096 * 131072
    assert sequence.max_context(4096 * 131072) is None
    assert sequence.max_context(4096 * 131072 - 1) == 4095


def test_matches_transformers_cache_tensors():
    """A small Jamba run through transformers: its cache tensors (K, V; Mamba conv and SSM states) hold
    exactly the bytes moeplan predicts, dtypes included."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.JambaConfig(
        vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=8, num_attention_heads=4,
        num_key_value_heads=2, num_experts=4, num_experts_per_tok=2, attn_layer_period=4, attn_layer_offset=2,
        mamba_d_state=8, mamba_d_conv=4, mamba_expand=2,
    )
    torch.manual_seed(0)
    model = transformers.JambaForCausalLM(config).to(torch.bfloat16).eval()
    batch, context = 3, 10
    with torch.no_grad():
        cache = model(torch.randint(0, 100, (batch, context)), use_cache=True).past_key_values
    held = 0
    for layer in cache.layers:
        tensors = [layer.keys, layer.values] if hasattr(layer, "keys") else [*layer.conv_states.values(), *layer.recurrent_states.values()]
        held += sum(t.numel() * t.element_size() for t in tensors)
    spec = spec_from_hf_config(config.to_dict())
    assert held == kv_cache_bytes(spec, batch, context, "bf16")
