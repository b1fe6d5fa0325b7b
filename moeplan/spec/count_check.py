"""The config-derived parameter count cross-checked against what the checkpoint stores.

A safetensors header gives every stored tensor's shape, so a model directory's headers state the stored
element count exactly. When no tensor is packed (every dtype a float type, so one element is one parameter)
that count must equal moeplan's total (plus the multi-token-prediction modules, which checkpoints store),
up to quantization scales and the few buffers checkpoints keep (DeepSeek's FP8 block scales add 1/16384).
Without the shards, the safetensors index beside config.json states the bytes of every tensor
(metadata.total_size): for an unquantized 16- or 32-bit checkpoint that is the parameter count times the
element size. A larger difference than STORED_COUNT_TOLERANCE means the config was read wrongly, and it is
reported as a warning of the result.
"""

import json
from pathlib import Path

from moeplan.errors import SpecError
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
    if checkpoint is None or stored_count_difference(checkpoint, derived_params) is None:
        return None
    return _difference_warning("the checkpoint stores", checkpoint.elements, derived_params)


SAFETENSORS_INDEX = "model.safetensors.index.json"
_INDEX_MAX_BYTES = 64 * 2**20
_ELEMENT_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
"""Bytes per element of the torch_dtype values an unquantized checkpoint is stored in."""


def index_parameters(directory: Path, config: dict) -> int | None:
    """Parameters the directory's safetensors index implies when its shards are absent: metadata.total_size / the
    element size of the config's torch_dtype. None without an index, with shards present, for a quantized config
    or another dtype (where bytes do not give parameters); SpecError for an unreadable index."""
    path = directory / SAFETENSORS_INDEX
    dtype = config.get("torch_dtype") or config.get("dtype")
    if not path.is_file() or any(directory.glob("*.safetensors")) or "quantization_config" in config:
        return None
    if dtype not in _ELEMENT_BYTES:
        return None
    try:
        if path.stat().st_size > _INDEX_MAX_BYTES:
            raise SpecError(f"{path}: a safetensors index of {path.stat().st_size:,} bytes is implausibly large")
        total = json.loads(path.read_text())["metadata"]["total_size"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise SpecError(f"{path}: unreadable safetensors index ({error})") from None
    if type(total) is not int or total <= 0:
        raise SpecError(f"{path}: metadata.total_size must be a positive whole number of bytes, not {json.dumps(total)[:40]}")
    return total // _ELEMENT_BYTES[dtype]


def index_count_warning(indexed_params: int | None, derived_params: int) -> str | None:
    """The warning for a safetensors index whose total size implies another count than the derived one."""
    if indexed_params is None or derived_params == 0:
        return None
    return _difference_warning(f"the safetensors index ({SAFETENSORS_INDEX}) implies", indexed_params, derived_params)


def _difference_warning(what: str, stored: int, derived: int) -> str | None:
    difference = (stored - derived) / derived
    if abs(difference) <= STORED_COUNT_TOLERANCE:
        return None
    return (f"{what} {stored:,} parameters but the config reads as {derived:,} ({difference:+.2%}): moeplan's count "
            "of this model is wrong; check the config's model_type and keys")
