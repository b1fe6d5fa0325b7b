"""The tensor-core peak each weight format runs at on a GPU."""

from moeplan.hardware.catalogue import GPUSpec

FP8_FORMATS = ("fp8", "fp8-channel", "fp8-tensor", "mxfp8")
FP4_FORMATS = ("nvfp4", "mxfp4")


def format_peak_flops(gpu: GPUSpec, fmt: str) -> tuple[float, str | None]:
    """(dense FLOP/s a GEMM whose weights are in ``fmt`` runs at, a note when the format has no tensor-core rate of
    its own on this GPU). FP8 formats run at the FP8 peak and FP4 formats at the FP4 peak where the GPU has them;
    a 4-bit format without FP4 tensor cores is dequantised to bf16 in the kernel (Marlin, w4a16), an FP8 one without
    FP8 tensor cores likewise; integer and GGUF formats run at the bf16 rate."""
    if fmt in FP8_FORMATS:
        if gpu.fp8_flops_per_s:
            return gpu.fp8_flops_per_s, None
        return gpu.bf16_flops_per_s, f"{fmt} on {gpu.name} runs at the BF16 rate (no FP8 tensor cores)"
    if fmt in FP4_FORMATS:
        if gpu.fp4_flops_per_s:
            return gpu.fp4_flops_per_s, None
        return gpu.bf16_flops_per_s, f"{fmt} on {gpu.name} runs at the BF16 rate (no FP4 tensor cores; weights dequantised in the GEMM)"
    return gpu.bf16_flops_per_s, None
