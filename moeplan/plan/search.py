"""`moeplan plan`: enumerate layouts, evaluate them all at once, keep those that fit, rank by an objective."""

import time

import numpy as np
from pydantic import BaseModel, ConfigDict

from moeplan.errors import SpecError
from moeplan.plan.layouts import LayoutArrays, enumerate_layouts, gpu_counts
from moeplan.plan.model import LayoutMetrics, LayoutModel
from moeplan.plan.objective import OBJECTIVES, Objective
from moeplan.report.document import Document
from moeplan.report.estimate import EstimateReport, build_estimate
from moeplan.spec.deployment import Deployment
from moeplan.spec.resolve import ResolvedSpec
from moeplan.perf.roofline import Bound, Efficiency
from moeplan.perf.training import TrainingSpeed
from moeplan.perf.speed import BOUNDS
from moeplan.perf.offload import offload_requested

FIXED_SIZES = ("tp", "ep", "pp", "dp", "etp")
"""Deployment fields that, when given, hold the search at their value."""


class PlanRow(BaseModel):
    """One layout that fits: the most-loaded GPU's memory (bytes), the expected speed and its bound."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    gpus: int
    nodes: int
    """⌈gpus / gpus_per_node⌉."""
    tp: int
    ep: int
    pp: int
    dp: int
    etp: int
    per_gpu_bytes: int
    """Total of the most-loaded GPU (as `moeplan estimate`'s memory.per_gpu_bytes)."""
    weights_bytes: int
    state_bytes: int
    """Gradients and optimizer states (training)."""
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    """CUDA context and allocator reserve."""
    headroom_bytes: int
    headroom_fraction: float
    worst_stage: int
    """The pipeline stage of the most-loaded GPU."""
    decode_tokens_per_s: float
    prefill_tokens_per_s: float
    tokens_per_s_per_gpu: float
    """The ranking rate (decode tokens/s; prefill tokens/s in training) divided by gpus."""
    time_per_output_token_s: float
    """Expected TPOT (what the objectives rank by)."""
    ttft_s: float
    roofline_time_per_output_token_s: float
    """The bound on TPOT: the same operations at catalogue peaks without fixed costs."""
    bound: Bound
    """What bounds the decode step."""
    cost_per_million_tokens: float | None = None
    """$ per million tokens at --gpu-hour-price (None without a price)."""
    training: TrainingSpeed | None = None
    """Training: `moeplan estimate`'s step time, tokens/s and MFU of this layout (the first TRAINING_ROWS listed)."""

    def describe(self) -> str:
        etp = f" etp={self.etp}" if self.ep > 1 and self.etp > 1 else ""
        return f"tp={self.tp} ep={self.ep} pp={self.pp} dp={self.dp}{etp}"


class PlanReport(Document):
    """Everything `moeplan plan` finds; `--json` prints this model with the best `--top` layouts that fit."""

    model: str
    gpu: str
    deployment: Deployment
    """Settings every layout was evaluated at (tp/ep/pp/dp/etp/num_gpus: the constraints given)."""
    objective: Objective
    ranking: str
    """What the objective sorts by."""
    gpu_hour_price: float | None
    max_gpus: int
    usable_bytes: int
    """Memory a GPU may use (gpu_util × capacity)."""
    evaluated: int
    """Layouts evaluated: every candidate the layout and placement rules allow."""
    feasible: int
    search_s: float
    """Wall time of enumeration and evaluation."""
    layouts: list[PlanRow]
    """Every layout that fits, best first."""
    closest: PlanRow | None = None
    """When nothing fits: the layout needing the least memory per GPU."""
    notes: list[str]


def cost_per_million_tokens(gpu_hour_price: float, gpus: np.ndarray, tokens_per_s: np.ndarray) -> np.ndarray:
    """$ per million tokens: price per GPU-hour × GPUs / 3600 s per hour / tokens per second × 1e6."""
    return gpu_hour_price * gpus / 3600 / tokens_per_s * 1e6


def ranking_rate(metrics: LayoutMetrics, mode: str) -> np.ndarray:
    """Tokens/s the throughput objectives rank by: decode (inference) or prefill, the forward pass (training)."""
    return metrics.prefill_tokens_per_s if mode == "training" else metrics.decode_tokens_per_s


def rank(objective: Objective, gpus: np.ndarray, per_gpu_rate: np.ndarray, tpot: np.ndarray, cost: np.ndarray | None) -> np.ndarray:
    """Indices best first (np.lexsort: the last key is the primary one; ties keep enumeration order)."""
    keys = {
        "fewest-gpus": (-per_gpu_rate, gpus),
        "throughput-per-gpu": (gpus, -per_gpu_rate),
        "latency": (gpus, tpot),
        "cost": (gpus, cost),
    }[objective]
    return np.lexsort(keys)


def _check(deployment: Deployment, objective: Objective, gpu_hour_price: float | None) -> None:
    if objective == "cost" and gpu_hour_price is None:
        raise SpecError("--objective cost needs --gpu-hour-price (dollars per GPU-hour)")
    if gpu_hour_price is not None and not gpu_hour_price > 0:
        raise SpecError(f"--gpu-hour-price must be positive, not {gpu_hour_price}")
    if objective == "latency" and deployment.mode == "training":
        raise SpecError("--objective latency ranks time per output token, an inference figure; use fewest-gpus or throughput-per-gpu for training")
    if offload_requested(deployment):
        raise SpecError("offload (--offload-experts, --n-cpu-moe, --gpu-layers, --override-tensor) keeps weights in host RAM "
                        "on one GPU; plan searches GPU layouts: run `moeplan estimate MODEL --gpu GPU` with these flags "
                        "(fit in VRAM and host RAM, the fewest --n-cpu-moe that fits, offload speed) or "
                        "`moeplan check -- llama-server -m MODEL --n-cpu-moe N`")


def _rows(layouts: LayoutArrays, m: LayoutMetrics, index: np.ndarray, usable: int, gpus_per_node: int, mode: str,
          gpu_hour_price: float | None) -> list[PlanRow]:
    gpus = layouts.num_gpus[index]
    rate = ranking_rate(m, mode)[index]
    cost = cost_per_million_tokens(gpu_hour_price, gpus, rate) if gpu_hour_price else None
    columns = {
        "gpus": gpus, "nodes": -(-gpus // gpus_per_node), "tp": layouts.tp[index], "ep": layouts.ep[index],
        "pp": layouts.pp[index], "dp": layouts.dp[index], "etp": layouts.expert_tp[index],
        "per_gpu_bytes": m.per_gpu_bytes[index], "weights_bytes": m.weights_bytes[index], "state_bytes": m.state_bytes[index],
        "kv_cache_bytes": m.kv_cache_bytes[index], "activation_bytes": m.activation_bytes[index],
        "overhead_bytes": m.overhead_bytes[index], "headroom_bytes": usable - m.per_gpu_bytes[index],
        "headroom_fraction": (usable - m.per_gpu_bytes[index]) / usable, "worst_stage": m.worst_stage[index],
        "decode_tokens_per_s": m.decode_tokens_per_s[index], "prefill_tokens_per_s": m.prefill_tokens_per_s[index],
        "tokens_per_s_per_gpu": rate / gpus, "time_per_output_token_s": m.time_per_output_token_s[index],
        "ttft_s": m.ttft_s[index], "roofline_time_per_output_token_s": m.roofline_time_per_output_token_s[index],
        "bound": np.array(BOUNDS)[m.bound[index]],
    }
    if cost is not None:
        columns["cost_per_million_tokens"] = cost
    lists = {name: values.tolist() for name, values in columns.items()}
    return [PlanRow(**{name: values[i] for name, values in lists.items()}) for i in range(len(index))]


TRAINING_ROWS = 100
"""Listed training layouts given their step time (one scalar estimate each, ~5–50 ms), so --top stays bounded."""


def _with_training_speed(resolved: ResolvedSpec, deployment: Deployment, rows: list[PlanRow],
                         efficiency: Efficiency | None) -> list[PlanRow]:
    """Training rows with `moeplan estimate`'s training speed of their layout (the vectorized model has no backward)."""
    if deployment.mode != "training":
        return rows
    for row in rows[:TRAINING_ROWS]:
        layout = {"tp": row.tp, "ep": row.ep, "pp": row.pp, "dp": row.dp, "etp": row.etp, "num_gpus": None}
        row.training = build_estimate(resolved, deployment.model_copy(update=layout), efficiency).training
    return rows


def search(resolved: ResolvedSpec, deployment: Deployment, max_gpus: int = 64, objective: Objective = "fewest-gpus",
           gpu_hour_price: float | None = None, efficiency: Efficiency | None = None, keep: int | None = None) -> PlanReport:
    """Evaluate every allowed layout of up to ``max_gpus`` GPUs (exactly deployment.num_gpus when given) and
    rank those that fit by ``objective``; the report lists the best ``keep`` of them (all when None)."""
    _check(deployment, objective, gpu_hour_price)
    start = time.perf_counter()
    spec, gpn = resolved.spec, deployment.gpus_per_node
    fixed = {name: getattr(deployment, name) for name in FIXED_SIZES if getattr(deployment, name) is not None}
    counts = np.array([deployment.num_gpus]) if deployment.num_gpus else gpu_counts(max_gpus, gpn)
    layouts = enumerate_layouts(spec, counts, gpn, fixed)
    if not len(layouts):
        given = " ".join(f"{k}={v}" for k, v in fixed.items())
        where = f"on {deployment.num_gpus} GPUs" if deployment.num_gpus else f"on up to {max_gpus} GPUs"
        raise SpecError(f"no layout of {spec.name} {f'with {given} ' if given else ''}{where} satisfies the layout rules "
                        "(see docs/plan.md)")
    model = LayoutModel(resolved, deployment, efficiency)
    metrics = model.evaluate(layouts)
    usable = model.usable_bytes
    fits = metrics.per_gpu_bytes <= usable
    feasible = np.flatnonzero(fits)
    gpus = layouts.num_gpus[feasible]
    rate = ranking_rate(metrics, deployment.mode)[feasible]
    cost = cost_per_million_tokens(gpu_hour_price, gpus, rate) if gpu_hour_price else None
    order = feasible[rank(objective, gpus, rate / gpus, metrics.time_per_output_token_s[feasible], cost)]
    closest = None if len(feasible) else np.array([np.argmin(metrics.per_gpu_bytes)])
    elapsed = time.perf_counter() - start
    rows = lambda index: _rows(layouts, metrics, index, usable, gpn, deployment.mode, gpu_hour_price)  # noqa: E731
    listed = _with_training_speed(resolved, deployment, rows(order[:keep]), efficiency)
    return PlanReport(
        model=spec.name, gpu=model.gpu.name, deployment=deployment, objective=objective, ranking=OBJECTIVES[objective],
        gpu_hour_price=gpu_hour_price, max_gpus=int(counts.max()), usable_bytes=usable, evaluated=len(layouts),
        feasible=len(feasible), search_s=elapsed, layouts=listed, closest=rows(closest)[0] if closest is not None else None,
        notes=_notes(deployment, gpn, fixed),
    )


def best_estimate(resolved: ResolvedSpec, report: PlanReport, efficiency: Efficiency | None = None) -> EstimateReport:
    """`moeplan estimate` of the report's best layout (for --plot and --curve)."""
    best = report.layouts[0]
    layout = {"tp": best.tp, "ep": best.ep, "pp": best.pp, "dp": best.dp, "etp": best.etp, "num_gpus": None}
    return build_estimate(resolved, report.deployment.model_copy(update=layout), efficiency)


def _notes(deployment: Deployment, gpus_per_node: int, fixed: dict[str, int]) -> list[str]:
    notes = [
        f"GPU counts: 1 to {gpus_per_node} (one node), then whole nodes of {gpus_per_node}; TP inside a node; "
        "EP inside a node or over whole nodes; the layout rules of `moeplan estimate` (docs/plan.md)",
        "memory and throughput are `moeplan estimate`'s for each layout, on its most-loaded GPU",
    ]
    if fixed:
        notes.append("held fixed: " + ", ".join(f"{k}={v}" for k, v in fixed.items()))
    if deployment.mode == "training":
        notes.append("training: throughput objectives rank the forward (prefill) rate, the search's model has no backward "
                     f"pass; step time, tokens/s and MFU of the first {TRAINING_ROWS} listed layouts are `moeplan estimate`'s")
    return notes
