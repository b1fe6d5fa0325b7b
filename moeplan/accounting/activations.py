"""Inference activations and runtime overhead on one GPU: the transient peak of one engine step.

Letters: T tokens in the step, B sequences, H hidden, V vocabulary, k top-k, E experts, I expert
intermediate, I_s shared intermediate, a query heads, t TP, etp expert TP. Activations are bf16 (2 B);
the model follows vLLM's V1 engine (FlashAttention, Triton fused MoE). See docs/formulas.md §Memory,
"Inference activations and overhead".
"""

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from moeplan.accounting.kv_cache import kv_heads_per_rank
from moeplan.accounting.matrices import mixer_matrices
from moeplan.docstrings import add_field_docstrings
from moeplan.layout.parallel import Layout
from moeplan.spec.model import ModelSpec
from moeplan.units import GiB

ACTIVATION_BYTES = 2
"""bf16 activations, whatever the weight format (fp8 and int4 kernels compute in bf16)."""
LOGIT_BYTES = 4
"""Logits are sampled in fp32."""
ROUTER_LOGIT_BYTES = 2
"""Router logits leave the gate projection in bf16."""
DEFAULT_PREFILL_CHUNK = 8192
"""Tokens per engine step: vLLM V1's max_num_batched_tokens default for online serving (chunked prefill)."""
FUSED_MOE_CHUNK_TOKENS = 32768
"""vLLM's VLLM_FUSED_MOE_CHUNK_SIZE: the fused-MoE kernel processes at most this many tokens at once."""
CUDA_CONTEXT_BYTES = 500 * 2**20
"""CUDA context, cuBLAS/NCCL handles and kernels per GPU: ~500 MiB on Hopper with CUDA 12 (outside torch's allocator)."""
ALLOCATOR_RESERVE_FRACTION = 0.05
"""Caching-allocator fragmentation, as a fraction of transient activations (Megatron-LM's theoretical
memory applies the same 1.05 factor to activations)."""
DEFAULT_GPU_UTIL = 0.9
"""vLLM's gpu_memory_utilization default: the engine plans within 0.9 × capacity."""


class InferenceActivations(BaseModel):
    """The transient peak of one step on one GPU, in bytes."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=add_field_docstrings)

    tokens: int
    """T = max(prefill chunk, B): the scheduler's token budget must admit one decode token per sequence."""
    hidden_bytes: int
    """Hidden states and residual stream, 2 · T · H · 2 B (replicated across TP; vLLM has no sequence parallel)."""
    workspace_bytes: dict[str, int]
    """Largest transient of each kind among this GPU's layers: attention, mamba, moe, dense_mlp, and logits
    (B · V · 4 B, last pipeline stage only: one fp32 row of the full vocabulary per sequence)."""
    peak_bytes: int
    """hidden + the largest workspace: layers run one at a time and their workspaces are freed in between."""


def attention_workspace_elements(spec: ModelSpec, tp: int) -> int:
    """Per-token elements of one attention layer's transient tensors on one TP rank (FlashAttention keeps no
    T×C score matrix; its fp32 softmax statistics, 4 B per head per token, are left out).

    GQA: fused QKV output (a/t + 2·g_rank)·d plus attention output a/t·d.
    MLA (prefill, non-absorbed): q a/t·(d_nope + d_rope), the latent r_kv + d_rope (and r_q when the query is
    compressed), decompressed K a/t·(d_nope + d_rope) and V a/t·d_v, and the output a/t·d_v.
    """
    attn, heads = spec.attention, spec.attention.num_heads // tp
    if attn.kind == "mla":
        qk = attn.qk_nope_head_dim + attn.qk_rope_head_dim
        latent = attn.kv_lora_rank + attn.qk_rope_head_dim + (attn.q_lora_rank or 0)
        return heads * qk * 2 + latent + heads * attn.v_head_dim * 2
    return (2 * heads + 2 * kv_heads_per_rank(spec, tp)) * spec.head_dim


def mamba_workspace_elements(spec: ModelSpec, tp: int) -> int:
    """Per-token elements of one Mamba mixer on one TP rank (D = expand·H): in_proj output x and z (2·D/t),
    conv output, Δ and scan output (D/t each), and x_proj's Δ-rank, B and C (dt_rank + 2·d_state)."""
    mamba = spec.mamba
    inner = mamba.expand * spec.hidden_size // tp
    return 5 * inner + mamba.dt_rank + 2 * mamba.d_state


def mixer_workspace_elements(spec: ModelSpec, layer: int, tp: int) -> int:
    """Per-token elements of one non-attention mixer on one TP rank: Jamba's Mamba as above; Mamba-2, linear
    attention and short convolutions hold the outputs of their projections (the rows of their matrices: in_proj's
    z, x, B, C, dt; q, k, v, gates; out_proj's H), split over t."""
    if spec.mixer(layer) == "mamba":
        return mamba_workspace_elements(spec, tp)
    return sum(m.rows * m.count for m in mixer_matrices(spec, layer)) // tp


def fused_moe_workspace_bytes(spec: ModelSpec, layout: Layout, tokens: int) -> int:
    """The experts' scratch of one MoE block on one GPU for ``tokens`` tokens of this DP rank, bytes.

    vLLM's modular fused MoE with Triton experts (vllm/model_executor/layers/fused_moe/modular_kernel.py,
    ``_allocate_buffers``, and fused_moe.py ``TritonExperts.workspace_shapes``, v0.19): for M = min(T·r,
    32768) routed tokens, workspace2 [M, k, max(N, H)] (the gate/up output, then the down output) and
    workspace13 [M, k, max(N_act, H)] (the activation output; the MoE output [M, H] shares its memory),
    N = 2·I/etp gated or I/etp, N_act = I/etp, bf16. Both come from one buffer of the worker's workspace
    manager (vllm/v1/worker/workspace.py), which every MoE layer shares and which stays allocated.
    """
    moe = spec.moe
    chunk = min(tokens * layout.replicas_per_expert_group, FUSED_MOE_CHUNK_TOKENS)
    inner = moe.expert_intermediate_size // layout.expert_tp
    up = 2 * inner if moe.gated else inner
    return chunk * moe.top_k * (max(inner, spec.hidden_size) + max(up, spec.hidden_size)) * ACTIVATION_BYTES


def fused_moe_bytes(spec: ModelSpec, layout: Layout, tokens: int) -> int:
    """Transient bytes of one MoE block on one GPU for ``tokens`` tokens of this DP rank.

    vLLM's Triton fused MoE: when one copy of the experts serves several DP replicas (EP spanning them) the naive
    dispatch first gathers those replicas' tokens (T·r·H, r = layout.replicas_per_expert_group);
    then the experts' workspace of M = min(T·r, 32768) tokens (``fused_moe_workspace_bytes``), sized
    [M, k, ·] on every EP rank whatever share of the experts it holds. Plus router logits T·r·E (bf16) and
    the shared experts' gate/up and activation outputs.
    """
    moe, hidden, size = spec.moe, spec.hidden_size, ACTIVATION_BYTES
    routed_tokens = tokens * layout.replicas_per_expert_group
    gathered = routed_tokens * hidden * size if layout.replicas_per_expert_group > 1 else 0
    caches = fused_moe_workspace_bytes(spec, layout, tokens)
    router = routed_tokens * moe.num_experts * ROUTER_LOGIT_BYTES
    shared = tokens * dense_mlp_elements(moe.shared_size, moe.gated, layout.tp) * size
    return gathered + caches + router + shared


def dense_mlp_elements(intermediate: int, gated: bool, tp: int) -> int:
    """Per-token elements of a TP-split MLP: gate/up output (2·I/t gated, I/t plain) plus activation output I/t."""
    local = intermediate // tp
    return (3 if gated else 2) * local


def inference_activations(spec: ModelSpec, layout: Layout, layers: Iterable[int], batch: int,
                          prefill_chunk: int = DEFAULT_PREFILL_CHUNK, last_stage: bool = True) -> InferenceActivations:
    """Peak transient bytes of one engine step on a GPU holding ``layers`` (its pipeline stage)."""
    tokens, tp, size = max(prefill_chunk, batch), layout.tp, ACTIVATION_BYTES
    workspace: dict[str, int] = {}

    def keep(kind: str, value: int) -> None:
        workspace[kind] = max(workspace.get(kind, 0), value)

    for layer in layers:
        if spec.is_attention_layer(layer):
            keep("attention", tokens * attention_workspace_elements(spec, tp) * size)
        elif spec.mixer(layer) != "none":  # 'mamba': every non-attention mixer
            keep("mamba", tokens * mixer_workspace_elements(spec, layer, tp) * size)
        if not spec.has_mlp(layer):
            continue
        if spec.is_moe_layer(layer):
            keep("moe", fused_moe_bytes(spec, layout, tokens))
        else:
            keep("dense_mlp", tokens * dense_mlp_elements(spec.intermediate_size, spec.dense_mlp_gated, tp) * size)
    if last_stage:
        keep("logits", batch * spec.vocab_size * LOGIT_BYTES)
    hidden = 2 * tokens * spec.hidden_size * size
    return InferenceActivations(tokens=tokens, hidden_bytes=hidden, workspace_bytes=workspace,
                                peak_bytes=hidden + max(workspace.values(), default=0))


def inference_assumptions(prefill_chunk: int, gpu_util: float, cuda_context_bytes: int) -> list[str]:
    """The inference assumptions, as sentences the report prints."""
    return [
        f"usable memory = {gpu_util:g} × capacity (vLLM's gpu_memory_utilization); the rest is left free",
        f"one engine step processes T = max({prefill_chunk}, batch) tokens (vLLM's max_num_batched_tokens, chunked "
        "prefill); activations are bf16 and sized for that step",
        "attention uses FlashAttention (no T×context score matrix); MLA prefill decompresses K/V for the chunk only",
        f"MoE workspace follows vLLM's Triton fused MoE: [M, k, ·] buffers with M ≤ {FUSED_MOE_CHUNK_TOKENS} tokens, "
        "on every EP rank whatever its share of experts; with DP > 1 the naive dispatch gathers all DP ranks' tokens",
        "logits: one fp32 row of the full vocabulary per sequence, on the last pipeline stage",
        f"CUDA context and libraries: {cuda_context_bytes / GiB:.2f} GiB per GPU; NCCL buffers and CUDA graphs "
        "can add a few hundred MiB more",
        f"allocator reserve: {ALLOCATOR_RESERVE_FRACTION:.0%} of the activation peak",
    ]
