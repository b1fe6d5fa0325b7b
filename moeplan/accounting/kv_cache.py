"""KV cache and recurrent state, per token and per sequence, whole model or one GPU's share.

Letters: C context (tokens of one sequence), B sequences, g KV heads, d head dim, t TP size. Bytes are
exact integers; see docs/formulas.md §Memory, "KV cache".
"""

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from moeplan.docstrings import add_field_docstrings
from moeplan.spec.model import ModelSpec

KVDtype = Literal["bf16", "fp16", "fp8", "fp32"]
KV_DTYPE_BYTES: dict[str, int] = {"bf16": 2, "fp16": 2, "fp8": 1, "fp32": 4}
"""Bytes per cached element. fp8 (e4m3 or e5m2) with per-tensor scales, as vLLM's --kv-cache-dtype fp8."""

CONV_STATE_BYTES = 2
"""Mamba conv state element: the model's activation dtype (bf16), whatever the KV dtype."""
SSM_STATE_BYTES = 4
"""Mamba SSM state element: fp32, as transformers' Jamba keeps it (its scan runs in fp32). Mamba-2, gated
DeltaNet and KDA recurrent states are fp32 in transformers too."""
LIGHTNING_STATE_BYTES = 2
"""MiniMax lightning-attention state element: the model's activation dtype (bf16), as transformers' MiniMaxCache
holds it."""


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=add_field_docstrings)


def kv_heads_per_rank(spec: ModelSpec, tp: int, layer_type: str = "full") -> int:
    """KV heads one TP rank holds in a layer of ``layer_type``: g / t, or one (replicated) when there are fewer KV
    heads than ranks."""
    return max(1, spec.attention.layer_kv_heads(layer_type) // tp)


def kv_bytes_per_token_per_layer(spec: ModelSpec, kv_dtype: KVDtype, tp: int = 1, layer_type: str = "full") -> int:
    """Bytes one attention layer of ``layer_type`` caches per token on one TP rank.

    GQA/MHA: kv_heads_per_rank · (d + d_v) · bytes, K and V (d_v = d unless the value head differs, MiMo-V2-Flash;
    d of the layer's type, Gemma-4's full layers; where values are the keys, transformers still caches both).
    MLA: (kv_lora_rank + qk_rope_head_dim) · bytes, the compressed latent and the shared rotary key that vLLM and
    SGLang cache, replicated on every TP rank.
    """
    attn, size = spec.attention, KV_DTYPE_BYTES[kv_dtype]
    if attn.kind == "mla":
        return (attn.kv_lora_rank + attn.qk_rope_head_dim) * size
    head_dim = spec.layer_head_dim(layer_type)
    return kv_heads_per_rank(spec, tp, layer_type) * (head_dim + (attn.v_head_dim or head_dim)) * size


def mla_uncompressed_bytes_per_token_per_layer(spec: ModelSpec, kv_dtype: KVDtype) -> int:
    """What MLA would cache as plain multi-head attention: a · (d_nope + d_rope) for K plus a · d_v for V."""
    attn = spec.attention
    return attn.num_heads * (attn.qk_nope_head_dim + attn.qk_rope_head_dim + attn.v_head_dim) * KV_DTYPE_BYTES[kv_dtype]


def indexer_bytes_per_token_per_layer(spec: ModelSpec, kv_dtype: KVDtype) -> int:
    """DeepSeek sparse attention: the indexer key one layer with an indexer caches per token, index_head_dim
    elements at the KV dtype (transformers keeps it in the model dtype; vLLM in fp8 with one fp32 scale per 128
    values, 132 B for DeepSeek-V3.2), replicated on every TP rank like the MLA latent. 0 without an indexer."""
    indexer = spec.attention.indexer
    return indexer.head_dim * KV_DTYPE_BYTES[kv_dtype] if indexer else 0


def has_indexer(spec: ModelSpec, layer: int) -> bool:
    """Whether an attention layer runs its own indexer (GLM-5's 'shared' layers reuse the previous one's)."""
    indexer = spec.attention.indexer
    return indexer is not None and spec.is_attention_layer(layer) and layer not in indexer.shared_layers


def conv_state_elements(spec: ModelSpec, layer: int, tp: int = 1) -> int:
    """Elements of one layer's causal-convolution state, one sequence, one TP rank (channels split over t), as
    transformers' cache holds it (d_conv columns): Mamba D · d_conv; Mamba-2 (D + 2·groups·N) · d_conv; gated
    DeltaNet (2·key heads·d_k + heads·d_v) · kernel; KDA 3·heads·d · kernel; short convolution H · kernel;
    0 for attention, lightning attention and mixer-less layers."""
    mixer = spec.mixer(layer)
    if mixer == "mamba":
        return spec.mamba.expand * spec.hidden_size // tp * spec.mamba.d_conv
    if mixer == "mamba2":
        return spec.mamba2.conv_dim // tp * spec.mamba2.d_conv
    if mixer == "short_conv":
        return spec.hidden_size // tp * spec.short_conv.kernel
    if mixer != "linear_attention" or spec.linear_attention.kind == "lightning":
        return 0
    linear = spec.linear_attention
    if linear.kind == "kda":
        return 3 * (linear.num_heads * linear.head_dim // tp) * linear.conv_kernel
    return (2 * linear.key_heads * linear.head_dim + linear.num_heads * linear.value_dim) // tp * linear.conv_kernel


def recurrent_state_elements(spec: ModelSpec, layer: int, tp: int = 1) -> int:
    """Elements of one layer's recurrent state, one sequence, one TP rank (heads split over t): Mamba D · d_state;
    Mamba-2 heads · head_dim · N; gated DeltaNet heads · d_k · d_v; KDA and lightning heads · d · d; 0 for
    attention, short-convolution and mixer-less layers."""
    mixer = spec.mixer(layer)
    if mixer == "mamba":
        return spec.mamba.expand * spec.hidden_size // tp * spec.mamba.d_state
    if mixer == "mamba2":
        return spec.mamba2.inner // tp * spec.mamba2.d_state
    if mixer != "linear_attention":
        return 0
    linear = spec.linear_attention
    return max(1, linear.num_heads // tp) * linear.head_dim * linear.value_dim


def recurrent_state_bytes_per_layer(spec: ModelSpec, layer: int, tp: int = 1) -> int:
    """Fixed per-sequence state of one layer on one TP rank: conv state in bf16 plus recurrent state in fp32
    (lightning attention's in bf16), the dtypes transformers' caches hold."""
    lightning = spec.mixer(layer) == "linear_attention" and spec.linear_attention.kind == "lightning"
    state_bytes = LIGHTNING_STATE_BYTES if lightning else SSM_STATE_BYTES
    return conv_state_elements(spec, layer, tp) * CONV_STATE_BYTES + recurrent_state_elements(spec, layer, tp) * state_bytes


def layer_token_caps(spec: ModelSpec, layers: Iterable[int] | None = None) -> dict[int, int | None]:
    """Attention layer (of ``layers``, default all) → most tokens of one sequence it keeps: the window of sliding
    layers, the chunk of chunked layers, None (unbounded) for full attention. Mamba layers are absent."""
    caps = {"full": None, "sliding": spec.attention.sliding_window, "chunked": spec.attention.chunk_size}
    chosen = range(spec.num_layers) if layers is None else layers
    return {layer: caps[spec.attention_type(layer)] for layer in chosen if spec.is_attention_layer(layer)}


def mixer_layer_count(spec: ModelSpec) -> dict[str, int]:
    """Layers per non-attention mixer kind (mamba, mamba2, linear_attention, short_conv); absent when none."""
    counts: dict[str, int] = {}
    for layer in range(spec.num_layers):
        mixer = spec.mixer(layer)
        if mixer not in ("attention", "none"):
            counts[mixer] = counts.get(mixer, 0) + 1
    return counts


class SequenceKV(_Result):
    """Cache of one sequence on one GPU as a function of its context C:
    bytes(C) = full_bytes_per_token · C + Σ capped bytes_per_token · min(C, cap) + state_bytes."""

    full_bytes_per_token: int
    """Summed per-token bytes of the full-attention layers."""
    capped: list[tuple[int, int]]
    """(cap in tokens, summed per-token bytes of the layers with that cap), caps ascending."""
    state_bytes: int
    """Fixed per-sequence state (Mamba, Mamba-2 and linear-attention conv + recurrent states), independent of C."""

    def bytes(self, context: int) -> int:
        """Cache bytes of one sequence of ``context`` tokens."""
        capped = sum(per_token * min(context, cap) for cap, per_token in self.capped)
        return self.full_bytes_per_token * context + capped + self.state_bytes

    def max_context(self, budget_bytes: int) -> int | None:
        """Largest C with bytes(C) ≤ budget_bytes (0 when not even the state fits; None when every layer is
        capped, so no context exhausts the budget), by inverting the piecewise-linear bytes(C) directly."""
        if budget_bytes < self.state_bytes:
            return 0
        start = 0
        for cap, _ in self.capped:  # on (start, cap] every layer whose cap lies beyond start still grows
            slope = self.full_bytes_per_token + sum(per_token for c, per_token in self.capped if c > start)
            room = budget_bytes - self.bytes(start)
            if room < slope * (cap - start):
                return start + room // slope
            start = cap
        if self.full_bytes_per_token == 0:
            return None
        return start + (budget_bytes - self.bytes(start)) // self.full_bytes_per_token


def sequence_kv(spec: ModelSpec, kv_dtype: KVDtype, layers: Iterable[int] | None = None, tp: int = 1) -> SequenceKV:
    """One sequence's cache on one TP rank, over ``layers`` (default: all; a pipeline stage's range)."""
    chosen = set(range(spec.num_layers) if layers is None else layers)
    per_layer = {kind: kv_bytes_per_token_per_layer(spec, kv_dtype, tp, kind) for kind in ("full", "sliding", "chunked")}
    indexer = indexer_bytes_per_token_per_layer(spec, kv_dtype)
    caps = layer_token_caps(spec, sorted(chosen))  # the chosen layers only: per-layer calls stay linear in layers
    full, capped = 0, {}
    for layer in sorted(chosen & caps.keys()):
        per_token = per_layer[spec.attention_type(layer)] + indexer * has_indexer(spec, layer)
        if caps[layer] is None:
            full += per_token
        else:
            capped[caps[layer]] = capped.get(caps[layer], 0) + per_token
    state = sum(recurrent_state_bytes_per_layer(spec, layer, tp) for layer in sorted(chosen - caps.keys()))
    return SequenceKV(full_bytes_per_token=full, capped=sorted(capped.items()), state_bytes=state)


def decode_read_bytes(spec: ModelSpec, kv_dtype: KVDtype, context: int, layers: Iterable[int] | None = None, tp: int = 1) -> int:
    """Cache bytes one decode step reads for one sequence of ``context`` tokens over ``layers``: its whole cache,
    except that DeepSeek sparse attention reads the MLA latent of only the index_topk tokens the indexer selects
    (and every indexer key)."""
    chosen = range(spec.num_layers) if layers is None else layers
    whole = sequence_kv(spec, kv_dtype, chosen, tp).bytes(context)
    indexer = spec.attention.indexer
    if indexer is None or context <= indexer.top_k:
        return whole
    sparse_layers = sum(spec.is_attention_layer(layer) for layer in chosen)
    return whole - sparse_layers * kv_bytes_per_token_per_layer(spec, kv_dtype, tp) * (context - indexer.top_k)


def kv_cache_bytes_per_token(spec: ModelSpec, kv_dtype: KVDtype) -> int:
    """One sequence, all attention layers, unsharded: the full-attention-equivalent slope (windows ignored),
    indexer keys included."""
    layers = layer_token_caps(spec)
    indexed = sum(has_indexer(spec, layer) for layer in layers)
    keys_values = sum(kv_bytes_per_token_per_layer(spec, kv_dtype, 1, spec.attention_type(layer)) for layer in layers)
    return keys_values + indexed * indexer_bytes_per_token_per_layer(spec, kv_dtype)


def kv_cache_bytes(spec: ModelSpec, batch: int, context: int, kv_dtype: KVDtype,
                   layers: Iterable[int] | None = None, tp: int = 1) -> int:
    """Cache of ``batch`` sequences of ``context`` tokens: B · bytes(C), windows capped, Mamba state included."""
    return batch * sequence_kv(spec, kv_dtype, layers, tp).bytes(context)


class KVCacheSummary(_Result):
    """The model's cache, unsharded, for the report."""

    kv_dtype: KVDtype
    kv_cache_bytes_per_token: int
    """One sequence, all attention layers, unsharded, at the KV dtype (windows ignored)."""
    bytes_per_token_beyond_windows: int
    """Marginal bytes per token once C exceeds every window/chunk (full-attention layers only)."""
    bytes_per_token_per_layer: int
    """One attention layer, unsharded."""
    attention_layers: int
    capped_layers: dict[int, int]
    """Cap in tokens → number of attention layers with that window or chunk."""
    uncompressed_bytes_per_token: int | None = None
    """MLA only: what the same heads would cache as plain multi-head attention, all layers."""
    state_bytes_per_sequence: int = 0
    """Fixed state of one sequence (Mamba, Mamba-2, linear-attention and short-convolution layers), unsharded."""
    state_layers: dict[str, int] = {}
    """Non-attention mixer kind → layers holding such a state."""
    indexer_bytes_per_token: int = 0
    """DeepSeek sparse attention: indexer keys of one token, all layers with an indexer (in kv_cache_bytes_per_token)."""


def kv_cache_summary(spec: ModelSpec, kv_dtype: KVDtype) -> KVCacheSummary:
    """The unsharded per-token and per-sequence figures of a model's cache."""
    whole = sequence_kv(spec, kv_dtype)
    caps = [cap for cap in layer_token_caps(spec).values() if cap is not None]
    attention_layers = len(layer_token_caps(spec))
    uncompressed = None
    if spec.attention.kind == "mla":
        uncompressed = attention_layers * mla_uncompressed_bytes_per_token_per_layer(spec, kv_dtype)
    return KVCacheSummary(
        kv_dtype=kv_dtype,
        kv_cache_bytes_per_token=kv_cache_bytes_per_token(spec, kv_dtype),
        bytes_per_token_beyond_windows=whole.full_bytes_per_token,
        bytes_per_token_per_layer=kv_bytes_per_token_per_layer(spec, kv_dtype),
        attention_layers=attention_layers,
        capped_layers={cap: caps.count(cap) for cap in sorted(set(caps))},
        uncompressed_bytes_per_token=uncompressed,
        state_bytes_per_sequence=whole.state_bytes,
        state_layers=mixer_layer_count(spec),
        indexer_bytes_per_token=sum(has_indexer(spec, i) for i in range(spec.num_layers)) * indexer_bytes_per_token_per_layer(spec, kv_dtype),
    )
