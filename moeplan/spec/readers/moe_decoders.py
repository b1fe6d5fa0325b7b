"""Readers of MoE decoders whose layers are a softmax attention and a (shared-expert) MoE block: Ernie-4.5-MoE,
dots.llm1, Hunyuan-A13B, MiniMax-M2, FlexOlmo, EXAONE-MoE, GLM-4.7-Flash (glm4_moe_lite), Sarvam-MoE and
Sarvam-MLA, Solar-Open, Mellum, Aria (text), HY-V3, Flint, Granite-MoE-SWA, Cohere2-MoE, AFMoE, Kolibri-1,
Beam, Laguna, MiMo-V2-Flash, Mistral-4, JetMoE, A.X-K1, Gemma-4 (text), and the text decoders of Qwen3-VL-MoE, GLM-4.5V, Qwen3-Omni
(thinker) and MiniMax-M3.

Each maps its family's key names onto the spec as transformers 5 builds the model (the modeling file of
the same name): where transformers ignores a key (Hunyuan's moe_intermediate_size, MiniMax-M2's MTP and
shared-expert keys), so does the reader, since the count is what transformers instantiates.
"""

from moeplan.errors import SpecError
from moeplan.spec.hf import (
    _base, _deepseek, _glm4_moe, _gqa_attention, _granitemoe, _grouped_moe, _Keys, _moe_layers, _qwen_moe, _shared_expert,
    _shortest_cycle,
)

_KINDS = {"full_attention": "full", "sliding_attention": "sliding"}


def _layer_types(k: _Keys, default: list[str] | None = None) -> dict:
    """Attention fields from a per-layer layer_types list (full/sliding; ``default`` when the config has none),
    with the sliding window the sliding layers need."""
    layer_types = k("layer_types", default=None) or default
    if not layer_types:
        return {}
    unknown = sorted(set(layer_types) - _KINDS.keys())
    if unknown:
        raise SpecError(f"{k.where}: layer_types {', '.join(map(repr, unknown))} are not attention types moeplan reads")
    pattern = [_KINDS[kind] for kind in layer_types[: k("num_hidden_layers")]]
    window = k("sliding_window") if "sliding" in pattern else None
    return {"layer_pattern": _shortest_cycle(pattern), "sliding_window": window}


def _aliases(k: _Keys, aliases: dict[str, str], defaults: dict | None = None) -> None:
    """Read each alias (a config class's attribute_map name) as its canonical key when only the alias is given,
    then transformers' ``defaults`` for canonical keys given under neither name (aliased keys cannot take their
    default from TRANSFORMERS_DEFAULTS, which would shadow the alias)."""
    for alias, canonical in aliases.items():
        if k.has(alias) and not k.has(canonical):
            k.config[canonical] = k.config[alias]
    for canonical, value in (defaults or {}).items():
        if not k.has(canonical):
            k.config[canonical] = value


def _same_in_every_layer(k: _Keys, *names: str, default):
    """A key that may be one value or one per layer (Hunyuan); moeplan reads it when every layer agrees."""
    value = k(*names, default=None)  # a number or a list: checked here, not by _Keys' type of the default
    if value is None:
        return default
    if isinstance(value, list):
        if not value:
            raise SpecError(f"{k.where}: {names[0]} is an empty list")
        if len(set(value)) != 1:
            raise SpecError(f"{k.where}: {names[0]} differs between layers ({value}); moeplan reads one value for all layers")
        return value[0]
    return value


def ernie4_5_moe(k: _Keys) -> dict:
    """Ernie-4.5-MoE: MoE in layers start..end (inclusive) every moe_layer_interval-th; shared experts; the
    router's correction term is a parameter; use_bias puts biases on attention, dense and shared MLPs, lm_head."""
    layers, bias = k("num_hidden_layers"), bool(k("use_bias", default=False))
    start, end, interval = k("moe_layer_start_index"), k("moe_layer_end_index"), k("moe_layer_interval")
    end = layers - 1 if end == -1 else end
    moe = {
        "num_experts": k("moe_num_experts", "num_experts", default=64),
        "top_k": k("moe_k", "num_experts_per_tok", default=6),
        "expert_intermediate_size": k("moe_intermediate_size"),
        "num_shared_experts": k("moe_num_shared_experts", default=0),
        "shared_expert_bias": bias,
        "router_correction_bias": True,
        "router_correction_is_parameter": True,
        "moe_layers": [i for i in range(layers) if (i + 1) % interval == 0 and start <= i <= end],
    }
    return _base(k, attention=_gqa_attention(k, qkv_bias=bias, o_bias=bias), moe=moe, mlp_bias=bias, lm_head_bias=bias)


def dots1(k: _Keys) -> dict:
    """dots.llm1: DeepSeek-V3's MoE (shared experts, first-k dense, correction bias) with GQA, per-head q/k norms,
    biases on all four projections, optional sliding layers."""
    _aliases(k, {"num_local_experts": "n_routed_experts"})
    fields = _glm4_moe(k)
    layers, window, dense_window = k("num_hidden_layers"), k("sliding_window", default=None), k("max_window_layers", default=0)
    default = ["sliding_attention" if window and i >= dense_window else "full_attention" for i in range(layers)]
    fields["attention"] = _gqa_attention(k, qk_norm="per_head", **_layer_types(k, default))
    return fields


def hunyuan_v1_moe(k: _Keys) -> dict:
    """Hunyuan-A13B: every layer MoE plus one always-on MLP (shared_mlp), both of intermediate_size; per-head q/k
    norms. moe_topk and num_experts may be per-layer lists (read when every layer agrees)."""
    moe = {
        "num_experts": _same_in_every_layer(k, "num_experts", "num_local_experts", default=1),
        "top_k": _same_in_every_layer(k, "moe_topk", "num_experts_per_tok", default=1),
        "expert_intermediate_size": k("intermediate_size"),
        "num_shared_experts": 1,
    }
    return _base(k, attention=_gqa_attention(k, qk_norm="per_head"), moe=moe, intermediate_size=None)


def minimax_m2(k: _Keys) -> dict:
    """MiniMax-M2: Mixtral-style experts with sigmoid routing and a correction bias (a buffer), q/k norms over all
    heads, no biases. Its MTP modules are not part of transformers' model, and not counted."""
    moe = {
        "num_experts": k("num_local_experts", "num_experts", default=256),
        "top_k": k("num_experts_per_tok", default=8),
        "expert_intermediate_size": k("intermediate_size"),
        "router_correction_bias": True,
    }
    attention = _gqa_attention(k, qk_norm="full", qkv_bias=False, o_bias=False)
    return _base(k, attention=attention, moe=moe, intermediate_size=None)


def flex_olmo(k: _Keys) -> dict:
    """FlexOlmo: OLMo-2 layers (norms after attention and MoE, q/k norms over all heads) with a plain MoE."""
    moe = {
        "num_experts": k("num_experts", "num_local_experts", default=7),
        "top_k": k("num_experts_per_tok", default=5),
        "expert_intermediate_size": k("intermediate_size"),
    }
    return _base(k, attention=_gqa_attention(k, qk_norm="full"), moe=moe, intermediate_size=None)


def exaone_moe(k: _Keys) -> dict:
    """EXAONE-MoE: per-layer dense/sparse MLPs, shared experts, per-head q/k norms, sliding/full layers."""
    moe = _grouped_moe(k, ("num_experts",), ("num_shared_experts",),
                       moe_layers=_moe_layers(k, first_dense=k("first_k_dense_replace", default=1)))
    period = k("sliding_window_pattern", default=4) if k("sliding_window", default=None) else 0
    default = ["sliding_attention" if period and (i + 1) % period else "full_attention" for i in range(k("num_hidden_layers"))]
    attention = _gqa_attention(k, qk_norm="per_head", qkv_bias=False, o_bias=False, **_layer_types(k, default))
    return _base(k, attention=attention, moe=moe)


def glm4_moe_lite(k: _Keys) -> dict:
    """GLM-4.7-Flash: DeepSeek's MLA and MoE, dense/sparse layers from mlp_layer_types."""
    _aliases(k, {"num_local_experts": "n_routed_experts", "head_dim": "qk_rope_head_dim"},
             defaults={"n_routed_experts": 64, "qk_rope_head_dim": 64})
    fields = _deepseek(k)
    fields["moe"] |= {"moe_layers": _moe_layers(k, first_dense=1), "first_dense_layers": 0, "router_correction_bias": True}
    return fields


def sarvam_moe(k: _Keys) -> dict:
    """Sarvam-MoE: GLM-4.5's architecture (transformers builds Glm4MoeForCausalLM for it), under its own key aliases."""
    _aliases(k, {"num_experts": "n_routed_experts", "num_local_experts": "n_routed_experts",
                 "num_shared_experts": "n_shared_experts", "use_qkv_bias": "attention_bias",
                 "num_mtp_layers": "num_nextn_predict_layers"}, defaults={"n_routed_experts": 128, "n_shared_experts": 1})
    return _glm4_moe(k)


def sarvam_mla(k: _Keys) -> dict:
    """Sarvam-MLA: DeepSeek-V3's architecture (transformers builds DeepseekV3ForCausalLM for it)."""
    _aliases(k, {"num_experts": "n_routed_experts", "num_local_experts": "n_routed_experts",
                 "num_shared_experts": "n_shared_experts", "num_mtp_layers": "num_nextn_predict_layers"},
             defaults={"n_routed_experts": 128, "n_shared_experts": 1})
    fields = _deepseek(k)
    fields["moe"]["router_correction_bias"] = True
    return fields


def solar_open(k: _Keys) -> dict:
    """Solar-Open: GQA without an output bias, every layer MoE with shared experts (DeepSeek-V3-style routing)."""
    _aliases(k, {"num_local_experts": "n_routed_experts"}, defaults={"n_routed_experts": 128})
    return _base(k, attention=_gqa_attention(k, o_bias=False), moe=_grouped_moe(k), intermediate_size=None)


def mellum(k: _Keys) -> dict:
    """Mellum: Qwen3-MoE-style layers (per-head q/k norms) with per-layer dense/sparse MLPs and sliding/full
    attention. Its MTP layers are not part of transformers' model and are not counted."""
    _aliases(k, {"num_experts": "num_local_experts"}, defaults={"num_local_experts": 64})
    moe = {
        "num_experts": k("num_local_experts"),
        "top_k": k("num_experts_per_tok"),
        "expert_intermediate_size": k("moe_intermediate_size"),
        "moe_layers": _moe_layers(k, first_dense=0),
    }
    return _base(k, attention=_gqa_attention(k, qk_norm="per_head", **_layer_types(k)), moe=moe)


def aria_text(k: _Keys) -> dict:
    """Aria's text decoder: every layer MoE, experts of intermediate_size, shared experts (moe_num_shared_experts ×
    intermediate_size) with mlp_bias."""
    moe = {
        "num_experts": k("moe_num_experts"),
        "top_k": k("moe_topk"),
        "expert_intermediate_size": k("intermediate_size"),
        "num_shared_experts": k("moe_num_shared_experts", default=0),
        "shared_expert_bias": bool(k("mlp_bias", default=False)),
    }
    return _base(k, attention=_gqa_attention(k), moe=moe, intermediate_size=None)


def hy_v3(k: _Keys) -> dict:
    """HY-V3: GQA with per-head q/k norms, per-layer dense/sparse MLPs (mlp_bias on dense and shared), shared experts."""
    _aliases(k, {"num_local_experts": "num_experts"}, defaults={"num_experts": 192})
    bias = bool(k("mlp_bias", default=False))
    moe = {
        "num_experts": k("num_experts"),
        "top_k": k("num_experts_per_tok"),
        "expert_intermediate_size": k("moe_intermediate_size"),
        "num_shared_experts": k("num_shared_experts", default=0),
        "shared_expert_bias": bias,
        "router_correction_bias": True,
        "moe_layers": _moe_layers(k, first_dense=1),
    }
    return _base(k, attention=_gqa_attention(k, qk_norm="per_head"), moe=moe, mlp_bias=bias)


def flint(k: _Keys) -> dict:
    """Flint: Qwen-MoE's layer rule (decoder_sparse_step, mlp_only_layers; default the first two dense), an ungated
    shared expert, attention sinks and per-head q/k norms, full attention on layers 0, 1, every 4th from 1 and
    the last, sliding elsewhere."""
    layers = k("num_hidden_layers")
    step = k("decoder_sparse_step", default=1)
    default_types = ["full_attention" if i < 2 or i % 4 == 1 or i == layers - 1 else "sliding_attention" for i in range(layers)]
    moe = {
        "num_experts": k("num_experts", "num_local_experts"),
        "top_k": k("num_experts_per_tok"),
        "expert_intermediate_size": k("moe_intermediate_size"),
        "layer_period": step,
        "layer_offset": step - 1,
        "dense_layers": k("mlp_only_layers", default=[0, 1]),
        **_shared_expert(k),
    }
    attention = _gqa_attention(k, qk_norm="per_head", sinks=True, **_layer_types(k, default_types))
    return _base(k, attention=attention, moe=moe)


def granitemoe_swa(k: _Keys) -> dict:
    """Granite-MoE with sliding-window layers (full attention every 4th layer from 0) and attention sinks."""
    fields = _granitemoe(k)
    default_types = ["full_attention" if i % 4 == 0 else "sliding_attention" for i in range(k("num_hidden_layers"))]
    fields["attention"] |= {"sinks": True, **_layer_types(k, default_types)}
    return fields


def _cycle_types(layers: int, period: int, full_at: int = 0) -> list[str]:
    """layer_types with full attention on layers i where (i + 1) % period == full_at, sliding elsewhere."""
    return ["full_attention" if (i + 1) % period == full_at else "sliding_attention" for i in range(layers)]


def cohere2_moe(k: _Keys) -> dict:
    """Cohere2-MoE: a parallel block (attention and MoE read one norm), biases on all four projections, sliding
    layers, dense prefix layers of prefix_dense_intermediate_size, shared experts of num_shared × intermediate_size."""
    layers = k("num_hidden_layers")
    first_dense = k("first_k_dense_replace", default=0)
    default_types = (_cycle_types(first_dense, k("prefix_dense_sliding_window_pattern", default=1))
                     + _cycle_types(layers - first_dense, k("sliding_window_pattern", default=4)))
    moe = {
        "num_experts": k("num_experts"),
        "top_k": k("num_experts_per_tok"),
        "expert_intermediate_size": k("intermediate_size"),
        "num_shared_experts": k("num_shared_experts", default=0),
        "shared_intermediate_size": k("intermediate_size"),
        "moe_layers": _moe_layers(k, first_dense=first_dense),
    }
    attention = _gqa_attention(k, **_layer_types(k, default_types))
    return _base(k, attention=attention, moe=moe, intermediate_size=k("prefix_dense_intermediate_size", "intermediate_size"),
                 layer_norms=1, norm="rmsnorm" if k.has("rms_norm_eps") else "layernorm_nobias")


def afmoe(k: _Keys) -> dict:
    """AFMoE: norms before and after attention and MoE, a per-channel output gate, per-head q/k norms, sliding
    layers (full every global_attn_every_n_layers-th), num_dense_layers dense, shared experts, the router's
    correction term a parameter (expert_bias)."""
    layers = k("num_hidden_layers")
    moe = {
        "num_experts": k("num_experts"),
        "top_k": k("num_experts_per_tok"),
        "expert_intermediate_size": k("moe_intermediate_size"),
        "num_shared_experts": k("num_shared_experts", default=0),
        "router_correction_bias": True,
        "router_correction_is_parameter": True,
        "first_dense_layers": k("num_dense_layers", default=0),
    }
    default_types = _cycle_types(layers, k("global_attn_every_n_layers", default=4))
    attention = _gqa_attention(k, qk_norm="per_head", output_gate=True, **_layer_types(k, default_types))
    return _base(k, attention=attention, moe=moe, layer_norms=4)


def kolibri1(k: _Keys) -> dict:
    """Kolibri-1: norms before and after attention and MoE, per-head q/k norms, every layer MoE with an ungated
    shared expert, full attention every 5th layer."""
    moe = {
        "num_experts": k("num_local_experts", "num_experts", default=384),
        "top_k": k("num_experts_per_tok"),
        "expert_intermediate_size": k("moe_intermediate_size"),
        **_shared_expert(k),
    }
    default_types = _cycle_types(k("num_hidden_layers"), 5)
    attention = _gqa_attention(k, qk_norm="per_head", qkv_bias=False, o_bias=False, **_layer_types(k, default_types))
    return _base(k, attention=attention, moe=moe, intermediate_size=None, layer_norms=4)


def beam(k: _Keys) -> dict:
    """Beam: norms before and after attention and MLP, a per-channel output gate with a per-head bias, per-head q/k
    norms, group-limited routing, dense first layers (default 3), full attention every 6th and the last layer."""
    layers = k("num_hidden_layers")
    default_types = _cycle_types(layers, 6)[:-1] + ["full_attention"]
    moe = _grouped_moe(k, ("num_experts",), shared=None, moe_layers=_moe_layers(k, first_dense=min(3, layers)))
    attention = _gqa_attention(k, qk_norm="per_head", output_gate=True, output_gate_bias=True, **_layer_types(k, default_types))
    return _base(k, attention=attention, moe=moe, layer_norms=4)


def laguna(k: _Keys) -> dict:
    """Laguna: per-head q/k norms, an output gate per head (gating true/'per-head') or else per channel, dense/sparse
    layers, shared expert, the router's correction term a parameter; num_attention_heads_per_layer read when every
    layer agrees."""
    heads = _same_in_every_layer(k, "num_attention_heads_per_layer", default=None) or k("num_attention_heads")
    gating = k("gating", default=None)  # true, false or 'per-head'
    gating = True if gating is None else gating
    moe = {
        "num_experts": k("num_experts"),
        "top_k": k("num_experts_per_tok"),
        "expert_intermediate_size": k("moe_intermediate_size"),
        "router_correction_bias": True,
        "router_correction_is_parameter": True,
        "moe_layers": _moe_layers(k, first_dense=1),
        **_shared_expert(k),
    }
    gate = {"output_gate": True, "output_gate_per_head": gating is True or gating == "per-head"}  # g_proj is always built
    attention = _gqa_attention(k, qk_norm="per_head", **gate, **_layer_types(k)) | {"num_heads": heads}
    return _base(k, attention=attention, moe=moe)


def mimo_v2_flash(k: _Keys) -> dict:
    """MiMo-V2-Flash: GQA whose value heads (v_head_dim) are narrower than the query/key heads, sliding layers with
    twice the KV heads and attention sinks (full attention on layer 0 and every 6th), dense/sparse layers, DeepSeek-V3
    routing (correction bias a buffer)."""
    _aliases(k, {"num_local_experts": "n_routed_experts"}, defaults={"n_routed_experts": 256})
    if k.has("sliding_window_size"):  # the Hub file's spelling: the window counts the query too (transformers' rule)
        k.config["sliding_window"] = k("sliding_window_size", default=0) + 1
    layers = k("num_hidden_layers")
    default_types = ["full_attention" if i == 0 or not (i + 1) % 6 else "sliding_attention" for i in range(layers)]
    kv_heads = k("num_key_value_heads")
    moe = _grouped_moe(k, shared=None, moe_layers=_moe_layers(k, first_dense=1))
    attention = _gqa_attention(k, o_bias=False, v_head_dim=k("v_head_dim"), sliding_kv_heads=2 * kv_heads, sinks=True,
                               sinks_sliding_only=True, **_layer_types(k, default_types))
    return _base(k, attention=attention, moe=moe)


def qwen3_vl_moe_text(k: _Keys) -> dict:
    """Qwen3-VL-MoE's text decoder: Qwen3-MoE's layers (read through a Qwen3-MoE view of the config)."""
    inner = _Keys({**k.config, "model_type": "qwen3_moe"}, k.where)
    fields = _qwen_moe(inner)
    k.used += inner.used
    return fields


def mistral4(k: _Keys) -> dict:
    """Mistral-4's text decoder: DeepSeek-V3's MLA and MoE (shared experts, correction bias), every layer MoE."""
    _aliases(k, {"num_local_experts": "n_routed_experts"}, defaults={"n_routed_experts": 128})
    fields = _deepseek(k)
    fields["moe"]["router_correction_bias"] = True
    return fields


def jetmoe(k: _Keys) -> dict:
    """JetMoE: a mixture of attention (query/output experts sharing one key/value projection; transformers sets
    num_attention_heads = num_key_value_heads × top_k) and a MoE with an output bias, both with the same experts
    and top-k."""
    experts, top_k = k("num_local_experts", default=8), k("num_experts_per_tok", default=2)
    kv_heads = k("num_key_value_heads", default=16)
    attention = {"kind": "gqa", "num_heads": kv_heads * top_k, "num_kv_heads": kv_heads,
                 "head_dim": k("kv_channels", "head_dim", default=128), "num_experts": experts}
    moe = {"num_experts": experts, "top_k": top_k, "expert_intermediate_size": k("intermediate_size"), "output_bias": True}
    return _base(k, attention=attention, moe=moe, intermediate_size=None)


def qwen3_omni_moe_text(k: _Keys) -> dict:
    """Qwen3-Omni's thinker text decoder: Qwen3-MoE's layers."""
    return qwen3_vl_moe_text(k)


def minimax_m3_vl_text(k: _Keys) -> dict:
    """MiniMax-M3's text decoder: per-head q/k norms, every MoE layer with one shared expert
    (shared_intermediate_size), dense layers of dense_intermediate_size from mlp_layer_types. Layers of another
    attention type than full/sliding (its block-sparse indexed attention) are refused by _layer_types."""
    _aliases(k, {"num_experts": "num_local_experts"}, defaults={"num_local_experts": 128})
    moe = {
        "num_experts": k("num_local_experts"),
        "top_k": k("num_experts_per_tok"),
        "expert_intermediate_size": k("intermediate_size"),
        "router_correction_bias": True,
        "moe_layers": _moe_layers(k, first_dense=0),
        **_shared_expert(k, "shared_intermediate_size"),
    }
    attention = _gqa_attention(k, qk_norm="per_head", qkv_bias=False, o_bias=False, **_layer_types(k))
    return _base(k, attention=attention, moe=moe, intermediate_size=k("dense_intermediate_size", default=None))


def axk1(k: _Keys) -> dict:
    """A.X-K1: DeepSeek-V3's MLA and MoE with a norm on the MoE block's output; dense/sparse layers from
    mlp_layer_types, else (transformers' rule) sparse from first_k_dense_replace on, every moe_layer_freq-th."""
    _aliases(k, {"num_local_experts": "n_routed_experts"}, defaults={"n_routed_experts": 192})
    layers = k("num_hidden_layers")
    first, freq = k("first_k_dense_replace", default=1), k("moe_layer_freq", default=1)
    default_kinds = ["sparse" if i >= first and i % freq == 0 else "dense" for i in range(layers)]
    fields = _deepseek(k)
    fields["moe"] |= {"moe_layers": _moe_layers(k, default_kinds=default_kinds), "first_dense_layers": 0,
                      "layer_period": 1, "router_correction_bias": True, "output_norm": True}
    return fields


def gemma4_text(k: _Keys) -> dict:
    """Gemma-4's text decoder: sliding layers, and full ones (every 6th and the last) with their own head dim
    (global_head_dim) and KV heads (num_global_key_value_heads) whose values are their keys (attention_k_eq_v);
    four norms per layer; with enable_moe_block, every layer runs its dense MLP beside a MoE (scaled router, three
    norms more). Per-layer input embeddings (hidden_size_per_layer_input), KV shared across layers and layer
    overrides beyond the full layers' head dim and KV heads are refused."""
    for key in ("hidden_size_per_layer_input", "num_kv_shared_layers"):
        if k(key, default=None):
            raise SpecError(f"{k.where}: {key} {k.config[key]}: Gemma-4's per-layer input embeddings and KV shared "
                            "across layers are not described by moeplan yet, so it cannot count this model exactly")
    layers = k("num_hidden_layers")
    types = list(k("layer_types", default=None) or _cycle_types(layers, 6))[:layers]
    k.config["layer_types"] = types[:-1] + ["full_attention"]  # transformers forces the last layer to full attention
    if k("use_bidirectional_attention", default=None) == "all" and k.has("sliding_window"):
        k.config["sliding_window"] = k.config["sliding_window"] // 2 + 1  # transformers' exclusive bound
    types = k.config["layer_types"]
    k_eq_v = bool(k("attention_k_eq_v", default=False))
    overrides = k("per_layer_config", default=None)  # transformers writes it from global_head_dim and its KV heads
    if overrides is None:
        full = {"head_dim": k("global_head_dim", default=512)}
        if k_eq_v and k.has("num_global_key_value_heads"):
            full["num_key_value_heads"] = k("num_global_key_value_heads")
    else:
        if not isinstance(overrides, dict) or not all(isinstance(value, dict) for value in overrides.values()):
            raise SpecError(f"{k.where}: per_layer_config must map layer indices to overrides")
        full = next(iter(overrides.values()), {})
        full_layers = {i for i, kind in enumerate(types[:layers]) if kind == "full_attention"}
        if ({int(index) for index in overrides} != full_layers or any(value != full for value in overrides.values())
                or set(full) - {"head_dim", "num_key_value_heads"}):
            raise SpecError(f"{k.where}: per_layer_config overrides other layers or keys than the full layers' "
                            "head_dim and num_key_value_heads, which moeplan does not describe yet")
    attention = _gqa_attention(k, qk_norm="per_head", full_head_dim=full.get("head_dim"), full_values_are_keys=k_eq_v,
                               full_kv_heads=full.get("num_key_value_heads"), **_layer_types(k))
    fields = _base(k, attention=attention, tie_word_embeddings=bool(k("tie_word_embeddings", default=True)), layer_norms=4)
    if k("enable_moe_block", default=False):
        fields |= {"layer_norms": 7, "moe": {
            "num_experts": k("num_experts"),
            "top_k": k("top_k_experts"),
            "expert_intermediate_size": k("moe_intermediate_size"),
            "dense_mlp_too": True,
            "router_scales": True,
        }}
    return fields


READERS = {
    "ernie4_5_moe": ernie4_5_moe,
    "dots1": dots1,
    "hunyuan_v1_moe": hunyuan_v1_moe,
    "minimax_m2": minimax_m2,
    "flex_olmo": flex_olmo,
    "exaone_moe": exaone_moe,
    "glm4_moe_lite": glm4_moe_lite,
    "sarvam_moe": sarvam_moe,
    "sarvam_mla": sarvam_mla,
    "solar_open": solar_open,
    "mellum": mellum,
    "aria_text": aria_text,
    "hy_v3": hy_v3,
    "flint": flint,
    "granitemoe_swa": granitemoe_swa,
    "cohere2_moe": cohere2_moe,
    "afmoe": afmoe,
    "kolibri1": kolibri1,
    "beam": beam,
    "laguna": laguna,
    "mimo_v2_flash": mimo_v2_flash,
    "qwen3_vl_moe_text": qwen3_vl_moe_text,
    "glm4v_moe_text": _glm4_moe,
    "mistral4": mistral4,
    "jetmoe": jetmoe,
    "qwen3_omni_moe_text": qwen3_omni_moe_text,
    "minimax_m3_vl_text": minimax_m3_vl_text,
    "axk1": axk1,
    "gemma4_text": gemma4_text,
}
"""model_type → reader."""

TRANSFORMERS_DEFAULTS = {
    "ernie4_5_moe": {"moe_intermediate_size": 1536, "moe_layer_end_index": -1, "moe_layer_interval": 1,
                     "moe_layer_start_index": 1, "moe_num_shared_experts": 2, "num_key_value_heads": 4,
                     "tie_word_embeddings": True, "use_bias": False},
    "dots1": {"first_k_dense_replace": 0, "max_window_layers": 62, "moe_intermediate_size": 1408, "num_key_value_heads": 32,
              "sliding_window": 4096},
    "minimax_m2": {"head_dim": 128, "num_key_value_heads": 8},
    "exaone_moe": {"first_k_dense_replace": 1, "moe_intermediate_size": 1024, "num_experts": 64, "num_experts_per_tok": 8,
                   "num_key_value_heads": 32, "num_shared_experts": 1, "sliding_window": 4096, "sliding_window_pattern": 4},
    "glm4_moe_lite": {"kv_lora_rank": 512, "moe_intermediate_size": 1536, "n_shared_experts": 1, "num_experts_per_tok": 4,
                      "q_lora_rank": 768, "qk_nope_head_dim": 192, "v_head_dim": 256},
    "sarvam_moe": {"first_k_dense_replace": 1, "head_dim": 64, "moe_intermediate_size": 1024, "num_experts_per_tok": 6,
                   "num_key_value_heads": 4, "use_qk_norm": True},
    "sarvam_mla": {"first_k_dense_replace": 1, "kv_lora_rank": 512, "moe_intermediate_size": 2048, "num_experts_per_tok": 8,
                   "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128},
    "solar_open": {"head_dim": 128, "moe_intermediate_size": 1280, "n_shared_experts": 1, "num_experts_per_tok": 8,
                   "num_key_value_heads": 8},
    "mellum": {"head_dim": 128, "moe_intermediate_size": 896, "num_experts_per_tok": 8, "num_key_value_heads": 4},
    "aria_text": {"moe_num_experts": 8, "moe_num_shared_experts": 2, "moe_topk": 2},
    "hy_v3": {"head_dim": 128, "moe_intermediate_size": 1536, "num_experts_per_tok": 8, "num_key_value_heads": 8,
              "num_shared_experts": 1},
    "flint": {"head_dim": 128, "moe_intermediate_size": 512, "num_experts": 256, "num_experts_per_tok": 6,
              "num_key_value_heads": 4, "shared_expert_intermediate_size": 1024, "sliding_window": 513},
    "granitemoe_swa": {"num_experts_per_tok": 2, "num_local_experts": 8, "sliding_window": 128},
    "cohere2_moe": {"head_dim": 128, "num_experts": 8, "num_experts_per_tok": 2, "num_shared_experts": 0,
                    "prefix_dense_sliding_window_pattern": 1, "sliding_window": 4096, "sliding_window_pattern": 4,
                    "tie_word_embeddings": True},
    "afmoe": {"global_attn_every_n_layers": 4, "head_dim": 128, "moe_intermediate_size": 1408, "num_dense_layers": 1,
              "num_experts": 64, "num_experts_per_tok": 6, "num_shared_experts": 2, "sliding_window": 1024},
    "kolibri1": {"head_dim": 128, "moe_intermediate_size": 512, "num_experts_per_tok": 6, "num_key_value_heads": 4,
                 "shared_expert_intermediate_size": 512, "sliding_window": 513},
    "beam": {"head_dim": 128, "moe_intermediate_size": 2560, "n_group": 8, "num_experts": 256, "num_experts_per_tok": 8,
             "num_key_value_heads": 8, "sliding_window": 512, "topk_group": 4},
    "laguna": {"gating": True, "head_dim": 128, "moe_intermediate_size": 512, "num_experts": 256, "num_experts_per_tok": 8,
               "num_key_value_heads": 8, "shared_expert_intermediate_size": 512},
    "mimo_v2_flash": {"head_dim": 192, "moe_intermediate_size": 2048, "num_experts_per_tok": 8, "num_key_value_heads": 4,
                      "sliding_window": 129, "v_head_dim": 128},
    "qwen3_vl_moe_text": {"moe_intermediate_size": 1408, "num_experts_per_tok": 4, "num_key_value_heads": 16},
    "glm4v_moe_text": {"attention_bias": True, "first_k_dense_replace": 1, "moe_intermediate_size": 1408, "n_shared_experts": 1,
                       "num_experts_per_tok": 8, "num_key_value_heads": 8},
    "mistral4": {"kv_lora_rank": 256, "moe_intermediate_size": 2048, "n_shared_experts": 1, "num_experts_per_tok": 4,
                 "q_lora_rank": 1024, "qk_nope_head_dim": 64, "qk_rope_head_dim": 64, "v_head_dim": 128},
    "jetmoe": {"tie_word_embeddings": True},
    "qwen3_omni_moe_text": {"moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8, "num_key_value_heads": 4},
    "minimax_m3_vl_text": {"dense_intermediate_size": 12288, "head_dim": 128, "num_experts_per_tok": 4, "num_key_value_heads": 4,
                           "shared_intermediate_size": 3072},
    "axk1": {"kv_lora_rank": 512, "moe_intermediate_size": 2048, "n_group": 8, "n_shared_experts": 1, "num_experts_per_tok": 8,
             "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "topk_group": 4, "v_head_dim": 128},
    "gemma4_text": {"head_dim": 256, "hidden_size_per_layer_input": 256, "num_key_value_heads": 4, "sliding_window": 512,
                    "tie_word_embeddings": True},
}
"""transformers 5.24's config-class defaults for the keys these readers read (see hf.TRANSFORMERS_DEFAULTS)."""
