"""GPU↔GPU copies (CUDA, two or more GPUs): the n×n matrix of copy-engine bandwidth, nvbandwidth style.

write: GPU i copies to GPU j; bidir: i→j and j→i at once. torch's copy_ always runs a peer copy on the
source GPU's stream, so nvbandwidth's pull variant ("read") cannot be expressed and is not measured.
Where NVML reports P2P off (or torch cannot access the peer), the driver stages the copy through host
memory and the point is labelled ``via host``. Copy-engine figures bound what SM-driven all-to-all
kernels reach (128 B payloads, nccl-tests#149). Rates are per direction. Copies queue behind a spin kernel
(moeplan.profile.copies) and are verified afterwards (``params.verified``); SM-driven peer copies need kernels
writing another GPU's memory, which torch does not expose, so only copy-engine copies are measured.
"""

from typing import Literal

from moeplan.profile.context import RunContext, Target, clock_hints
from moeplan.profile.copies import pattern_bytes, time_streams, verify
from moeplan.profile.predict import apply_verdict
from moeplan.profile.results import Measurement
from moeplan.profile.stats import summarize
from moeplan.profile.timing import try_allocate

PeerKind = Literal["write", "bidir"]


def peer_points(ctx: RunContext) -> list[tuple[Target, Target, PeerKind]]:
    """Every ordered pair for write, every unordered pair once for bidir."""
    writes = [(a, b, "write") for a in ctx.targets for b in ctx.targets if a is not b]
    return writes + [(a, b, "bidir") for i, a in enumerate(ctx.targets) for b in ctx.targets[i + 1 :]]


def _pair(ctx: RunContext, a: Target, b: Target):
    if ctx.topology is None:
        return None
    return next((p for p in ctx.topology.pairs if p.a == a.nvml_index and p.b == b.nvml_index), None)


def measure_peer(ctx: RunContext, a: Target, b: Target, kind: PeerKind) -> Measurement:
    """One peer-copy point of the sweep's size between GPUs a and b."""
    import torch

    nbytes = ctx.sweeps.peer_bytes
    pair = _pair(ctx, a, b)
    p2p = torch.cuda.can_device_access_peer(a.device, b.device) and (pair is None or (pair.p2p["read"] == "OK" and pair.p2p["write"] == "OK"))
    base = Measurement(
        section="p2p",
        name=kind,
        device=f"{a.label}->{b.label}" if kind == "write" else f"{a.label}<->{b.label}",
        params={"src": a.nvml_index, "dst": b.nvml_index, "size_bytes": nbytes, "via": "p2p" if p2p else "host", "link": pair.link if pair else None},
    )

    def make():
        pairs = [(pattern_bytes(nbytes, a.device, 1), torch.empty(nbytes, dtype=torch.uint8, device=b.device))]
        if kind == "bidir":
            pairs.append((pattern_bytes(nbytes, b.device, 2), torch.empty(nbytes, dtype=torch.uint8, device=a.device)))
        return [(src.device, lambda s=src, d=dst: d.copy_(s, non_blocking=True)) for src, dst in pairs], pairs

    made, base.skipped = try_allocate(make, f"peer buffers of {nbytes / 2**20:,.0f} MiB")
    if made is None:
        return base
    jobs, pairs = made
    per_job, observed = time_streams(jobs, ctx.sweeps.warmup, ctx.sweeps.iters, during=ctx.clock_reader([a, b]))
    stats = summarize([max(times) for times in zip(*per_job)])
    base.params["verified"] = verify(pairs)
    base.stats, base.bytes = stats, nbytes * len(jobs)
    base.rates = {"per_direction_bytes_per_s": nbytes / stats.median_s, "bytes_per_s": nbytes * len(jobs) / stats.median_s}
    base.primary_rate = "per_direction_bytes_per_s"
    base.prediction = ctx.predictor.peer(nbytes, nvlink=bool(pair and pair.nvlinks and p2p))
    base.clocks = observed or []
    base.hints = ctx.hints([a.nvml_index, b.nvml_index], ("p2p_disabled", "vm")) + clock_hints(base.clocks)
    return apply_verdict(base)
