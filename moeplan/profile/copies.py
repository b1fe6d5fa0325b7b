"""Concurrent copies on CUDA streams, timed like nvbandwidth: every stream waits on one 'go' event so all
copies start together; each stream's time runs from its own start event to its own end event, on its
own device; a sample is the slowest stream's time."""

from collections.abc import Callable


def time_streams(
    jobs: list[tuple[object, Callable[[], object]]],
    warmup: int,
    iters: int,
    during: Callable[[], object] | None = None,
) -> tuple[list[list[float]], object]:
    """Per-job time samples (s) of ``iters`` rounds of (device, copy) jobs run concurrently, one stream each.

    ``during`` runs once after all rounds are enqueued, before the final synchronize (the devices are busy).
    """
    import torch

    streams = [torch.cuda.Stream(device=device) for device, _ in jobs]
    devices = {device for device, _ in jobs}

    def round_(timed: bool):
        go = torch.cuda.Event()
        go.record(streams[0])
        marks = []
        for stream, (_, copy) in zip(streams, jobs):
            stream.wait_event(go)
            start, end = torch.cuda.Event(enable_timing=timed), torch.cuda.Event(enable_timing=timed)
            with torch.cuda.stream(stream):
                start.record(stream)
                copy()
                end.record(stream)
            marks.append((start, end))
        return marks

    for _ in range(warmup):
        round_(False)
    for device in devices:
        torch.cuda.synchronize(device)
    rounds = [round_(True) for _ in range(iters)]
    observed = during() if during else None
    for device in devices:
        torch.cuda.synchronize(device)
    return [[marks[j][0].elapsed_time(marks[j][1]) / 1e3 for marks in rounds] for j in range(len(jobs))], observed
