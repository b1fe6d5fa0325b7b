"""Device-local copy bandwidth as nvbandwidth ``device_local_copy``: ``dst.copy_(src)`` on one device.

Two copies per size: ``copy``, the copy engine (cudaMemcpyAsync behind ``copy_``), timed behind a spin kernel
(moeplan.profile.copies); ``sm_copy``, an SM kernel doing the same copy (an exact bitwise-or with 0 on int32
words, the nvbandwidth ``_sm`` counterpart), timed per call. copy_bytes_per_s = bytes / t (what nvbandwidth
prints); dram_bytes_per_s = 2·bytes / t, read plus write, compared with the spec HBM bandwidth. Every copy
is verified afterwards (``params.verified``). On ``--device cpu`` the copy is a host-memory ``copy_``.
"""

from moeplan.profile.context import RunContext, Target, clock_hints
from moeplan.profile.copies import pattern_bytes, time_streams, verify
from moeplan.profile.predict import apply_verdict
from moeplan.profile.results import Measurement
from moeplan.profile.stats import summarize
from moeplan.profile.timing import time_samples, try_allocate

COPIES = ("copy", "sm_copy")


def hbm_points(ctx: RunContext) -> list[tuple[Target, int, str]]:
    """(device, copy size in bytes, copy kind) for every selected device and size; SM copies on CUDA only."""
    kinds = COPIES if ctx.device_type == "cuda" else COPIES[:1]
    return [(target, size, kind) for target in ctx.targets for size in ctx.sweeps.hbm_bytes for kind in kinds]


def measure_hbm(ctx: RunContext, target: Target, nbytes: int, kind: str = "copy") -> Measurement:
    """One device-local copy of ``nbytes`` bytes, timed and verified."""
    import torch

    base = Measurement(section="hbm", name=kind, device=target.label, params={"size_bytes": nbytes, "engine": "sm" if kind == "sm_copy" else "ce"}, bytes=nbytes)
    buffers, base.skipped = try_allocate(
        lambda: (pattern_bytes(nbytes, target.device), torch.empty(nbytes, dtype=torch.uint8, device=target.device)),
        f"2 x {nbytes / 2**20:,.0f} MiB",
    )
    if buffers is None:
        return base
    src, dst = buffers
    reader = ctx.clock_reader([target])
    if kind == "sm_copy":
        words_in, words_out = src[: nbytes // 4 * 4].view(torch.int32), dst[: nbytes // 4 * 4].view(torch.int32)
        dst[nbytes // 4 * 4 :].copy_(src[nbytes // 4 * 4 :])
        timed = time_samples(lambda: torch.bitwise_or(words_in, 0, out=words_out), target.device, ctx.sweeps.warmup, ctx.sweeps.iters, during=reader)
        samples, clocks = timed.samples_s, timed.during or []
    elif target.device.type == "cuda":
        (samples,), observed = time_streams([(target.device, lambda: dst.copy_(src, non_blocking=True))], ctx.sweeps.warmup, ctx.sweeps.iters, during=reader)
        clocks = observed or []
    else:
        timed = time_samples(lambda: dst.copy_(src), target.device, ctx.sweeps.warmup, ctx.sweeps.iters, during=reader)
        samples, clocks = timed.samples_s, timed.during or []
    stats = summarize(samples)
    base.params["verified"] = verify([(src, dst)])
    base.stats = stats
    base.rates = {"copy_bytes_per_s": nbytes / stats.median_s, "dram_bytes_per_s": 2 * nbytes / stats.median_s}
    base.primary_rate = "dram_bytes_per_s"
    base.prediction = ctx.predictor.hbm_copy(nbytes)
    base.clocks = clocks
    base.hints = ctx.hints([target.nvml_index], ("throttling",)) + clock_hints(clocks)
    if not base.params["verified"]:
        base.notes.append("the destination does not hold the source after the copies (data verification)")
    return apply_verdict(base)
