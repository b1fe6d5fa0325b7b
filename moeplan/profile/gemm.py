"""Expert FFN GEMMs on one GPU for the model's real shapes: E/EP local experts, hidden H, intermediate I.

Rows per expert come from moeplan.profile.routing (balanced, multinomial, skewed) at vLLM benchmark_moe's
token grid (T = 1 … 4096 on CUDA). Kernel paths, bf16: ``grouped_mm`` (torch._grouped_mm over jagged rows;
CUTLASS kernels on sm90/sm100, a slower fallback elsewhere), ``bmm_padded`` (every expert padded to the
busiest expert's rows, one torch.bmm per projection), ``loop`` (one torch.mm per active expert and
projection); fp8 e4m3 beside them on sm90+ (balanced load): ``fp8_w8a8`` (scaled_grouped_mm with per-row
activation and per-channel weight scales, activations quantized inside the timed call) and ``fp8_block``
(DeepSeek-style 1×128 activation and 128×128 weight blocks, scaled_mm per expert). Where the model has shared
experts whose size is a multiple of I they are fused as extra local experts that every token reaches (vLLM's
fused shared expert). Layout work is done before timing; the timed call is gate_up GEMM, activation and down.

Timing on CUDA, as vLLM: the call is captured in a CUDA graph and replayed, an L2 flush and, for the grouped
paths, a fresh routing draw of the same rows (new offsets copied in) before each replay, outside the events;
eager timing, with a note, where capture fails. FLOPs count actual rows only: 2·rows·(3·H·I) gated (2·H·I
plain). Weight bytes count the experts that receive rows (1 B per fp8 element plus scales), so
weight_bytes_per_s is the weight-streaming rate.
"""

import itertools
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
from moeplan.profile.timing import first_line, is_out_of_memory, is_sticky_cuda_error, l2_flusher, time_samples, try_allocate

KernelPath = Literal["grouped_mm", "bmm_padded", "loop", "fp8_w8a8", "fp8_block"]
KERNEL_PATHS: tuple[KernelPath, ...] = ("grouped_mm", "bmm_padded", "loop")
"""bf16 paths, run at every load pattern."""
FP8_PATHS: tuple[KernelPath, ...] = ("fp8_w8a8", "fp8_block")
"""fp8 paths (sm90+ CUDA), run at the balanced load."""
GROUPED_PATHS = ("grouped_mm", "fp8_w8a8")
"""Paths whose routing lives in a device tensor of offsets, so a graph replay can take fresh routing."""
ELEMENT_BYTES = 2
"""bf16."""
FP8_MAX = 448.0
"""Largest e4m3 value."""
BLOCK = 128
"""fp8_block scaling block (DeepSeek-V3's 128 × 128 weights, 1 × 128 activations)."""
FRESH_DRAWS = 8
"""Routing draws cycled through the graph replays."""


@dataclass
class ExpertWeights:
    w1: object
    """[E_loc, g·I, H] gate and up projections (g = 2 gated, 1 plain)."""
    w2: object
    """[E_loc, H, I] down projection."""
    hidden: int
    intermediate: int
    gated: bool


def _scale_bytes(weights: ExpertWeights, path: KernelPath) -> int:
    """fp32 scale bytes of one expert's fp8 weights: per output channel (w8a8) or per 128 × 128 block."""
    g = 2 if weights.gated else 1
    shapes = ((g * weights.intermediate, weights.hidden), (weights.hidden, weights.intermediate))
    if path == "fp8_w8a8":
        return 4 * sum(n for n, _ in shapes)
    return 4 * sum(-(-n // BLOCK) * -(-k // BLOCK) for n, k in shapes)


def gemm_dims(ctx: RunContext) -> tuple[int, int]:
    """(H, I) the section uses: the model's, divided by the sweep's scale on CPU."""
    scale = ctx.sweeps.gemm_scale
    return max(1, ctx.shape.hidden_size // scale), max(1, ctx.shape.expert_intermediate_size // scale)


def local_experts(ctx: RunContext) -> int:
    """Routed experts per GPU plus the fused shared-expert units."""
    return ctx.shape.num_experts // ctx.shape.ep + ctx.shape.shared_expert_units


def make_weights(ctx: RunContext, device) -> tuple[ExpertWeights | None, str | None]:
    """Random bf16 weights of the local experts and fused shared experts (None and a reason when they do not fit)."""
    import torch

    hidden, inter = gemm_dims(ctx)
    local, g = local_experts(ctx), 2 if ctx.shape.gated else 1
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


def fp8_unavailable(device) -> str | None:
    """Why the fp8 paths cannot run here (None on sm90+ CUDA with torch's scaled GEMMs)."""
    import torch
    import torch.nn.functional as F

    if device.type != "cuda":
        return "fp8 GEMMs need a CUDA GPU (sm90+)"
    if not (hasattr(F, "scaled_grouped_mm") and hasattr(F, "scaled_mm")):
        return f"torch {torch.__version__} has no torch.nn.functional.scaled_grouped_mm/scaled_mm"
    major, minor = torch.cuda.get_device_capability(device)
    if major < 9:
        return f"fp8 GEMMs need sm90+ (this GPU is sm{major}{minor})"
    return None


def quantize_rows(x):
    """Per-row e4m3 quantization: (x / scale as fp8 [R, K], scale [R] fp32) with scale = amax / 448."""
    import torch

    scale = x.float().abs().amax(dim=-1).clamp(min=1e-12) / FP8_MAX
    return (x.float() / scale.unsqueeze(-1)).to(torch.float8_e4m3fn), scale


def quantize_blocks(x, rows: int, cols: int):
    """e4m3 quantization with one fp32 scale per ``rows`` × ``cols`` block of the last two dims."""
    import torch

    *lead, m, k = x.shape
    blocks = x.float().reshape(*lead, m // rows, rows, k // cols, cols)
    scale = blocks.abs().amax(dim=(-3, -1)).clamp(min=1e-12) / FP8_MAX  # [..., m/rows, k/cols]
    values = (blocks / scale[..., :, None, :, None]).reshape(*lead, m, k).to(torch.float8_e4m3fn)
    return values, scale


def ffn_call(path: KernelPath, weights: ExpertWeights, x, loads: np.ndarray, offs=None) -> Callable[[], object]:
    """The timed FFN over rows x ([R, H], grouped by expert in order) for the given kernel path; the grouped
    paths read their group ends from ``offs`` (an int32 device tensor a replay may overwrite)."""
    import torch

    w1, w2 = weights.w1, weights.w2
    if offs is None:
        offs = torch.tensor(np.cumsum(loads), dtype=torch.int32, device=x.device)
    if path == "grouped_mm":
        w1t, w2t = w1.transpose(-2, -1), w2.transpose(-2, -1)  # [E, H, g·I], [E, I, H]
        return lambda: torch._grouped_mm(_activation(torch._grouped_mm(x, w1t, offs=offs), weights), w2t, offs=offs)
    if path == "fp8_w8a8":
        return _fp8_w8a8_call(weights, x, offs)
    if path == "fp8_block":
        return _fp8_block_call(weights, x, loads)
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


def _fp8_w8a8_call(weights: ExpertWeights, x, offs) -> Callable[[], object]:
    """scaled_grouped_mm with RowWise scales: activations quantized per row inside the call (as vLLM's w8a8
    fused MoE does), weights per output channel once, outside it."""
    import torch.nn.functional as F

    rowwise = F.ScalingType.RowWise
    w1q, w1s = quantize_rows(weights.w1)  # [E, g·I, H] fp8, [E, g·I]
    w2q, w2s = quantize_rows(weights.w2)  # [E, H, I] fp8, [E, H]
    w1t, w2t = w1q.transpose(-2, -1), w2q.transpose(-2, -1)  # column-major [E, H, g·I], [E, I, H]

    def call():
        xq, xs = quantize_rows(x)
        h = F.scaled_grouped_mm(xq, w1t, xs, rowwise, w1s, rowwise, offs=offs, output_dtype=x.dtype)
        hq, hs = quantize_rows(_activation(h, weights))
        return F.scaled_grouped_mm(hq, w2t, hs, rowwise, w2s, rowwise, offs=offs, output_dtype=x.dtype)

    return call


def _pad_rows(x, multiple: int):
    import torch.nn.functional as F

    return F.pad(x, (0, 0, 0, -len(x) % multiple)) if len(x) % multiple else x


def _fp8_block_call(weights: ExpertWeights, x, loads: np.ndarray) -> Callable[[], object]:
    """DeepSeek-V3's fp8 layout: 128 × 128 weight blocks, 1 × 128 activation groups quantized in the call;
    one scaled_mm per active expert and projection (cuBLASLt wants token-major activation scales, the row
    count a multiple of 4 and the weight's K blocks padded to a multiple of 4)."""
    import torch
    import torch.nn.functional as F

    hidden, inter = weights.hidden, weights.intermediate
    if hidden % BLOCK or inter % BLOCK:
        raise ValueError(f"fp8_block needs H and I multiples of {BLOCK} (H {hidden}, I {inter})")
    blocks_a, blocks_b = F.ScalingType.BlockWise1x128, F.ScalingType.BlockWise128x128

    def weight(w):  # [E, N, K] → per expert (fp8 [K, N] column-major, scales [K/128 padded to 4, N/128])
        q, s = quantize_blocks(w, BLOCK, BLOCK)  # s: [E, N/128, K/128]
        s = F.pad(s, (0, -s.shape[-1] % 4))
        return [(q[e].t(), s[e].t()) for e in range(len(w))]

    def gemm(a, w):  # a: [M, K] bf16
        m = len(a)
        a = _pad_rows(a, 4)
        aq, a_scale = quantize_blocks(a, 1, BLOCK)  # [M', K], [M', K/128]
        b, b_scale = w
        return F.scaled_mm(aq, b, a_scale.t().contiguous().t(), blocks_a, b_scale, blocks_b, output_dtype=x.dtype)[:m]

    w1, w2 = weight(weights.w1), weight(weights.w2)
    slices = [(e, int(start), int(start + rows)) for e, (start, rows) in enumerate(zip(np.cumsum(loads) - loads, loads)) if rows]
    out = torch.empty_like(x)

    def call():
        for e, start, end in slices:
            out[start:end] = gemm(_activation(gemm(x[start:end], w1[e]), weights), w2[e])
        return out

    return call


def gemm_points(ctx: RunContext, paths: list[KernelPath]) -> list[tuple[int, LoadPattern, KernelPath]]:
    """(tokens per rank T, load pattern, kernel path) for every point: bf16 paths at every pattern, fp8 at balanced."""
    return [(tokens, pattern, path) for tokens in ctx.sweeps.gemm_tokens for pattern in LOAD_PATTERNS for path in paths
            if path not in FP8_PATHS or pattern == "balanced"]


def with_shared(loads: np.ndarray, tokens: int, units: int) -> np.ndarray:
    """Routed loads followed by the fused shared-expert units, each of which every one of the T tokens reaches."""
    return np.concatenate([loads, np.full(units, tokens, dtype=np.int64)])


def fresh_loads(loads: np.ndarray, routed: int, pattern: LoadPattern, draws: int, seed: int) -> list[np.ndarray]:
    """Routing draws of the same rows for successive replays (vLLM draws new gating per call): the balanced
    load stays; otherwise a multinomial of the routed rows with the sample's expert shares. The shared units
    (after the first ``routed`` entries) keep their T rows."""
    if pattern == "balanced":
        return [loads]
    rng = np.random.default_rng(seed)
    rows = int(loads[:routed].sum())
    shares = loads[:routed] / rows
    return [loads] + [np.concatenate([rng.multinomial(rows, shares), loads[routed:]]).astype(np.int64) for _ in range(draws - 1)]


def measure_gemm(ctx: RunContext, target: Target, weights: ExpertWeights, tokens: int, pattern: LoadPattern, path: KernelPath) -> Measurement:
    """One FFN timing for T tokens per rank routed with the given pattern, on the given kernel path."""
    import torch

    shape = ctx.shape
    routed = expert_loads(tokens, shape.ep, shape.num_experts, shape.top_k, pattern, ctx.seed)
    loads = with_shared(routed, tokens, shape.shared_expert_units)
    rows, active = int(loads.sum()), int((loads > 0).sum())
    per_expert = mlp_params(weights.hidden, weights.intermediate, weights.gated, False)
    flops = 2 * rows * per_expert
    fp8 = path in FP8_PATHS
    weight_bytes = active * per_expert * (1 if fp8 else ELEMENT_BYTES) + (active * _scale_bytes(weights, path) if fp8 else 0)
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
            "dtype": "fp8" if fp8 else "bf16",
            "shared_fused": shape.shared_expert_units,
        },
        bytes=weight_bytes,
        flops=flops,
    )
    generator = torch.Generator(device=target.device).manual_seed(ctx.seed + tokens)
    cuda = target.device.type == "cuda"
    draws = fresh_loads(loads, len(routed), pattern, FRESH_DRAWS, ctx.seed + tokens) if cuda and path in GROUPED_PATHS else [loads]
    offsets = [torch.tensor(np.cumsum(d), dtype=torch.int32, device=target.device) for d in draws]
    offs = offsets[0].clone()
    try:
        call, base.skipped = try_allocate(
            lambda: ffn_call(path, weights, torch.randn(rows, weights.hidden, dtype=torch.bfloat16, device=target.device, generator=generator), loads, offs),
            f"activations for {rows} rows",
        )
        if call is None:
            return base
        flush = l2_flusher(target.device)
        replay = itertools.count()

        def before():  # untimed: evict L2, then (grouped paths) the next routing draw
            if flush:
                flush()
            if len(offsets) > 1:
                offs.copy_(offsets[next(replay) % len(offsets)])

        timed = time_samples(call, target.device, ctx.sweeps.warmup, ctx.sweeps.iters, before=before, during=ctx.clock_reader([target]), graph=cuda)
    except (RuntimeError, ValueError, TypeError, NotImplementedError) as error:  # a kernel refusing these shapes skips the point
        if is_sticky_cuda_error(error):
            raise  # the context is gone: the runner stops the run
        base.skipped = "out of memory" if is_out_of_memory(error) else f"{path} failed: {first_line(error)}"
        return base
    stats = summarize(timed.samples_s)
    base.stats = stats
    base.rates = {"flops_per_s": flops / stats.median_s, "weight_bytes_per_s": weight_bytes / stats.median_s}
    base.primary_rate = "flops_per_s"
    base.prediction = ctx.predictor.gemm(flops, traffic, ctx.measured_dram_bytes_per_s, fp8=fp8)
    base.clocks = timed.during or []
    base.hints = ctx.hints([target.nvml_index], ("throttling",)) + clock_hints(base.clocks)
    if timed.note:
        base.notes.append(timed.note)
    if len(draws) > 1:
        base.notes.append(f"fresh routing per replay: {len(draws)} draws of the same {rows} rows cycled")
    if path == "bmm_padded" and rows < len(loads) * int(loads.max()):
        base.notes.append(f"padded to {len(loads)} x {int(loads.max())} rows: {len(loads) * int(loads.max()) - rows} rows of wasted work, not counted in FLOPs")
    return apply_verdict(base)
