"""Memory of an estimate's most-loaded GPU as batch or context varies: the data behind --plot and --curve."""

import math

from pydantic import BaseModel

from moeplan.accounting.memory import MemoryReport
from moeplan.report.estimate import EstimateReport, deployment_memory

COMPONENTS = ("weights", "gradients and optimizer", "KV cache", "activations", "overhead")
"""The stacked terms: overhead is the CUDA context plus the allocator reserve."""
DEFAULT_CONTEXT_LIMIT = 131072
"""Where the context axis ends for a model without max_position_embeddings."""


class MemoryPoint(BaseModel):
    """The most-loaded GPU at one (batch, context), bytes per stacked component."""

    batch: int
    context: int
    component_bytes: dict[str, int]
    """Keyed by COMPONENTS."""
    total_bytes: int


def memory_at(report: EstimateReport, batch: int, context: int) -> MemoryReport:
    """memory_report for the estimate's model, GPU, layout and settings at another batch and context."""
    return deployment_memory(report.spec, report.weights, report.gpu, report.layout, report.deployment, batch, context)


def memory_point(report: EstimateReport, batch: int, context: int) -> MemoryPoint:
    """The stacked components of the most-loaded GPU at (batch, context)."""
    worst = memory_at(report, batch, context).most_loaded
    parts = dict(zip(COMPONENTS, (worst.weights_bytes, worst.gradients_bytes + worst.optimizer_bytes, worst.kv_cache_bytes,
                                  worst.activation_bytes, worst.cuda_context_bytes + worst.allocator_reserve_bytes)))
    return MemoryPoint(batch=batch, context=context, component_bytes=parts, total_bytes=worst.total_bytes)


def batch_values(report: EstimateReport, points: int = 24) -> list[int]:
    """Batches from 1 to past both the estimate's batch and the largest that fits (at least 8), evenly spaced."""
    top = max(8, 2 * report.deployment.batch, math.ceil(1.25 * report.memory.max_batch))
    return sorted({round(1 + (top - 1) * i / (points - 1)) for i in range(points)} | {report.deployment.batch})


def context_values(report: EstimateReport) -> list[int]:
    """Contexts in powers of two from 1k to the model's trained context (128k without one), and the estimate's."""
    top = max(report.deployment.context, report.spec.max_position_embeddings or DEFAULT_CONTEXT_LIMIT)
    powers = [2**k for k in range(10, top.bit_length())]
    return sorted(set(powers) | {report.deployment.context, top})


def batch_sweep(report: EstimateReport) -> list[MemoryPoint]:
    """memory_point at the estimate's context over batch_values."""
    return [memory_point(report, b, report.deployment.context) for b in batch_values(report)]


def context_sweep(report: EstimateReport) -> list[MemoryPoint]:
    """memory_point at the estimate's batch over context_values."""
    return [memory_point(report, report.deployment.batch, c) for c in context_values(report)]
