"""Concurrent copies on CUDA streams, timed like nvbandwidth: a spin kernel (``torch.cuda._sleep``) holds the
first stream while every stream queues its warm-up copies, a start event, ``iters`` copies and an end event
behind one 'go' event, so all copies start together and host enqueue time stays out of start→end. A sample
is one such round (the mean copy time between its events); nvbandwidth's median of 3 rounds is the default.
``verify`` checks after the timing that every destination holds its source (nvbandwidth's data verification).
"""

from collections.abc import Callable

GATE_CYCLES = 20_000_000
"""Spin-kernel length: ~10 ms at 2 GHz, longer than queueing the copies of 16 streams behind it."""
ROUNDS = 3
"""Samples per point (nvbandwidth --testSamples)."""


def time_streams(
    jobs: list[tuple[object, Callable[[], object]]],
    warmup: int,
    iters: int,
    during: Callable[[], object] | None = None,
    rounds: int = ROUNDS,
) -> tuple[list[list[float]], object]:
    """Per-job samples (s per copy) of ``rounds`` gated rounds of (device, copy) jobs run concurrently, one stream each.

    ``during`` runs once while the last round is queued, before its synchronize (the devices are busy).
    """
    import torch

    streams = [torch.cuda.Stream(device=device) for device, _ in jobs]
    devices = {device for device, _ in jobs}
    samples: list[list[float]] = [[] for _ in jobs]
    observed = None
    for number in range(rounds):
        with torch.cuda.stream(streams[0]):
            torch.cuda._sleep(GATE_CYCLES)
            go = torch.cuda.Event()
            go.record(streams[0])
        marks = []
        for stream, (_, copy) in zip(streams, jobs):
            stream.wait_event(go)
            with torch.cuda.stream(stream):
                for _ in range(warmup if number == 0 else 1):
                    copy()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record(stream)
                for _ in range(iters):
                    copy()
                end.record(stream)
            marks.append((start, end))
        if number == rounds - 1 and during:
            observed = during()
        for device in devices:
            torch.cuda.synchronize(device)
        for job, (start, end) in enumerate(marks):
            samples[job].append(start.elapsed_time(end) / 1e3 / iters)
    return samples, observed


PATTERN_PERIOD = 251 * 4096
"""Bytes of the pattern tile (a multiple of the prime 251), repeated to fill a buffer without a full-size index."""


def pattern_bytes(nbytes: int, device, seed: int = 0):
    """A uint8 buffer whose byte i is (i + seed) mod 251, so a copy that moved nothing or the wrong bytes shows."""
    import torch

    tile = ((torch.arange(min(nbytes, PATTERN_PERIOD), device=device) + seed) % 251).to(torch.uint8)
    return tile.repeat(-(-nbytes // len(tile)))[:nbytes] if nbytes > len(tile) else tile


def verify(pairs: list[tuple[object, object]]) -> bool:
    """True when every (source, destination) pair holds equal bytes."""
    import torch

    return all(torch.equal(src.to(dst.device), dst) for src, dst in pairs)
