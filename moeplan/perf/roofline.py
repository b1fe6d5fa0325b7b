"""What the training-speed and offload models share from moeplan's first speed model: a calibration's
efficiencies (Efficiency), the terms of a step (StepTime, Bound), the dense peak of the expert format, the ring
all-reduce and expert-parallel all-to-all time of a stage, and the share of routed experts a step touches.
Serving speed (expected and bound) is moeplan.perf.speed; see docs/formulas.md §Speed.
"""

import math
from typing import Literal

from pydantic import BaseModel

from moeplan.accounting.weights import WeightMemory
from moeplan.hardware.catalogue import GPUSpec
from moeplan.layout.parallel import Layout
from moeplan.spec.deployment import Deployment
from moeplan.spec.model import ModelSpec
from moeplan.perf.experts import busiest_rank_experts
from moeplan.traffic.alltoall import spec_all_to_all_traffic
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
