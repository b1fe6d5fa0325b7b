"""The answer first: does an estimate's deployment fit, with what headroom, and if not, on how many GPUs it would."""

from typing import TYPE_CHECKING

from pydantic import BaseModel

from moeplan.spec.resolve import ResolvedSpec
from moeplan.perf.roofline import Efficiency
from moeplan.perf.offload import offload_requested

if TYPE_CHECKING:
    from moeplan.report.estimate import EstimateReport

SEARCH_MAX_GPUS = 64
"""Largest GPU count the no-fit search tries (`moeplan plan`'s default --max-gpus)."""


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
    """(GPUs, layout) of the best layout on the fewest GPUs of the report's kind that fits its settings
    (`moeplan plan` with its default objective, fewest GPUs first, layout sizes released); None when none up to
    max_gpus fits. One node is searched first: plan ranks by GPU count first, so a fit there is its answer too."""
    from moeplan.plan.search import search  # numpy: loaded only when the deployment does not fit

    released = report.deployment.model_copy(update=dict.fromkeys(("num_gpus", "tp", "ep", "pp", "dp", "etp")))
    for limit in sorted({min(report.deployment.gpus_per_node, max_gpus), max_gpus}):
        plan = search(resolved, released, limit, efficiency=efficiency, keep=1)
        if plan.layouts:
            best = plan.layouts[0]
            return best.gpus, best.describe()
    return None


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
