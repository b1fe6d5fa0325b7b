"""The config-derived parameter count cross-checked against what the checkpoint stores.

A safetensors header gives every stored tensor's shape, so a model directory's headers state the stored
element count exactly. When no tensor is packed (every dtype a float type, so one element is one parameter)
that count must equal moeplan's total (plus the multi-token-prediction modules, which checkpoints store),
up to quantization scales and the few buffers checkpoints keep (DeepSeek's FP8 block scales add 1/16384).
A larger difference means the config was read wrongly, and it is reported as a warning of the result.
"""

from moeplan.spec.checkpoint import CheckpointSummary

STORED_COUNT_TOLERANCE = 0.005
"""Relative difference between stored elements and the derived count above which the result warns (0.5%)."""

UNPACKED_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0"})
"""safetensors dtypes that hold one parameter per element; integer dtypes (U8, I32, ...) hold packed
quantized weights (MXFP4, NVFP4, GPTQ, bitsandbytes), whose element count is not a parameter count."""


def stored_count_difference(checkpoint: CheckpointSummary, derived_params: int) -> float | None:
    """(stored − derived) / derived, or None when the checkpoint holds packed tensors and cannot be compared."""
    if not checkpoint.by_dtype.keys() <= UNPACKED_DTYPES or derived_params == 0:
        return None
    return (checkpoint.elements - derived_params) / derived_params


def stored_count_warning(checkpoint: CheckpointSummary | None, derived_params: int) -> str | None:
    """The warning for a checkpoint whose stored element count differs from the derived count by more than
    STORED_COUNT_TOLERANCE; None when it agrees, cannot be compared, or there is no checkpoint."""
    if checkpoint is None:
        return None
    difference = stored_count_difference(checkpoint, derived_params)
    if difference is None or abs(difference) <= STORED_COUNT_TOLERANCE:
        return None
    return (
        f"the checkpoint stores {checkpoint.elements:,} parameters but the config reads as {derived_params:,} "
        f"({difference:+.2%}): moeplan's count of this model is wrong; check the config's model_type and keys"
    )
