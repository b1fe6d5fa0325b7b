"""The report of ``moeplan estimate``: one pydantic model, printed as a rich report or as JSON."""

from pydantic import Field, ValidationError

from moeplan.accounting.flops import FlopsPerToken, flops_per_token
from moeplan.accounting.memory import MemoryReport, memory_report
from moeplan.accounting.params import ParamCounts, count_params
from moeplan.accounting.weights import WeightMemory, WeightPolicy, weight_memory
from moeplan.errors import SpecError
from moeplan.hardware.catalogue import GPUSpec, load_gpu
from moeplan.layout.parallel import Layout, check_layout, implied_num_gpus
from moeplan.perf.training import TrainingSpeed, training_speed
from moeplan.report.document import Document
from moeplan.report.verdict import Verdict
from moeplan.spec.checkpoint import CheckpointSummary
from moeplan.spec.count_check import index_count_warning, stored_count_warning
from moeplan.spec.deployment import Deployment, check_context
from moeplan.spec.model import ModelSpec
from moeplan.spec.resolve import ResolvedSpec
from moeplan.perf.offload import (check_one_gpu, fewest_n_cpu_moe, host_kv_bytes, most_n_cpu_moe, offload_deployment,
                                  offload_estimate, offload_limits, offload_requested, plan_placement, vram_bytes,
                                  with_offload)
from moeplan.perf.roofline import Efficiency
from moeplan.perf.speed import Throughput, serving_shape, throughput
from moeplan.traffic.alltoall import AllToAllTraffic, spec_all_to_all_traffic
from moeplan.traffic.routing import RankTraffic, RoutingEstimate, routing_estimate, simulate_rank_traffic
from moeplan.units import counted


class EstimateReport(Document):
    """Everything `moeplan estimate` computes; `--json` prints this model. Bytes, FLOPs, seconds, parameters."""

    spec: ModelSpec
    deployment: Deployment
    """The settings the estimate was made for."""
    gpu: GPUSpec
    layout: Layout
    params: ParamCounts
    weights: WeightMemory
    memory: MemoryReport
    flops: FlopsPerToken
    all_to_all: AllToAllTraffic | None
    """Expert-parallel traffic per MoE layer at deployment.tokens_per_rank tokens per rank (None for dense models)."""
    all_to_all_skew: RankTraffic | None = None
    """Mean and bottleneck rank under skewed routing (a seeded simulation), when routing is not uniform."""
    routing: RoutingEstimate | None
    throughput: Throughput
    checkpoint: CheckpointSummary | None = None
    """Stored tensors of a model directory's safetensors files, beside the config-derived count."""
    calibration: str | None = None
    """The profile calibration file whose efficiencies replaced the catalogue peaks."""
    layout_choice: str | None = None
    """How a partial layout or a bare --num-gpus was completed (None when the layout was given whole)."""
    training: TrainingSpeed | None = None
    """Step time, tokens/s and MFU (training mode only)."""
    verdict: Verdict | None = None
    """Fit first: set by `moeplan estimate` (build_verdict)."""
    launch_command: str | None = None
    """`estimate --engine`: the engine's launch command for this deployment (moeplan.engines)."""
    notes: list[str] = Field(default_factory=list)
    """Assumptions and conventions worth reading next to the figures."""
    warnings: list[str] = Field(default_factory=list)
    """What may make the figures wrong (an unknown model_type read as Llama, a checkpoint that stores another
    count than the config reads as): shown first, before the verdict."""


def resolve_layout(spec: ModelSpec, deployment: Deployment, efficiency: Efficiency | None = None) -> tuple[Layout, str | None]:
    """The layout of --tp/--ep/--pp/--dp/--etp and --num-gpus, and how it was completed (None when given whole).

    Sizes that make a valid layout by themselves (unset ones 1) on --num-gpus GPUs are taken as given. Otherwise
    `moeplan plan`'s search, on --num-gpus GPUs (else ``implied_num_gpus``: EP GPUs carved out of tp × dp) with
    the given sizes held, picks the best layout by plan's default objective, or the one needing the least memory
    when none fits. Without any size or GPU count: 1 GPU.
    """
    given = {k: getattr(deployment, k) for k in ("tp", "ep", "pp", "dp", "etp") if getattr(deployment, k) is not None}
    if not given and deployment.num_gpus in (None, 1):
        return Layout(), None
    try:
        literal = Layout(**given)
    except ValidationError:
        literal = None
    if given and literal is not None and deployment.num_gpus in (None, literal.num_gpus):
        return check_layout(spec, literal), None
    gpus = deployment.num_gpus or implied_num_gpus(given)
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in {**given, "num_gpus": deployment.num_gpus}.items() if v)
    from moeplan.plan.search import search  # numpy: loaded only when a layout is searched

    try:
        plan = search(ResolvedSpec(spec=spec), deployment.model_copy(update={"num_gpus": gpus}), gpus, efficiency=efficiency, keep=1)
    except SpecError:
        raise SpecError(f"invalid deployment {flags}: no layout of {spec.name} on {gpus} GPUs holds these sizes "
                        "(GPUs = tp × pp × dp; ep × etp must divide tp × dp; see `moeplan plan`)") from None
    row = plan.layouts[0] if plan.layouts else plan.closest
    layout = Layout(tp=row.tp, ep=row.ep, pp=row.pp, dp=row.dp, etp=None if row.etp == (row.tp if row.ep == 1 else 1) else row.etp)
    chosen = "the highest tokens/s per GPU" if plan.layouts else "none fits, so the least memory per GPU"
    return layout, f"{flags}: {layout.sizes()}, {chosen} of the {counted(plan.evaluated, 'layout')} on {gpus} GPUs (`moeplan plan`'s search)"


def _gpu(deployment: Deployment) -> GPUSpec:
    overrides = {"memory_gib": deployment.gpu_memory_gib, "hbm_tb_s": deployment.gpu_hbm_tb_s,
                 "bf16_tflops": deployment.gpu_bf16_tflops, "link_gb_s": deployment.gpu_link_gb_s}
    return load_gpu(deployment.gpu, overrides)


def _traffic(spec: ModelSpec, d: Deployment, layout: Layout) -> tuple[AllToAllTraffic | None, RankTraffic | None, RoutingEstimate | None]:
    if spec.moe is None:
        return None, None, None
    moe = spec.moe
    groups = (moe.num_expert_groups, moe.topk_groups) if moe.topk_groups < moe.num_expert_groups else None
    traffic = spec_all_to_all_traffic(spec, layout.ep, d.tokens_per_rank, d.a2a_mode, d.dispatch_dtype, d.gpus_per_node)
    skew = None
    if d.routing != "uniform":
        skew = simulate_rank_traffic(moe.num_experts, moe.top_k, spec.hidden_size, layout.ep, d.tokens_per_rank, d.a2a_mode,
                                     d.dispatch_dtype, d.gpus_per_node, d.routing, groups)
    routing = routing_estimate(moe.num_experts, moe.top_k, batch=d.batch * layout.dp, tokens=d.tokens_per_rank * layout.ep,
                               capacity_factor=d.capacity_factor, distribution=d.routing, groups=groups)
    return traffic, skew, routing


def deployment_memory(spec: ModelSpec, weights: WeightMemory, gpu: GPUSpec, layout: Layout, d: Deployment,
                      batch: int, context: int) -> MemoryReport:
    """memory_report with a deployment's settings, at a given batch and context."""
    return memory_report(spec, weights, gpu, layout, batch, context, d.kv_dtype, d.mode, prefill_chunk=d.prefill_chunk,
                         gpu_util=d.gpu_util, zero=d.zero, recompute=d.recompute, grad_dtype=d.grad_dtype)


def build_estimate(resolved: ResolvedSpec, deployment: Deployment | None = None, efficiency: Efficiency | None = None,
                   calibration: str | None = None) -> EstimateReport:
    """Compute the report for a resolved spec and a deployment."""
    spec, d = resolved.spec, offload_deployment(deployment or Deployment())
    check_context(spec.max_position_embeddings, d)
    check_one_gpu(d)
    params = count_params(spec)
    gpu = _gpu(d)
    layout, layout_choice = resolve_layout(spec, d, efficiency)
    policy = WeightPolicy(dtype=d.dtype, expert_dtype=d.expert_dtype, attention_dtype=d.attention_dtype,
                          embedding_dtype=d.embedding_dtype, group_size=d.group_size)
    given = any(getattr(policy, f) is not None for f in ("dtype", "expert_dtype", "attention_dtype", "embedding_dtype"))
    weights = resolved.weights if resolved.weights is not None and not given else weight_memory(spec, policy)
    batch, context = serving_shape(d, layout)
    placement = plan_placement(spec, d, layout, weights, resolved.tensors) if offload_requested(d) else None
    resident = placement.gpu_by_component_bytes if placement else weights  # offload: VRAM holds the GPU share only
    memory = deployment_memory(spec, resident, gpu, layout, d, batch, context)
    flops = flops_per_token(spec, context, context, d.recompute if d.mode == "training" else "none")
    traffic, skew, routing = _traffic(spec, d, layout)
    speed = throughput(spec, d, layout, gpu, weights, memory, flops, efficiency)
    if placement is not None:
        offload = offload_estimate(spec, d, gpu, placement, memory, speed.expected.decode_step, efficiency)
        memory_at = lambda b, c, share=resident: deployment_memory(spec, share, gpu, layout, d, b, c)  # noqa: E731
        vram_fits = lambda p: vram_bytes(spec, d, p, memory_at(batch, context, p.gpu_by_component_bytes)) <= memory.usable_bytes  # noqa: E731
        if not offload.fits_in_vram and spec.moe:
            offload.fewest_n_cpu_moe = fewest_n_cpu_moe(spec, d, layout, weights, resolved.tensors, vram_fits)
        if not offload.fits_in_host_memory and spec.moe:
            host_fits = lambda p: sum(t.bytes for t in p.host) + host_kv_bytes(spec, d, p, memory.batch, memory.context) <= offload.host_memory_bytes  # noqa: E731
            offload.most_n_cpu_moe = most_n_cpu_moe(spec, d, layout, weights, resolved.tensors, host_fits, vram_fits)
        memory, speed = with_offload(memory, speed, offload, offload_limits(spec, d, placement, memory, memory_at))
    return EstimateReport(spec=spec, deployment=d, gpu=gpu, layout=layout, params=params, weights=weights, memory=memory,
                          flops=flops, all_to_all=traffic, all_to_all_skew=skew, routing=routing, throughput=speed,
                          checkpoint=resolved.checkpoint, calibration=calibration, layout_choice=layout_choice,
                          training=training_speed(spec, d, layout, gpu, weights, memory, flops, efficiency) if d.mode == "training" else None,
                          notes=_notes(params, resolved),
                          warnings=_warnings(params, resolved))


def _warnings(params: ParamCounts, resolved: ResolvedSpec) -> list[str]:
    derived = params.total + params.mtp
    stored = [stored_count_warning(resolved.checkpoint, derived), index_count_warning(resolved.index_parameters, derived)]
    return [*resolved.warnings, *(warning for warning in stored if warning)]


def _notes(params: ParamCounts, resolved: ResolvedSpec) -> list[str]:
    notes = [*resolved.notes, "active = all non-routed parameters + top-k routed experts per MoE layer, embedding and lm_head included"]
    if params.mtp:
        notes.append(f"multi-token-prediction layers ({params.mtp:,} parameters as stored) are not part of total")
    if resolved.checkpoint is not None:
        stored, derived = resolved.checkpoint.elements, params.total + params.mtp
        notes.append(f"checkpoint stores {stored:,} elements vs {derived:,} derived from the config "
                     f"(difference {stored - derived:+,}; quantized tensors count packed elements and scales)")
    return notes
