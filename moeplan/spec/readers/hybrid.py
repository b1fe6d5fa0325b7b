"""Readers of hybrid MoE decoders, whose layers mix softmax attention with linear attention, Mamba-2 or short
convolutions: Qwen3-Next, Qwen3.5 and Qwen3.5-MoE (gated DeltaNet), Kimi Linear (Kimi delta attention beside MLA),
MiniMax-Text-01 (lightning attention), Nemotron-H and Granite-4.0-H (Mamba-2), LFM2-MoE (short convolutions),
Ling-2.5 (bailing_hybrid: KDA with full-rank gates beside gated MLA), LaraMini (gated DeltaNet beside full and
sliding attention).

Each maps its config's per-layer type list onto ModelSpec.mixer_pattern (its shortest cycle, so a layer-count
override keeps the pattern). A key a config leaves out reads as transformers 5.24's config class sets it
(TRANSFORMERS_DEFAULTS, merged into moeplan.spec.hf's table), including the layer lists the classes derive.
"""

from moeplan.errors import SpecError
from moeplan.spec.hf import _base, _gqa_attention, _grouped_moe, _Keys, _mla_attention, _moe_layers, _shared_expert, _shortest_cycle

_LAYER_TYPE_MIXERS = {
    "full_attention": "attention",
    "attention": "attention",  # transformers' legacy name
    "conv": "short_conv",
}
"""Per-layer type names of the configs → ModelSpec mixers; 'linear_attention' (legacy 'mamba') maps to the
reader's own linear mixer."""


def _aliased_default(k: _Keys, names: tuple[str, ...], value) -> None:
    """Fill transformers' default under the first name when the config has none of a key's aliases (a default
    in TRANSFORMERS_DEFAULTS would shadow an alias the file uses)."""
    if all(k.config.get(name) is None for name in names):
        k.config[names[0]] = value


def _refuse_unbuilt(k: _Keys, keys: dict[str, object], what: str) -> None:
    """Refuse a config that sets keys adding parameters the reader (and transformers' class) does not build."""
    set_keys = [name for name, value in keys.items() if value not in (None, False, 0, [], {})]
    if set_keys:
        raise SpecError(f"{k.where}: {', '.join(set_keys)} describe {what}, which moeplan does not read yet; "
                        "it refuses rather than count the model without them")


def _mixers(k: _Keys, layer_types: list, linear: str) -> list[str]:
    """The per-layer mixers for a config's layer-type list, checked against num_hidden_layers."""
    if not isinstance(layer_types, list) or len(layer_types) != k.config.get("num_hidden_layers", len(layer_types)):
        raise SpecError(f"{k.where}: layer_types must list one type per layer (num_hidden_layers), not {layer_types!r}")
    mixers = []
    for kind in layer_types:
        mixer = linear if kind in ("linear_attention", "mamba") else _LAYER_TYPE_MIXERS.get(kind)
        if mixer is None:
            raise SpecError(f"{k.where}: layer_types has {kind!r}, which moeplan does not know for this model_type")
        mixers.append(mixer)
    return _shortest_cycle(mixers)


def _interval_layer_types(k: _Keys, interval: int) -> list[str]:
    """Every interval-th layer full attention, the others linear (Qwen3-Next's full_attention_interval)."""
    return ["linear_attention" if (i + 1) % interval else "full_attention" for i in range(k("num_hidden_layers"))]


def _gated_deltanet(k: _Keys) -> dict:
    return {
        "kind": "gated_deltanet",
        "num_heads": k("linear_num_value_heads"),
        "num_key_heads": k("linear_num_key_heads"),
        "head_dim": k("linear_key_head_dim"),
        "value_head_dim": k("linear_value_head_dim"),
        "conv_kernel": k("linear_conv_kernel_dim"),
    }


def _qwen_hybrid_layers(k: _Keys) -> dict:
    """Qwen3-Next's and Qwen3.5's mixers: gated DeltaNet layers, every full_attention_interval-th layer gated
    softmax attention (q_proj also emits the output gate unless attn_output_gate is false; per-head q/k norms)."""
    types = k("layer_types", default=None) or _interval_layer_types(k, k("full_attention_interval", default=4))
    return {
        "attention": _gqa_attention(k, qk_norm="per_head", output_gate=bool(k("attn_output_gate", default=True))),
        "mixer_pattern": _mixers(k, types, "linear_attention"),
        "linear_attention": _gated_deltanet(k),
    }


def _qwen_mtp(k: _Keys) -> dict:
    """Qwen3.5's MTP modules (mtp_num_hidden_layers): one gated-attention layer each, with the model's MLP or MoE,
    sharing the embedding and output head. Qwen3-Next's config does not say whether its checkpoint has one."""
    return {"mtp_layers": k("mtp_num_hidden_layers", default=0), "mtp_block": ["attention"], "mtp_embeddings": False}


def _qwen3_5(k: _Keys) -> dict:
    """Qwen3.5 (dense): Qwen3-Next's layers with a SwiGLU MLP of intermediate_size."""
    return _base(k, **_qwen_hybrid_layers(k), **_qwen_mtp(k))


def _qwen3_next(k: _Keys) -> dict:
    """Qwen3-Next and Qwen3.5-MoE: _qwen_hybrid_layers with an MoE and a gated shared expert in every layer (but
    mlp_only_layers; every decoder_sparse_step-th); MTP modules as _qwen_mtp."""
    step = k("decoder_sparse_step", default=1)
    moe = {
        "num_experts": k("num_experts"),
        "top_k": k("num_experts_per_tok"),
        "expert_intermediate_size": k("moe_intermediate_size"),
        "layer_period": step,
        "layer_offset": step - 1,
        "dense_layers": k("mlp_only_layers", default=[]),
        "num_shared_experts": 1,
        "shared_intermediate_size": k("shared_expert_intermediate_size"),
        "shared_expert_gate": True,
    }
    return _base(k, moe=moe, **_qwen_hybrid_layers(k), **_qwen_mtp(k))


_LARA_MINI_PATTERN = ["linear_attention", "sliding_attention", "linear_attention", "full_attention", "sliding_attention"]
"""LaraMini's released layer pattern (period 5), transformers' default when layer_types is left out."""


def _lara_mini(k: _Keys) -> dict:
    """LaraMini: Qwen3.5's gated DeltaNet layers beside softmax attention (per-head q/k norms, no output gate) that
    is full or sliding per layer_types; every layer MoE with an ungated shared expert."""
    types = k("layer_types", default=None) or [_LARA_MINI_PATTERN[i % 5] for i in range(k("num_hidden_layers"))]
    attention_kinds = [{"full_attention": "full", "sliding_attention": "sliding"}.get(t) for t in types if t != "linear_attention"]
    if None in attention_kinds:
        raise SpecError(f"{k.where}: layer_types must be linear_attention, full_attention or sliding_attention, not {types!r}")
    pattern = _shortest_cycle(attention_kinds) if attention_kinds else ["full"]
    window = {"sliding_window": k("sliding_window")} if "sliding" in pattern else {}
    mixers = ["attention" if t != "linear_attention" else t for t in types]
    return _base(
        k,
        attention=_gqa_attention(k, qk_norm="per_head", layer_pattern=pattern, **window),
        moe={
            "num_experts": k("num_experts"),
            "top_k": k("num_experts_per_tok"),
            "expert_intermediate_size": k("moe_intermediate_size"),
            "num_shared_experts": 1,
            "shared_intermediate_size": k("shared_expert_intermediate_size"),
        },
        intermediate_size=None,
        mixer_pattern=_mixers(k, mixers, "linear_attention"),
        linear_attention=_gated_deltanet(k),
    )


def _kimi_linear(k: _Keys) -> dict:
    """Kimi Linear: Kimi delta attention (KDA) layers and MLA layers (1-indexed lists in the checkpoint's
    linear_attn_config), DeepSeek-style MoE with shared experts and first dense layers."""
    layers = k("num_hidden_layers")
    linear = k("linear_attn_config", default={})
    _refuse_unbuilt(k, {
        **{name: k.config.get(name) for name in ("mla_use_output_gate", "routed_expert_hidden_size", "latent_moe_use_norm", "attn_res_block_size")},
        "linear_attn_config.use_full_rank_gate": linear.get("use_full_rank_gate"),
    }, "Kimi-K3's output gates, latent experts, full-rank KDA gates or block residuals")
    types = k("layer_types", default=None)
    if types is None and {"full_attn_layers", "kda_layers"} <= linear.keys():
        types = [None] * layers
        for kind, numbers in (("full_attention", linear["full_attn_layers"]), ("linear_attention", linear["kda_layers"])):
            for number in numbers:  # 1-based
                if not isinstance(number, int) or not 1 <= number <= layers:
                    raise SpecError(f"{k.where}: linear_attn_config lists layer {number!r}, not one of 1..{layers}")
                types[number - 1] = kind
    types = types or ["full_attention" if i and i % 4 == 0 else "linear_attention" for i in range(layers)]
    kda = {
        "kind": "kda",
        "num_heads": linear.get("num_heads") or k("linear_num_heads"),
        "head_dim": linear.get("head_dim") or k("linear_head_dim"),
        "conv_kernel": linear.get("short_conv_kernel_size") or k("linear_conv_kernel_dim"),
    }
    return _base(
        k,
        attention=_mla_attention(k),
        moe=_kimi_moe(k, first_dense=1, experts=256),
        mixer_pattern=_mixers(k, types, "linear_attention"),
        linear_attention=kda,
        max_position_embeddings=k("model_max_length", "max_position_embeddings", default=None),
    )


def _kimi_moe(k: _Keys, first_dense: int, experts: int) -> dict:
    """The DeepSeek-style MoE of Kimi Linear and Ling-2.5, under Kimi's key names: dense or sparse layers from
    mlp_layer_types (else the first first_k_dense_replace dense), shared experts, a correction-bias buffer;
    ``first_dense`` and ``experts`` are the config class's defaults (top-8 and one shared expert in both)."""
    _aliased_default(k, ("num_experts", "num_local_experts"), experts)
    _aliased_default(k, ("num_experts_per_token", "num_experts_per_tok"), 8)
    _aliased_default(k, ("num_shared_experts", "n_shared_experts"), 1)
    return {
        "num_experts": k("num_experts", "num_local_experts"),
        "top_k": k("num_experts_per_token", "num_experts_per_tok"),
        "expert_intermediate_size": k("moe_intermediate_size"),
        "num_shared_experts": k("num_shared_experts", "n_shared_experts"),
        "router_correction_bias": True,
        "moe_layers": _moe_layers(k, first_dense=k("first_k_dense_replace", default=first_dense)),
    }


def _bailing_hybrid(k: _Keys) -> dict:
    """Ling-2.5 (bailing_hybrid): KDA layers with full-rank forget and output gates, every layer_group_size-th layer
    MLA with a per-head output gate; Kimi Linear's MoE. As transformers does, the KDA heads are linear_num_heads of
    linear_head_dim (else num_attention_heads of head_dim), the convolution linear_conv_kernel_dim (else
    short_conv_kernel_size) wide. The checkpoint's MTP layer (num_nextn_predict_layers) is not in transformers'
    model and is not counted."""
    layers = k("num_hidden_layers")
    group = k("layer_group_size", default=6)
    types = k("layer_types", default=None) or ["full_attention" if (i + 1) % group == 0 else "linear_attention" for i in range(layers)]
    kda = {
        "kind": "kda",
        "num_heads": k("linear_num_heads", "num_attention_heads"),
        "head_dim": k("linear_head_dim", "head_dim"),
        "conv_kernel": k("linear_conv_kernel_dim", "short_conv_kernel_size"),
        "full_rank_gates": True,
    }
    return _base(
        k,
        attention=_mla_attention(k, output_gate=True, output_gate_per_head=True),
        moe=_kimi_moe(k, first_dense=2, experts=512),
        mixer_pattern=_mixers(k, types, "linear_attention"),
        linear_attention=kda,
        max_position_embeddings=k("model_max_length", "max_position_embeddings", default=None),
    )


def _minimax(k: _Keys) -> dict:
    """MiniMax-Text-01: lightning-attention layers alternating with softmax attention (odd layers linear by
    default); Mixtral-style MoE in every layer."""
    layers = k("num_hidden_layers")
    types = k("layer_types", default=None) or ["linear_attention" if i % 2 else "full_attention" for i in range(layers)]
    window = k("sliding_window", default=None)
    attention = _gqa_attention(k, **({"sliding_window": window, "layer_pattern": ["sliding"]} if window else {}))
    _aliased_default(k, ("num_local_experts", "num_experts"), 8)
    heads = k("num_attention_heads")
    return _base(
        k,
        attention=attention,
        moe={
            "num_experts": k("num_local_experts", "num_experts"),
            "top_k": k("num_experts_per_tok"),
            "expert_intermediate_size": k("intermediate_size"),
        },
        intermediate_size=None,
        mixer_pattern=_mixers(k, types, "linear_attention"),
        linear_attention={"kind": "lightning", "num_heads": heads, "head_dim": k("head_dim", default=None) or k("hidden_size") // heads},
    )


_NEMOTRON_PATTERN = {"M": "linear_attention", "E": "moe", "*": "full_attention", "-": "mlp"}
_NEMOTRON_MIXERS = {"linear_attention": "mamba2", "mamba": "mamba2", "full_attention": "attention", "attention": "attention",
                    "moe": "none", "mlp": "none"}
"""Nemotron-H block types (and transformers' legacy names) → mixers; 'moe' and 'mlp' blocks have none."""


def _nemotron_h(k: _Keys) -> dict:
    """Nemotron-H: each layer is one block behind one norm - Mamba-2 mixer, attention, MLP (relu², not gated)
    or MoE (non-gated experts, one shared expert, sigmoid routing with a correction-bias buffer). The layer list
    (layers_block_type, or the legacy hybrid_override_pattern string) sets the layer count. moe_latent_size
    (Nemotron-3-Super): the experts work in that width between two latent projections. MTP modules
    (num_nextn_predict_layers): the blocks of mtp_layers_block_type (or mtp_hybrid_override_pattern; default an
    attention block then an MoE block), sharing the embedding and output head."""
    types = k("layers_block_type", "layer_types", default=None)
    if types is None:
        pattern = k("hybrid_override_pattern", default=None)
        if pattern is not None:
            unknown = set(pattern) - _NEMOTRON_PATTERN.keys()
            if unknown:
                raise SpecError(f"{k.where}: hybrid_override_pattern has {''.join(sorted(unknown))!r}, not one of M E * -")
            types = [_NEMOTRON_PATTERN[c] for c in pattern]
        else:
            types = ["linear_attention", "moe", "full_attention", "mlp"]
    if not isinstance(types, list) or not types:
        raise SpecError(f"{k.where}: layers_block_type must be a non-empty list, not {types!r}")
    if k("moe_latent_size", default=None) and k("mlp_bias", default=False):
        raise SpecError(f"{k.where}: nemotron_h with moe_latent_size and mlp_bias (biased latent projections) is not read by moeplan yet")
    unknown = [t for t in types if t not in _NEMOTRON_MIXERS]
    if unknown:
        raise SpecError(f"{k.where}: layers_block_type has {unknown[0]!r}, not one of {sorted(_NEMOTRON_PATTERN.values())}")
    mixers = [_NEMOTRON_MIXERS[t] for t in types]
    mtp_types = k("mtp_layers_block_type", default=None)
    if mtp_types is None:
        pattern = k("mtp_hybrid_override_pattern", default="*E")
        mtp_types = [_NEMOTRON_PATTERN.get(c) for c in pattern] if isinstance(pattern, str) else None
    if not isinstance(mtp_types, list) or any(t not in ("full_attention", "attention", "moe", "linear_attention", "mamba") for t in mtp_types):
        raise SpecError(f"{k.where}: MTP blocks must be attention, Mamba-2 or MoE blocks, not {mtp_types!r}")
    moe_layers = [i for i, t in enumerate(types) if t == "moe"]
    moe = None
    _aliased_default(k, ("n_routed_experts", "num_local_experts"), 8)
    if moe_layers:
        moe = _grouped_moe(k, ("n_routed_experts", "num_local_experts"), shared=None, gated=False, moe_layers=moe_layers,
                           latent_size=k("moe_latent_size", default=None))
        if k("n_shared_experts", default=0):
            moe |= _shared_expert(k, "moe_shared_expert_intermediate_size")
    heads = k("mamba_num_heads")
    mamba2 = {
        "num_heads": heads,
        "head_dim": k("mamba_head_dim"),
        "n_groups": k("n_groups", "mamba_n_groups"),
        "d_state": k("ssm_state_size"),
        "d_conv": k("conv_kernel", "mamba_d_conv"),
        "chunk_size": k("chunk_size", "mamba_chunk_size"),
        "conv_bias": bool(k("use_conv_bias", "mamba_conv_bias")),
        "proj_bias": bool(k("use_bias", default=False)),
    }
    return {
        "num_layers": len(types),
        "hidden_size": k("hidden_size"),
        "vocab_size": k("vocab_size"),
        "tie_word_embeddings": bool(k("tie_word_embeddings", default=False)),
        "max_position_embeddings": k("max_position_embeddings", default=None),
        "attention": _gqa_attention(k),
        "intermediate_size": k("intermediate_size") if "mlp" in types else None,
        "dense_mlp_gated": False,
        "mlp_bias": bool(k("mlp_bias", default=False)),
        "moe": moe,
        "mixer_pattern": _shortest_cycle(mixers),
        "mamba2": mamba2 if "mamba2" in mixers else None,
        "layer_block": "mixer_or_mlp",
        "mtp_layers": k("num_nextn_predict_layers", default=0),
        "mtp_block": [_NEMOTRON_MIXERS[t] for t in mtp_types],
        "mtp_embeddings": False,
    }


def _granitemoehybrid(k: _Keys) -> dict:
    """Granite-4.0-H: Mamba-2 or attention in each layer, then a Granite MoE (if num_local_experts > 0) beside
    an always-present gated shared MLP; without experts (Granite-4.0-H-1B) that MLP is the dense MLP."""
    types = k("layer_types", "layers_block_type", default=None) or ["mamba"] * k("num_hidden_layers")
    hidden, heads = k("hidden_size"), k("mamba_n_heads")
    head_dim = k("mamba_d_head", default="auto")
    if head_dim == "auto":
        head_dim = k("mamba_expand") * hidden // heads
    shared = k("shared_intermediate_size")
    moe = {
        "num_experts": k("num_local_experts"),
        "top_k": k("num_experts_per_tok"),
        "expert_intermediate_size": k("intermediate_size"),
        "num_shared_experts": 1,
        "shared_intermediate_size": shared,
    } if k("num_local_experts") else None
    mamba2 = {
        "num_heads": heads,
        "head_dim": head_dim,
        "n_groups": k("mamba_n_groups"),
        "d_state": k("mamba_d_state"),
        "d_conv": k("mamba_d_conv"),
        "chunk_size": k("mamba_chunk_size"),
        "conv_bias": bool(k("mamba_conv_bias")),
        "proj_bias": bool(k("mamba_proj_bias")),
    }
    return _base(
        k,
        attention=_gqa_attention(k),
        moe=moe,
        intermediate_size=None if moe else shared,
        mixer_pattern=_mixers(k, types, "mamba2"),
        mamba2=mamba2,
    )


def _lfm2_moe(k: _Keys) -> dict:
    """LFM2-MoE: short-convolution layers and attention layers (per-head q/k norms) as layer_types lists them;
    the first num_dense_layers layers have a dense MLP, the rest MoE (sigmoid routing, expert-bias buffer)."""
    layers = k("num_hidden_layers")
    dense = k("num_dense_layers")
    return _base(
        k,
        tie_word_embeddings=bool(k("tie_word_embeddings", "tie_embedding", default=True)),
        attention=_gqa_attention(k, qk_norm="per_head", qkv_bias=False, o_bias=False),
        moe={
            "num_experts": k("num_experts"),
            "top_k": k("num_experts_per_tok"),
            "expert_intermediate_size": k("moe_intermediate_size"),
            "router_correction_bias": bool(k("use_expert_bias", default=True)),
            "moe_layers": list(range(dense, layers)),
        },
        mixer_pattern=_mixers(k, k("layer_types"), "linear_attention"),
        short_conv={"kernel": k("conv_L_cache"), "bias": bool(k("conv_bias"))},
    )


READERS = {
    "qwen3_next": _qwen3_next,
    "qwen3_5_moe": _qwen3_next,
    "qwen3_5_moe_text": _qwen3_next,
    "qwen3_5": _qwen3_5,
    "qwen3_5_text": _qwen3_5,
    "kimi_linear": _kimi_linear,
    "minimax": _minimax,
    "nemotron_h": _nemotron_h,
    "granitemoehybrid": _granitemoehybrid,
    "lfm2_moe": _lfm2_moe,
    "bailing_hybrid": _bailing_hybrid,
    "lara_mini": _lara_mini,
}
"""model_type → reader, merged into moeplan.spec.hf.READERS."""

_QWEN3_5_MOE = {
    "vocab_size": 248320, "hidden_size": 2048, "num_hidden_layers": 40, "num_attention_heads": 16,
    "num_key_value_heads": 2, "head_dim": 256, "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128,
    "linear_value_head_dim": 128, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
    "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512, "num_experts_per_tok": 8, "num_experts": 256,
}

_QWEN3_5 = {
    "vocab_size": 248320, "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 32,
    "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": 256, "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
}

TRANSFORMERS_DEFAULTS = {
    "qwen3_next": {
        "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 48,
        "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256, "linear_conv_kernel_dim": 4,
        "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_num_key_heads": 16,
        "linear_num_value_heads": 32, "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512,
        "num_experts_per_tok": 10, "num_experts": 512,
    },
    "qwen3_5_moe": _QWEN3_5_MOE,
    "qwen3_5_moe_text": _QWEN3_5_MOE,
    "qwen3_5": _QWEN3_5,
    "qwen3_5_text": _QWEN3_5,
    "lara_mini": {
        "vocab_size": 151936, "hidden_size": 1024, "num_hidden_layers": 34, "num_attention_heads": 16,
        "num_key_value_heads": 4, "head_dim": 128, "tie_word_embeddings": True, "sliding_window": 512,
        "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_num_key_heads": 8,
        "linear_num_value_heads": 16, "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512,
        "num_experts_per_tok": 4, "num_experts": 128,
    },
    "kimi_linear": {
        "vocab_size": 163840, "hidden_size": 2304, "intermediate_size": 9216, "moe_intermediate_size": 1024,
        "num_hidden_layers": 27, "num_attention_heads": 32, "kv_lora_rank": 512, "qk_rope_head_dim": 64,
        "v_head_dim": 128, "qk_nope_head_dim": 128, "linear_head_dim": 128, "linear_num_heads": 32, "linear_conv_kernel_dim": 4,
    },
    "minimax": {
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "num_experts_per_tok": 2,
    },
    "nemotron_h": {
        "vocab_size": 131072, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
        "intermediate_size": 21504, "ssm_state_size": 128, "mamba_num_heads": 128, "mamba_head_dim": 64, "n_groups": 8,
        "conv_kernel": 4, "chunk_size": 128, "use_conv_bias": True, "n_shared_experts": 1,
        "moe_intermediate_size": 7688, "moe_shared_expert_intermediate_size": 7688, "num_experts_per_tok": 2,
    },
    "granitemoehybrid": {
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_local_experts": 8, "num_experts_per_tok": 2, "shared_intermediate_size": 1024,
        "mamba_n_heads": 128, "mamba_n_groups": 1, "mamba_d_state": 256, "mamba_d_conv": 4,
        "mamba_expand": 2, "mamba_chunk_size": 256, "mamba_conv_bias": True, "mamba_proj_bias": False,
    },
    "bailing_hybrid": {
        "vocab_size": 157184, "hidden_size": 2560, "intermediate_size": 6144, "moe_intermediate_size": 768,
        "num_hidden_layers": 42, "num_attention_heads": 32, "kv_lora_rank": 512, "qk_rope_head_dim": 64,
        "v_head_dim": 128, "qk_nope_head_dim": 128, "head_dim": 128, "short_conv_kernel_size": 4,
    },
    "lfm2_moe": {
        "vocab_size": 65536, "hidden_size": 2048, "intermediate_size": 7168, "moe_intermediate_size": 1792,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "conv_bias": False,
        "conv_L_cache": 3, "num_dense_layers": 2, "num_experts_per_tok": 4, "num_experts": 32,
    },
}
"""transformers 5.24's config-class defaults for keys that change a count (merged into hf.TRANSFORMERS_DEFAULTS).
Keys with an alias in the class's attribute_map (Kimi Linear's expert counts, MiniMax's and Nemotron-H's expert
number) are filled by the readers instead (_aliased_default): a default under one name would shadow the other."""
