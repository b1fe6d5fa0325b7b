"""The report of ``moeplan estimate``: one pydantic model, printed as a rich report or as JSON."""

from pydantic import Field

from moeplan.accounting.flops import FlopsPerToken, flops_per_token
from moeplan.accounting.memory import MemoryReport, memory_report
from moeplan.accounting.params import ParamCounts, count_params
from moeplan.accounting.weights import WeightMemory, WeightPolicy, weight_memory
from moeplan.errors import SpecError
from moeplan.hardware.catalogue import GPUSpec, load_gpu
from moeplan.layout.parallel import Layout, check_layout, default_layout
from moeplan.report.document import Document
from moeplan.spec.checkpoint import CheckpointSummary
from moeplan.spec.count_check import stored_count_warning
from moeplan.spec.deployment import Deployment
from moeplan.spec.model import ModelSpec
from moeplan.spec.resolve import ResolvedSpec
from moeplan.throughput.roofline import Efficiency, Throughput, throughput
from moeplan.traffic.alltoall import AllToAllTraffic, spec_all_to_all_traffic
from moeplan.traffic.routing import RankTraffic, RoutingEstimate, routing_estimate, simulate_rank_traffic


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
    notes: list[str] = Field(default_factory=list)
    """Assumptions and conventions worth reading next to the figures."""
    warnings: list[str] = Field(default_factory=list)
    """What may make the figures wrong (an unknown model_type read as Llama, a checkpoint that stores another
    count than the config reads as): shown first, before the verdict."""


def resolve_layout(spec: ModelSpec, deployment: Deployment) -> Layout:
    """The layout from --tp/--ep/--pp/--dp, or a default one for --num-gpus (1 GPU without either)."""
    given = {k: getattr(deployment, k) for k in ("tp", "ep", "pp", "dp", "etp") if getattr(deployment, k) is not None}
    if not given:
        return default_layout(spec, deployment.num_gpus or 1, deployment.gpus_per_node)
    layout = Layout(**given)
    if deployment.num_gpus is not None and deployment.num_gpus != layout.num_gpus:
        raise SpecError(f"--num-gpus {deployment.num_gpus} does not match the layout {layout.describe()}: GPUs = tp × pp × dp")
    return check_layout(spec, layout)


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
    spec, d = resolved.spec, deployment or Deployment()
    params = count_params(spec)
    gpu = _gpu(d)
    layout = resolve_layout(spec, d)
    policy = WeightPolicy(dtype=d.dtype, expert_dtype=d.expert_dtype, attention_dtype=d.attention_dtype,
                          embedding_dtype=d.embedding_dtype, group_size=d.group_size)
    weights = weight_memory(spec, policy)
    memory = deployment_memory(spec, weights, gpu, layout, d, d.batch, d.context)
    flops = flops_per_token(spec, d.context, d.context, d.recompute if d.mode == "training" else "none")
    traffic, skew, routing = _traffic(spec, d, layout)
    speed = throughput(spec, d, layout, gpu, weights, memory, flops, d.nic_gb_s * 1e9, efficiency)
    return EstimateReport(spec=spec, deployment=d, gpu=gpu, layout=layout, params=params, weights=weights, memory=memory,
                          flops=flops, all_to_all=traffic, all_to_all_skew=skew, routing=routing, throughput=speed,
                          checkpoint=resolved.checkpoint, calibration=calibration, notes=_notes(params, resolved),
                          warnings=_warnings(params, resolved))


def _warnings(params: ParamCounts, resolved: ResolvedSpec) -> list[str]:
    stored = stored_count_warning(resolved.checkpoint, params.total + params.mtp)
    return [*resolved.warnings, *([stored] if stored else [])]


def _notes(params: ParamCounts, resolved: ResolvedSpec) -> list[str]:
    notes = ["active = all non-routed parameters + top-k routed experts per MoE layer, embedding and lm_head included"]
    if params.mtp:
        notes.append(f"multi-token-prediction layers ({params.mtp:,} parameters as stored) are not part of total")
    if resolved.checkpoint is not None:
        stored, derived = resolved.checkpoint.elements, params.total + params.mtp
        notes.append(f"checkpoint stores {stored:,} elements vs {derived:,} derived from the config "
                     f"(difference {stored - derived:+,}; quantized tensors count packed elements and scales)")
    return notes
