"""The time of one engine step on the busiest GPU of a pipeline stage, operation by operation.

Plain arithmetic over a StepShape whose fields are Python floats (one layout) or numpy arrays (many layouts);
the few other functions come from a namespace (moeplan.namespace), so `moeplan estimate` and
`moeplan plan` evaluate this one formula. Each operation takes max(bytes / achieved HBM rate,
FLOPs / achieved tensor rate of its format); GEMMs pay their rows rounded up to the tile, grouped expert
GEMMs per expert; collectives take α + bytes/β; every kernel costs a fixed launch time and every step a
host overhead. Nothing overlaps. With ideal constants (BOUND) the same ops give the speed-of-light bound.
See docs/formulas.md §Speed.
"""

from typing import Any, NamedTuple

from moeplan.perf.constants import PerfConstants

OPS = ("attention_proj", "attention", "router", "routed_experts", "mlp", "lm_head", "embedding", "elementwise",
       "tp_all_reduce", "ep_dispatch_combine", "kernel_launches", "host_overhead")
"""Operations of a step, in the order the breakdown lists them. mlp: dense MLPs and shared experts."""

ACTIVATION_BYTES = 2
"""Activations are bf16 between operations and on the links."""

BOUND = PerfConstants(hbm_fraction=1, gemm_fraction=1, gemm_tile_rows=1, kernel_s=0, eager_kernel_s=0, step_overhead_s=0,
                      request_overhead_s=0, elementwise_passes=0, link_fraction=1, collective_latency_s=0, collective_hop_latency_s=0,
                      expert_dispatch_latency_s=0, expert_link_fraction=1, expert_normal_latency_s=0,
                      expert_normal_link_fraction=1, inter_node_latency_s=0)
"""Constants of the speed-of-light bound: catalogue peaks, no padding, no fixed costs, no latency."""


class StepShape(NamedTuple):
    """What one step does on the busiest GPU of a stage. Every field is a float or an array of one per layout."""

    tp: Any
    ep: Any
    etp: Any
    group_replicas: Any
    """Replicas whose tokens one copy of the experts serves (Layout.replicas_per_expert_group)."""
    decode: Any
    """Sequences that produce a token this step (each runs 1 + mtp tokens)."""
    prefill: Any
    """Prompt tokens the step carries."""
    mtp: Any
    experts_touched: Any
    """Distinct experts the busiest EP rank runs per MoE layer."""
    expert_rows: Any
    """(token, expert) assignments the busiest EP rank runs per MoE layer."""
    dispatch_imbalance: Any
    """The busiest EP rank's received copies over the mean rank's: 1 for uniform routing, the simulated ratio for skew."""
    attention_layers: Any
    moe_layers: Any
    mlp_layers: Any
    """Layers with a dense MLP or shared experts."""
    layers: Any
    mixer_bytes: Any
    """Attention (and other sequence-mixer) projection weights of the stage on this GPU."""
    mlp_bytes: Any
    """Dense-MLP and shared-expert weights of the stage on this GPU."""
    expert_bytes: Any
    """Routed-expert weights of the stage on this GPU."""
    router_bytes: Any
    lm_head_bytes: Any
    """lm_head weights this GPU reads (0 off the last stage; a tied table counts here)."""
    embedding_bytes: Any
    """The embedding rows this GPU holds and looks up in (0 when the table is read whole as lm_head)."""
    mixer_params: Any
    """Matmul parameters of the stage's mixer projections (all TP ranks together)."""
    mlp_params: Any
    router_params: Any
    expert_params: Any
    """Routed-expert parameters of the stage (all experts, all ranks)."""
    lm_head_params: Any
    kv_context_bytes: Any
    """What one decode step reads of one sequence's cache of the stage on this GPU at the decode context (all of it;
    DeepSeek sparse attention: the selected tokens' latents and every indexer key)."""
    kv_token_bytes: Any
    """One token's cache of the stage on this GPU (written per token)."""
    decode_attention_flops: Any
    """Score and value FLOPs of one decode token over the stage (all heads; MLA absorbed)."""
    prefill_attention_flops: Any
    """Score and value FLOPs of one prompt token over the stage (all heads; causal mean)."""
    num_experts: Any
    vocab: Any
    hidden: Any
    dispatch_width: Any
    """Values per dispatched token copy: H, or the latent width of a latent MoE (Nemotron-3-Super dispatches its
    tokens after the down-projection)."""
    top_k: Any
    dispatch_bytes: Any
    """Bytes per element of the dispatch payload (combine is bf16)."""
    hbm_bytes_per_s: Any
    mixer_peak: Any
    mlp_peak: Any
    expert_peak: Any
    lm_head_peak: Any
    bf16_peak: Any
    link_bytes_per_s: Any
    nic_bytes_per_s: Any
    gpus_per_node: Any
    cuda_graphs: Any


def all_reduce_s(ns, message_bytes, gpus, link_bytes_per_s, nic_bytes_per_s, gpus_per_node, c: PerfConstants):
    """Ring all-reduce of message_bytes over ``gpus`` GPUs: α + (gpus − 1)·α_hop + 2(gpus − 1)/gpus · bytes / β,
    β the achieved link rate (the NIC with α_inter when the ring leaves the node); 0 on one GPU."""
    inter = gpus > gpus_per_node
    beta = ns.where(inter, nic_bytes_per_s, link_bytes_per_s * c.link_fraction)
    alpha = ns.where(inter, c.inter_node_latency_s, c.collective_latency_s) + (gpus - 1) * c.collective_hop_latency_s
    return ns.where(gpus > 1, alpha + 2 * (gpus - 1) / gpus * message_bytes / beta, 0.0)


def dispatch_combine_s(ns, s: StepShape, tokens, c: PerfConstants):
    """One MoE layer's expert-parallel dispatch and combine (DeepEP) of each GPU's tokens / tp slice of the replica's
    tokens; the (ep − 1)/ep of the copies that leave the GPU cross the link, the share bound for other nodes the NIC,
    plus 2α. A decode-only step runs low-latency mode: k copies per token, dispatch at dispatch_bytes, combine in
    bf16. A step carrying prompts runs normal mode: one bf16 copy per token and destination rank, ep·(1 − (1 − 1/ep)^k)."""
    decode_only = s.prefill == 0
    ranks = s.ep * (1 - (1 - 1 / s.ep) ** s.top_k)
    copies = ns.where(decode_only, s.top_k * (s.dispatch_bytes + ACTIVATION_BYTES), ranks * 2 * ACTIVATION_BYTES)
    remote = tokens / s.tp * copies * s.hidden * (s.ep - 1) / s.ep * s.dispatch_imbalance  # the busiest rank's
    fraction = ns.where(decode_only, c.expert_link_fraction, c.expert_normal_link_fraction)
    inter_share = ns.max(s.ep - s.gpus_per_node, 0) / s.ep
    intra_s = remote * (1 - inter_share) / (s.link_bytes_per_s * fraction)
    inter_s = remote * inter_share / s.nic_bytes_per_s
    alpha = ns.where(s.ep > s.gpus_per_node, c.inter_node_latency_s,
                     ns.where(decode_only, c.expert_dispatch_latency_s, c.expert_normal_latency_s))
    return 2 * alpha + ns.max(intra_s, inter_s)


def step_ops(ns, s: StepShape, c: PerfConstants) -> dict[str, Any]:
    """Seconds per operation of one step (the keys of OPS), their sum ("total"), and the step's totals of bytes
    over achieved HBM rate ("memory_s"), FLOPs over achieved peak ("compute_s") and collectives ("communication_s")."""
    hbm = s.hbm_bytes_per_s * c.hbm_fraction
    tile = c.gemm_tile_rows
    tokens = s.decode * (1 + s.mtp) + s.prefill
    rows = ns.ceil(tokens / tile) * tile
    read, work, compute = {}, {}, {}

    def op(name, read_bytes, flops, peak):
        read[name], work[name], compute[name] = read_bytes, flops, flops / (peak * c.gemm_fraction)
        return ns.max(read_bytes / hbm, compute[name])

    touched = ns.max(s.experts_touched, 1e-9)
    expert_rows = touched * tile * ns.ceil(s.expert_rows / (touched * tile))  # each expert's rows padded to the tile
    lm_rows = ns.ceil(s.decode * (1 + s.mtp) / tile) * tile
    kv = s.decode * s.kv_context_bytes + tokens * s.kv_token_bytes
    attention_flops = (s.decode * (1 + s.mtp) * s.decode_attention_flops + s.prefill * s.prefill_attention_flops) / s.tp
    ops = {
        "attention_proj": op("attention_proj", s.mixer_bytes, 2 * s.mixer_params / s.tp * rows, s.mixer_peak),
        "attention": op("attention", kv, attention_flops, s.bf16_peak),
        "router": op("router", s.router_bytes, 2 * s.router_params * rows, s.bf16_peak),
        "routed_experts": op("routed_experts", s.expert_bytes * s.experts_touched / (s.num_experts / s.ep),
                             2 * s.expert_params / s.num_experts / s.etp * expert_rows, s.expert_peak),
        "mlp": op("mlp", s.mlp_bytes, 2 * s.mlp_params / s.tp * rows, s.mlp_peak),
        "lm_head": op("lm_head", s.lm_head_bytes, 2 * s.lm_head_params / s.tp * lm_rows, s.lm_head_peak),
        "embedding": op("embedding", s.embedding_bytes * ns.min(1.0, tokens * s.tp / s.vocab), 0.0, s.bf16_peak),
        "elementwise": op("elementwise", (c.elementwise_passes * tokens * s.layers  # and the gather/scatter of expert rows
                                          + (2 * s.expert_rows * s.moe_layers if c.elementwise_passes else 0))
                          * s.hidden * ACTIVATION_BYTES, 0.0, s.bf16_peak),
    }
    spans = s.group_replicas > 1  # the experts serve several replicas: their tokens move between GPUs
    reduces = s.layers + (s.layers - s.moe_layers) + ns.where(spans, 0, s.moe_layers)  # after every mixer and MLP
    message = tokens * s.hidden * ACTIVATION_BYTES
    ops["tp_all_reduce"] = reduces * all_reduce_s(ns, message, s.tp, s.link_bytes_per_s, s.nic_bytes_per_s, s.gpus_per_node, c)
    # EP > 1: DeepEP dispatch and combine; expert TP alone over replicas: all-gather + reduce-scatter of their
    # tokens over the etp GPUs, as much traffic as an all-reduce of the gathered message
    gathered = all_reduce_s(ns, message * s.group_replicas, s.etp, s.link_bytes_per_s, s.nic_bytes_per_s, s.gpus_per_node, c)
    moe_comm = ns.where(s.ep > 1, dispatch_combine_s(ns, s, tokens, c), gathered)
    ops["ep_dispatch_combine"] = ns.where(spans, s.moe_layers * moe_comm, 0.0)
    kernels = (4 * s.attention_layers + 3 * s.mlp_layers + 6 * s.moe_layers + 2 * s.layers
               + ns.where(s.tp > 1, reduces, 0) + ns.where(spans, 2 * s.moe_layers, 0) + 4 * (s.lm_head_bytes > 0))
    ops["kernel_launches"] = kernels * ns.where(s.cuda_graphs, c.kernel_s, c.eager_kernel_s)
    ops["host_overhead"] = c.step_overhead_s + 0 * tokens
    ops["total"] = sum(ops[name] for name in OPS)
    ops["bytes"] = sum(read.values())
    ops["flops"] = sum(work.values())
    ops["memory_s"] = ops["bytes"] / hbm
    ops["compute_s"] = sum(compute.values())
    ops["communication_s"] = ops["tp_all_reduce"] + ops["ep_dispatch_combine"]
    return ops
