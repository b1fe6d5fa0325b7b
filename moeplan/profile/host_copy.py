"""Host↔device copies (CUDA only): H2D, D2H and both at once, pinned and pageable host memory.

Plan: the full size sweep (plus one expert's bf16 weight bytes) on the first selected GPU; every other GPU
alone at 256 MiB pinned; then all selected GPUs at once at 256 MiB pinned (GPUs behind one switch or root
port share it). Pinned copies are ``copy_(non_blocking=True)`` on side streams timed with events;
pageable copies are staged by the driver and block the host, so they are timed on the host around the
copy and a synchronize, one direction at a time. Rates are per direction; ``bidir`` adds both. Pinned copies
queue behind a spin kernel (moeplan.profile.copies); every copy is verified afterwards (``params.verified``).
"""

from typing import Literal

from moeplan.accounting.params import mlp_params
from moeplan.profile.context import MiB, RunContext, Target, clock_hints
from moeplan.profile.copies import pattern_bytes, time_streams, verify
from moeplan.profile.predict import apply_verdict
from moeplan.profile.results import Measurement
from moeplan.profile.stats import summarize
from moeplan.profile.timing import time_samples, try_allocate

Direction = Literal["h2d", "d2h", "bidir"]
Memory = Literal["pinned", "pageable"]
SHARED_SIZE = 256 * MiB
"""Size of the per-GPU and all-GPUs-at-once points."""


def expert_weight_bytes(ctx: RunContext) -> int:
    """One routed expert's bf16 weights (B): 2·mlp params of H, I."""
    return 2 * mlp_params(ctx.shape.hidden_size, ctx.shape.expert_intermediate_size, ctx.shape.gated, False)


def host_copy_points(ctx: RunContext) -> list[tuple[list[Target], int, Direction, Memory]]:
    """(GPUs copying at once, bytes per GPU and direction, direction, host memory) for every point."""
    first, *others = ctx.targets
    sizes = sorted(set(ctx.sweeps.h2d_bytes) | {expert_weight_bytes(ctx)})
    points = [([first], size, d, m) for m in ("pinned", "pageable") for d in ("h2d", "d2h", "bidir") for size in sizes if not (m == "pageable" and d == "bidir")]
    points += [([t], SHARED_SIZE, d, "pinned") for t in others for d in ("h2d", "d2h")]
    if others:
        points += [(ctx.targets, SHARED_SIZE, d, "pinned") for d in ("h2d", "d2h", "bidir")]
    return points


def _jobs(targets: list[Target], nbytes: int, direction: Direction, pinned: bool):
    """(device, copy) jobs, per GPU one copy per direction (two for bidir), and the (source, destination) pairs."""
    import torch

    jobs, pairs = [], []
    for target in targets:
        for way in ("h2d", "d2h"):
            if direction not in (way, "bidir"):
                continue
            host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned)
            dev = torch.empty(nbytes, dtype=torch.uint8, device=target.device)
            src, dst = (host, dev) if way == "h2d" else (dev, host)
            src.copy_(pattern_bytes(nbytes, src.device, len(jobs)))
            jobs.append((target.device, lambda s=src, d=dst: d.copy_(s, non_blocking=True)))
            pairs.append((src, dst))
    return jobs, pairs


def measure_host_copy(ctx: RunContext, targets: list[Target], nbytes: int, direction: Direction, memory: Memory) -> Measurement:
    """One host-copy point: ``nbytes`` per GPU and direction, all listed GPUs at once."""
    import torch

    label = ",".join(t.label for t in targets)
    base = Measurement(section="h2d", name=direction, device=label, params={"size_bytes": nbytes, "memory": memory, "gpus": len(targets)})
    made, base.skipped = try_allocate(lambda: _jobs(targets, nbytes, direction, memory == "pinned"), f"{len(targets)} x {nbytes / MiB:,.0f} MiB host and device buffers")
    if made is None:
        return base
    jobs, pairs = made
    reader = ctx.clock_reader(targets)
    if memory == "pageable":
        (device, copy), = jobs
        timed = time_samples(lambda: (copy(), torch.cuda.synchronize(device)), torch.device("cpu"), ctx.sweeps.warmup, ctx.sweeps.iters, during=reader)
        samples, observed, per_job = timed.samples_s, timed.during, [timed.samples_s]
    else:
        per_job, observed = time_streams(jobs, ctx.sweeps.warmup, ctx.sweeps.iters, during=reader)
        samples = [max(times) for times in zip(*per_job)]
    stats = summarize(samples)
    base.params["verified"] = verify(pairs)
    moved = nbytes * len(jobs)
    base.stats, base.bytes = stats, moved
    base.rates = {"bytes_per_s": moved / stats.median_s, "per_direction_bytes_per_s": nbytes / stats.median_s}
    if direction == "bidir":
        base.rates |= {f"{name}_bytes_per_s": nbytes / summarize(times).median_s for name, times in zip(("h2d", "d2h"), per_job)}
    base.primary_rate = "per_direction_bytes_per_s"
    link = ctx.nvml.pcie(targets[0].nvml_index) if ctx.nvml and targets[0].nvml_index is not None else None
    base.prediction = ctx.predictor.pcie(nbytes, link)
    base.clocks = observed or []
    base.hints = ctx.hints([t.nvml_index for t in targets], ("pcie_downtrained", "pcie_gen_below_max", "vm")) + clock_hints(base.clocks)
    for sample in base.clocks:
        top = ctx.nvml.pcie(sample.gpu)
        if top is None or sample.pcie_gen is None:
            continue
        if sample.pcie_gen < top.max_gen or sample.pcie_width < top.max_width:
            base.hints.append(f"GPU {sample.gpu}: PCIe Gen{sample.pcie_gen} x{sample.pcie_width} under load, of Gen{top.max_gen} x{top.max_width}")
    if memory == "pageable":
        base.notes.append("pageable host memory: the driver stages through a pinned buffer and the copy blocks the host; timed on the host")
    return apply_verdict(base)
