"""Expert FFN GEMMs on one GPU for the model's real shapes: E/EP local experts, hidden H, intermediate I.

Rows per expert come from moeplan.profile.routing (balanced, multinomial, skewed). Three kernel paths:
``grouped_mm`` (torch._grouped_mm over jagged rows; CUTLASS kernels on sm90/sm100, a slower fallback
elsewhere), ``bmm_padded`` (every expert padded to the busiest expert's rows, one torch.bmm per
projection) and ``loop`` (one torch.mm per active expert and projection). Layout work (offsets, padding,
slicing) is done before timing; the timed call is gate_up GEMM, activation and down GEMM, in bf16.

FLOPs count actual rows only: 2·rows·(3·H·I) gated (2·H·I plain). Weight bytes count the experts that
receive rows, so weight_bytes_per_s is the weight-streaming rate.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from moeplan.accounting.params import mlp_params
from moeplan.profile.context import RunContext, Target, clock_hints
from moeplan.profile.predict import apply_verdict, ffn_activation_bytes
from moeplan.profile.results import Measurement
from moeplan.profile.routing import LOAD_PATTERNS, LoadPattern, expert_loads
from moeplan.profile.stats import summarize
from moeplan.profile.timing import is_out_of_memory, is_sticky_cuda_error, l2_flusher, time_samples, try_allocate

KernelPath = Literal["grouped_mm", "bmm_padded", "loop"]
KERNEL_PATHS: tuple[KernelPath, ...] = ("grouped_mm", "bmm_padded", "loop")
ELEMENT_BYTES = 2
"""bf16."""


@dataclass
class ExpertWeights:
    w1: object
    """[E_loc, g·I, H] gate and up projections (g = 2 gated, 1 plain)."""
    w2: object
    """[E_loc, H, I] down projection."""
    hidden: int
    intermediate: int
    gated: bool


def gemm_dims(ctx: RunContext) -> tuple[int, int]:
    """(H, I) the section uses: the model's, divided by the sweep's scale on CPU."""
    scale = ctx.sweeps.gemm_scale
    return max(1, ctx.shape.hidden_size // scale), max(1, ctx.shape.expert_intermediate_size // scale)


def make_weights(ctx: RunContext, device) -> tuple[ExpertWeights | None, str | None]:
    """Random bf16 weights of the local experts (None and a reason when they do not fit)."""
    import torch

    hidden, inter = gemm_dims(ctx)
    local, g = ctx.shape.num_experts // ctx.shape.ep, 2 if ctx.shape.gated else 1
    size = local * mlp_params(hidden, inter, ctx.shape.gated, False) * ELEMENT_BYTES
    generator = torch.Generator(device=device).manual_seed(ctx.seed)

    def make():
        w1 = torch.randn(local, g * inter, hidden, dtype=torch.bfloat16, device=device, generator=generator).div_(hidden**0.5)
        w2 = torch.randn(local, hidden, inter, dtype=torch.bfloat16, device=device, generator=generator).div_(inter**0.5)
        return ExpertWeights(w1, w2, hidden, inter, ctx.shape.gated)

    return try_allocate(make, f"{local} experts' weights ({size / 2**30:,.2f} GiB)")


def _activation(h, weights: ExpertWeights):
    import torch.nn.functional as F

    if weights.gated:
        inter = weights.intermediate
        return F.silu(h[..., :inter]) * h[..., inter:]
    return F.silu(h)


def grouped_mm_unavailable(device) -> str | None:
    """Why torch._grouped_mm cannot run on this device (None when a small probe call succeeds)."""
    import torch

    if not hasattr(torch, "_grouped_mm"):
        return f"torch {torch.__version__} has no torch._grouped_mm"
    try:
        x = torch.zeros(32, 64, dtype=torch.bfloat16, device=device)  # [R, H]
        w = torch.zeros(2, 32, 64, dtype=torch.bfloat16, device=device)  # [E, N, H]
        torch._grouped_mm(x, w.transpose(-2, -1), offs=torch.tensor([16, 32], dtype=torch.int32, device=device))
    except (RuntimeError, NotImplementedError, TypeError) as error:
        return f"torch._grouped_mm failed on {device}: {str(error).splitlines()[0]}"
    return None


def ffn_call(path: KernelPath, weights: ExpertWeights, x, loads: np.ndarray) -> Callable[[], object]:
    """The timed FFN over rows x ([R, H], grouped by expert in order) for the given kernel path."""
    import torch

    w1, w2 = weights.w1, weights.w2
    if path == "grouped_mm":
        offs = torch.tensor(np.cumsum(loads), dtype=torch.int32, device=x.device)
        w1t, w2t = w1.transpose(-2, -1), w2.transpose(-2, -1)  # [E, H, g·I], [E, I, H]
        return lambda: torch._grouped_mm(_activation(torch._grouped_mm(x, w1t, offs=offs), weights), w2t, offs=offs)
    if path == "bmm_padded":
        padded = torch.zeros(len(loads), int(loads.max()), weights.hidden, dtype=x.dtype, device=x.device)  # [E, M_max, H]
        for e, (start, rows) in enumerate(zip(np.cumsum(loads) - loads, loads)):
            padded[e, :rows] = x[start : start + rows]
        w1t, w2t = w1.transpose(1, 2), w2.transpose(1, 2)
        return lambda: torch.bmm(_activation(torch.bmm(padded, w1t), weights), w2t)
    out = torch.empty_like(x)
    slices = [(e, int(start), int(start + rows)) for e, (start, rows) in enumerate(zip(np.cumsum(loads) - loads, loads)) if rows]

    def loop():
        for e, start, end in slices:
            torch.mm(_activation(torch.mm(x[start:end], w1[e].t()), weights), w2[e].t(), out=out[start:end])
        return out

    return loop


def gemm_points(ctx: RunContext, paths: list[KernelPath]) -> list[tuple[int, LoadPattern, KernelPath]]:
    """(tokens per rank T, load pattern, kernel path) for every point of the sweep."""
    return [(tokens, pattern, path) for tokens in ctx.sweeps.gemm_tokens for pattern in LOAD_PATTERNS for path in paths]


def measure_gemm(ctx: RunContext, target: Target, weights: ExpertWeights, tokens: int, pattern: LoadPattern, path: KernelPath) -> Measurement:
    """One FFN timing for T tokens per rank routed with the given pattern, on the given kernel path."""
    import torch

    shape = ctx.shape
    loads = expert_loads(tokens, shape.ep, shape.num_experts, shape.top_k, pattern, ctx.seed)
    rows, active = int(loads.sum()), int((loads > 0).sum())
    per_expert = mlp_params(weights.hidden, weights.intermediate, weights.gated, False)
    flops = 2 * rows * per_expert
    weight_bytes = active * per_expert * ELEMENT_BYTES
    traffic = weight_bytes + ffn_activation_bytes(rows, weights.hidden, weights.intermediate, weights.gated, ELEMENT_BYTES)
    base = Measurement(
        section="gemm",
        name="ffn",
        device=target.label,
        params={
            "tokens_per_rank": tokens,
            "pattern": pattern,
            "kernel_path": path,
            "rows": rows,
            "experts_local": len(loads),
            "experts_active": active,
            "rows_per_expert": rows / active,
            "rows_max": int(loads.max()),
            "hidden": weights.hidden,
            "intermediate": weights.intermediate,
            "dtype": "bf16",
        },
        bytes=weight_bytes,
        flops=flops,
    )
    generator = torch.Generator(device=target.device).manual_seed(ctx.seed + tokens)
    call, base.skipped = try_allocate(
        lambda: ffn_call(path, weights, torch.randn(rows, weights.hidden, dtype=torch.bfloat16, device=target.device, generator=generator), loads),
        f"activations for {rows} rows",
    )
    if call is None:
        return base
    try:
        timed = time_samples(call, target.device, ctx.sweeps.warmup, ctx.sweeps.iters, before=l2_flusher(target.device), during=ctx.clock_reader([target]))
    except RuntimeError as error:  # a kernel refusing these shapes (or memory running out mid-call) skips the point
        if is_sticky_cuda_error(error):
            raise  # the context is gone: the runner stops the run
        base.skipped = "out of memory" if is_out_of_memory(error) else f"{path} failed: {str(error).strip().splitlines()[0]}"
        return base
    stats = summarize(timed.samples_s)
    base.stats = stats
    base.rates = {"flops_per_s": flops / stats.median_s, "weight_bytes_per_s": weight_bytes / stats.median_s}
    base.primary_rate = "flops_per_s"
    base.prediction = ctx.predictor.gemm(flops, traffic, ctx.measured_dram_bytes_per_s)
    base.clocks = timed.during or []
    base.hints = ctx.hints([target.nvml_index], ("throttling",)) + clock_hints(base.clocks)
    if path == "bmm_padded" and rows < len(loads) * int(loads.max()):
        base.notes.append(f"padded to {len(loads)} x {int(loads.max())} rows: {len(loads) * int(loads.max()) - rows} rows of wasted work, not counted in FLOPs")
    return apply_verdict(base)
