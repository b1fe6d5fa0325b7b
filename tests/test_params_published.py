"""Parameter counts of the presets against the figures their vendors published.

Tolerance: a published figure is the exact count rounded or truncated to its last digit (vendors do both:
Qwen3-30B-A3B's "3.3B activated" is 3.353B, DeepSeek-V2-Lite's "2.4B" is 2.451B, while Mixtral's "12.9B" is
12.880B), so the exact count must lie in [published - unit/2, published + unit), unit being one step of the
last digit shown. Where the active figure is quoted, the test uses the vendor's convention (with or without
the input embedding table, see ParamCounts) and, where the unit is fine enough, the other convention fails
the same bound, which shows which one the vendor used.
"""

import json
import math
from importlib.resources import files

import pytest

from moeplan.accounting.params import count_params
from moeplan.spec.presets import load_preset

B = 10**9

PUBLISHED = [
    # preset, (total, unit), (active field, active, unit), source
    ("mixtral-8x7b", (46.7 * B, 0.1 * B), ("active", 12.9 * B, 0.1 * B),
     "Mistral AI, 'Mixtral of experts' (2023-12-11): 46.7B total, 12.9B per token"),
    ("mixtral-8x22b", (141 * B, B), ("active", 39 * B, B),
     "Mistral AI, 'Cheaper, Better, Faster, Stronger' (2024-04-17): 39B active out of 141B"),
    ("deepseek-v3", (671 * B, B), ("active_without_embedding", 37 * B, B),
     "DeepSeek-V3 Technical Report (arXiv:2412.19437), abstract: 671B total, 37B activated per token"),
    ("deepseek-v2", (236 * B, B), ("active_without_embedding", 21 * B, B),
     "DeepSeek-V2 paper (arXiv:2405.04434), abstract: 236B total, 21B activated per token"),
    ("deepseek-v2-lite", (15.7 * B, 0.1 * B), ("active_without_embedding", 2.4 * B, 0.1 * B),
     "DeepSeek-V2-Lite model card: 15.7B total, 2.4B activated"),
    ("gpt-oss-120b", (116.83 * B, 0.01 * B), ("active_without_embedding", 5.13 * B, 0.01 * B),
     "OpenAI, gpt-oss-120b & gpt-oss-20b model card (2025-08-05), table 1: 116.83B total, 5.13B active"),
    ("gpt-oss-20b", (20.91 * B, 0.01 * B), ("active_without_embedding", 3.61 * B, 0.01 * B),
     "OpenAI, gpt-oss model card, table 1: 20.91B total, 3.61B active"),
    ("qwen3-30b-a3b", (30.5 * B, 0.1 * B), ("active", 3.3 * B, 0.1 * B),
     "Qwen/Qwen3-30B-A3B model card: 30.5B in total and 3.3B activated"),
    ("qwen3-235b-a22b", (235 * B, B), ("active", 22 * B, B),
     "Qwen/Qwen3-235B-A22B model card: 235B in total and 22B activated"),
    ("qwen1.5-moe-a2.7b", (14.3 * B, 0.1 * B), ("active", 2.7 * B, 0.1 * B),
     "Qwen blog 'Qwen1.5-MoE' (2024-03-28): 14.3B parameters, 2.7B activated"),
    ("kimi-k2", (1000 * B, 1000 * B), ("active_without_embedding", 32 * B, B),
     "moonshotai/Kimi-K2-Instruct model card: 32 billion activated, 1 trillion total"),
    ("jamba-v0.1", (52 * B, B), ("active", 12 * B, B),
     "AI21, Jamba paper (arXiv:2403.19887): 12B active of 52B total"),
    ("dbrx", (132 * B, B), ("active", 36 * B, B),
     "Databricks, 'Introducing DBRX' (2024-03-27): 132B total, 36B active on any input"),
    ("olmoe-1b-7b", (6.9 * B, 0.1 * B), ("active", 1.3 * B, 0.1 * B),
     "OLMoE paper (arXiv:2409.02060): 6.9B total, 1.3B active"),
]
"""Published totals and active counts, in parameters, with the step of their last digit."""

OTHER_CONVENTION = {"active": "active_without_embedding", "active_without_embedding": "active"}

SHOWS_CONVENTION = {"mixtral-8x7b", "gpt-oss-120b", "gpt-oss-20b", "qwen3-30b-a3b", "olmoe-1b-7b"}
"""Presets whose active figure is fine enough that only the vendor's convention falls within the bound."""


def within_published(value: int, published: float, unit: float) -> bool:
    """The exact value rounded or truncated to `unit` gives the published figure."""
    return published - unit / 2 <= value < published + unit


@pytest.mark.parametrize(("name", "total", "active", "source"), PUBLISHED, ids=[row[0] for row in PUBLISHED])
def test_published_total_and_active(name, total, active, source):
    counts = count_params(load_preset(name))
    assert within_published(counts.total, *total), f"{name}: total {counts.total:,} vs {source}"
    field, published, unit = active
    assert within_published(getattr(counts, field), published, unit), f"{name}: {field} vs {source}"
    if name in SHOWS_CONVENTION:
        assert not within_published(getattr(counts, OTHER_CONVENTION[field]), published, unit)


def test_qwen3_non_embedding_totals():
    """Qwen3 model cards also give totals without the embedding table and lm_head: 29.9B (30B-A3B), 234B (235B-A22B)."""
    for name, published, unit in (("qwen3-30b-a3b", 29.9 * B, 0.1 * B), ("qwen3-235b-a22b", 234 * B, B)):
        counts = count_params(load_preset(name))
        non_embedding = counts.total - counts.by_component["embedding"] - counts.by_component["lm_head"]
        assert within_published(non_embedding, published, unit)


def blocks_128(rows: int, cols: int) -> int:
    """128×128 blocks covering a rows × cols matrix (partial blocks at the edges count)."""
    return math.ceil(rows / 128) * math.ceil(cols / 128)


def fp8_block_scales(spec) -> int:
    """FP32 scales DeepSeek-V3's FP8 checkpoint stores beside its weights, one per 128×128 block of every FP8
    matrix: the attention and MLP/expert projections of each decoder layer and of the MTP layer (embeddings,
    lm_head, routers, norms and the MTP's eh_proj stay in BF16)."""
    attn, moe, hidden = spec.attention, spec.moe, spec.hidden_size
    heads, qk = attn.num_heads, attn.qk_nope_head_dim + attn.qk_rope_head_dim
    attention = (
        blocks_128(attn.q_lora_rank, hidden)
        + blocks_128(heads * qk, attn.q_lora_rank)
        + blocks_128(attn.kv_lora_rank + attn.qk_rope_head_dim, hidden)
        + blocks_128(heads * (attn.qk_nope_head_dim + attn.v_head_dim), attn.kv_lora_rank)
        + blocks_128(hidden, heads * attn.v_head_dim)
    )

    def mlp(inner: int) -> int:
        return 2 * blocks_128(inner, hidden) + blocks_128(hidden, inner)

    moe_layers = spec.moe_layer_count + spec.mtp_layers
    dense_layers = spec.num_layers - spec.moe_layer_count
    experts = (moe.num_experts + moe.num_shared_experts) * mlp(moe.expert_intermediate_size)
    return (spec.num_layers + spec.mtp_layers) * attention + dense_layers * mlp(spec.intermediate_size) + moe_layers * experts


def test_deepseek_v3_mtp_module():
    """DeepSeek-V3 model card: the 685B on Hugging Face are 671B of main model and 14B of MTP module weights.

    Both 685B and 671B are rounded to 1B, so their difference is 14B within ±1B. The 685B counts every stored
    tensor: moeplan's total and mtp, the routers' correction biases (buffers in transformers, stored in the
    checkpoint: E per MoE layer, MTP included) and the FP8 block scales.
    """
    spec = load_preset("deepseek-v3")
    counts = count_params(spec)
    assert abs(counts.mtp - (685 - 671) * B) <= B
    correction_biases = spec.moe.num_experts * (spec.moe_layer_count + spec.mtp_layers)
    stored = counts.total + counts.mtp + correction_biases + fp8_block_scales(spec)
    assert within_published(stored, 685 * B, B)
    assert not within_published(counts.total + counts.mtp, 685 * B, B)  # 684.49B: the scales tip it over


LLAMA4_VISION = {
    "hidden_size": 1408,
    "num_hidden_layers": 34,
    "intermediate_size": 5632,
    "num_attention_heads": 16,
    "image_size": 336,
    "patch_size": 14,
    "num_channels": 3,
    "vision_output_dim": 4096,
    "projector_input_dim": 4096,
    "projector_output_dim": 4096,
    "pixel_shuffle_ratio": 0.5,
}
"""vision_config of meta-llama/Llama-4-Scout-17B-16E and Llama-4-Maverick-17B-128E (the same in both); the
preset files keep only text_config."""


def llama4_vision_params(vision: dict, text_hidden: int) -> int:
    """The Llama-4 vision tower and projector, by hand: unfold-conv patch embedding (no bias), class and
    positional embeddings, pre/post LayerNorms, encoder layers (biased q/k/v/o, biased GELU MLP, two LayerNorms),
    the pixel-shuffle MLP adapter (no biases) and the projector into the text width (no bias)."""
    hidden, inner = vision["hidden_size"], vision["intermediate_size"]
    patches = (vision["image_size"] // vision["patch_size"]) ** 2 + 1
    embeddings = vision["num_channels"] * vision["patch_size"] ** 2 * hidden + hidden + patches * hidden + 2 * 2 * hidden
    layer = 4 * (hidden * hidden + hidden) + 2 * hidden * inner + inner + hidden + 2 * 2 * hidden
    adapter = inner * vision["projector_input_dim"] + vision["projector_output_dim"] ** 2
    projector = vision["vision_output_dim"] * text_hidden
    return embeddings + vision["num_hidden_layers"] * layer + adapter + projector


# Meta, 'The Llama 4 herd' (2025-04-05): Scout 17B active, 109B total; Maverick 17B active, 400B total. The
# totals include the vision encoder, which moeplan (text model only) does not count, so it is added by hand
# (0.87B). Maverick's "400B" is given to two significant figures (text + vision = 401.58B, which the Hub page
# rounds to 402B), so its unit is 10B. The active figures include the embedding table (without it: 16.1B).
LLAMA4_PUBLISHED = [("llama-4-scout", 109 * B, B), ("llama-4-maverick", 400 * B, 10 * B)]


@pytest.mark.parametrize(("name", "total", "unit"), LLAMA4_PUBLISHED, ids=[row[0] for row in LLAMA4_PUBLISHED])
def test_llama4_published_with_vision(name, total, unit):
    spec = load_preset(name)
    counts = count_params(spec)
    assert within_published(counts.total + llama4_vision_params(LLAMA4_VISION, spec.hidden_size), total, unit)
    assert within_published(counts.active, 17 * B, B)
    assert not within_published(counts.active_without_embedding, 17 * B, B)


def test_llama4_vision_hand_count_equals_transformers():
    """The hand count of the vision part equals transformers' Llama4ForConditionalGeneration on meta."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    text = json.loads((files("moeplan") / "data" / "configs" / "llama-4-scout.json").read_text())["text_config"]
    config = transformers.Llama4Config(vision_config=LLAMA4_VISION, text_config=text)
    with torch.device("meta"):
        model = transformers.Llama4ForConditionalGeneration(config)
    vision = sum(p.numel() for p in model.vision_model.parameters())
    vision += sum(p.numel() for p in model.multi_modal_projector.parameters())
    assert vision == llama4_vision_params(LLAMA4_VISION, text["hidden_size"])
