"""The speed model's constants: few, global and physical. Each is documented in docs/formulas.md §Speed with the
measurement it comes from; those marked "fit" were chosen on the H100 runs in the team's accuracy folder
(benchmarks/accuracy.py) and the NCCL/DeepEP tables next to them, never per model, row or engine.

A `moeplan profile --save` calibration replaces the fractions and latencies it measured (moeplan.perf.speed).
"""

from pydantic import BaseModel, ConfigDict, Field


class PerfConstants(BaseModel):
    """Achieved fractions of catalogue peaks, fixed costs and collective latencies of the speed model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hbm_fraction: float = Field(0.90, gt=0, le=1.2)
    """Share of the datasheet HBM bandwidth a streaming read reaches (fit on TPOT: 0.90; H100 copy kernels reach 0.8–0.9)."""
    gemm_fraction: float = Field(0.70, gt=0, le=1.2)
    """Share of the dense tensor peak of its format a large GEMM or FlashAttention reaches (fit on TPOT and TTFT: 0.70;
    cuBLAS/CUTLASS reach 0.6–0.8 on H100)."""
    gemm_tile_rows: int = Field(64, gt=0)
    """Rows (tokens) of one GEMM tile: a GEMM of M rows costs ⌈M/64⌉·64 rows of compute, and each expert of a grouped
    GEMM pads its tokens to it (CUTLASS/DeepGEMM Hopper kernels use 64- or 128-row tiles)."""
    kernel_s: float = Field(2e-6, ge=0)
    """Time per kernel inside a CUDA graph: launch gap plus the tail of a kernel that does not fill the GPU (fit: 2 µs)."""
    eager_kernel_s: float = Field(8e-6, ge=0)
    """Time per kernel launched from the host without CUDA graphs (a cudaLaunchKernel is 5–10 µs of host time)."""
    step_overhead_s: float = Field(1e-3, ge=0)
    """Host time per engine step: scheduling, input preparation, sampling bookkeeping (fit: 1 ms)."""
    request_overhead_s: float = Field(0.15, ge=0)
    """Serving: time a request spends outside the engine's steps before its first token (HTTP, tokenisation,
    scheduling, detokenisation) (fit on TTFT: 150 ms; vLLM's frontends take less, TensorRT-LLM's more)."""
    elementwise_passes: float = Field(20, ge=0)
    """H-wide bf16 vectors read or written per token per layer by norms, residual adds, rotary, activations and
    quantisation of activations (fit on TPOT: 20)."""
    link_fraction: float = Field(0.66, gt=0, le=1.2)
    """Share of the catalogue NVLink bandwidth per direction an all-reduce's bus traffic reaches (fit, NCCL 2.29)."""
    collective_latency_s: float = Field(5.25e-6, ge=0)
    """α of a collective inside a node, its fixed part (fit with the two below on NCCL 2.29 all_reduce, 2–8 H100s,
    256 B – 512 MB: mean |log error| 13%)."""
    collective_hop_latency_s: float = Field(1.8e-6, ge=0)
    """α grows by this per extra GPU in the ring (fit: NCCL 2.29 all_reduce takes 6 µs on 2 GPUs, 15.6 µs on 8)."""
    expert_dispatch_latency_s: float = Field(11.5e-6, ge=0)
    """α of one DeepEP dispatch or combine (fit with the next on DeepEP low-latency, one 8-H100 node, 1–1024 tokens,
    hidden 2048–7168, top-1 to top-10: mean |log error| 12%)."""
    expert_link_fraction: float = Field(0.50, gt=0, le=1.2)
    """Share of the catalogue NVLink bandwidth DeepEP dispatch/combine payloads reach (fit)."""
    expert_normal_latency_s: float = Field(32e-6, ge=0)
    """α of one DeepEP normal-mode dispatch or combine, what steps carrying prompts use (fit with the next on DeepEP
    normal, one 8-H100 node, 1–131,072 tokens, best SM count: mean |log error| 10%)."""
    expert_normal_link_fraction: float = Field(0.76, gt=0, le=1.2)
    """Share of the catalogue NVLink bandwidth DeepEP normal payloads reach (one bf16 copy per token and rank)."""
    inter_node_latency_s: float = Field(20e-6, ge=0)
    """α of a collective whose ring or all-to-all crosses nodes over the NIC."""
    measured_on: str | None = None
    """The GPU a calibration was measured on (None: the constants above)."""


DEFAULT = PerfConstants()


def calibrated(efficiency) -> PerfConstants:
    """The constants with a `moeplan profile --save` calibration's measurements in place (perf.roofline.Efficiency,
    read by moeplan.calibration.load_calibration): measured HBM fraction → hbm_fraction; the expert GEMM's
    compute efficiency → gemm_fraction; the all-to-all β (else peer NVLink copies) / catalogue → link_fraction and
    expert_link_fraction; the all-to-all α → collective_latency_s and expert_dispatch_latency_s. A figure the profile
    did not measure (left at the roofline's 1.0 or default α) keeps the value above. None: DEFAULT."""
    if efficiency is None:
        return DEFAULT
    from moeplan.perf.roofline import COLLECTIVE_LATENCY_S

    update: dict = {"measured_on": efficiency.measured_on}
    if efficiency.hbm != 1.0:
        update["hbm_fraction"] = efficiency.hbm
    if efficiency.gemm != 1.0:
        update["gemm_fraction"] = efficiency.gemm
    if efficiency.link != 1.0:
        update.update(link_fraction=efficiency.link, expert_link_fraction=efficiency.link, expert_normal_link_fraction=efficiency.link)
    if efficiency.collective_latency_s != COLLECTIVE_LATENCY_S:
        update.update(collective_latency_s=efficiency.collective_latency_s, collective_hop_latency_s=0.0,
                      expert_dispatch_latency_s=efficiency.collective_latency_s, expert_normal_latency_s=efficiency.collective_latency_s)
    return DEFAULT.model_copy(update=update)
