"""Timing primitives: CUDA events on the working stream, ``time.perf_counter`` on CPU, an L2 flush, OOM
detection and a watchdog so no step can hang the run.

CUDA: warm-up calls, then every sample is bracketed by events recorded on the current stream; one
synchronize at the end (the triton/SGLang pattern). With ``graph=True`` the call is captured once in a CUDA
graph (after eager warm-up on a side stream) and each sample is one replay (vLLM benchmark_moe, triton
do_bench_cudagraph), so launch overhead stays out; if capture fails the eager timing is used and ``note``
says why. CPU: each sample is perf_counter around one synchronous call.
"""

import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

L2_FLUSH_BYTES = 256 * 2**20
"""Buffer zeroed before each timed GEMM on CUDA (triton do_bench, DeepEP): larger than any L2 so far."""


@dataclass
class Timed:
    samples_s: list[float]
    during: Any = None
    """What the ``during`` callback returned (e.g. NVML clocks read while the GPU was busy)."""
    note: str | None = None
    """How the samples were taken when it differs from what was asked (graph capture failed)."""


def time_samples(
    fn: Callable[[], object],
    device,
    warmup: int,
    iters: int,
    before: Callable[[], object] | None = None,
    during: Callable[[], object] | None = None,
    graph: bool = False,
) -> Timed:
    """Time ``iters`` calls of ``fn`` after ``warmup`` untimed ones; ``before`` runs untimed ahead of each sample.

    ``during`` runs once after all samples are enqueued and before the final synchronize (CUDA), so it
    observes the device under load; on CPU it runs after the last sample.
    """
    import torch

    for _ in range(warmup):
        fn()
    if device.type != "cuda":
        samples = []
        for _ in range(iters):
            if before:
                before()
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        return Timed(samples, during() if during else None)
    note = None
    if graph:
        fn, note = _captured(fn, device)
    with torch.cuda.device(device):
        torch.cuda.synchronize()
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
        for start, end in events:
            if before:
                before()
            start.record()
            fn()
            end.record()
        observed = during() if during else None
        torch.cuda.synchronize()
    return Timed([start.elapsed_time(end) / 1e3 for start, end in events], observed, note)


def _captured(fn: Callable[[], object], device) -> tuple[Callable[[], object], str | None]:
    """(graph.replay, None) for ``fn`` captured in a CUDA graph, else (fn, why not) when capture fails."""
    import torch

    with torch.cuda.device(device):
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # capture needs eager calls first, off the default stream
            for _ in range(2):
                fn()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                fn()
        except RuntimeError as error:
            if is_sticky_cuda_error(error):
                raise
            torch.cuda.synchronize(device)
            return fn, f"timed eagerly: CUDA graph capture failed ({first_line(error)})"
    return graph.replay, None


@functools.cache
def l2_flusher(device) -> Callable[[], object] | None:
    """A callable that evicts the GPU's L2 by zeroing a 256 MiB buffer (one per device); None on CPU (no flush)."""
    import torch

    if device.type != "cuda":
        return None
    buffer = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)
    return buffer.zero_


def is_out_of_memory(error: BaseException) -> bool:
    """True for a CUDA or host allocation failure (the size is skipped with a note, the run goes on)."""
    import torch

    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(text in str(error) for text in ("out of memory", "can't allocate memory"))


STICKY_CUDA_ERRORS = (
    "illegal memory access",
    "illegal instruction",
    "unspecified launch failure",
    "misaligned address",
    "device-side assert",
    "invalid program counter",
    "hardware stack error",
    "uncorrectable ECC",
    "CUDA-capable device(s) is/are busy or unavailable",
)
"""CUDA errors that leave the context unusable: every later call fails with the same error."""


class DeviceLost(Exception):
    """A sticky CUDA error: the section fails and the run stops (the message names the point)."""


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def is_sticky_cuda_error(error: BaseException) -> bool:
    """True for an error after which the CUDA context is unusable (illegal address, device assert, ...)."""
    text = str(error)
    return any(pattern.lower() in text.lower() for pattern in STICKY_CUDA_ERRORS)


@contextmanager
def watchdog(seconds: float, what: str):
    """End the process with exit code 3 and a clear line if the block runs longer than ``seconds``.

    A hung kernel or copy cannot be interrupted from Python, so the process ends itself; every
    measurement finished so far is already in the --out file.
    """

    def expire() -> None:
        sys.stderr.write(f"error: {what} did not finish within {seconds:g} s (hung device or peer?); measurements finished so far are in --out\n")
        sys.stderr.flush()
        os._exit(3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def try_allocate(make: Callable[[], Any], what: str) -> tuple[Any, str | None]:
    """(make(), None), or (None, 'out of memory allocating WHAT') when the allocation fails; other errors propagate."""
    try:
        return make(), None
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        return None, f"out of memory allocating {what}"
