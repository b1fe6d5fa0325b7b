"""Device-local copy bandwidth (nvbandwidth ``device_local_copy``): ``dst.copy_(src)`` on one device.

copy_bytes_per_s = bytes / t (what nvbandwidth prints); dram_bytes_per_s = 2·bytes / t, the read plus
write traffic, compared with the spec HBM bandwidth. On ``--device cpu`` this is a host-memory copy.
"""

from moeplan.profile.context import RunContext, Target, clock_hints
from moeplan.profile.predict import apply_verdict
from moeplan.profile.results import Measurement
from moeplan.profile.stats import summarize
from moeplan.profile.timing import time_samples, try_allocate


def hbm_points(ctx: RunContext) -> list[tuple[Target, int]]:
    """(device, copy size in bytes) for every selected device and size."""
    return [(target, size) for target in ctx.targets for size in ctx.sweeps.hbm_bytes]


def measure_hbm(ctx: RunContext, target: Target, nbytes: int) -> Measurement:
    """One device-local copy of ``nbytes`` bytes, timed."""
    import torch

    base = Measurement(section="hbm", name="copy", device=target.label, params={"size_bytes": nbytes}, bytes=nbytes)
    buffers, base.skipped = try_allocate(
        lambda: (torch.ones(nbytes, dtype=torch.uint8, device=target.device), torch.empty(nbytes, dtype=torch.uint8, device=target.device)),
        f"2 x {nbytes / 2**20:,.0f} MiB",
    )
    if buffers is None:
        return base
    src, dst = buffers
    timed = time_samples(lambda: dst.copy_(src), target.device, ctx.sweeps.warmup, ctx.sweeps.iters, during=ctx.clock_reader([target]))
    stats = summarize(timed.samples_s)
    clocks = timed.during or []
    base.stats = stats
    base.rates = {"copy_bytes_per_s": nbytes / stats.median_s, "dram_bytes_per_s": 2 * nbytes / stats.median_s}
    base.primary_rate = "dram_bytes_per_s"
    base.prediction = ctx.predictor.hbm_copy(nbytes)
    base.clocks = clocks
    base.hints = ctx.hints([target.nvml_index], ("throttling",)) + clock_hints(clocks)
    return apply_verdict(base)
