"""Which GPU holds which weights: every component split into parts that are TP-sharded, KV-head-sharded,
expert-sharded or replicated, placed on pipeline stages, and the bytes (or parameters) of one rank.

Works on any per-component amounts (bytes of a weight format, or parameters): each component's total is
spread over its parts in proportion to their parameters, with integer shares that add back up exactly.
See docs/formulas.md §Memory, "Weights per GPU".
"""

from collections.abc import Mapping
from typing import Literal, NamedTuple

from moeplan.accounting.params import (
    COMPONENTS,
    embedding_params,
    indexer_params,
    layer_params,
    lm_head_params,
    norm_params,
    output_gate_width,
)
from moeplan.layout.parallel import Layout, stage_layers
from moeplan.spec.model import ModelSpec

Split = Literal["tp", "kv", "replicated", "expert", "expert_unsplit"]
"""tp: split over the TP ranks; kv: split by KV heads (replicated when fewer heads than ranks); replicated:
whole on every rank; expert: split over EP (whole experts) then ETP; expert_unsplit: over EP only."""


class Part(NamedTuple):
    """Some parameters of one component at one position, all split the same way."""

    component: str
    position: int
    """Layer index; -1 for the embedding (first stage), num_layers for lm_head and the final norm (last stage)."""
    split: Split
    params: int


def _attention_parts(spec: ModelSpec) -> list[tuple[Split, int]]:
    """One attention layer as (split, params); the parts sum to attention_params.

    vLLM/Megatron: q (or q_b), kv_b, o and per-head pieces follow the query heads; K and V follow the KV
    heads; MLA's q_a/kv_a down-projections and their norms, row-parallel output biases and per-head q/k
    norm weights are replicated.
    """
    attn, hidden, d = spec.attention, spec.hidden_size, spec.head_dim
    if attn.kind == "mla":
        latent = attn.kv_lora_rank + attn.qk_rope_head_dim
        q_in = attn.q_lora_rank or hidden
        sharded = q_in * attn.num_heads * (attn.qk_nope_head_dim + attn.qk_rope_head_dim)
        sharded += attn.kv_lora_rank * attn.num_heads * (attn.qk_nope_head_dim + attn.v_head_dim)
        sharded += attn.num_heads * attn.v_head_dim * hidden + hidden * output_gate_width(attn, attn.v_head_dim)
        down = hidden * latent + attn.kv_lora_rank + latent * attn.qkv_bias
        if attn.q_lora_rank:
            down += hidden * attn.q_lora_rank + attn.q_lora_rank * (1 + attn.qkv_bias)
        return [("tp", sharded), ("replicated", down + hidden * attn.o_bias)]
    q, kv = attn.num_heads * d, attn.kv_heads * d
    full_norm = attn.qk_norm == "full"
    gate = hidden * output_gate_width(attn, d) + attn.num_heads * attn.output_gate_bias
    sharded = 2 * hidden * q + gate + q * attn.qkv_bias + attn.num_heads * attn.sinks + q * full_norm
    by_kv = 2 * hidden * kv + 2 * kv * attn.qkv_bias + kv * full_norm
    replicated = hidden * attn.o_bias + 2 * d * (attn.qk_norm == "per_head")
    return [("tp", sharded), ("kv", by_kv), ("replicated", replicated)]


def _mixer_replicated(spec: ModelSpec, layer: int) -> int:
    """Parameters of a non-attention mixer every TP rank holds whole: Jamba's dt/B/C norms and out_proj bias, the
    per-head-dim gated norm of gated DeltaNet and KDA, Mamba-2's and the short convolution's out_proj bias. The
    rest (projections, convolution channels, per-head A_log, D and dt_bias) is split over the heads."""
    hidden, mixer = spec.hidden_size, spec.mixer(layer)
    if mixer == "mamba":
        mamba = spec.mamba
        return (mamba.dt_rank + 2 * mamba.d_state) * mamba.inner_norms + hidden * mamba.proj_bias
    if mixer == "mamba2":
        return hidden * spec.mamba2.proj_bias
    if mixer == "short_conv":
        return hidden * spec.short_conv.bias
    linear = spec.linear_attention
    return linear.value_dim if linear.kind in ("gated_deltanet", "kda") else 0


def _mlp_parts(hidden: int, intermediate: int, gated: bool, bias: bool) -> tuple[int, int]:
    """(column/row-sharded, replicated) parameters of one MLP: the down-projection bias is replicated."""
    return (3 if gated else 2) * hidden * intermediate + (2 if gated else 1) * intermediate * bias, hidden * bias


def layer_parts(spec: ModelSpec, layer: int) -> list[Part]:
    """The parts of one decoder layer; per component they sum to layer_params."""
    hidden, parts = spec.hidden_size, []
    counts = layer_params(spec, layer)

    def add(component: str, split: Split, params: int) -> None:
        if params:
            parts.append(Part(component, layer, split, params))

    mixer = spec.mixer(layer)
    if mixer == "attention":
        for split, params in _attention_parts(spec):
            add("attention", split, params)
        attn = spec.attention
        if attn.indexer and layer not in attn.indexer.shared_layers:  # vLLM replicates the indexer
            add("attention", "replicated", indexer_params(attn.indexer, attn.q_lora_rank, hidden))
    elif mixer != "none":
        component = "mamba" if mixer in ("mamba", "mamba2") else mixer
        replicated = _mixer_replicated(spec, layer)
        add(component, "tp", counts[component] - replicated)
        add(component, "replicated", replicated)
    if spec.has_mlp(layer):
        if spec.is_moe_layer(layer):
            moe = spec.moe
            width = moe.latent_size or hidden  # a latent MoE's experts work in the latent width
            sharded, replicated = _mlp_parts(width, moe.expert_intermediate_size, moe.gated, moe.expert_bias)
            add("routed_experts", "expert", moe.num_experts * sharded)
            add("routed_experts", "expert_unsplit", moe.num_experts * replicated)
            if moe.shared_size:
                sharded, replicated = _mlp_parts(hidden, moe.shared_size, moe.gated, moe.expert_bias)
                add("shared_experts", "tp", sharded)
                add("shared_experts", "replicated", replicated + hidden * moe.shared_expert_gate)
            if moe.latent_size:  # the latent down/up projections, column- and row-parallel
                add("shared_experts", "tp", 2 * hidden * moe.latent_size)
            add("router", "replicated", counts["router"])
        else:
            sharded, replicated = _mlp_parts(hidden, spec.intermediate_size, spec.dense_mlp_gated, spec.mlp_bias)
            add("dense_mlp", "tp", sharded)
            add("dense_mlp", "replicated", replicated)
    add("norms", "replicated", counts["norms"])
    return parts


_PARTS: dict[str, tuple[Part, ...]] = {}
"""model_parts by spec content (memory_report asks twice per pipeline stage, the verdict once per layout it tries)."""


def model_parts(spec: ModelSpec) -> tuple[Part, ...]:
    """Every part of the model, embedding first and lm_head and final norm last; they sum to count_params.
    Cached by the spec's content."""
    key = spec.model_dump_json()
    if key not in _PARTS:
        if len(_PARTS) >= 256:
            _PARTS.clear()
        _PARTS[key] = tuple(_model_parts(spec))
    return _PARTS[key]


def _model_parts(spec: ModelSpec) -> list[Part]:
    last = spec.num_layers
    parts = [Part("embedding", -1, "tp", embedding_params(spec))]
    for layer in range(spec.num_layers):
        parts += layer_parts(spec, layer)
    parts.append(Part("norms", last, "replicated", norm_params(spec)))
    if lm_head_params(spec):
        parts.append(Part("lm_head", last, "tp", lm_head_params(spec)))
    return parts


def apportion(total: int, weights: list[int]) -> list[int]:
    """Integer shares of ``total`` in proportion to ``weights``, by cumulative floors, so they sum to total."""
    whole, shares, running, before = sum(weights), [], 0, 0
    for weight in weights:
        running += weight
        upto = total * running // whole
        shares.append(upto - before)
        before = upto
    return shares


def _share(amount: int, parts: int, index: int) -> int:
    """Rank ``index``'s piece of ``amount`` split into ``parts`` near-equal integers (the first get the remainder)."""
    return amount // parts + (index < amount % parts)


def placed_amounts(spec: ModelSpec, amounts: Mapping[str, int], pp: int) -> list[tuple[Part, int, int]]:
    """(part, its amount, its stage) for every part. Component totals are spread over their parts by
    parameters. With tied embeddings and pp > 1 the last stage holds its own copy of the table as lm_head
    (vLLM and Megatron both do), so the per-rank sum then exceeds the total by that copy."""
    parts = model_parts(spec)
    stages = stage_layers(spec.num_layers, pp)
    stage_of = {layer: s for s, layers in enumerate(stages) for layer in layers} | {-1: 0, spec.num_layers: pp - 1}
    placed = []
    for component in COMPONENTS:
        own = [p for p in parts if p.component == component]
        if not own:
            continue
        for part, amount in zip(own, apportion(amounts.get(component, 0), [p.params for p in own])):
            placed.append((part, amount, stage_of[part.position]))
    if spec.tie_word_embeddings and pp > 1:
        table = next((p, a) for p, a, _ in placed if p.component == "embedding")
        placed.append((table[0]._replace(component="lm_head", position=spec.num_layers), table[1], pp - 1))
    return placed


def rank_amount(part: Part, amount: int, spec: ModelSpec, layout: Layout, tp_rank: int, dp_rank: int) -> int:
    """What one rank (of a stage holding the part) holds of a part's amount."""
    tp = layout.tp
    if part.split == "replicated":
        return amount
    if part.split == "tp":
        return _share(amount, tp, tp_rank)
    if part.split == "kv":
        heads = spec.attention.kv_heads
        return _share(amount, tp, tp_rank) if heads >= tp else _share(amount, heads, tp_rank // (tp // heads))
    flat = dp_rank * tp + tp_rank  # expert ranks: ETP innermost, then EP, then expert replicas
    etp = layout.expert_tp
    on_ep_rank = _share(amount, layout.ep, (flat // etp) % layout.ep)
    return _share(on_ep_rank, etp, flat % etp) if part.split == "expert" else on_ep_rank


def _held(spec: ModelSpec, amounts: Mapping[str, int], layout: Layout, stage: int, tp_rank: int, dp_rank: int):
    for part, amount, where in placed_amounts(spec, amounts, layout.pp):
        if where == stage:
            yield part, rank_amount(part, amount, spec, layout, tp_rank, dp_rank)


def rank_amounts(spec: ModelSpec, amounts: Mapping[str, int], layout: Layout, stage: int, tp_rank: int, dp_rank: int) -> dict[str, int]:
    """Per component, what GPU (stage, tp_rank, dp_rank) holds of ``amounts`` (bytes or parameters)."""
    held = dict.fromkeys(COMPONENTS, 0)
    for part, amount in _held(spec, amounts, layout, stage, tp_rank, dp_rank):
        held[part.component] += amount
    return held


def rank_layer_amounts(spec: ModelSpec, amounts: Mapping[str, int], layout: Layout, stage: int, tp_rank: int, dp_rank: int) -> dict[int, int]:
    """Per position (layer; -1 embedding; num_layers lm_head and final norm), what the GPU holds."""
    held: dict[int, int] = {}
    for part, amount in _held(spec, amounts, layout, stage, tp_rank, dp_rank):
        held[part.position] = held.get(part.position, 0) + amount
    return held


def most_loaded_rank(spec: ModelSpec, amounts: Mapping[str, int], layout: Layout, stage: int) -> tuple[int, int, dict[str, int]]:
    """(tp_rank, dp_rank, per-component amounts) of the rank of ``stage`` holding the most.

    Ranks of a stage differ only by integer remainders and, under KV-head replication, by which head
    they hold; the non-expert share depends on the TP rank alone and the expert share on the expert rank.
    """
    placed = [(p, a) for p, a, where in placed_amounts(spec, amounts, layout.pp) if where == stage]
    tp, etp = layout.tp, layout.expert_tp
    dense = [sum(rank_amount(p, a, spec, layout, r, 0) for p, a in placed if not p.split.startswith("expert")) for r in range(tp)]
    expert = {}
    for flat in range(layout.ep * etp):  # flat = expert rank × etp + etp rank, as with dp_rank 0
        expert[flat] = sum(rank_amount(p, a, spec, layout, flat % tp, flat // tp) for p, a in placed if p.split.startswith("expert"))
    best = max(range(tp * layout.dp), key=lambda flat: dense[flat % tp] + expert[flat % (layout.ep * etp)])
    tp_rank, dp_rank = best % tp, best // tp
    return tp_rank, dp_rank, rank_amounts(spec, amounts, layout, stage, tp_rank, dp_rank)
