"""The answer first: does an estimate's deployment fit, with what headroom, and if not, on how many GPUs it would."""

from typing import TYPE_CHECKING

from pydantic import BaseModel

from moeplan.accounting.memory import MemoryReport
from moeplan.layout.parallel import Layout, search_gpu_counts, search_layouts
from moeplan.spec.resolve import ResolvedSpec
from moeplan.perf.roofline import Efficiency
from moeplan.perf.offload import offload_requested
from moeplan.perf.speed import serving_shape, throughput

if TYPE_CHECKING:
    from moeplan.report.estimate import EstimateReport

SEARCH_MAX_GPUS = 64
"""Largest GPU count the no-fit search tries (`moeplan plan`'s default --max-gpus)."""
SCALAR_LAYOUTS = 16
"""Most layouts of one GPU count the no-fit search evaluates one by one (a few ms each); a count with more goes to
`moeplan plan`'s numpy search, which evaluates thousands at once (the same answer; numpy and its tables cost ~0.1 s)."""


class Verdict(BaseModel):
    """Fit of the deployment on its most-loaded GPU, and the fewest GPUs of its kind that fit when it does not."""

    fits: bool
    gpu: str
    """The GPU's catalogue name."""
    num_gpus: int
    layout: str
    per_gpu_bytes: int
    usable_bytes: int
    headroom_bytes: int
    headroom_fraction: float
    assumed: list[str]
    """Settings that are moeplan's defaults rather than given (the GPU, the GPU count), and how to change them."""
    fewest_gpus: int | None = None
    """When it does not fit: the fewest GPUs of this kind on which some layout fits (`moeplan plan`'s search)."""
    fewest_layout: str | None = None
    """The best of those layouts by plan's default objective."""
    searched_max_gpus: int | None = None
    """When it does not fit: the largest GPU count searched."""
    plan_command: str | None = None
    """The `moeplan plan` command that lists the layouts that fit."""


def fewest_gpus(resolved: ResolvedSpec, report: "EstimateReport", efficiency: Efficiency | None = None,
                max_gpus: int = SEARCH_MAX_GPUS) -> tuple[int, str] | None:
    """(GPUs, layout) of the best layout on the fewest GPUs of the report's kind that fits its settings, as
    `moeplan plan` ranks them by default (fewest GPUs, then the highest tokens/s per GPU, plan's order on ties);
    None when none up to max_gpus fits. GPU counts are tried in increasing order, a count too small to hold the
    weights and training state even split perfectly skipped; the layouts of a count are evaluated by estimate's
    own scalar model (memory, then the speed of those that fit when more than one does), or, past
    SCALAR_LAYOUTS of them, by plan's numpy search."""
    from moeplan.report.estimate import deployment_memory

    spec, d, weights, gpu = resolved.spec, report.deployment, report.weights, report.gpu
    memory_of = lambda layout: report.memory if layout == report.layout else deployment_memory(  # noqa: E731
        spec, weights, gpu, layout, d, *serving_shape(d, layout))
    least = _least_gpus(memory_of(Layout()))
    for count in search_gpu_counts(max_gpus, d.gpus_per_node):
        if count < least:
            continue
        layouts = list(search_layouts(spec, count, d.gpus_per_node))
        if len(layouts) > SCALAR_LAYOUTS:
            return _plan_search(resolved, report, efficiency, count, max_gpus)
        fitting = [(layout, memory) for layout in layouts if (memory := memory_of(layout)).fits]
        if fitting:
            best, _ = fitting[0] if len(fitting) == 1 else max(fitting, key=lambda fit: _ranking_rate(report, *fit, efficiency))
            return count, best.sizes()
    return None


def _plan_search(resolved: ResolvedSpec, report: "EstimateReport", efficiency: Efficiency | None, count: int,
                 max_gpus: int) -> tuple[int, str] | None:
    """fewest_gpus by `moeplan plan`'s search (numpy) when no layout of fewer than ``count`` GPUs fits: first up to
    one node or ``count`` GPUs, whichever is more (plan ranks by GPU count first, so a fit there is its answer too)."""
    from moeplan.plan.search import search

    released = report.deployment.model_copy(update=dict.fromkeys(("num_gpus", "tp", "ep", "pp", "dp", "etp")))
    for limit in sorted({max(min(report.deployment.gpus_per_node, max_gpus), count), max_gpus}):
        plan = search(resolved, released, limit, efficiency=efficiency, keep=1)
        if plan.layouts:
            return plan.layouts[0].gpus, plan.layouts[0].describe()
    return None


def _least_gpus(single: MemoryReport) -> float:
    """GPUs below which no layout fits, from the 1-GPU memory: the most-loaded GPU holds at least its share of
    the weights, gradients and optimizer states split perfectly (every byte is held somewhere), 1% below for
    rounding, plus the CUDA context."""
    worst = single.most_loaded
    held = worst.weights_bytes + worst.gradients_bytes + worst.optimizer_bytes
    return 0.99 * held / max(single.usable_bytes - worst.cuda_context_bytes, 1)


def _ranking_rate(report: "EstimateReport", layout: Layout, memory: MemoryReport, efficiency: Efficiency | None) -> float:
    """Tokens/s per GPU `moeplan plan` ranks by (moeplan.plan.search.ranking_rate): decode, or prefill in training."""
    speed = throughput(report.spec, report.deployment, layout, report.gpu, report.weights, memory, report.flops, efficiency)
    rate = speed.prefill_tokens_per_s if report.deployment.mode == "training" else speed.decode_tokens_per_s
    return rate / layout.num_gpus


def build_verdict(resolved: ResolvedSpec, report: "EstimateReport", given: set[str], efficiency: Efficiency | None = None,
                  plan_args: str = "MODEL") -> Verdict:
    """The verdict of ``report``; ``given`` names the deployment fields the user set (the others are defaults),
    ``plan_args`` the model and settings as `moeplan plan` arguments."""
    m, d = report.memory, report.deployment
    assumed = []
    if "gpu" not in given:
        assumed.append(f"GPU {d.gpu} (the default; change with --gpu, see `moeplan gpus`)")
    if not given & {"num_gpus", "tp", "ep", "pp", "dp"}:
        assumed.append("1 GPU (the default; change with --num-gpus N, or --tp/--ep/--pp/--dp)")
    verdict = Verdict(fits=m.fits, gpu=report.gpu.name, num_gpus=report.layout.num_gpus, layout=report.layout.sizes(),
                      per_gpu_bytes=m.per_gpu_bytes, usable_bytes=m.usable_bytes, headroom_bytes=m.headroom_bytes,
                      headroom_fraction=m.headroom_fraction, assumed=assumed)
    if m.fits or offload_requested(d):  # offload is one GPU with host RAM: no GPU count to search
        return verdict
    found = fewest_gpus(resolved, report, efficiency)
    return verdict.model_copy(update={
        "fewest_gpus": found[0] if found else None, "fewest_layout": found[1] if found else None,
        "searched_max_gpus": SEARCH_MAX_GPUS,
        "plan_command": f"moeplan plan {plan_args}" + ("" if found else f" --max-gpus {_wider_search(report)}"),
    })


def _wider_search(report: "EstimateReport") -> int:
    """A --max-gpus to try when nothing fits on SEARCH_MAX_GPUS: twice the GPUs the 1-GPU memory needs if it
    were split perfectly, in whole nodes, and at least 4 × SEARCH_MAX_GPUS."""
    node = report.deployment.gpus_per_node
    needed = 2 * report.memory.per_gpu_bytes * report.layout.num_gpus / report.memory.usable_bytes
    return max(4 * SEARCH_MAX_GPUS, -(-int(needed) // node) * node)
