"""The speed-of-light bound: time of one decode step and one prefill chunk on the most-loaded GPU.

Each stage's time is max(bytes moved / HBM bandwidth, FLOPs / peak) plus the communication it cannot hide
(tensor-parallel all-reduces and expert-parallel all-to-alls over the layout's links). The bound named for
a stage is the largest of the three terms. No real step is faster; moeplan.perf.speed gives the expected time.
See docs/formulas.md §Speed, "Roofline bound".
"""

import math
from typing import Literal

from pydantic import BaseModel

from moeplan.accounting.flops import FlopsPerToken
from moeplan.accounting.memory import MemoryReport
from moeplan.accounting.weights import WeightMemory
from moeplan.hardware.catalogue import GPUSpec
from moeplan.layout.parallel import Layout
from moeplan.spec.deployment import Deployment
from moeplan.spec.model import ModelSpec
from moeplan.traffic.alltoall import spec_all_to_all_traffic
from moeplan.perf.experts import busiest_rank_experts
from moeplan.traffic.routing import routing_estimate

Bound = Literal["memory", "compute", "communication"]

ACTIVATION_BYTES = 2
"""Activations cross the links in bf16."""
COLLECTIVE_LATENCY_S = 10e-6
"""Fixed cost α of one all-reduce or all-to-all inside a node (NCCL's small-message latency on NVLink is 5–20 µs)."""


class Efficiency(BaseModel):
    """Fractions of the catalogue peaks a GPU reaches; 1.0 is the pure roofline. A profile calibration sets them."""

    hbm: float = 1.0
    gemm: float = 1.0
    link: float = 1.0
    pcie: float = 1.0
    collective_latency_s: float = COLLECTIVE_LATENCY_S
    measured_on: str | None = None
    """The GPU a calibration was measured on (None: catalogue peaks)."""


class StepTime(BaseModel):
    """One step of one pipeline stage on its most-loaded GPU."""

    tokens: int
    """Tokens the step processes per data-parallel replica."""
    bytes_read: int
    """HBM bytes moved: weights touched, KV cache read or written."""
    flops: float
    memory_s: float
    compute_s: float
    communication_s: float
    """Tensor-parallel all-reduces plus expert-parallel all-to-alls, not overlapped."""
    time_s: float
    """max(memory_s, compute_s) + communication_s."""
    bound: Bound


class Roofline(BaseModel):
    """The roofline bound of the deployment."""

    decode: StepTime
    prefill: StepTime
    decode_tokens_per_s: float
    """Output tokens per second of the whole deployment (batch × dp per time per output token)."""
    time_per_output_token_s: float
    prefill_tokens_per_s: float
    """Prompt tokens per second of the whole deployment."""
    ttft_s: float
    """Time to first token of one sequence of `context` tokens (its prefill chunks, one after another)."""
    bound: Bound
    """The decode bound."""
    experts_touched_per_layer: float
    """Distinct routed experts one decode step reads per MoE layer on the busiest expert-parallel rank (the tokens of
    the replicas that one copy of the experts serves)."""
    assumptions: list[str]


def peak_flops(gpu: GPUSpec, weights: WeightMemory) -> float:
    """FP8 peak when the experts are stored in fp8 and the GPU has FP8 tensor cores, else BF16."""
    if weights.formats.get("routed_experts", "").startswith("fp8") and gpu.fp8_flops_per_s:
        return gpu.fp8_flops_per_s
    return gpu.bf16_flops_per_s


def tp_allreduce_time_s(tokens: int, hidden: int, tp: int, link_bytes_per_s: float, latency_s: float) -> float:
    """One ring all-reduce of tokens × hidden bf16 activations over tp GPUs: 2·(tp−1)/tp × message bytes per GPU
    over the per-direction link bandwidth, plus the latency α (0 when tp = 1)."""
    if tp == 1:
        return 0.0
    return 2 * (tp - 1) / tp * tokens * hidden * ACTIVATION_BYTES / link_bytes_per_s + latency_s


def communication_s(spec: ModelSpec, layout: Layout, layers: int, moe_layers: int, tokens: int,
                     deployment: Deployment, gpu: GPUSpec, nic_bytes_per_s: float, eff: Efficiency) -> float:
    """TP all-reduces (after attention, and after each TP-split MLP) and EP all-to-alls of one stage."""
    link = (gpu.link_bytes_per_s_per_direction or gpu.pcie_bytes_per_s_per_direction) * eff.link
    split_mlps = layers - moe_layers + (moe_layers if layout.ep == 1 else 0)
    reduces = layers + split_mlps
    total = reduces * tp_allreduce_time_s(tokens, spec.hidden_size, layout.tp, link, eff.collective_latency_s)
    if layout.ep > 1 and moe_layers:
        per_rank_tokens = math.ceil(tokens / layout.tp)  # a replica's tokens are dispatched by its tp GPUs in slices
        traffic = spec_all_to_all_traffic(spec, layout.ep, per_rank_tokens, deployment.a2a_mode, deployment.dispatch_dtype,
                                          deployment.gpus_per_node)
        intra = traffic.per_layer_bytes_per_rank - 2 * traffic.inter_node_bytes_per_rank
        inter = 2 * traffic.inter_node_bytes_per_rank
        per_layer = max(intra / link, inter / nic_bytes_per_s) + 2 * eff.collective_latency_s
        total += moe_layers * per_layer
    return total


def _step(tokens: int, bytes_read: float, flops: float, communication_s: float, gpu: GPUSpec, peak: float, eff: Efficiency) -> StepTime:
    memory_s = bytes_read / (gpu.hbm_bytes_per_s * eff.hbm)
    compute_s = flops / (peak * eff.gemm)
    terms = {"memory": memory_s, "compute": compute_s, "communication": communication_s}
    return StepTime(tokens=tokens, bytes_read=int(bytes_read), flops=flops, memory_s=memory_s, compute_s=compute_s,
                    communication_s=communication_s, time_s=max(memory_s, compute_s) + communication_s,
                    bound=max(terms, key=terms.get))


def expert_groups(spec: ModelSpec) -> tuple[int, int] | None:
    """(groups, groups a token picks) under node-limited routing, else None."""
    moe = spec.moe
    return (moe.num_expert_groups, moe.topk_groups) if moe.topk_groups < moe.num_expert_groups else None


def touched_fraction(spec: ModelSpec, tokens: int, deployment: Deployment, ep: int = 1) -> float:
    """Share of a GPU's routed-expert weights one step reads: distinct experts touched on the busiest of the ep
    ranks by ``tokens`` routed tokens, over the E/ep experts a rank holds (uniform routing: closed form;
    skewed: the mean rank of the seeded simulation)."""
    if not spec.moe:
        return 1.0
    moe = spec.moe
    if deployment.routing == "uniform":
        return busiest_rank_experts(moe.num_experts, moe.top_k, tokens, ep, expert_groups(spec)) * ep / moe.num_experts
    return routing_estimate(moe.num_experts, moe.top_k, batch=tokens, tokens=tokens, distribution=deployment.routing,
                            groups=expert_groups(spec)).experts_touched_fraction


def lookup_bytes(spec: ModelSpec, held: dict[str, int], tokens: int, last_stage: bool) -> float:
    """Embedding bytes a step of ``tokens`` tokens reads: one row per token of the rows this GPU holds (the input
    embedding is a lookup), or the whole table when a tied embedding is also this GPU's lm_head."""
    table = held.get("embedding", 0)
    if spec.tie_word_embeddings and last_stage and not held.get("lm_head", 0):
        return table
    return table * min(1.0, tokens / spec.vocab_size)


def roofline(spec: ModelSpec, deployment: Deployment, layout: Layout, gpu: GPUSpec, weights: WeightMemory,
             memory: MemoryReport, flops: FlopsPerToken, nic_bytes_per_s: float, eff: Efficiency | None = None) -> Roofline:
    """Decode and prefill roofline of the most-loaded GPU, and the deployment's tokens/s."""
    eff = eff or Efficiency()
    worst = memory.most_loaded
    held = worst.weights_by_component_bytes
    experts = held.get("routed_experts", 0)
    layers = worst.last_layer - worst.first_layer + 1
    moe_layers = sum(spec.is_moe_layer(i) for i in range(worst.first_layer, worst.last_layer + 1))
    peak = peak_flops(gpu, weights)
    share = layout.tp * layout.pp  # one GPU does 1/tp of a replica's work in 1/pp of the layers
    batch, chunk = deployment.batch, min(deployment.prefill_chunk, deployment.context)

    group_tokens = batch * layout.replicas_per_expert_group  # tokens one copy of the experts serves per step
    touched = touched_fraction(spec, group_tokens, deployment, layout.ep)
    last = worst.stage == layout.pp - 1
    dense = sum(held.values()) - experts - held.get("embedding", 0)
    decode = _step(
        batch,
        dense + lookup_bytes(spec, held, batch * layout.tp, last) + experts * touched + worst.kv_cache_bytes,
        flops.decode_per_token * batch / share,
        communication_s(spec, layout, layers, moe_layers, batch, deployment, gpu, nic_bytes_per_s, eff),
        gpu, peak, eff,
    )
    kv_written = worst.kv_cache_bytes / max(batch, 1) / deployment.context * chunk
    prefill = _step(
        chunk,
        dense + lookup_bytes(spec, held, chunk * layout.tp, last)
        + experts * touched_fraction(spec, chunk * layout.replicas_per_expert_group, deployment, layout.ep) + kv_written,
        flops.prefill_per_token * chunk / share,
        communication_s(spec, layout, layers, moe_layers, chunk, deployment, gpu, nic_bytes_per_s, eff),
        gpu, peak, eff,
    )
    tpot = layout.pp * decode.time_s
    prefill_chunk_s = layout.pp * prefill.time_s
    return Roofline(
        decode=decode, prefill=prefill,
        decode_tokens_per_s=batch * layout.dp / tpot, time_per_output_token_s=tpot,
        prefill_tokens_per_s=chunk * layout.dp / prefill_chunk_s,
        ttft_s=math.ceil(deployment.context / chunk) * prefill_chunk_s,
        bound=decode.bound, experts_touched_per_layer=touched * spec.num_experts / layout.ep,
        assumptions=_assumptions(layout, peak, gpu, eff, nic_bytes_per_s, deployment),
    )


def _assumptions(layout: Layout, peak: float, gpu: GPUSpec, eff: Efficiency, nic: float, deployment: Deployment) -> list[str]:
    calibrated = [f"efficiencies measured on {eff.measured_on} (moeplan profile calibration)"] if eff.measured_on else []
    if eff.measured_on and eff.measured_on != gpu.name:
        calibrated.append(f"warning: the calibration was measured on {eff.measured_on}, not on {gpu.name}")
    return [
        *calibrated,
        f"roofline at {eff.hbm:.0%} of {gpu.hbm_bytes_per_s / 1e12:.2f} TB/s HBM and {eff.gemm:.0%} of {peak / 1e12:,.0f} TFLOP/s dense peak",
        "a step takes max(memory, compute) plus communication (no overlap of communication with compute)",
        f"all-reduce and all-to-all over {(gpu.link_bytes_per_s_per_direction or gpu.pcie_bytes_per_s_per_direction) * eff.link / 1e9:,.0f} GB/s "
        f"per direction inside a node, {nic / 1e9:,.0f} GB/s NIC per GPU across nodes, {eff.collective_latency_s * 1e6:.0f} µs per collective",
        f"decode reads every non-expert weight but the embedding (batch rows), the experts the busiest EP rank touches for "
        f"{deployment.batch * layout.replicas_per_expert_group} tokens ({deployment.routing} routing), and the whole KV cache at context {deployment.context}",
        f"pipeline stages run one after another for a token (no micro-batch overlap): time per output token = {layout.pp} × stage time",
        f"prefill in chunks of {min(deployment.prefill_chunk, deployment.context)} tokens; FLOPs spread evenly over a stage's {layout.tp * layout.dp} GPUs",
    ]
