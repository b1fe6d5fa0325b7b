"""Sample statistics, the nccl-tests bandwidth conventions and the α–β fit (numpy only).

Conventions (nccl-tests doc/PERFORMANCE.md): for all-to-all, S = bytes per rank including the chunk a rank
keeps for itself; algbw = S / t; busbw = algbw·(n−1)/n, the rate bytes leave each rank, comparable with
one link's per-direction bandwidth. GB/s = 1e9 B/s.
"""

import numpy as np
from pydantic import BaseModel


class Stats(BaseModel):
    """Timing samples of one measurement and their summary (seconds)."""

    samples_s: list[float]
    """Every timed sample, in order (for collectives: the max over ranks of each iteration)."""
    median_s: float
    p10_s: float
    p90_s: float


def summarize(samples_s: list[float]) -> Stats:
    """Median and 10th/90th percentiles (linear interpolation) of timing samples, raw samples kept."""
    values = np.asarray(samples_s, dtype=float)
    p10, median, p90 = np.percentile(values, [10, 50, 90])
    return Stats(samples_s=values.tolist(), median_s=float(median), p10_s=float(p10), p90_s=float(p90))


def alltoall_algbw(size_bytes: float, time_s: float) -> float:
    """nccl-tests algbw of all-to-all (B/s): per-rank buffer bytes S (self chunk included) over time."""
    return size_bytes / time_s


def alltoall_busbw(algbw_bytes_per_s: float, num_ranks: int) -> float:
    """nccl-tests busbw of all-to-all (B/s): algbw·(n−1)/n, the remote share of each rank's bytes."""
    return algbw_bytes_per_s * (num_ranks - 1) / num_ranks


def sweep_tail(sizes_bytes: list[float]) -> list[int]:
    """Indices of the tail of a size sweep the α–β fit uses: the larger half of the sizes (at least 4 points),
    where launch overheads no longer dominate (nccl-tests quotes large-message busbw)."""
    order = sorted(range(len(sizes_bytes)), key=lambda i: sizes_bytes[i])
    return sorted(order[min(len(order) // 2, max(0, len(order) - 4)) :])


class AlphaBetaFit(BaseModel):
    """t(S) = α + S·(n−1)/n / β fitted to an all-to-all size sweep."""

    alpha_s: float
    """Per-call latency α (s)."""
    beta_bytes_per_s: float
    """Asymptotic busbw β (B/s, per direction per rank)."""
    points: int
    """Sizes used in the fit."""
    max_relative_residual: float
    """Largest |t_fit − t| / t over the points."""


def fit_alpha_beta(sizes_bytes: list[float], times_s: list[float], num_ranks: int) -> AlphaBetaFit | None:
    """Least-squares α–β fit on relative error, so small sizes set α and large sizes set β; α clamped at 0.

    Minimises Σ((α + x_i/β − t_i)/t_i)² with x_i = S_i·(n−1)/n. None when fewer than two points or when
    time does not grow with size (β would be infinite or negative).
    """
    sizes, times = np.asarray(sizes_bytes, dtype=float), np.asarray(times_s, dtype=float)
    if len(sizes) < 2:
        return None
    remote = sizes * (num_ranks - 1) / num_ranks
    design = np.stack([1.0 / times, remote / times], axis=1)
    (alpha, inverse_beta), *_ = np.linalg.lstsq(design, np.ones_like(times), rcond=None)
    if inverse_beta <= 0:
        return None
    fitted = alpha + remote * inverse_beta
    return AlphaBetaFit(
        alpha_s=max(0.0, float(alpha)),  # tail points can extrapolate below 0
        beta_bytes_per_s=float(1.0 / inverse_beta),
        points=len(sizes),
        max_relative_residual=float(np.max(np.abs(fitted - times) / times)),
    )
