"""The MoE decoders of moeplan/spec/readers/moe_decoders.py against transformers on the meta device: a config
built from each config class's defaults (completed where the defaults alone build no MoE) must count exactly as
transformers instantiates it, by component. The reduced synthetic configs of these families (tests/data/hf-configs)
and the published MiniMax-M2 config (the minimax-m2 preset) run through test_transformers_crosscheck.py."""

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import AutoConfig  # noqa: E402

from moeplan.accounting.params import count_params  # noqa: E402
from moeplan.spec.hf import spec_from_hf_config  # noqa: E402
from moeplan.spec.readers.moe_decoders import READERS  # noqa: E402
from test_transformers_crosscheck import _components, _instantiate  # noqa: E402

COMPLETIONS = {
    "dots1": {"n_routed_experts": 128, "n_shared_experts": 2, "num_experts_per_tok": 6, "first_k_dense_replace": 1},
    "hunyuan_v1_moe": {"head_dim": 128, "num_experts": 16, "moe_topk": 2},
    "gemma4_text": {"hidden_size_per_layer_input": 0, "enable_moe_block": True, "num_experts": 128, "top_k_experts": 8,
                    "moe_intermediate_size": 704, "attention_k_eq_v": True, "num_global_key_value_heads": 2},
}
"""Keys whose class default is None or 1 (dots1's expert counts, Hunyuan's head_dim and single expert) or that
moeplan refuses (Gemma-4's per-layer input embeddings, on by default; its MoE block, off): the defaults alone build
no MoE or no model moeplan reads, so these are completed with the released models' values."""


def _defaults(model_type: str) -> dict:
    return AutoConfig.for_model(model_type, **COMPLETIONS.get(model_type, {})).to_dict()


VARIANTS = [
    ("laguna", {"gating": False}),  # a per-channel output gate
    ("cohere2_moe", {"rms_norm_eps": None, "num_shared_experts": 1, "first_k_dense_replace": 2}),  # LayerNorm, prefix
    ("ernie4_5_moe", {"use_bias": True, "moe_layer_interval": 2}),
]
"""Class defaults with the keys that switch a family's other variant."""


TEXT_DECODERS = {"qwen3_vl_moe_text": "qwen3_vl_moe", "glm4v_moe_text": "glm4v_moe", "qwen3_omni_moe_text": "qwen3_omni_moe_thinker",
                 "minimax_m3_vl_text": "minimax_m3_vl", "mistral4": None}
"""Text decoders of multimodal models → their container, which transformers builds (ForConditionalGeneration); None:
transformers builds the decoder alone (AutoModel), without an lm_head."""


@pytest.mark.parametrize("model_type, changes", [(t, {}) for t in sorted(READERS.keys() - TEXT_DECODERS.keys())] + VARIANTS)
def test_class_defaults_count_exactly(model_type: str, changes: dict):
    config = AutoConfig.for_model(model_type, **COMPLETIONS.get(model_type, {}), **changes).to_dict()
    model = _instantiate(config)
    counts = count_params(spec_from_hf_config(config))
    assert counts.by_component == _components(model)
    assert counts.total == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("key, value", [("hidden_size_per_layer_input", 256), ("num_kv_shared_layers", 2)])
def test_gemma4_features_moeplan_does_not_describe_are_refused(key: str, value: int):
    config = AutoConfig.for_model("gemma4_text", **COMPLETIONS["gemma4_text"]).to_dict() | {key: value}
    from moeplan.errors import SpecError

    with pytest.raises(SpecError, match=f"{key} {value}: Gemma-4's per-layer input embeddings and KV shared"):
        spec_from_hf_config(config)


def test_per_layer_lists_that_differ_are_refused():
    from moeplan.errors import SpecError

    config = _defaults("hunyuan_v1_moe") | {"moe_topk": [2, 1] * 16}
    with pytest.raises(SpecError, match="moe_topk differs between layers"):
        spec_from_hf_config(config)
    assert spec_from_hf_config(config | {"moe_topk": [2] * 32}).top_k == 2


MIMO_V2_FLASH_HUB = {
    "architectures": ["MiMoV2FlashForCausalLM"], "model_type": "mimo_v2_flash", "vocab_size": 152576, "hidden_size": 4096,
    "num_hidden_layers": 48, "num_attention_heads": 64, "num_key_value_heads": 4, "head_dim": 192, "v_head_dim": 128,
    "swa_num_attention_heads": 64, "swa_num_key_value_heads": 8, "swa_head_dim": 192, "swa_v_head_dim": 128,
    "partial_rotary_factor": 0.334, "rope_theta": 5000000, "swa_rope_theta": 10000, "sliding_window": 128,
    "sliding_window_size": 128, "hybrid_layer_pattern": [int(not (i == 0 or (i + 1) % 6 == 0)) for i in range(48)],
    "moe_layer_freq": [int(i != 0) for i in range(48)], "add_swa_attention_sink_bias": True,
    "add_full_attention_sink_bias": False, "intermediate_size": 16384, "n_routed_experts": 256, "num_experts_per_tok": 8,
    "moe_intermediate_size": 2048, "routed_scaling_factor": None, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
    "n_group": 1, "norm_topk_prob": True, "layernorm_epsilon": 1e-5, "attention_value_scale": 0.707,
}
"""XiaomiMiMo/MiMo-V2-Flash's config.json in the Hub's spelling (hybrid_layer_pattern, swa_* keys, sliding_window_size),
its fields as reproduced in a public inference engine's test fixture (mimo_v2_flash_hub_config)."""


def test_mimo_v2_flash_hub_config_counts_exactly():
    """The 309B model the issue saw counted as a 16B dense one: exact now, by component, KV per layer type."""
    from moeplan.accounting.kv_cache import kv_cache_summary

    model = _instantiate(MIMO_V2_FLASH_HUB)
    spec = spec_from_hf_config(MIMO_V2_FLASH_HUB)
    counts = count_params(spec)
    assert counts.by_component == _components(model)
    assert counts.total == sum(p.numel() for p in model.parameters()) == 308_778_768_832
    # 9 full layers (0, 5, 11, ..., 47) cache 4 KV heads x (192 + 128) per token; 39 sliding ones 8 heads, capped at 129
    summary = kv_cache_summary(spec, "bf16")
    assert summary.bytes_per_token_beyond_windows == 9 * 4 * (192 + 128) * 2
    assert summary.capped_layers == {129: 39}
    assert summary.kv_cache_bytes_per_token == 9 * 4 * 320 * 2 + 39 * 8 * 320 * 2
    from moeplan.accounting.flops import attention_flops_per_key

    assert attention_flops_per_key(spec.attention, spec.head_dim) == 2 * 64 * (192 + 128)  # QK^T at 192, AV at 128


@pytest.mark.parametrize("container", sorted(c for c in TEXT_DECODERS.values() if c))
def test_text_decoder_of_a_multimodal_model_counts_exactly(container: str):
    """The container's config (vision tower and all) reads as its text decoder: the language model and lm_head of
    what transformers builds, nothing of the vision tower. The container's tie_word_embeddings applies."""
    import torch
    import transformers
    from transformers.models.auto import modeling_auto

    from test_transformers_crosscheck import _component

    mappings = (modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES, modeling_auto.MODEL_MAPPING_NAMES)
    model_class = getattr(transformers, next(m[container] for m in mappings if container in m))

    # GLM-4.5V's and Qwen3-Omni's text defaults leave head_dim out, although hidden_size is no multiple of the heads
    # (transformers then floors it); their released configs set 128
    completed = {"text_config": {"head_dim": 128}} if container in ("glm4v_moe", "qwen3_omni_moe_thinker") else {}
    config = AutoConfig.for_model(container, **completed)
    with torch.device("meta"):
        model = model_class._from_config(config)
    text = {}
    for name, parameter in model.named_parameters():
        if name.startswith(("model.language_model.", "lm_head.")):
            component = _component(name.replace("model.language_model.", "model."))
            text[component] = text.get(component, 0) + parameter.numel()
    counts = count_params(spec_from_hf_config(config.to_dict()))
    assert {name: value for name, value in counts.by_component.items() if value} == text


@pytest.mark.parametrize("model_type", sorted(t for t, container in TEXT_DECODERS.items() if container is None))
def test_text_decoder_without_a_causal_lm_counts_exactly(model_type: str):
    """Decoders transformers only builds as a bare model (no ForCausalLM): every component of that model exactly,
    and lm_head as the config ties it (V·H when untied)."""
    import torch
    from transformers import AutoModel

    from test_transformers_crosscheck import _component

    config = AutoConfig.for_model(model_type)
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    built = {}
    for name, parameter in model.named_parameters():
        component = _component(f"model.{name}")
        built[component] = built.get(component, 0) + parameter.numel()
    counts = count_params(spec_from_hf_config(config.to_dict()))
    assert {name: value for name, value in counts.by_component.items() if value and name != "lm_head"} == built
    assert counts.by_component["lm_head"] == (0 if config.tie_word_embeddings else config.vocab_size * config.hidden_size)


ERNIE_4_5_21B_A3B = {
    "architectures": ["Ernie4_5_MoeForCausalLM"], "model_type": "ernie4_5_moe", "hidden_size": 2560, "intermediate_size": 12288,
    "moe_intermediate_size": 1536, "num_hidden_layers": 28, "num_attention_heads": 20, "num_key_value_heads": 4,
    "head_dim": 128, "moe_num_experts": 64, "moe_num_shared_experts": 2, "moe_k": 6, "moe_layer_start_index": 1,
    "moe_layer_end_index": 27, "moe_layer_interval": 1, "vocab_size": 103424, "tie_word_embeddings": True, "hidden_act": "silu",
}
"""baidu/ERNIE-4.5-21B-A3B-PT config.json architecture fields, as quoted in a public memory calculator's test."""


@pytest.mark.parametrize("name, total_b, active_b", [
    ("ernie-4.5-21b-a3b", 21.8, 3.1),  # model card: 21B total, 3B activated
    ("minimax-m2", 228.7, 10.4),  # model card: 230B total, 10B activated
    ("mimo-v2-flash", 308.8, 14.8),  # model card: 309B total, 15B active
])
def test_published_models_count_as_their_model_cards_say(name: str, total_b: float, active_b: float):
    """Totals and active counts (without the input embedding) of the published configs, in billions, next to the
    figures their model cards round to."""
    from moeplan.spec.presets import load_preset

    spec = {"ernie-4.5-21b-a3b": lambda: spec_from_hf_config(ERNIE_4_5_21B_A3B), "minimax-m2": lambda: load_preset("minimax-m2"),
            "mimo-v2-flash": lambda: spec_from_hf_config(MIMO_V2_FLASH_HUB)}[name]()
    counts = count_params(spec)
    assert round(counts.total / 1e9, 1) == total_b
    assert round(counts.active_without_embedding / 1e9, 1) == active_b
