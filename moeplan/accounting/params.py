"""Exact parameter accounting: total and active parameters, by component.

Counts follow what Hugging Face ``transformers`` instantiates for the same config (every weight,
bias and norm; buffers such as rotary tables are not parameters). See docs/formulas.md §Parameters.
"""

from pydantic import BaseModel, Field

from moeplan.spec.model import (
    AttentionSpec,
    IndexerSpec,
    LinearAttentionSpec,
    Mamba2Spec,
    MambaSpec,
    ModelSpec,
    MoESpec,
    ShortConvSpec,
)

COMPONENTS = (
    "embedding",
    "lm_head",
    "attention",
    "routed_experts",
    "shared_experts",
    "router",
    "dense_mlp",
    "mamba",
    "linear_attention",
    "short_conv",
    "norms",
)
"""Components of params.by_component, in report order. Norms inside attention (q/k norms, MLA latent
norms) count as attention, and so does DeepSeek-V3.2's indexer; 'mamba' holds Mamba and Mamba-2 mixers;
'norms' holds the per-layer and final norms."""


class ParamCounts(BaseModel):
    """Parameter counts of one model, in parameters (not bytes)."""

    total: int
    """Everything transformers instantiates (MTP layers excluded)."""
    active: int
    """Parameters one token passes through: all non-routed parameters plus top-k routed experts per MoE layer,
    embedding and lm_head included (the convention behind Mixtral-8x7B's '12.9B active')."""
    active_without_embedding: int
    """active minus the input embedding table (DeepSeek's and OpenAI's convention; a tied table goes)."""
    active_without_embedding_and_head: int
    """active minus the embedding table and lm_head (GLM's convention)."""
    by_component: dict[str, int]
    """Total parameters per component (see COMPONENTS)."""
    active_by_component: dict[str, int]
    """Active parameters per component."""
    per_expert: int
    """Parameters of one routed expert in one layer (0 for a dense model)."""
    moe_layers: int
    """Number of MoE layers."""
    mtp: int = Field(0)
    """Multi-token-prediction module(s) as stored in the checkpoint (not part of total)."""


def norm_params(spec: ModelSpec) -> int:
    """Weights of one model-width norm: H for RMSNorm and bias-free LayerNorm, 2·H for LayerNorm."""
    return spec.hidden_size * (2 if spec.norm == "layernorm" else 1)


def attention_params(attn: AttentionSpec, hidden: int, head_dim: int, layer_type: str = "full") -> int:
    """Parameters of one attention layer of ``layer_type``: projections, their biases, q/k norms and sinks."""
    heads = attn.num_heads
    if attn.kind == "mla":
        qk_head = attn.qk_nope_head_dim + attn.qk_rope_head_dim
        latent = attn.kv_lora_rank + attn.qk_rope_head_dim
        if attn.q_lora_rank:  # q_a_proj, q_a_layernorm, q_b_proj
            query = hidden * attn.q_lora_rank + attn.q_lora_rank + attn.q_lora_rank * heads * qk_head
            query_bias = attn.q_lora_rank
        else:  # q_proj
            query = hidden * heads * qk_head
            query_bias = 0
        key_value = hidden * latent + attn.kv_lora_rank + attn.kv_lora_rank * heads * (attn.qk_nope_head_dim + attn.v_head_dim)
        out = heads * attn.v_head_dim * hidden
        biases = (query_bias + latent) * attn.qkv_bias + hidden * attn.o_bias
        gate = hidden * output_gate_width(attn, attn.v_head_dim)  # g_proj (Ling-2.5: one gate per head)
        return query + key_value + out + biases + gate
    kv_heads, v_head_dim = attn.layer_kv_heads(layer_type), attn.v_head_dim or head_dim
    q_width, k_width, v_width = heads * head_dim, kv_heads * head_dim, kv_heads * v_head_dim
    if attn.full_values_are_keys and layer_type == "full":  # Gemma-4: no v_proj, the keys serve as values
        v_width = 0
    if attn.num_experts:  # JetMoE: one kv_proj, E query/output experts of the KV width, their router and output bias
        return hidden * (k_width + v_width) + attn.num_experts * (2 * hidden * k_width + hidden) + hidden
    projections = hidden * (q_width + output_gate_width(attn, head_dim) + k_width + v_width) + heads * v_head_dim * hidden
    biases = (q_width + k_width + v_width) * attn.qkv_bias + hidden * attn.o_bias + heads * attn.output_gate_bias
    qk_norm = {"none": 0, "parameter_free": 0, "per_head": 2 * head_dim, "full": q_width + k_width}[attn.qk_norm]
    sinks = attn.sinks and (layer_type == "sliding" or not attn.sinks_sliding_only)
    return projections + biases + qk_norm + heads * sinks


def inactive_attention_expert_params(attn: AttentionSpec, hidden: int, head_dim: int) -> int:
    """Parameters of the attention experts a token does not use in one layer (mixture of attention): E − k experts
    of query and output projections, k = num_heads / num_kv_heads; 0 for ordinary attention."""
    if not attn.num_experts:
        return 0
    used = attn.num_heads // attn.kv_heads
    return (attn.num_experts - used) * 2 * hidden * attn.kv_heads * head_dim


def output_gate_width(attn: AttentionSpec, head_dim: int) -> int:
    """Outputs of the attention-output gate's projection from H: heads·head_dim (one per channel; Qwen3-Next
    projects it with the queries), heads (one per head; Laguna), or 0 without a gate."""
    return attn.output_gate * attn.num_heads * (1 if attn.output_gate_per_head else head_dim)


def indexer_params(indexer: IndexerSpec, q_lora_rank: int, hidden: int) -> int:
    """DeepSeek-V3.2's lightning indexer in one layer: wq_b (q_lora_rank → heads·d), wk (H → d), the key's
    LayerNorm (weight and bias, 2·d) and weights_proj (H → heads)."""
    d = indexer.head_dim
    return q_lora_rank * indexer.num_heads * d + hidden * d + 2 * d + hidden * indexer.num_heads


def mlp_params(hidden: int, intermediate: int, gated: bool, bias: bool) -> int:
    """One MLP: gate+up+down (gated, 3·H·I) or up+down (2·H·I), plus biases if any."""
    weights = (3 if gated else 2) * hidden * intermediate
    biases = ((2 if gated else 1) * intermediate + hidden) * bias
    return weights + biases


def router_params(moe: MoESpec, hidden: int) -> int:
    """The router: E·H, plus a bias and the score-correction term where they are parameters, Gemma-4's input and
    per-expert scales (H + E), and the MoE block's output bias (H) where there is one."""
    correction = moe.router_correction_bias and moe.router_correction_is_parameter
    scales = (hidden + moe.num_experts) * moe.router_scales
    return moe.num_experts * (hidden + moe.router_bias + correction) + hidden * moe.output_bias + scales


def mamba_params(mamba: MambaSpec, hidden: int) -> int:
    """One Mamba mixer (Jamba's): in/out projections, conv, x/dt projections, A_log, D and inner norms."""
    inner = mamba.expand * hidden
    in_proj = hidden * 2 * inner + 2 * inner * mamba.proj_bias
    conv = inner * mamba.d_conv + inner * mamba.conv_bias
    x_proj = inner * (mamba.dt_rank + 2 * mamba.d_state)
    dt_proj = mamba.dt_rank * inner + inner
    a_log_and_d = inner * mamba.d_state + inner
    out_proj = inner * hidden + hidden * mamba.proj_bias
    norms = (mamba.dt_rank + 2 * mamba.d_state) * mamba.inner_norms
    return in_proj + conv + x_proj + dt_proj + a_log_and_d + out_proj + norms


def mamba2_params(mamba: Mamba2Spec, hidden: int) -> int:
    """One Mamba-2 mixer (Nemotron-H, Granite-4.0-H): in_proj H → (z, x, B, C, dt) = D + conv_dim + heads,
    the depthwise conv over x, B, C, dt_bias, A_log and D per head, the gated norm over D, out_proj D → H."""
    inner, conv_dim = mamba.inner, mamba.conv_dim
    in_proj = hidden * (inner + conv_dim + mamba.num_heads) + (inner + conv_dim + mamba.num_heads) * mamba.proj_bias
    conv = conv_dim * mamba.d_conv + conv_dim * mamba.conv_bias
    out_proj = inner * hidden + hidden * mamba.proj_bias
    return in_proj + conv + 3 * mamba.num_heads + inner + out_proj


def linear_attention_params(linear: LinearAttentionSpec, hidden: int) -> int:
    """One linear-attention mixer (see LinearAttentionSpec for the three kinds)."""
    heads, d, dv = linear.num_heads, linear.head_dim, linear.value_dim
    if linear.kind == "gated_deltanet":  # in_proj_qkvz, in_proj_ba, conv over q k v, dt_bias, A_log, norm, out_proj
        key, value = linear.key_heads * d, heads * dv
        return hidden * (2 * key + 2 * value + 2 * heads) + (2 * key + value) * linear.conv_kernel + 2 * heads + dv + value * hidden
    if linear.kind == "kda":  # q k v, their convs, forget gate (f_a, f_b or f_proj; dt_bias, A_log), b_proj, g_a/g_b or g_proj, o_norm, o_proj
        width = heads * d
        gate = hidden * width if linear.full_rank_gates else hidden * d + d * width
        return 3 * hidden * width + 3 * width * linear.conv_kernel + 2 * gate + width + heads + hidden * heads + d + width * hidden
    width = heads * d  # lightning: qkv_proj, output_gate, norm over all heads, out_proj
    return 3 * hidden * width + hidden * width + width + width * hidden


def short_conv_params(conv: ShortConvSpec, hidden: int) -> int:
    """One LFM2 short-convolution mixer: in_proj H → 3H, depthwise conv (H · kernel), out_proj H → H, with
    biases on all three when the config asks."""
    return 3 * hidden * hidden + hidden * conv.kernel + hidden * hidden + (3 * hidden + hidden + hidden) * conv.bias


def expert_params(moe: MoESpec, hidden: int) -> int:
    """One routed expert in one layer (in the latent width of a latent MoE)."""
    return mlp_params(moe.latent_size or hidden, moe.expert_intermediate_size, moe.gated, moe.expert_bias)


def shared_expert_params(moe: MoESpec, hidden: int) -> int:
    """The fused shared-expert MLP of one layer, with its output gate if any, and a latent MoE's down- and
    up-projections (2·H·latent)."""
    latent = 2 * hidden * moe.latent_size if moe.latent_size else 0
    if not moe.shared_size:
        return latent
    bias = moe.expert_bias or moe.shared_expert_bias
    return mlp_params(hidden, moe.shared_size, moe.gated, bias) + hidden * moe.shared_expert_gate + latent


def layer_params(spec: ModelSpec, layer: int) -> dict[str, int]:
    """Parameters of one decoder layer, by component."""
    hidden = spec.hidden_size
    counts = dict.fromkeys(COMPONENTS, 0)
    counts["norms"] = (spec.layer_norms or (2 if spec.layer_block == "mixer_and_mlp" else 1)) * norm_params(spec)
    mixer = spec.mixer(layer)
    if mixer == "attention":
        attn = spec.attention
        kind = spec.attention_type(layer)
        counts["attention"] = attention_params(attn, hidden, spec.layer_head_dim(kind), kind)
        if attn.indexer and layer not in attn.indexer.shared_layers:
            counts["attention"] += indexer_params(attn.indexer, attn.q_lora_rank, hidden)
    elif mixer == "mamba":
        counts["mamba"] = mamba_params(spec.mamba, hidden)
    elif mixer == "mamba2":
        counts["mamba"] = mamba2_params(spec.mamba2, hidden)
    elif mixer == "linear_attention":
        counts["linear_attention"] = linear_attention_params(spec.linear_attention, hidden)
    elif mixer == "short_conv":
        counts["short_conv"] = short_conv_params(spec.short_conv, hidden)
    if not spec.has_mlp(layer):
        return counts
    if spec.is_moe_layer(layer):
        moe = spec.moe
        counts["routed_experts"] = moe.num_experts * expert_params(moe, hidden)
        counts["shared_experts"] = shared_expert_params(moe, hidden)
        counts["router"] = router_params(moe, hidden)
        counts["norms"] += norm_params(spec) * moe.output_norm
        if moe.dense_mlp_too:
            counts["dense_mlp"] = mlp_params(hidden, spec.intermediate_size, spec.dense_mlp_gated, spec.mlp_bias)
    else:
        counts["dense_mlp"] = mlp_params(hidden, spec.intermediate_size, spec.dense_mlp_gated, spec.mlp_bias)
    return counts


def embedding_params(spec: ModelSpec) -> int:
    """The input embedding table, V·H."""
    return spec.vocab_size * spec.hidden_size


def lm_head_params(spec: ModelSpec) -> int:
    """The output projection, V·H (0 when tied to the embedding), plus its bias if any."""
    return spec.vocab_size * (0 if spec.tie_word_embeddings else spec.hidden_size) + spec.vocab_size * spec.lm_head_bias


def mtp_block_layers(spec: ModelSpec) -> list[tuple[ModelSpec, int]]:
    """The decoder layers of one MTP module as (spec, layer) pairs to count: the last decoder layer, or the layers
    of mtp_block (a copy of the spec with that mixer pattern, every layer with an MLP block MoE)."""
    if spec.mtp_block is None:
        return [(spec, spec.num_layers - 1)]
    size = len(spec.mtp_block)
    moe = spec.moe and spec.moe.model_copy(update={"moe_layers": list(range(size))})
    block = spec.model_copy(update={"num_layers": size, "mixer_pattern": spec.mtp_block, "moe": moe, "mtp_layers": 0})
    return [(block, layer) for layer in range(size)]


def mtp_params(spec: ModelSpec) -> int:
    """Multi-token-prediction modules as the checkpoint stores them: per module its decoder layer(s)
    (mtp_block_layers), enorm and hnorm, eh_proj (2H → H), the final (shared head's) norm, and, where it keeps
    them (DeepSeek-V3's checkpoint stores them again), its own copies of the embedding table and output head."""
    if not spec.mtp_layers:
        return 0
    hidden = spec.hidden_size
    block = sum(sum(layer_params(s, layer).values()) for s, layer in mtp_block_layers(spec))
    copies = 2 * embedding_params(spec) * spec.mtp_embeddings
    return spec.mtp_layers * (block + 3 * norm_params(spec) + 2 * hidden * hidden + copies)


_COUNTED: dict[str, "ParamCounts"] = {}
"""count_params by spec content (an estimate asks for the same spec's counts several times)."""


def count_params(spec: ModelSpec) -> ParamCounts:
    """Total and active parameters of a spec, by component; cached by the spec's content."""
    key = spec.model_dump_json()
    if key not in _COUNTED:
        if len(_COUNTED) >= 256:
            _COUNTED.clear()
        _COUNTED[key] = _count_params(spec)
    return _COUNTED[key]


def _count_params(spec: ModelSpec) -> ParamCounts:
    total = dict.fromkeys(COMPONENTS, 0)
    for layer in range(spec.num_layers):
        for name, value in layer_params(spec, layer).items():
            total[name] += value
    total["embedding"] = embedding_params(spec)
    total["lm_head"] = lm_head_params(spec)
    total["norms"] += norm_params(spec)  # final norm

    per_expert = expert_params(spec.moe, spec.hidden_size) if spec.moe else 0
    moe_layers = spec.moe_layer_count
    active_by = dict(total)
    active_by["routed_experts"] = per_expert * spec.top_k * moe_layers
    active_by["attention"] -= inactive_attention_expert_params(spec.attention, spec.hidden_size, spec.head_dim) * sum(
        spec.mixer(layer) == "attention" for layer in range(spec.num_layers))
    active = sum(active_by.values())
    return ParamCounts(
        total=sum(total.values()),
        active=active,
        active_without_embedding=active - total["embedding"],
        active_without_embedding_and_head=active - total["embedding"] - total["lm_head"],
        by_component=total,
        active_by_component=active_by,
        per_expert=per_expert,
        moe_layers=moe_layers,
        mtp=mtp_params(spec),
    )
