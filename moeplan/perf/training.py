"""Training speed: the time of one optimizer step on the slowest pipeline stage, tokens/s and MFU.

One step trains the global batch = micro-batch × gradient accumulation × dp sequences of `context` tokens.
Each pipeline stage runs the grad_accum micro-batches through a 1F1B schedule, which idles (pp − 1)
micro-batch slots (the bubble, Narayanan et al. 2021 §2.2); then gradients are all-reduced over the data-
parallel replicas and the optimizer updates the weights. A micro-batch slot takes max(compute, HBM) plus the
tensor- and expert-parallel communication of the forward and backward passes, not overlapped; the slowest
stage sets the pace. MFU is the model FLOPs (no recomputation, as PaLM defines it) over step time × GPUs ×
dense BF16 (or FP8) peak.
See docs/formulas.md §Throughput, "Training speed".
"""

from pydantic import BaseModel

from moeplan.accounting.flops import FlopsPerToken, training_flops_per_token
from moeplan.accounting.memory import MemoryReport
from moeplan.accounting.training import (
    ADAM_BYTES, GRAD_BYTES, MASTER_BYTES, PARAM_BYTES, Coefficients, Recompute, activation_bytes, layer_activation,
)
from moeplan.hardware.catalogue import GPUSpec
from moeplan.layout.parallel import Layout
from moeplan.spec.deployment import Deployment
from moeplan.spec.model import ModelSpec
from moeplan.perf.roofline import Bound, Efficiency, communication_s, peak_flops
from moeplan.accounting.weights import WeightMemory


class TrainingSpeed(BaseModel):
    """One optimizer step of the whole deployment, timed on its most-loaded GPU. Seconds, FLOPs, tokens."""

    micro_batch: int
    """Sequences per micro-batch and data-parallel replica (--batch)."""
    grad_accum: int
    global_batch: int
    """Sequences per optimizer step: micro_batch × grad_accum × dp."""
    tokens_per_step: int
    """global_batch × context."""
    model_flops_per_step: float
    """FLOPs of forward and backward without recomputation, whole deployment (MFU's numerator)."""
    hardware_flops_per_step: float
    """With the recomputation the deployment uses."""
    micro_batch_compute_s: float
    micro_batch_memory_s: float
    """HBM: weights read forward and backward, gradients accumulated (read and written), and one micro-batch's
    activations written and read (micro_batch_activation_traffic_bytes)."""
    micro_batch_communication_s: float
    """Tensor-parallel all-reduces and expert-parallel all-to-alls of forward, backward and any recomputed forward."""
    micro_batch_s: float
    """max(compute, memory) + communication of one micro-batch on one stage."""
    bubble_s: float
    """(pp − 1) idle micro-batch slots of the 1F1B schedule."""
    gradient_allreduce_s: float
    """Ring all-reduce of the stage's gradients over dp (dense parts) and the expert replicas (routed experts)."""
    optimizer_s: float
    """Adam update: parameters, gradients and optimizer states read, parameters and states written, at HBM speed."""
    step_s: float
    tokens_per_s: float
    mfu: float
    """Model FLOPs utilisation: model_flops_per_step / (step_s × GPUs × peak)."""
    peak_flops_per_s: float
    bound: Bound
    """The largest of the step's compute, memory and communication time."""
    assumptions: list[str]


def _ring_allreduce_s(message_bytes: float, ranks: int, bytes_per_s: float, latency_s: float) -> float:
    """2·(n−1)/n × message bytes over the per-direction bandwidth, plus α (0 for one rank)."""
    if ranks == 1 or not message_bytes:
        return 0.0
    return 2 * (ranks - 1) / ranks * message_bytes / bytes_per_s + latency_s


def micro_batch_activation_traffic_bytes(spec: ModelSpec, layers: range, recompute: Recompute, batch: int,
                                         context: int, tp: int) -> int:
    """HBM bytes one micro-batch's activations move on one stage: what a layer keeps (Korthikanti et al.'s
    per-layer bytes, layer_activation) is written in forward and read in backward. Selective and full
    recomputation write and read the discarded part again in the recomputed forward, and full recomputation also
    writes and reads its layer-input checkpoints, so traffic = 2·A_none (+ 2·A_full with 'full'): recomputation
    never moves fewer bytes. One micro-batch, not the 1F1B in-flight peak the memory report holds."""

    def stage(kind: Recompute) -> int:
        total = Coefficients(0, 0)
        for layer in layers:
            total += layer_activation(spec, layer, kind)
        return activation_bytes(total, batch, context, tp)

    return 2 * stage("none") + (2 * stage("full") if recompute == "full" else 0)


def training_speed(spec: ModelSpec, deployment: Deployment, layout: Layout, gpu: GPUSpec, weights: WeightMemory,
                   memory: MemoryReport, flops: FlopsPerToken, eff: Efficiency | None = None) -> TrainingSpeed:
    """Step time, tokens/s and MFU of a training deployment (its memory report in training mode)."""
    eff = eff or Efficiency()
    d = deployment
    seq, micro, accum = d.context, d.batch, d.grad_accum
    tokens = micro * seq  # per replica and micro-batch
    peak = peak_flops(gpu, weights)
    share = layout.tp * layout.pp  # one GPU does 1/tp of a replica's work in 1/pp of the layers

    compute = flops.training_per_token * tokens / share / (peak * eff.gemm)
    hbm = gpu.hbm_bytes_per_s * eff.hbm
    passes = 3 if d.recompute == "full" else 2  # forward, backward (its collectives mirror the forward's), recomputed forward

    def stage_micro_batch(stage) -> tuple[float, float]:
        """(HBM, communication) seconds of one micro-batch on this stage's most-loaded GPU."""
        held = stage.weights_by_component_bytes  # bf16 parameters of this rank, before ZeRO sharding
        layers = range(stage.first_layer, stage.last_layer + 1)
        moved = (2 * sum(held.values()) + 2 * sum(held.values()) // PARAM_BYTES * GRAD_BYTES[d.grad_dtype]
                 + micro_batch_activation_traffic_bytes(spec, layers, d.recompute, micro, seq, layout.tp))
        moe_layers = sum(spec.is_moe_layer(i) for i in layers)
        comm = passes * communication_s(spec, layout, len(layers), moe_layers, tokens, d, gpu, d.nic_gb_s * 1e9, eff)
        return moved / hbm, comm

    # the pipeline runs at its slowest stage
    times = {id(stage): stage_micro_batch(stage) for stage in memory.stages}
    worst = max(memory.stages, key=lambda stage: max(compute, times[id(stage)][0]) + times[id(stage)][1])
    memory_s, comm = times[id(worst)]
    micro_s = max(compute, memory_s) + comm
    bubble = (layout.pp - 1) * micro_s
    held = worst.weights_by_component_bytes
    params = sum(held.values()) // PARAM_BYTES
    gradient_bytes = params * GRAD_BYTES[d.grad_dtype]

    spans_nodes = layout.num_gpus > d.gpus_per_node
    link = (gpu.link_bytes_per_s_per_direction or gpu.pcie_bytes_per_s_per_direction) * eff.link
    bandwidth = min(link, d.nic_gb_s * 1e9) if spans_nodes else link
    expert_grad = held.get("routed_experts", 0) // PARAM_BYTES * GRAD_BYTES[d.grad_dtype]
    allreduce = (_ring_allreduce_s(gradient_bytes - expert_grad, layout.dp, bandwidth, eff.collective_latency_s)
                 + _ring_allreduce_s(expert_grad, layout.expert_replicas, bandwidth, eff.collective_latency_s))
    state = MASTER_BYTES + ADAM_BYTES
    optimizer = (params * (2 * PARAM_BYTES + GRAD_BYTES[d.grad_dtype] + 2 * state)) / hbm

    step = accum * micro_s + bubble + allreduce + optimizer
    global_batch = micro * accum * layout.dp
    step_tokens = global_batch * seq
    model_flops = training_flops_per_token(spec, seq, "none") * step_tokens
    terms = {"memory": accum * memory_s + optimizer, "compute": accum * compute, "communication": accum * comm + allreduce}
    return TrainingSpeed(
        micro_batch=micro, grad_accum=accum, global_batch=global_batch, tokens_per_step=step_tokens,
        model_flops_per_step=model_flops, hardware_flops_per_step=flops.training_per_token * step_tokens,
        micro_batch_compute_s=compute, micro_batch_memory_s=memory_s, micro_batch_communication_s=comm,
        micro_batch_s=micro_s, bubble_s=bubble, gradient_allreduce_s=allreduce, optimizer_s=optimizer, step_s=step,
        tokens_per_s=step_tokens / step, mfu=model_flops / (step * layout.num_gpus * peak), peak_flops_per_s=peak,
        bound=max(terms, key=terms.get),
        assumptions=[
            f"training step: {accum} micro-batches through a 1F1B pipeline of {layout.pp} stage(s), then the gradient "
            "all-reduce and the Adam update, none overlapped (an upper bound on the step time)",
            f"MFU: model FLOPs (3 × forward, no recomputation) over step time × {layout.num_gpus} GPUs × "
            f"{peak / 1e12:,.0f} TFLOP/s dense peak",
        ],
    )
