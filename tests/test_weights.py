"""Weight formats, per-matrix shapes and weight memory, against hand arithmetic and published sizes."""

import math

import pytest

from moeplan.accounting.formats import FORMATS, bits_per_weight, get_format, matrix_bytes
from moeplan.accounting.matrices import (
    head_matrices,
    head_other_params,
    layer_matrices,
    layer_other_params,
    mtp_matrices,
    mtp_other_params,
)
from moeplan.accounting.params import count_params
from moeplan.accounting.weights import WeightPolicy, weight_memory
from moeplan.errors import SpecError
from moeplan.spec.presets import load_preset, preset_names
from moeplan.units import GB, GiB

# ---------------------------------------------------------------- formats, one matrix at a time


def test_gptq_and_awq_group_128_by_hand():
    # Mixtral's down_proj: out 4096, in 14336; 14336 / 128 = 112 groups per output channel.
    rows, cols, groups = 4096, 14336, 112
    qweight = (cols // 8) * rows * 4  # int32 [in/8, out]: eight 4-bit values per int32
    qzeros = groups * (rows // 8) * 4  # int32 [groups, out/8]
    scales = groups * rows * 2  # fp16 [groups, out]
    g_idx = cols * 4  # int32 [in]
    assert (qweight, qzeros, scales, g_idx) == (29_360_128, 229_376, 917_504, 57_344)
    assert matrix_bytes(get_format("int4-gptq"), rows, cols).total == qweight + qzeros + scales + g_idx == 30_564_352
    assert matrix_bytes(get_format("awq"), rows, cols).total == qweight + qzeros + scales == 30_507_008
    assert bits_per_weight(get_format("gptq"), rows, cols) == pytest.approx(4 + 20 / 128 + 32 / 4096)
    # group 64 doubles the per-group metadata
    assert matrix_bytes(get_format("gptq", group_size=64), rows, cols).total == qweight + 2 * qzeros + 2 * scales + g_idx
    # group -1 (per channel): one scale and zero-point per output row
    assert matrix_bytes(get_format("awq", group_size=None), rows, cols).total == qweight + rows * (16 + 4) // 8
    # a partial last group is stored whole: 14336 + 64 inputs → 113 groups
    assert matrix_bytes(get_format("awq"), rows, cols + 64).overhead == 113 * rows * 20 // 8


def test_mxfp4_by_hand():
    # gpt-oss-120b expert gate_up: out 2·2880, in 2880; the checkpoint's *_blocks are uint8 [out, in/32, 16]
    # (two e2m1 values per byte) and *_scales uint8 [out, in/32] (one e8m0 per 32 values).
    rows, cols = 5760, 2880
    blocks, scales = rows * (cols // 32) * 16, rows * (cols // 32)
    assert (blocks, scales) == (8_294_400, 518_400)
    cost = matrix_bytes(get_format("mxfp4"), rows, cols)
    assert (cost.values, cost.overhead) == (blocks, scales)
    assert bits_per_weight(get_format("mxfp4"), rows, cols) == 4.25


def test_fp8_block_scales_count_blocks_with_ceil():
    # DeepSeek-V3 kv_a_proj_with_mqa: out 512 + 64 = 576, in 7168 → weight_scale_inv fp32 [ceil(576/128), 7168/128] = [5, 56]
    cost = matrix_bytes(get_format("fp8"), 576, 7168)
    assert cost.values == 576 * 7168
    assert cost.overhead == 5 * 56 * 4 == 1120
    average = 576 * 7168 * 32 / (128 * 128) / 8  # what a flat "8 + 32/16384 bits per weight" gives
    assert cost.overhead > average == 1008
    assert matrix_bytes(get_format("fp8-e4m3"), 7168, 2048).overhead == 56 * 16 * 4


def test_per_channel_formats():
    rows, cols = 4096, 14336
    assert matrix_bytes(get_format("fp8-channel"), rows, cols).total == rows * cols + 4 * rows
    assert matrix_bytes(get_format("int8"), rows, cols).total == rows * cols + 4 * rows  # fp32 absmax per row
    assert matrix_bytes(get_format("fp8-tensor"), rows, cols).total == rows * cols + 4
    assert matrix_bytes(get_format("bfloat16"), rows, cols).total == 2 * rows * cols
    assert matrix_bytes(get_format("fp32"), rows, cols).total == 4 * rows * cols


GGUF_BITS = {"q8_0": 8.5, "q6_k": 6.5625, "q5_k": 5.5, "q4_k": 4.5, "q4_0": 4.5, "q3_k": 3.4375, "q2_k": 2.625,
             "q5_k_m": 5.5, "q4_k_m": 4.5, "q3_k_m": 3.4375, "q5_0": 5.5, "q5_1": 6.0, "iq4_nl": 4.5}
"""Bytes per block × 8 / values per block, from ggml-common.h: Q8_0 34/32, Q6_K 210/256, Q5_K 176/256, Q4_K 144/256,
Q4_0 18/32, Q3_K 110/256, Q2_K 84/256, Q5_0 22/32, Q5_1 24/32, IQ4_NL 18/32 (the _M mixes counted at their base type)."""


@pytest.mark.parametrize("name", GGUF_BITS)
def test_gguf_bits_per_weight(name):
    assert bits_per_weight(get_format(name), 4096, 4096) == GGUF_BITS[name]


def test_gguf_block_bytes_match_transformers_table():
    dequant = pytest.importorskip("transformers.integrations.gguf.dequant")
    for ggml_type, (values, size) in dequant.GGML_BLOCK.items():
        name = dequant.GGML_NAME[ggml_type].lower()
        if name in FORMATS:
            assert matrix_bytes(FORMATS[name], 1, values).total == size, name


def test_gguf_falls_back_like_llama_cpp_for_rows_not_a_multiple_of_256():
    # gpt-oss rows hold 2880 values (11.25 super-blocks): llama.cpp stores Q4_K tensors as Q5_0 (22 bytes per 32).
    cost = matrix_bytes(get_format("q4_k_m"), 2880, 2880)
    assert cost.format == "q5_0"
    assert cost.total == 2880 * 2880 // 32 * 22
    assert matrix_bytes(get_format("q6_k"), 10, 2880).format == "q8_0"
    assert matrix_bytes(get_format("q2_k"), 10, 2880).format == "iq4_nl"
    with pytest.raises(SpecError, match="multiple of 32"):
        matrix_bytes(get_format("q4_0"), 10, 100)


def test_unknown_format_suggests_names():
    with pytest.raises(SpecError, match="did you mean q4_k_m"):
        get_format("q4_km")


# ---------------------------------------------------------------- matrices add up to params.py


@pytest.mark.parametrize("name", preset_names())
def test_matrices_plus_other_params_equal_count_params(name):
    spec = load_preset(name)
    counts = count_params(spec)
    matrices = [m for layer in range(spec.num_layers) for m in layer_matrices(spec, layer)] + head_matrices(spec)
    others = [layer_other_params(spec, layer) for layer in range(spec.num_layers)] + [head_other_params(spec)]
    for other in others:
        assert min(other.values()) >= 0, other
    other_total = sum(sum(o.values()) for o in others)
    assert sum(m.params for m in matrices) + other_total == counts.total
    # Non-matrix parameters (norms, biases, sinks, Mamba conv/A_log/D) are tiny in every preset: a matrix
    # missing from the list would leave a large remainder.
    assert other_total < 5e-4 * counts.total
    assert mtp_other_params(spec) >= 0
    assert sum(m.params for m in mtp_matrices(spec)) + mtp_other_params(spec) == counts.mtp


def test_other_params_by_hand():
    mixtral = load_preset("mixtral-8x7b")
    # two RMSNorms per layer and a final one: (2·32 + 1)·4096
    assert sum(sum(layer_other_params(mixtral, i).values()) for i in range(32)) + sum(head_other_params(mixtral).values()) == 65 * 4096
    oss = load_preset("gpt-oss-120b")
    # per layer: q/k/v biases 4096 + 512 + 512, o bias 2880, 64 sinks, 128 experts × (2·2880 + 2880) biases,
    # router bias 128, two norms 2·2880
    per_layer = 5120 + 2880 + 64 + 128 * 8640 + 128 + 5760
    assert sum(layer_other_params(oss, 0).values()) == per_layer
    assert layer_other_params(oss, 0)["routed_experts"] == 128 * 8640


# ---------------------------------------------------------------- whole checkpoints


def gpt_oss_bytes(layers: int, experts: int) -> int:
    """gpt-oss checkpoint by hand: MXFP4 experts (4.25 bits) with bf16 biases; everything else bf16."""
    hidden, vocab, q, kv = 2880, 201088, 64 * 64, 8 * 64
    mxfp4_matrix = hidden * hidden // 2 + hidden * hidden // 32  # 2880 × 2880: e2m1 values + e8m0 scales
    expert = 3 * mxfp4_matrix + 2 * (2 * hidden + hidden)  # gate, up, down + bf16 biases
    attention = 2 * (hidden * (q + 2 * kv) + q * hidden + (q + 2 * kv) + hidden + 64)  # projections, biases, sinks
    router = 2 * (experts * hidden + experts)
    norms = 2 * 2 * hidden
    return layers * (experts * expert + attention + router + norms) + 2 * 2 * vocab * hidden + 2 * hidden


def test_gpt_oss_checkpoints_match_the_model_card():
    # OpenAI, "gpt-oss-120b & gpt-oss-20b Model Card" (arXiv:2508.10925), Table 1: checkpoint size 60.8 GiB
    # and 12.8 GiB. The card rounds to 0.1 GiB, hence ±0.05 GiB; the count includes the bf16 expert biases.
    big, small = weight_memory(load_preset("gpt-oss-120b")), weight_memory(load_preset("gpt-oss-20b"))
    assert big.total_bytes == gpt_oss_bytes(36, 128) == 65_248_815_744
    assert small.total_bytes == gpt_oss_bytes(24, 32)
    assert big.total_bytes / GiB == pytest.approx(60.8, abs=0.05)
    assert small.total_bytes / GiB == pytest.approx(12.8, abs=0.05)
    assert big.formats["routed_experts"] == "mxfp4"
    assert {big.formats[c] for c in ("attention", "router", "embedding", "lm_head")} == {"bf16"}
    assert big.origin.startswith("quantization_config: mxfp4")


def fp8(rows: int, cols: int) -> int:
    """DeepSeek-V3 fp8 matrix: one byte per weight + an fp32 scale per 128 × 128 block."""
    return rows * cols + 4 * math.ceil(rows / 128) * math.ceil(cols / 128)


def test_deepseek_v3_fp8_checkpoint():
    H, V, I, E, dense_I = 7168, 129280, 2048, 256, 18432
    attention = fp8(1536, H) + fp8(128 * 192, 1536) + fp8(512 + 64, H) + fp8(128 * 256, 512) + fp8(H, 128 * 128)
    attention += 2 * (1536 + 512)  # q_a_layernorm, kv_a_layernorm (bf16)
    expert = 2 * fp8(I, H) + fp8(H, I)
    norms = 2 * 2 * H
    moe_layer = attention + (E + 1) * expert + 2 * E * H + norms  # 256 routed + 1 shared expert, bf16 router
    dense_layer = attention + 2 * fp8(dense_I, H) + fp8(H, dense_I) + norms
    model = 3 * dense_layer + 58 * moe_layer + 2 * 2 * V * H + 2 * H  # bf16 embedding, lm_head, final norm
    mtp = moe_layer + 2 * H * 2 * H + 2 * 2 * V * H + 3 * 2 * H  # bf16 eh_proj, own embedding and head, 3 norms
    memory = weight_memory(load_preset("deepseek-v3"))
    assert (memory.total_bytes, memory.mtp_bytes) == (model, mtp)
    # Hugging Face deepseek-ai/DeepSeek-V3: 685B parameters with MTP, about 688 GB of safetensors shards.
    assert (memory.total_bytes + memory.mtp_bytes) / GB == pytest.approx(688, rel=0.005)
    assert memory.formats["router"] == memory.formats["embedding"] == memory.formats["mtp_projection"] == "bf16"
    assert memory.formats["attention"] == memory.formats["routed_experts"] == memory.formats["dense_mlp"] == "fp8"


def test_mixtral_bf16_and_active_bytes():
    memory = weight_memory(load_preset("mixtral-8x7b"))
    counts = count_params(load_preset("mixtral-8x7b"))
    assert memory.total_bytes == 2 * 46_702_792_704 == 93_405_585_408  # 93.4 GB (87.0 GiB)
    assert memory.active_bytes == 2 * counts.active
    assert memory.per_expert_bytes == 2 * 3 * 4096 * 14336
    assert memory.origin.startswith("default bf16") and memory.scale_bytes == 0
    assert memory.total_bytes - sum(memory.layer_bytes) == 2 * (2 * 32000 * 4096 + 4096)


def test_deepseek_v2_lite_bf16_matches_vllm_load_log():
    # vLLM: "Loading model weights took 29.3010 GB" (torch's memory in GiB) for DeepSeek-V2-Lite in bf16 on one
    # GPU; that figure also holds the rotary cos/sin cache (YaRN, 163,840 positions), a few tens of MiB.
    weights = weight_memory(load_preset("deepseek-v2-lite")).total_bytes / GiB
    assert 0 < 29.3010 - weights < 0.05


# ---------------------------------------------------------------- policy


def test_quantized_dtype_keeps_embedding_router_and_norms_in_bf16():
    spec = load_preset("mixtral-8x7b")
    memory = weight_memory(spec, WeightPolicy(dtype="int4-gptq"))
    gptq = get_format("int4-gptq")
    linear = 32 * (2 * matrix_bytes(gptq, 4096, 4096).total + 2 * matrix_bytes(gptq, 1024, 4096).total
                   + 8 * (2 * matrix_bytes(gptq, 14336, 4096).total + matrix_bytes(gptq, 4096, 14336).total))
    sixteen_bit = 2 * (2 * 32000 * 4096 + 32 * 8 * 4096 + 65 * 4096)  # embedding, lm_head, router, norms
    assert memory.total_bytes == linear + sixteen_bit
    assert memory.formats["router"] == memory.formats["embedding"] == "bf16" and memory.vector_format == "bf16"
    # The same checkpoint described by its own quantization_config gives the same bytes.
    quantized = spec.model_copy(update={"quantization": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False}})
    assert weight_memory(quantized).total_bytes == memory.total_bytes


def test_plain_float_dtype_applies_everywhere():
    spec = load_preset("qwen3-30b-a3b")
    memory = weight_memory(spec, WeightPolicy(dtype="fp32"))
    assert memory.total_bytes == 4 * count_params(spec).total and memory.vector_format == "fp32"


def test_per_component_override():
    # --dtype bf16 --expert-dtype mxfp4 on Mixtral: only the 32 × 8 experts change.
    memory = weight_memory(load_preset("mixtral-8x7b"), WeightPolicy(dtype="bf16", expert_dtype="mxfp4"))
    mxfp4 = lambda rows, cols: rows * cols // 2 + rows * cols // 32  # noqa: E731
    experts_bf16 = 2 * 32 * 8 * 3 * 4096 * 14336
    experts_mxfp4 = 32 * 8 * (2 * mxfp4(14336, 4096) + mxfp4(4096, 14336))
    assert memory.total_bytes == 93_405_585_408 - experts_bf16 + experts_mxfp4
    assert memory.formats["routed_experts"] == "mxfp4" and memory.formats["attention"] == "bf16"
    assert "overrides" in memory.origin


def test_quantization_config_rules():
    spec = load_preset("deepseek-v3")
    partial = spec.model_copy(update={"quantization": {**spec.quantization, "modules_to_not_convert": ["model.layers.*.self_attn", "odd.module"]}})
    memory = weight_memory(partial)
    assert memory.formats["attention"] == "bf16" and memory.formats["routed_experts"] == "fp8"
    assert any("odd.module" in note for note in memory.notes)
    per_tensor = spec.model_copy(update={"quantization": {"quant_method": "fp8"}})
    assert weight_memory(per_tensor).formats["attention"] == "fp8-tensor"
    with pytest.raises(SpecError, match="pass --dtype"):
        weight_memory(spec.model_copy(update={"quantization": {"quant_method": "bitsandbytes"}}))
    with pytest.raises(SpecError, match="3 bits"):
        weight_memory(spec.model_copy(update={"quantization": {"quant_method": "gptq", "bits": 3}}))
    # An explicit dtype wins over the config.
    assert weight_memory(spec, WeightPolicy(dtype="bf16")).total_bytes == 2 * count_params(spec).total


def test_gguf_fallback_is_reported():
    memory = weight_memory(load_preset("gpt-oss-20b"), WeightPolicy(dtype="q4_k_m"))
    assert any("q5_0" in note for note in memory.notes)


def test_vector_dtype_must_be_a_float():
    with pytest.raises(SpecError, match="vector_dtype"):
        weight_memory(load_preset("mixtral-8x7b"), WeightPolicy(vector_dtype="q4_k"))
