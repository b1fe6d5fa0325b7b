"""Training memory on one GPU: bf16 parameters, gradients, Adam states with fp32 master weights (ZeRO 0-3),
and activations after Megatron-LM's theoretical memory (Korthikanti et al. 2022, "Reducing Activation
Recomputation in Large Transformer Models", arXiv:2205.05198, §4 and Table 2), adapted to GQA, MLA, Mamba
and top-k experts.

Letters: s sequence length, b micro-batch, h hidden, a query heads, g KV heads, d head dim, t TP size
(sequence parallel assumed with TP, so every activation is divided by t), V vocabulary. Activation bytes
per token are written as multiples of h where the paper does (2 B per bf16 element, 1 B per dropout mask).
See docs/formulas.md §Memory, "Training".
"""

from collections.abc import Iterable
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from moeplan.accounting.matrices import mixer_matrices
from moeplan.docstrings import add_field_docstrings
from moeplan.layout.parallel import Layout
from moeplan.namespace import SCALAR
from moeplan.spec.model import ModelSpec

ZeroStage = Literal[0, 1, 2, 3]
Recompute = Literal["none", "selective", "full"]
GradDtype = Literal["fp32", "bf16"]

PARAM_BYTES = 2
"""bf16 model parameters."""
GRAD_BYTES = {"fp32": 4, "bf16": 2}
"""Gradient buffer element. Megatron-LM's default with bf16 is fp32 (it sets accumulate_allreduce_grads_in_fp32)."""
MASTER_BYTES = 4
"""fp32 master copy of each parameter."""
ADAM_BYTES = 8
"""Adam's first and second moments, fp32 each."""
TOKEN_ID_BYTES = 8
"""int64 token ids, the embedding's input."""


def bytes_per_param(grad_dtype: GradDtype = "fp32") -> int:
    """Unsharded training state per parameter: 2 (bf16) + 4 or 2 (grad) + 4 (master) + 8 (Adam) = 18 or 16 B,
    Megatron-LM's 18 (compute_weight_and_optimizer_memory without the distributed optimizer)."""
    return PARAM_BYTES + GRAD_BYTES[grad_dtype] + MASTER_BYTES + ADAM_BYTES


class TrainingState(BaseModel):
    """Parameter, gradient and optimizer bytes on one GPU."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=add_field_docstrings)

    params_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    """fp32 master weights and Adam moments."""


def training_state(dense_params: int, expert_params: int, layout: Layout, zero: ZeroStage = 1,
                   grad_dtype: GradDtype = "fp32", gathered_params: int = 0) -> TrainingState:
    """State of a GPU holding ``dense_params`` (sharded over DP = layout.dp at ZeRO ≥ 1) and ``expert_params``
    (sharded over the expert replicas, Megatron's expert data parallel). ZeRO 1 shards the optimizer states
    (= Megatron's distributed optimizer: 6 + 12/dp B per parameter), 2 also gradients, 3 also parameters;
    at stage 3 the GPU also holds ``gathered_params`` (one layer's parameters gathered for compute)."""

    params, gradients, optimizer = training_state_bytes(SCALAR, dense_params, expert_params, layout.dp, layout.expert_replicas,
                                                        zero, grad_dtype, gathered_params)
    return TrainingState(params_bytes=params, gradients_bytes=gradients, optimizer_bytes=optimizer)


def training_state_bytes(ns, dense_params, expert_params, dp, expert_replicas, zero: ZeroStage, grad_dtype: GradDtype,
                         gathered_params) -> tuple:
    """(parameter, gradient, optimizer) bytes of one GPU, written once for a layout (ns = SCALAR) and for arrays of
    layouts (`moeplan plan`, numpy): a state sharded at this ZeRO stage takes ⌈dense·b / dp⌉ + ⌈expert·b / expert
    replicas⌉, else dense·b + expert·b."""

    def part(per_param: int, stage_from: int):
        dense = dense_params * per_param
        expert = expert_params * per_param
        if zero >= stage_from:
            return ns.ceil(dense / dp) + ns.ceil(expert / expert_replicas)
        return dense + expert

    params = part(PARAM_BYTES, 3) + (gathered_params * PARAM_BYTES if zero == 3 else 0)
    return params, part(GRAD_BYTES[grad_dtype], 2), part(MASTER_BYTES + ADAM_BYTES, 1)


class Coefficients(NamedTuple):
    """Activation bytes of one micro-batch as b · (linear · s + quadratic · s²), before the TP divisor."""

    linear: int
    quadratic: int

    def __add__(self, other):  # element-wise, so per-layer terms add up
        return Coefficients(self.linear + other.linear, self.quadratic + other.quadratic)

    def scaled(self, factor: int) -> "Coefficients":
        return Coefficients(self.linear * factor, self.quadratic * factor)


def attention_activation_per_token(spec: ModelSpec) -> int:
    """Bytes per token an attention block keeps for backward, score matrix excluded. The paper's 11h for MHA:
    QKV input 2h, Q 2h, K 2h, V 2h, output-projection input 2h, dropout mask h. GQA: K and V are g·d wide.
    MLA: Q and K are a·(d_nope + d_rope), V and the output a·d_v, plus the down-projection outputs and their
    normed copies (2·r_q + 2·r_q for the query, 2·(r_kv + d_rope) + 2·r_kv for the latent)."""
    attn, h = spec.attention, spec.hidden_size
    if attn.kind == "mla":
        qk, v = attn.num_heads * (attn.qk_nope_head_dim + attn.qk_rope_head_dim), attn.num_heads * attn.v_head_dim
        latents = 4 * (attn.q_lora_rank or 0) + 2 * (attn.kv_lora_rank + attn.qk_rope_head_dim) + 2 * attn.kv_lora_rank
        return 2 * h + 2 * qk + 2 * qk + 2 * v + 2 * v + h + latents
    q, kv = attn.num_heads * spec.head_dim, attn.kv_heads * spec.head_dim
    return 2 * h + 2 * q + 2 * kv + 2 * kv + 2 * q + h


def attention_scores_per_token_squared(spec: ModelSpec) -> int:
    """The paper's 5·a·s²·b: softmax output 2, its dropout mask 1 and dropout output 2 bytes per score."""
    return 5 * spec.attention.num_heads


def mamba_activation_per_token(spec: ModelSpec) -> int:
    """Bytes per token a Mamba mixer keeps (D = expand·h; not in the paper, counted the same way): in_proj
    input 2h, x and z 4D, conv output 2D, Δ 2D, scan output 2D, x_proj output 2·(dt_rank + 2·d_state)."""
    mamba = spec.mamba
    inner = mamba.expand * spec.hidden_size
    return 2 * spec.hidden_size + 10 * inner + 2 * (mamba.dt_rank + 2 * mamba.d_state)


def mixer_activation_per_token(spec: ModelSpec, layer: int) -> int:
    """Bytes per token a non-attention mixer keeps: Jamba's Mamba as above; Mamba-2, linear attention and short
    convolutions (counted the same way) their input 2h and the bf16 outputs of their projections (the rows of
    their matrices); none for a mixer-less layer."""
    if spec.mixer(layer) == "mamba":
        return mamba_activation_per_token(spec)
    matrices = mixer_matrices(spec, layer)
    return (2 * spec.hidden_size + 2 * sum(m.rows * m.count for m in matrices)) if matrices else 0


def mlp_intermediate_per_token(intermediate: int, gated: bool) -> int:
    """The paper's 16h of a 4h GeLU MLP is fc1 output 2·I + activation output 2·I = 4·I bytes; a gated
    (SwiGLU) fc1 outputs 2·I, so 4·I + 2·I = 6·I."""
    return (6 if gated else 4) * intermediate


def mlp_activation_per_token(spec: ModelSpec, layer: int) -> int:
    """Bytes per token an MLP block keeps. Dense: the paper's 19h = fc1 input 2h + intermediate 16h + dropout
    mask h (4h GeLU). MoE: router/shared input 2h, router scores 4·E (fp32), permuted fc1 input 2·k·h,
    k routed intermediates, the shared intermediate, expert outputs kept for the probability-weighted
    combine 2·k·h, and the dropout mask h."""
    h = spec.hidden_size
    if not spec.has_mlp(layer):
        return 0
    if not spec.is_moe_layer(layer):
        return 2 * h + mlp_intermediate_per_token(spec.intermediate_size, spec.dense_mlp_gated) + h
    moe = spec.moe
    routed = moe.top_k * (4 * h + mlp_intermediate_per_token(moe.expert_intermediate_size, moe.gated))
    shared = mlp_intermediate_per_token(moe.shared_size, moe.gated) if moe.shared_size else 0
    return 2 * h + 4 * moe.num_experts + routed + shared + h


def layer_activation(spec: ModelSpec, layer: int, recompute: Recompute) -> Coefficients:
    """One layer's activation coefficients (bytes = b · (linear·s + quadratic·s²), before the TP divisor).
    none: everything, including the 5·a·s² score terms; selective: the score terms are recomputed (the paper's
    34·s·b·h for GPT-style layers); full: only the layer input, 2·s·b·h."""
    h = spec.hidden_size
    if recompute == "full":
        return Coefficients(2 * h, 0)
    norms = (4 if spec.layer_block == "mixer_and_mlp" else 2) * h  # inputs of the layer's norms
    if spec.is_attention_layer(layer):
        mixer = attention_activation_per_token(spec)
        scores = attention_scores_per_token_squared(spec) if recompute == "none" else 0
    else:
        mixer, scores = mixer_activation_per_token(spec, layer), 0
    return Coefficients(norms + mixer + mlp_activation_per_token(spec, layer), scores)


def stage_activation(spec: ModelSpec, layout: Layout, stage: int, layers: Iterable[int], recompute: Recompute) -> Coefficients:
    """Activation coefficients of one pipeline stage under 1F1B, before the TP divisor.

    Stage i holds pp − i micro-batches in flight (the first holds pp, as Megatron-LM's formula assumes);
    the first stage adds the embedding's input ids (8 B per token) and dropout mask (h) per micro-batch, the
    last adds the output layer's 4·h + 4·V (fp32 logits for the loss, Megatron's 4·s·b·h·(1 + V/h)). Full
    recomputation adds the activations of the one layer being rebuilt during its backward (all of them, as
    with 'none'; element-wise largest over the stage's layers)."""
    layers = list(layers)
    in_flight = layout.pp - stage
    total = Coefficients(0, 0)
    for layer in layers:
        total += layer_activation(spec, layer, recompute)
    if stage == 0:
        total += Coefficients(TOKEN_ID_BYTES + spec.hidden_size, 0)
    total = total.scaled(in_flight)
    if recompute == "full" and layers:
        rebuilt = [layer_activation(spec, i, "none") for i in layers]
        total += Coefficients(max(c.linear for c in rebuilt), max(c.quadratic for c in rebuilt))
    if stage == layout.pp - 1:
        total += Coefficients(4 * spec.hidden_size + 4 * spec.vocab_size, 0)
    return total


def activation_bytes(coefficients: Coefficients, batch: int, context: int, tp: int) -> int:
    """b · (linear·s + quadratic·s²) / t, rounded up: activations are split by TP with sequence parallel."""
    return -(-batch * (coefficients.linear * context + coefficients.quadratic * context * context) // tp)


def training_assumptions(zero: ZeroStage, recompute: Recompute, grad_dtype: GradDtype) -> list[str]:
    """The training assumptions, as sentences the report prints."""
    return [
        f"bf16 parameters (2 B), {grad_dtype} gradients ({GRAD_BYTES[grad_dtype]} B; Megatron-LM's default with bf16 is fp32), "
        f"fp32 master weights (4 B) and Adam moments (8 B): {bytes_per_param(grad_dtype)} B per parameter unsharded",
        f"ZeRO stage {zero}: " + {
            0: "nothing sharded",
            1: "optimizer states sharded over data parallel (Megatron's distributed optimizer)",
            2: "optimizer states and gradients sharded over data parallel",
            3: "optimizer states, gradients and parameters sharded over data parallel, plus one gathered layer",
        }[zero] + "; expert parameters shard over the expert replicas (expert data parallel)",
        f"activations after Korthikanti et al. 2022 (Megatron-LM), recomputation '{recompute}', sequence parallel "
        "with TP (activations / tp), dropout masks counted, balanced expert routing",
        "'none' keeps the 5·a·s²·b attention-score terms (no FlashAttention); with FlashAttention they vanish and "
        "memory equals 'selective'",
        "1F1B pipeline schedule: stage i holds pp − i micro-batches in flight; batch = micro-batch size per DP rank",
    ]
