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


_DTYPE_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16,
               "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "C64": 64, "F4": 4,
               "F6_E2M3": 6, "F6_E3M2": 6}
"""Bits per element of the safetensors dtypes; a tensor of another dtype is counted without the size check."""
_MAX_DIMS = 16


def read_header(path: Path) -> tuple[dict, int]:
    """The JSON header of one safetensors file (without its __metadata__ entry), and the bytes of data after it."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            raw = handle.read(8)
            if len(raw) != 8:
                raise SpecError(f"{path}: not a safetensors file (shorter than 8 bytes)")
            (length,) = struct.unpack("<Q", raw)
            if length > min(_MAX_HEADER_BYTES, size - 8):
                raise SpecError(f"{path}: unreadable safetensors header (it says {length:,} bytes long; the file has {size - 8:,} "
                                "after the length: not a safetensors file, or truncated)")
            header = json.loads(handle.read(length))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise SpecError(f"{path}: unreadable safetensors header ({type(error).__name__})") from None
    if not isinstance(header, dict):
        raise SpecError(f"{path}: safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    return header, size - 8 - length


def summarize_checkpoint(directory: Path, num_layers: int | None = None) -> CheckpointSummary | None:
    """Totals over all *.safetensors files of a directory; None when there are none."""
    paths = sorted(directory.glob("*.safetensors"))
    if not paths:
        return None
    headers, data_bytes = {}, {}
    for path in paths:
        headers[str(path)], data_bytes[str(path)] = read_header(path)
    return summarize_headers(headers, num_layers, data_bytes)


def summarize_headers(headers: dict[str, dict], num_layers: int | None = None,
                      data_bytes: dict[str, int] | None = None) -> CheckpointSummary:
    """Totals over safetensors headers (file name → header without __metadata__), wherever they were read.

    Every entry is checked: a dtype, a shape of non-negative whole numbers, offsets whose span is what dtype and
    shape need, tensors that do not overlap and, given the file's data size, lie inside it (a truncated download)."""
    by_dtype: dict[str, DtypeTotal] = {}
    tensors = mtp = 0
    for path, header in headers.items():
        spans = []
        for name, info in header.items():
            dtype, elements, start, end = _entry(path, name, info)
            spans.append((start, end, name))
            total = by_dtype.setdefault(dtype, DtypeTotal(elements=0, bytes=0))
            total.elements += elements
            total.bytes += end - start
            tensors += 1
            if num_layers is not None and _layer_index(name) is not None and _layer_index(name) >= num_layers:
                mtp += elements
        _check_spans(path, sorted(spans), (data_bytes or {}).get(path))
    return CheckpointSummary(
        files=len(headers),
        tensors=tensors,
        elements=sum(t.elements for t in by_dtype.values()),
        bytes=sum(t.bytes for t in by_dtype.values()),
        by_dtype=dict(sorted(by_dtype.items())),
        mtp_elements=mtp,
    )


def _entry(path: str, name: str, info: object) -> tuple[str, int, int, int]:
    """(dtype, elements, start, end) of one header entry; SpecError naming the tensor when it is malformed."""
    def whole(value) -> bool:
        return type(value) is int and value >= 0

    problem = None
    if not isinstance(info, dict) or not isinstance(info.get("dtype"), str):
        problem = "needs a dtype, a shape and data_offsets"
    elif not isinstance(info.get("shape"), list | tuple) or len(info["shape"]) > _MAX_DIMS or not all(map(whole, info["shape"])):
        problem = f"shape must be a list of non-negative whole numbers, not {json.dumps(info.get('shape'))[:60]}"
    elif not (isinstance(info.get("data_offsets"), list | tuple) and len(info["data_offsets"]) == 2
              and all(map(whole, info["data_offsets"])) and info["data_offsets"][0] <= info["data_offsets"][1]):
        problem = f"data_offsets must be [start, end] with 0 <= start <= end, not {json.dumps(info.get('data_offsets'))[:60]}"
    else:
        elements = math.prod(info["shape"])
        start, end = info["data_offsets"]
        bits = _DTYPE_BITS.get(info["dtype"])
        if bits is not None and end - start != math.ceil(elements * bits / 8):
            problem = (f"data_offsets span {end - start:,} bytes but {info['dtype']} {info['shape']} needs "
                       f"{math.ceil(elements * bits / 8):,}")
    if problem:
        raise SpecError(f"{path}: tensor {name[:80]!r}: {problem}")
    return info["dtype"], elements, start, end


def _check_spans(path: str, spans: list[tuple[int, int, str]], data_bytes: int | None) -> None:
    """Sorted (start, end, name) spans do not overlap and, with the data size known, end inside the file."""
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise SpecError(f"{path}: tensors {first[:80]!r} and {second[:80]!r} overlap (malformed header)")
    if data_bytes is not None and spans and spans[-1][1] > data_bytes:
        raise SpecError(f"{path}: truncated: the header needs {spans[-1][1]:,} bytes of tensor data, the file holds "
                        f"{data_bytes:,} (an interrupted download?)")


def _layer_index(name: str) -> int | None:
    """The decoder layer a tensor belongs to ('model.layers.12.mlp...' → 12)."""
    parts = name.split(".")
    for before, after in zip(parts, parts[1:]):
        if before == "layers" and after.isdigit():
            return int(after)
    return None
