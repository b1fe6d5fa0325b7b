"""FLOPs per token: matmuls from the exact active parameters, plus the terms that grow with context.

Conventions: one multiply-add is 2 FLOPs; counts are per token, in FLOPs (not FLOP/s). Letters: C context
(keys a query attends to), S prompt length, L layers, H hidden size, V vocabulary. See docs/formulas.md
§Compute and traffic.
"""

from typing import Literal

from pydantic import BaseModel

from moeplan.accounting.kv_cache import recurrent_state_elements
from moeplan.accounting.params import count_params
from moeplan.spec.model import AttentionSpec, IndexerSpec, LayerAttention, ModelSpec

Recompute = Literal["none", "selective", "full"]
AttentionCount = Literal["decode", "causal", "full"]
"""How many keys a query is charged for. decode: the one new query at position C (it sees C keys);
causal: the mean over the queries of an S-token sequence under the causal mask; full: the mask is not
exploited, every query is charged its whole span (the Megatron-LM and PaLM training convention)."""

SSM_SCAN_FLOPS_PER_STATE = 8
"""Selective-scan FLOPs per token, inner channel and state: Δ·A and its exp (2, exp counted as 1),
Δ·B·x (2), h = Ā·h + B̄x (2), y += C·h (2). Per-channel terms (softplus of Δ, D skip, z gate) are left out.
Mamba-2 and the linear attentions (gated DeltaNet, KDA, lightning) are charged the same per element of their
recurrent state: decay (2), rank-1 write (2), read-out (2), and the delta rule's prediction Sᵀk or Mamba-2's
B·x (2)."""


def lm_head_matmul_params(spec: ModelSpec) -> int:
    """Weights of the output projection as a matmul, V·H (+ its bias): counted even when tied to the embedding."""
    return spec.vocab_size * spec.hidden_size + spec.vocab_size * spec.lm_head_bias


def matmul_params(spec: ModelSpec) -> int:
    """Active parameters a token multiplies by, in parameters: every active weight except the input
    embedding (a lookup) and the model-width norms; lm_head included. What remains that is not a weight
    matrix (biases, q/k and MLA latent norms, sinks, Mamba's conv, A_log and D) is under 0.1% and counted
    at the same 2 FLOPs per parameter."""
    active = count_params(spec).active_by_component
    skipped = ("embedding", "lm_head", "norms")
    return sum(v for name, v in active.items() if name not in skipped) + lm_head_matmul_params(spec)


def attention_flops_per_key(attn: AttentionSpec, head_dim: int) -> int:
    """FLOPs of one query against one key in one attention layer: 2·heads·(d_qk + d_v) for QKᵀ and AV.

    GQA/MHA: d_qk = head_dim, d_v = v_head_dim where the value head is narrower (MiMo-V2-Flash), else head_dim (kv
    heads do not change it). MLA in its uncompressed form (keys and values expanded per head, as in training and
    prefill): d_qk = nope + rope, d_v = v_head_dim.
    """
    if attn.kind == "mla":
        return 2 * attn.num_heads * (attn.qk_nope_head_dim + attn.qk_rope_head_dim + attn.v_head_dim)
    return 2 * attn.num_heads * (head_dim + (attn.v_head_dim or head_dim))


def attended_keys(tokens: int, count: AttentionCount, span: int | None = None, chunked: bool = False) -> float:
    """Keys one query is charged for, in tokens, for a layer whose queries see at most `span` keys.

    span None: full attention; span = window for sliding layers (a query sees itself and the w−1 before);
    chunked: span = chunk, queries see only earlier keys of their own chunk (Llama-4). `tokens` is C for
    decode (the query at 0-based position C−1) and S for causal/full (averaged over the S queries).
    """
    if span is None:
        span = tokens
    if chunked:
        whole, rest = divmod(tokens, span)
        if count == "decode":
            return (tokens - 1) % span + 1
        if count == "causal":
            return (whole * span * (span + 1) / 2 + rest * (rest + 1) / 2) / tokens
        return (whole * span * span + rest * rest) / tokens
    if count == "decode" or count == "full":
        return min(tokens, span)
    if tokens <= span:
        return (tokens + 1) / 2
    return (span * (span + 1) / 2 + (tokens - span) * span) / tokens


def _layer_span(spec: ModelSpec, kind: LayerAttention) -> tuple[int | None, bool]:
    return {"full": (None, False), "sliding": (spec.attention.sliding_window, False), "chunked": (spec.attention.chunk_size, True)}[kind]


def indexer_flops_per_key(indexer: IndexerSpec) -> int:
    """FLOPs of DeepSeek sparse attention's indexer for one query against one cached key: a dot product per
    indexer head, 2·n·d, then its ReLU'd score weighted into the sum over heads, 2·n."""
    return 2 * indexer.num_heads * (indexer.head_dim + 1)


def layer_attention_flops(spec: ModelSpec, layer: int, kind: LayerAttention, tokens: int, count: AttentionCount,
                          per_key: float) -> float:
    """Score and value FLOPs per token of one attention layer of ``kind`` at ``per_key`` FLOPs per attended key,
    capped by its window or chunk. DeepSeek sparse attention: a query attends at most index_topk keys (charged as
    a window of that many), and a layer with its own indexer (not GLM-5's 'shared' ones) also scores every key the
    query could see."""
    span, chunked = _layer_span(spec, kind)
    indexer, flops = spec.attention.indexer, 0.0
    if indexer:
        if layer not in indexer.shared_layers:
            flops += indexer_flops_per_key(indexer) * attended_keys(tokens, count, span, chunked)
        span = indexer.top_k if span is None else min(span, indexer.top_k)
    return flops + per_key * attended_keys(tokens, count, span, chunked)


def attention_flops_per_token(spec: ModelSpec, tokens: int, count: AttentionCount) -> float:
    """Score and value FLOPs per token summed over the attention layers (layer_attention_flops)."""
    per_key = attention_flops_per_key(spec.attention, spec.head_dim)
    layers = [layer for layer in range(spec.num_layers) if spec.is_attention_layer(layer)]
    return sum(layer_attention_flops(spec, layer, kind, tokens, count, per_key)
               for layer, kind in zip(layers, spec.attention_layer_types()))


def ssm_scan_flops_per_token(spec: ModelSpec) -> int:
    """The recurrent layers' state update (their projections and convolutions are in matmul_params):
    SSM_SCAN_FLOPS_PER_STATE per element of each layer's recurrent state (Mamba expand·H · d_state, Mamba-2
    heads · head_dim · N, linear attention heads · d_k · d_v); independent of context."""
    return SSM_SCAN_FLOPS_PER_STATE * sum(recurrent_state_elements(spec, layer) for layer in range(spec.num_layers))


def training_flops_per_token(spec: ModelSpec, seq_len: int, recompute: Recompute = "none", causal: bool = False) -> float:
    """Training FLOPs per token of a seq_len-token sequence: forward + backward = 3 × forward, plus recomputation.

    Recompute: none; selective re-runs the attention scores and values (Korthikanti et al. 2022); full
    re-runs every decoder layer's forward (not lm_head). causal=False charges each query all seq_len keys
    as Megatron-LM does, which makes this 72·l·h²·(1 + s/(6h) + V/(12·l·h)) per token for a dense GPT
    (96·l·h²·(1 + s/(6h) + V/(16·l·h)) with full recomputation; Narayanan et al. 2021, eq. 3).
    """
    attention = attention_flops_per_token(spec, seq_len, "causal" if causal else "full")
    layers_forward = 2 * (matmul_params(spec) - lm_head_matmul_params(spec)) + ssm_scan_flops_per_token(spec) + attention
    extra = {"none": 0.0, "selective": attention, "full": layers_forward}[recompute]
    return 3 * (layers_forward + 2 * lm_head_matmul_params(spec)) + extra


class FlopsPerToken(BaseModel):
    """FLOPs per token (1 multiply-add = 2 FLOPs) of one model at one context."""

    context_tokens: int
    """C: the decode context and the training sequence length."""
    prompt_tokens: int
    """S: the prompt length that prefill averages over."""
    recompute: Recompute
    """Activation recomputation counted in training_per_token."""
    causal_training: bool
    """Whether training counts only the unmasked half of the scores (False: Megatron-LM's full count)."""
    matmul_params: int
    """Active parameters used as matmul weights (embedding lookup and norms excluded, lm_head included)."""
    matmul_per_token: float
    """2 × matmul_params; the same in every stage."""
    ssm_scan_per_token: float
    """Mamba selective scan (0 without Mamba layers)."""
    attention_forward_per_token: float
    """QKᵀ and AV over a C-token sequence, as training counts them."""
    attention_prefill_per_token: float
    """QKᵀ and AV averaged over an S-token prompt under the causal mask."""
    attention_decode_per_token: float
    """QKᵀ and AV of one new token at context C."""
    forward_per_token: float
    """One forward pass per token of a C-token sequence, attention counted as in training."""
    prefill_per_token: float
    """Forward FLOPs per prompt token, averaged over an S-token prompt (causal)."""
    decode_per_token: float
    """Forward FLOPs of one generated token at context C."""
    training_per_token: float
    """Forward + backward (3 × forward) plus recomputation, per token of a C-token sequence."""


def flops_per_token(
    spec: ModelSpec,
    context_tokens: int,
    prompt_tokens: int | None = None,
    recompute: Recompute = "none",
    causal_training: bool = False,
) -> FlopsPerToken:
    """FLOPs per token for prefill (prompt S, default C), decode at context C, and training at sequence C."""
    prompt = prompt_tokens or context_tokens
    training_count: AttentionCount = "causal" if causal_training else "full"
    params = matmul_params(spec)
    matmul = 2 * params
    scan = ssm_scan_flops_per_token(spec)
    attention = {
        name: attention_flops_per_token(spec, tokens, count)
        for name, tokens, count in (("forward", context_tokens, training_count), ("prefill", prompt, "causal"), ("decode", context_tokens, "decode"))
    }
    return FlopsPerToken(
        context_tokens=context_tokens,
        prompt_tokens=prompt,
        recompute=recompute,
        causal_training=causal_training,
        matmul_params=params,
        matmul_per_token=matmul,
        ssm_scan_per_token=scan,
        attention_forward_per_token=attention["forward"],
        attention_prefill_per_token=attention["prefill"],
        attention_decode_per_token=attention["decode"],
        forward_per_token=matmul + scan + attention["forward"],
        prefill_per_token=matmul + scan + attention["prefill"],
        decode_per_token=matmul + scan + attention["decode"],
        training_per_token=training_flops_per_token(spec, context_tokens, recompute, causal_training),
    )
