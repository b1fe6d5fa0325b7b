"""Readers of MoE decoders with DeepSeek sparse attention (DSA): MLA whose queries read only the top-k tokens a
lightning indexer selects - DeepSeek-V3.2 and GLM-5 (glm_moe_dsa, where 'shared' layers reuse the previous
layer's selection and have no indexer). Everything else is DeepSeek-V3's architecture, read by hf._deepseek.
"""

from moeplan.errors import SpecError
from moeplan.spec.hf import _deepseek, _Keys, _moe_layers
from moeplan.spec.readers.hybrid import _aliased_default

_DSA_LAYER_TYPES = ("indexed_attention", "deepseek_sparse_attention")
"""Layer-type names of DSA layers (the second is transformers' legacy name)."""


def _glm_shared_layers(k: _Keys, layers: int) -> list[int]:
    """GLM-5's layers without an indexer: indexer_types 'shared', else the index_topk_pattern string
    ('F' full, 'S' shared), else every index_topk_freq-th layer from index_skip_topk_offset has one."""
    kinds = k("indexer_types", default=None)
    if kinds is None:
        pattern = k("index_topk_pattern", default=None)
        if pattern is not None:
            kinds = [{"F": "full", "S": "shared"}.get(c, c) for c in pattern] if isinstance(pattern, str) else list(pattern)
        else:
            freq = max(k("index_topk_freq", default=1), 1)
            offset = k("index_skip_topk_offset", default=2)
            kinds = ["full" if max(i - offset + 1, 0) % freq == 0 else "shared" for i in range(layers)]
    if len(kinds) != layers or set(kinds) - {"full", "shared"}:
        raise SpecError(f"{k.where}: indexer_types must list 'full' or 'shared' for each of the {layers} layers")
    return [i for i, kind in enumerate(kinds) if kind == "shared"]


def _dsa(k: _Keys) -> dict:
    """DeepSeek-V3.2 / GLM-5: DeepSeek-V3 (MLA, sigmoid routing with correction-bias buffer, shared experts, first
    dense layers or an explicit mlp_layer_types list) plus an indexer in every layer (GLM-5: every 'full' layer)."""
    layers = k("num_hidden_layers")
    types = k("layer_types", default=None)
    if types is not None and (len(types) != layers or any(t not in _DSA_LAYER_TYPES for t in types)):
        raise SpecError(f"{k.where}: layer_types must list 'indexed_attention' for each of the {layers} layers, not {types!r}")
    _aliased_default(k, ("n_routed_experts", "num_local_experts"), 256)
    spec = _deepseek(k)
    if k.has("mlp_layer_types"):
        spec["moe"] |= {"moe_layers": _moe_layers(k), "first_dense_layers": 0, "layer_period": 1}
    spec["moe"]["router_correction_bias"] = True
    shared = _glm_shared_layers(k, layers) if k.config.get("model_type") == "glm_moe_dsa" else []
    spec["attention"]["indexer"] = {
        "num_heads": k("index_n_heads"),
        "head_dim": k("index_head_dim"),
        "top_k": k("index_topk"),
        "shared_layers": shared,
    }
    return spec


READERS = {"deepseek_v32": _dsa, "glm_moe_dsa": _dsa}
"""model_type → reader, merged into moeplan.spec.hf.READERS."""

TRANSFORMERS_DEFAULTS = {
    "deepseek_v32": {
        "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
        "num_hidden_layers": 61, "num_attention_heads": 128, "n_shared_experts": 1,
        "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64, "v_head_dim": 128, "qk_nope_head_dim": 128,
        "n_group": 8, "topk_group": 4, "num_experts_per_tok": 8, "index_topk": 2048, "index_head_dim": 128,
        "index_n_heads": 64, "first_k_dense_replace": 3,
    },
    "glm_moe_dsa": {
        "vocab_size": 154880, "hidden_size": 6144, "intermediate_size": 12288, "moe_intermediate_size": 2048,
        "num_hidden_layers": 78, "num_attention_heads": 64, "n_shared_experts": 1,
        "kv_lora_rank": 512, "q_lora_rank": 2048, "qk_rope_head_dim": 64, "v_head_dim": 256, "qk_nope_head_dim": 192,
        "n_group": 1, "topk_group": 1, "num_experts_per_tok": 8, "index_topk": 2048, "index_head_dim": 128,
        "index_n_heads": 32, "first_k_dense_replace": 3,
    },
}
"""transformers 5.24's config-class defaults for keys that change a count (merged into hf.TRANSFORMERS_DEFAULTS);
n_routed_experts (256 in both) is filled by _dsa, as a default here would shadow its alias num_local_experts."""
