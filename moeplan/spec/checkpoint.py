"""Exact stored parameter counts from safetensors headers; the tensor data is never read.

A safetensors file starts with an 8-byte little-endian header length and a JSON header that maps each
tensor name to its dtype, shape and byte offsets (https://github.com/huggingface/safetensors).
"""

import json
import math
import struct
from pathlib import Path

from pydantic import BaseModel

from moeplan.errors import SpecError

_MAX_HEADER_BYTES = 100 * 2**20


class DtypeTotal(BaseModel):
    """Stored tensors of one dtype."""

    elements: int
    """Stored elements (a packed 4-bit tensor stored as U8 counts one element per byte)."""
    bytes: int
    """Bytes on disk."""


class CheckpointSummary(BaseModel):
    """What the safetensors files of a model directory store."""

    files: int
    tensors: int
    elements: int
    """All stored elements, every dtype (quantization scales included)."""
    bytes: int
    by_dtype: dict[str, DtypeTotal]
    mtp_elements: int
    """Elements of DeepSeek-style multi-token-prediction layers (layer index ≥ num_hidden_layers)."""


def read_header(path: Path) -> dict:
    """The JSON header of one safetensors file (without its __metadata__ entry)."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(8)
            if len(raw) != 8:
                raise SpecError(f"{path}: not a safetensors file (shorter than 8 bytes)")
            (length,) = struct.unpack("<Q", raw)
            if length > _MAX_HEADER_BYTES:
                raise SpecError(f"{path}: not a safetensors file (header length {length} is implausible)")
            header = json.loads(handle.read(length))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SpecError(f"{path}: unreadable safetensors header ({error})") from None
    if not isinstance(header, dict):
        raise SpecError(f"{path}: safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    return header


def summarize_checkpoint(directory: Path, num_layers: int | None = None) -> CheckpointSummary | None:
    """Totals over all *.safetensors files of a directory; None when there are none."""
    paths = sorted(directory.glob("*.safetensors"))
    if not paths:
        return None
    return summarize_headers({str(path): read_header(path) for path in paths}, num_layers)


def summarize_headers(headers: dict[str, dict], num_layers: int | None = None) -> CheckpointSummary:
    """Totals over safetensors headers (file name → header without __metadata__), wherever they were read."""
    by_dtype: dict[str, DtypeTotal] = {}
    tensors = mtp = 0
    for path, header in headers.items():
        for name, info in header.items():
            try:
                elements = math.prod(info["shape"])
                start, end = info["data_offsets"]
                dtype = str(info["dtype"])
            except (KeyError, TypeError, ValueError):
                raise SpecError(f"{path}: malformed header entry for tensor {name!r}") from None
            total = by_dtype.setdefault(dtype, DtypeTotal(elements=0, bytes=0))
            total.elements += elements
            total.bytes += end - start
            tensors += 1
            if num_layers is not None and _layer_index(name) is not None and _layer_index(name) >= num_layers:
                mtp += elements
    return CheckpointSummary(
        files=len(headers),
        tensors=tensors,
        elements=sum(t.elements for t in by_dtype.values()),
        bytes=sum(t.bytes for t in by_dtype.values()),
        by_dtype=dict(sorted(by_dtype.items())),
        mtp_elements=mtp,
    )


def _layer_index(name: str) -> int | None:
    """The decoder layer a tensor belongs to ('model.layers.12.mlp...' → 12)."""
    parts = name.split(".")
    for before, after in zip(parts, parts[1:]):
        if before == "layers" and after.isdigit():
            return int(after)
    return None
