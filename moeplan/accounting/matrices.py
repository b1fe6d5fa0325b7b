"""The weight matrices of a model, with their shapes, by component.

Block-scaled formats cost depends on matrix shapes, so weight bytes are computed per matrix. A matrix
is (rows, cols) = (output features, input features), as nn.Linear.weight; gate and up projections are
listed separately, as DeepSeek and Mixtral checkpoints store them. Everything else a layer holds
(norms, biases, attention sinks, Mamba's conv, A_log and D) is its "other" parameters: what
params.py counts for the component minus its matrices, so no count is written twice.
"""

from typing import NamedTuple

from moeplan.accounting.params import (
    embedding_params,
    expert_params,
    layer_params,
    lm_head_params,
    mtp_block_layers,
    mtp_params,
    norm_params,
    output_gate_width,
)
from moeplan.spec import model

MTP_PROJECTION = "mtp_projection"
"""Component of the MTP module's eh_proj (2H → H), which has no counterpart in the main model."""


class Matrix(NamedTuple):
    """``count`` identical matrices of one component."""

    component: str
    name: str
    rows: int
    """Output features."""
    cols: int
    """Input features."""
    count: int = 1

    @property
    def params(self) -> int:
        return self.rows * self.cols * self.count


def attention_matrices(attn: model.AttentionSpec, hidden: int, head_dim: int, layer_type: str = "full") -> list[Matrix]:
    """Projections of one attention layer of ``layer_type`` (MLA: q_a/q_b or q, kv_a_proj_with_mqa, kv_b, o; GQA: q
    (with the output gate, if any), k, v, o)."""
    a = attn.num_heads

    def m(name: str, rows: int, cols: int) -> Matrix:
        return Matrix("attention", name, rows, cols)

    if attn.kind == "mla":
        qk_head = attn.qk_nope_head_dim + attn.qk_rope_head_dim
        query = (
            [m("q_a_proj", attn.q_lora_rank, hidden), m("q_b_proj", a * qk_head, attn.q_lora_rank)]
            if attn.q_lora_rank
            else [m("q_proj", a * qk_head, hidden)]
        )
        return [
            *query,
            m("kv_a_proj_with_mqa", attn.kv_lora_rank + attn.qk_rope_head_dim, hidden),
            m("kv_b_proj", a * (attn.qk_nope_head_dim + attn.v_head_dim), attn.kv_lora_rank),
            m("o_proj", hidden, a * attn.v_head_dim),
            *([m("g_proj", output_gate_width(attn, attn.v_head_dim), hidden)] if attn.output_gate else []),
        ]
    kv_heads, v_head_dim = attn.layer_kv_heads(layer_type), attn.v_head_dim or head_dim
    if attn.num_experts:  # JetMoE's mixture of attention
        width = kv_heads * head_dim
        return [m("kv_proj", 2 * width, hidden), Matrix("attention", "experts.input_linear", width, hidden, attn.num_experts),
                Matrix("attention", "experts.output_linear", hidden, width, attn.num_experts),
                m("experts.router", attn.num_experts, hidden)]
    values = [] if attn.full_values_are_keys and layer_type == "full" else [m("v_proj", kv_heads * v_head_dim, hidden)]
    return [
        m("q_proj", a * head_dim + output_gate_width(attn, head_dim), hidden),
        m("k_proj", kv_heads * head_dim, hidden),
        *values,
        m("o_proj", hidden, a * v_head_dim),
    ]


def indexer_matrices(indexer: model.IndexerSpec, q_lora_rank: int, hidden: int) -> list[Matrix]:
    """DeepSeek-V3.2's indexer projections: wq_b, wk, weights_proj."""
    d, heads = indexer.head_dim, indexer.num_heads
    return [
        Matrix("attention", "indexer.wq_b", heads * d, q_lora_rank),
        Matrix("attention", "indexer.wk", d, hidden),
        Matrix("attention", "indexer.weights_proj", heads, hidden),
    ]


def mlp_matrices(component: str, hidden: int, intermediate: int, gated: bool, count: int = 1) -> list[Matrix]:
    """One MLP's gate (if gated), up and down projections, ``count`` times."""
    inward = ["gate_proj", "up_proj"] if gated else ["up_proj"]
    return [Matrix(component, name, intermediate, hidden, count) for name in inward] + [
        Matrix(component, "down_proj", hidden, intermediate, count)
    ]


def expert_matrices(moe: model.MoESpec, hidden: int, count: int = 1) -> list[Matrix]:
    """The matrices of ``count`` routed experts of one layer (in the latent width of a latent MoE)."""
    return mlp_matrices("routed_experts", moe.latent_size or hidden, moe.expert_intermediate_size, moe.gated, count)


def mamba_matrices(mamba: model.MambaSpec, hidden: int) -> list[Matrix]:
    """One Mamba mixer's projections: in_proj, x_proj, dt_proj, out_proj (inner D = expand·H)."""
    inner = mamba.expand * hidden
    return [
        Matrix("mamba", "in_proj", 2 * inner, hidden),
        Matrix("mamba", "x_proj", mamba.dt_rank + 2 * mamba.d_state, inner),
        Matrix("mamba", "dt_proj", inner, mamba.dt_rank),
        Matrix("mamba", "out_proj", hidden, inner),
    ]


def mamba2_matrices(mamba: model.Mamba2Spec, hidden: int) -> list[Matrix]:
    """One Mamba-2 mixer's in_proj (H → D + conv_dim + heads) and out_proj (D → H)."""
    return [
        Matrix("mamba", "in_proj", mamba.inner + mamba.conv_dim + mamba.num_heads, hidden),
        Matrix("mamba", "out_proj", hidden, mamba.inner),
    ]


def linear_attention_matrices(linear: model.LinearAttentionSpec, hidden: int) -> list[Matrix]:
    """One linear-attention mixer's projections, as transformers names them."""
    heads, d = linear.num_heads, linear.head_dim

    def m(name: str, rows: int, cols: int) -> Matrix:
        return Matrix("linear_attention", name, rows, cols)

    if linear.kind == "gated_deltanet":
        key, value = linear.key_heads * d, heads * linear.value_dim
        return [m("in_proj_qkvz", 2 * key + 2 * value, hidden), m("in_proj_ba", 2 * heads, hidden), m("out_proj", hidden, value)]
    width = heads * d
    if linear.kind == "kda":
        gates = ([m("f_proj", width, hidden), m("g_proj", width, hidden)] if linear.full_rank_gates else
                 [m("f_a_proj", d, hidden), m("f_b_proj", width, d), m("g_a_proj", d, hidden), m("g_b_proj", width, d)])
        qkv = [m(name, width, hidden) for name in ("q_proj", "k_proj", "v_proj")]
        return [*qkv, *gates, m("b_proj", heads, hidden), m("o_proj", hidden, width)]
    return [m("qkv_proj", 3 * width, hidden), m("output_gate", width, hidden), m("out_proj", hidden, width)]


def short_conv_matrices(hidden: int) -> list[Matrix]:
    """One short-convolution mixer's in_proj (H → 3H) and out_proj (H → H)."""
    return [Matrix("short_conv", "in_proj", 3 * hidden, hidden), Matrix("short_conv", "out_proj", hidden, hidden)]


def mixer_matrices(spec: model.ModelSpec, layer: int) -> list[Matrix]:
    """The sequence mixer's matrices in one layer (none for a mixer-less layer)."""
    hidden, mixer = spec.hidden_size, spec.mixer(layer)
    if mixer == "attention":
        attn = spec.attention
        kind = spec.attention_type(layer)
        matrices = attention_matrices(attn, hidden, spec.layer_head_dim(kind), kind)
        if attn.indexer and layer not in attn.indexer.shared_layers:
            matrices += indexer_matrices(attn.indexer, attn.q_lora_rank, hidden)
        return matrices
    return {
        "mamba": lambda: mamba_matrices(spec.mamba, hidden),
        "mamba2": lambda: mamba2_matrices(spec.mamba2, hidden),
        "linear_attention": lambda: linear_attention_matrices(spec.linear_attention, hidden),
        "short_conv": lambda: short_conv_matrices(hidden),
        "none": list,
    }[mixer]()


def layer_matrices(spec: model.ModelSpec, layer: int) -> list[Matrix]:
    """The matrices of one decoder layer."""
    hidden = spec.hidden_size
    matrices = mixer_matrices(spec, layer)
    if not spec.has_mlp(layer):
        return matrices
    if spec.is_moe_layer(layer):
        moe = spec.moe
        matrices += expert_matrices(moe, hidden, moe.num_experts)
        if moe.shared_size:
            matrices += mlp_matrices("shared_experts", hidden, moe.shared_size, moe.gated)
        if moe.latent_size:
            matrices += [Matrix("shared_experts", "fc1_latent_proj", moe.latent_size, hidden),
                         Matrix("shared_experts", "fc2_latent_proj", hidden, moe.latent_size)]
        matrices.append(Matrix("router", "gate", moe.num_experts, hidden))
        if moe.dense_mlp_too:
            matrices += mlp_matrices("dense_mlp", hidden, spec.intermediate_size, spec.dense_mlp_gated)
    else:
        matrices += mlp_matrices("dense_mlp", hidden, spec.intermediate_size, spec.dense_mlp_gated)
    return matrices


def head_matrices(spec: model.ModelSpec) -> list[Matrix]:
    """The embedding table and, unless tied, lm_head (V × H each)."""
    matrices = [Matrix("embedding", "embed_tokens", spec.vocab_size, spec.hidden_size)]
    if not spec.tie_word_embeddings:
        matrices.append(Matrix("lm_head", "lm_head", spec.vocab_size, spec.hidden_size))
    return matrices


def mtp_matrices(spec: model.ModelSpec) -> list[Matrix]:
    """The multi-token-prediction modules' matrices as the checkpoint stores them (params.mtp_params): per
    module its decoder layer(s), eh_proj (H × 2H), and its own embedding and output head where it keeps them."""
    if not spec.mtp_layers:
        return []
    hidden, vocab = spec.hidden_size, spec.vocab_size
    module = [matrix for block, layer in mtp_block_layers(spec) for matrix in layer_matrices(block, layer)]
    module.append(Matrix(MTP_PROJECTION, "eh_proj", hidden, 2 * hidden))
    if spec.mtp_embeddings:
        module += [Matrix("embedding", "embed_tokens", vocab, hidden), Matrix("lm_head", "shared_head.head", vocab, hidden)]
    return [m._replace(count=m.count * spec.mtp_layers) for m in module]


def matrix_params_by_component(matrices: list[Matrix]) -> dict[str, int]:
    """Parameters in matrices, per component."""
    totals: dict[str, int] = {}
    for matrix in matrices:
        totals[matrix.component] = totals.get(matrix.component, 0) + matrix.params
    return totals


def other_params(counted: dict[str, int], matrices: list[Matrix]) -> dict[str, int]:
    """Non-matrix parameters per component: params.py's count minus the matrices' parameters."""
    in_matrices = matrix_params_by_component(matrices)
    return {name: counted.get(name, 0) - in_matrices.get(name, 0) for name in counted}


def layer_other_params(spec: model.ModelSpec, layer: int) -> dict[str, int]:
    """Non-matrix parameters of one decoder layer, per component (norms, biases, sinks, Mamba conv/A_log/D)."""
    return other_params(layer_params(spec, layer), layer_matrices(spec, layer))


def head_other_params(spec: model.ModelSpec) -> dict[str, int]:
    """Non-matrix parameters outside the layers: lm_head's bias, if any, and the final norm."""
    counted = {"embedding": embedding_params(spec), "lm_head": lm_head_params(spec), "norms": norm_params(spec)}
    return other_params(counted, head_matrices(spec))


def expert_other_params(moe: model.MoESpec, hidden: int) -> int:
    """Non-matrix parameters of one routed expert (its biases)."""
    return expert_params(moe, hidden) - sum(m.params for m in expert_matrices(moe, hidden))


def mtp_other_params(spec: model.ModelSpec) -> int:
    """Non-matrix parameters of the MTP modules (their layer's norms and biases, enorm, hnorm, head norm)."""
    return mtp_params(spec) - sum(m.params for m in mtp_matrices(spec))

