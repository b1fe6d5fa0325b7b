"""Weight storage formats and their true cost per matrix, scales and zero-points included.

A matrix has ``rows`` output features and ``cols`` input features (the (out, in) shape of nn.Linear.weight).
A format stores every weight in ``value_bits`` and, once per block of ``block_rows × block_cols`` weights
(None spans the whole dimension), the metadata in ``block_fields``; GPTQ also stores one index per input
channel, and NVFP4 two fp32 scalars per matrix (``tensor_fields``). Partial blocks at a matrix edge are
stored whole (block counts use ceil), except GGUF, which needs rows of whole blocks and otherwise switches
the tensor to the type llama.cpp falls back to.
Bits per weight follow from this structure and the shape; none is typed in. See docs/formulas.md
§Weight formats for each layout and its source.
"""

import difflib
import math
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from moeplan.docstrings import add_field_docstrings
from moeplan.errors import SpecError


class WeightFormat(BaseModel):
    """How one matrix is stored: value bits plus per-block and per-input-channel metadata."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=add_field_docstrings)

    name: str
    """The name users type (bf16, fp8, int4-gptq, mxfp4, q4_k_m...)."""
    description: str
    """The layout in words, with where it comes from."""
    value_bits: int
    """Bits of each stored weight (GGUF: the quant bits, high bits included)."""
    block_rows: int | None = None
    """Output rows one block of metadata covers (1: per row; None: all rows)."""
    block_cols: int | None = None
    """Input columns one block covers (None: the whole row)."""
    block_fields: tuple[tuple[str, int], ...] = ()
    """Metadata stored once per block, as (what, bits)."""
    input_channel_bits: int = 0
    """Bits stored once per input channel (GPTQ's g_idx)."""
    tensor_fields: tuple[tuple[str, int], ...] = ()
    """Metadata stored once per matrix, as (what, bits) (NVFP4's fp32 global weight and input scales)."""
    whole_blocks: bool = False
    """Rows must hold a whole number of blocks (GGUF)."""
    fallback: str | None = None
    """GGUF: the type llama.cpp stores a tensor in when its rows are not whole blocks."""

    @property
    def is_plain_float(self) -> bool:
        """A plain floating-point type with no metadata (bf16, fp16, fp32)."""
        return not self.block_fields and not self.input_channel_bits and not self.tensor_fields and self.value_bits >= 16

    @property
    def block_bits(self) -> int:
        """Metadata bits per block."""
        return sum(bits for _, bits in self.block_fields)


class MatrixBytes(NamedTuple):
    """Storage of one matrix, in bytes."""

    values: int
    """The weight values."""
    overhead: int
    """Scales, zero-points and indices."""
    format: str
    """The format actually used (a GGUF tensor may fall back to another type)."""

    @property
    def total(self) -> int:
        return self.values + self.overhead


def block_count(fmt: WeightFormat, rows: int, cols: int) -> int:
    """Metadata blocks of one rows × cols matrix: ceil(rows / block_rows) · ceil(cols / block_cols)."""
    return math.ceil(rows / (fmt.block_rows or rows)) * math.ceil(cols / (fmt.block_cols or cols))


def storage_format(fmt: WeightFormat, cols: int) -> WeightFormat:
    """The format a matrix with rows of ``cols`` values is stored in: ``fmt``, or its GGUF fallback."""
    if not fmt.whole_blocks or cols % fmt.block_cols == 0:
        return fmt
    if fmt.fallback is None:
        raise SpecError(f"{fmt.name} needs rows of a multiple of {fmt.block_cols} values; a matrix has rows of {cols}")
    return storage_format(get_format(fmt.fallback), cols)


def matrix_bytes(fmt: WeightFormat, rows: int, cols: int) -> MatrixBytes:
    """Bytes of one rows × cols matrix: ceil(rows·cols·value_bits / 8) for the values, plus
    ceil((blocks · block_bits + cols · input_channel_bits + tensor bits) / 8) for the metadata."""
    used = storage_format(fmt, cols)
    values = math.ceil(rows * cols * used.value_bits / 8)
    tensor_bits = sum(bits for _, bits in used.tensor_fields)
    metadata_bits = block_count(used, rows, cols) * used.block_bits + cols * used.input_channel_bits + tensor_bits
    overhead = math.ceil(metadata_bits / 8)
    return MatrixBytes(values, overhead, used.name)


def bits_per_weight(fmt: WeightFormat, rows: int, cols: int) -> float:
    """Stored bits per weight of one rows × cols matrix, metadata included."""
    return 8 * matrix_bytes(fmt, rows, cols).total / (rows * cols)


def _float(name: str, bits: int, what: str) -> WeightFormat:
    return WeightFormat(name=name, value_bits=bits, description=f"{what}, {bits} bits per weight, no metadata")


def fp8_block_format(block_rows: int = 128, block_cols: int = 128) -> WeightFormat:
    """FP8 (e4m3) with one fp32 scale per block_rows × block_cols block (DeepSeek-V3's weight_scale_inv)."""
    name = "fp8" if (block_rows, block_cols) == (128, 128) else f"fp8-block{block_rows}x{block_cols}"
    return WeightFormat(
        name=name,
        value_bits=8,
        block_rows=block_rows,
        block_cols=block_cols,
        block_fields=(("fp32 scale", 32),),
        description=f"FP8 e4m3 values + one fp32 scale per {block_rows}x{block_cols} block "
        "(DeepSeek-V3's weight_scale_inv, shape [ceil(out/128), ceil(in/128)])",
    )


def int4_group_format(method: str, group_size: int | None = 128) -> WeightFormat:
    """4-bit GPTQ or AWQ: per output channel and group of ``group_size`` inputs (None: the whole row), an
    fp16 scale and a 4-bit zero-point packed in int32; GPTQ also stores g_idx, one int32 per input channel."""
    group = f"group {group_size}" if group_size else "per channel"
    if method == "gptq":
        description = (f"GPTQ ({group}): qweight int32 [in/8, out], qzeros int32 [groups, out/8], scales fp16 [groups, out], "
                       "g_idx int32 [in] (AutoGPTQ/GPTQModel write g_idx whether or not desc_act is set)")
    else:
        description = f"AWQ GEMM ({group}): qweight int32 [in, out/8], qzeros int32 [groups, out/8], scales fp16 [groups, out]"
    return WeightFormat(
        name=f"int4-{method}" + {128: "", None: "-channel"}.get(group_size, f"-g{group_size}"),
        value_bits=4,
        block_rows=1,
        block_cols=group_size,
        block_fields=(("fp16 scale", 16), ("4-bit zero-point", 4)),
        input_channel_bits=32 if method == "gptq" else 0,
        description=description,
    )


def int_pack_format(bits: int, group_size: int | None, symmetric: bool = True, scale: tuple[str, int] = ("bf16 scale", 16)) -> WeightFormat:
    """compressed-tensors ``pack-quantized`` integers (llm-compressor W4A16/W8A16): ``weight_packed`` int32
    [out, in·bits/32], ``weight_scale`` in the model dtype [out, in/group] (None: per channel), a packed
    ``weight_zero_point`` [out·bits/32, groups] when asymmetric, and ``weight_shape`` int64 [2]."""
    group = f"group {group_size}" if group_size else "per channel"
    fields = (scale, *((("packed zero-point", bits),) if not symmetric else ()))
    return WeightFormat(
        name=f"int{bits}-ct" + ("" if group_size == 128 else f"-g{group_size}" if group_size else "-channel") + ("" if symmetric else "-asym"),
        value_bits=bits, block_rows=1, block_cols=group_size, block_fields=fields,
        tensor_fields=(("int64 weight_shape x2", 128),),
        description=f"compressed-tensors pack-quantized int{bits} ({group}, {'symmetric' if symmetric else 'asymmetric'}): "
                    "weight_packed int32, weight_scale, " + ("" if symmetric else "weight_zero_point packed int32, ") + "weight_shape int64 [2]",
    )


def _gguf(name: str, value_bits: int, block: int, fields: tuple[tuple[str, int], ...], layout: str,
          fallback: str | None = None) -> WeightFormat:
    return WeightFormat(
        name=name,
        value_bits=value_bits,
        block_rows=1,
        block_cols=block,
        block_fields=fields,
        whole_blocks=True,
        fallback=fallback,
        description=f"GGUF {name.upper()}: blocks of {block} values along a row: {layout} (ggml-common.h)",
    )


_D = ("fp16 d", 16)
_DMIN = ("fp16 dmin", 16)
_K_SCALES_6BIT = ("scales+mins, 6-bit, 12 bytes", 96)


def _gguf_formats() -> list[WeightFormat]:
    base = [
        _gguf("q8_0", 8, 32, (_D,), "fp16 d, 32 int8"),
        _gguf("q4_0", 4, 32, (_D,), "fp16 d, 32 nibbles"),
        _gguf("q5_0", 5, 32, (_D,), "fp16 d, 4-byte high bits, 32 nibbles"),
        _gguf("q5_1", 5, 32, (_D, ("fp16 m", 16)), "fp16 d and m, 4-byte high bits, 32 nibbles"),
        _gguf("iq4_nl", 4, 32, (_D,), "fp16 d, 32 non-linear 4-bit codes"),
        _gguf("q6_k", 6, 256, (("int8 scales x16", 128), _D), "ql[128], qh[64], 16 int8 scales, fp16 d", "q8_0"),
        _gguf("q5_k", 5, 256, (_DMIN, _D, _K_SCALES_6BIT), "fp16 d and dmin, 12 bytes of 6-bit scales/mins, qh[32], qs[128]", "q5_1"),
        _gguf("q4_k", 4, 256, (_DMIN, _D, _K_SCALES_6BIT), "fp16 d and dmin, 12 bytes of 6-bit scales/mins, qs[128]", "q5_0"),
        _gguf("q3_k", 3, 256, (("6-bit scales x16", 96), _D), "hmask[32], qs[64], 12 bytes of 6-bit scales, fp16 d", "iq4_nl"),
        _gguf("q2_k", 2, 256, (("4-bit scales+mins x16", 128), _DMIN, _D), "16 bytes of 4-bit scales/mins, qs[64], fp16 d and dmin", "iq4_nl"),
    ]
    by_name = {f.name: f for f in base}
    mixes = [
        by_name[k].model_copy(update={
            "name": f"{k}_m",
            "description": f"llama.cpp's {k.upper()}_M mix, counted as {k.upper()} on every quantized tensor: the real mix "
                           "keeps some tensors (attn_v, part of ffn_down, output) at a higher type, so files are somewhat larger. "
                           + by_name[k].description,
        })
        for k in ("q5_k", "q4_k", "q3_k")
    ]
    return base + mixes


FORMATS: dict[str, WeightFormat] = {
    f.name: f
    for f in [
        _float("bf16", 16, "bfloat16"),
        _float("fp16", 16, "IEEE half precision"),
        _float("fp32", 32, "IEEE single precision"),
        fp8_block_format(),
        WeightFormat(name="fp8-channel", value_bits=8, block_rows=1, block_fields=(("fp32 scale", 32),),
                     description="FP8 e4m3 values + one fp32 scale per output row (FBGEMM fp8 checkpoints)"),
        WeightFormat(name="fp8-tensor", value_bits=8, block_fields=(("fp32 scale", 32),),
                     description="FP8 e4m3 values + one fp32 scale per matrix (quantization_config fp8 without weight_block_size)"),
        WeightFormat(name="int8", value_bits=8, block_rows=1, block_fields=(("fp32 scale", 32),),
                     description="INT8 values + one fp32 absmax scale per output row (bitsandbytes LLM.int8's SCB); symmetric, no zero-point"),
        int4_group_format("gptq"),
        int4_group_format("awq"),
        WeightFormat(name="mxfp4", value_bits=4, block_rows=1, block_cols=32, block_fields=(("e8m0 scale", 8),),
                     description="OCP MXFP4: e2m1 values + one 8-bit e8m0 scale per 32 values along a row "
                                 "(gpt-oss: *_blocks uint8 [.., out, in/32, 16] and *_scales uint8 [.., out, in/32])"),
        WeightFormat(name="nvfp4", value_bits=4, block_rows=1, block_cols=16, block_fields=(("fp8 e4m3 scale", 8),),
                     tensor_fields=(("fp32 global weight scale", 32), ("fp32 input scale", 32)),
                     description="NVIDIA NVFP4: e2m1 values + one FP8 e4m3 scale per 16 values along a row + one fp32 "
                                 "global scale per matrix (ModelOpt: weight uint8 [out, in/2], weight_scale float8_e4m3fn "
                                 "[out, in/16], weight_scale_2 and input_scale fp32 scalars; compressed-tensors: "
                                 "weight_packed, weight_scale, weight_global_scale, input_global_scale)"),
        WeightFormat(name="mxfp8", value_bits=8, block_rows=1, block_cols=32, block_fields=(("e8m0 scale", 8),),
                     description="OCP MXFP8: FP8 e4m3 values + one 8-bit e8m0 scale per 32 values along a row "
                                 "(OCP Microscaling Formats v1.0; ModelOpt MXFP8: weight float8_e4m3fn [out, in], "
                                 "weight_scale uint8 [out, in/32])"),
        *_gguf_formats(),
    ]
}
"""Formats by name (GPTQ/AWQ at the default group size 128; get_format builds other group sizes)."""

ALIASES = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float32": "fp32",
    "fp8-e4m3": "fp8",
    "fp8-block": "fp8",
    "e4m3": "fp8",
    "fp8-per-channel": "fp8-channel",
    "int8-channel": "int8",
    "gptq": "int4-gptq",
    "awq": "int4-awq",
    "fp4": "nvfp4",
    "modelopt-fp4": "nvfp4",
}
"""Other names for formats."""


def get_format(name: str, group_size: int | None = 128) -> WeightFormat:
    """A format by name or alias, case-insensitive (GPTQ/AWQ at ``group_size``; None: per channel);
    otherwise SpecError with the nearest names."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key in ("int4-gptq", "int4-awq"):
        return int4_group_format(key.removeprefix("int4-"), group_size)
    if key in FORMATS:
        return FORMATS[key]
    close = difflib.get_close_matches(key, [*FORMATS, *ALIASES], n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(FORMATS)}"
    raise SpecError(f"unknown weight format {name!r}; {hint}")
