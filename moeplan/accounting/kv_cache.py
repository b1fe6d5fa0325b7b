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
"""Mamba SSM state element: fp32, as transformers' Jamba keeps it (its scan runs in fp32)."""


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=add_field_docstrings)


def kv_heads_per_rank(spec: ModelSpec, tp: int) -> int:
    """KV heads one TP rank holds: g / t, or one (replicated) when there are fewer KV heads than ranks."""
    return max(1, spec.attention.kv_heads // tp)


def kv_bytes_per_token_per_layer(spec: ModelSpec, kv_dtype: KVDtype, tp: int = 1) -> int:
    """Bytes one attention layer caches per token on one TP rank.

    GQA/MHA: 2 (K and V) · kv_heads_per_rank · d · bytes. MLA: (kv_lora_rank + qk_rope_head_dim) · bytes,
    the compressed latent and the shared rotary key that vLLM and SGLang cache, replicated on every TP rank.
    """
    attn, size = spec.attention, KV_DTYPE_BYTES[kv_dtype]
    if attn.kind == "mla":
        return (attn.kv_lora_rank + attn.qk_rope_head_dim) * size
    return 2 * kv_heads_per_rank(spec, tp) * spec.head_dim * size


def mla_uncompressed_bytes_per_token_per_layer(spec: ModelSpec, kv_dtype: KVDtype) -> int:
    """What MLA would cache as plain multi-head attention: a · (d_nope + d_rope) for K plus a · d_v for V."""
    attn = spec.attention
    return attn.num_heads * (attn.qk_nope_head_dim + attn.qk_rope_head_dim + attn.v_head_dim) * KV_DTYPE_BYTES[kv_dtype]


def mamba_state_bytes_per_layer(spec: ModelSpec, tp: int = 1) -> int:
    """Fixed per-sequence state of one Mamba layer on one TP rank (inner size D = expand·H split over t):
    conv state d_conv · D/t in bf16 plus SSM state D/t · d_state in fp32 (transformers' Jamba cache shapes)."""
    mamba = spec.mamba
    inner = mamba.expand * spec.hidden_size // tp
    return mamba.d_conv * inner * CONV_STATE_BYTES + inner * mamba.d_state * SSM_STATE_BYTES


def layer_token_caps(spec: ModelSpec) -> dict[int, int | None]:
    """Attention layer → most tokens of one sequence it keeps: the window of sliding layers, the chunk of
    chunked layers, None (unbounded) for full attention. Mamba layers are absent."""
    attention_layers = [i for i in range(spec.num_layers) if spec.is_attention_layer(i)]
    caps = {"full": None, "sliding": spec.attention.sliding_window, "chunked": spec.attention.chunk_size}
    return {layer: caps[kind] for layer, kind in zip(attention_layers, spec.attention_layer_types())}


class SequenceKV(_Result):
    """Cache of one sequence on one GPU as a function of its context C:
    bytes(C) = full_bytes_per_token · C + Σ capped bytes_per_token · min(C, cap) + state_bytes."""

    full_bytes_per_token: int
    """Summed per-token bytes of the full-attention layers."""
    capped: list[tuple[int, int]]
    """(cap in tokens, summed per-token bytes of the layers with that cap), caps ascending."""
    state_bytes: int
    """Fixed per-sequence state (Mamba conv + SSM), independent of C."""

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
    per_layer = kv_bytes_per_token_per_layer(spec, kv_dtype, tp)
    caps = layer_token_caps(spec)
    full, capped = 0, {}
    for layer in sorted(chosen & caps.keys()):
        if caps[layer] is None:
            full += per_layer
        else:
            capped[caps[layer]] = capped.get(caps[layer], 0) + per_layer
    mamba_layers = len(chosen - caps.keys())
    state = mamba_layers * mamba_state_bytes_per_layer(spec, tp) if mamba_layers else 0
    return SequenceKV(full_bytes_per_token=full, capped=sorted(capped.items()), state_bytes=state)


def kv_cache_bytes_per_token(spec: ModelSpec, kv_dtype: KVDtype) -> int:
    """One sequence, all attention layers, unsharded: the full-attention-equivalent slope (windows ignored)."""
    return len(layer_token_caps(spec)) * kv_bytes_per_token_per_layer(spec, kv_dtype)


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
    """Mamba conv + SSM state of one sequence, all Mamba layers, unsharded."""


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
    )
