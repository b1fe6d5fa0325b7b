"""The GPU catalogue: datasheet figures per GPU, lookup by name or alias, custom GPUs from a file or overrides.

Conventions (see docs/formulas.md §GPU catalogue): base units (bytes, B/s, FLOP/s). ``memory_bytes`` is the
datasheet capacity read in GiB, because memory is sized in powers of two (an "80GB" H100 holds 80 × 2^30
bytes, of which the driver keeps a little); ``driver_memory_bytes`` is the total the driver reports
(nvidia-smi's 81,559 MiB on an H100 SXM), and usable memory is computed from it where it is known. Bandwidths are decimal (GB/s = 1e9 B/s). Compute is dense:
datasheets that headline 2:4-sparse figures are halved, and each row's notes say so. Link and PCIe
bandwidths are per direction.
"""

import difflib
import json
import math
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

from moeplan.docstrings import add_field_docstrings
from moeplan.errors import SpecError, describe_validation
from moeplan.spec.specfile import load_document
from moeplan.units import GB, TB, GiB

DEFAULT_NODE_GPUS = 8
"""GPUs per node where the GPU has no NVSwitch domain of its own (PCIe cards, bridged pairs: 8-GPU servers)."""

Interconnect = Literal["nvlink", "nvlink-bridge", "infinity-fabric", "pcie-only"]

PCIE_LANE_RATES = {1: (2.5e9, 8 / 10), 2: (5e9, 8 / 10), 3: (8e9, 128 / 130), 4: (16e9, 128 / 130), 5: (32e9, 128 / 130)}
"""PCIe generation → (transfers per second per lane, line-code efficiency: 8b/10b up to Gen2, 128b/130b for Gen3-5)."""


def pcie_bytes_per_s_per_direction(generation: int, lanes: int) -> float:
    """Raw PCIe bandwidth per direction, in B/s: GT/s per lane × lanes × code efficiency / 8 bits.

    Gen4 x16: 16e9 × 16 × 128/130 / 8 = 31.5 GB/s; Gen5 x16: 63.0 GB/s. Datasheets quote the
    bidirectional sum rounded ("64 GB/s", "128 GB/s"). Protocol overhead (TLP headers) is not taken off.
    """
    if generation not in PCIE_LANE_RATES:
        raise SpecError(
            f"PCIe generation {generation} has no built-in rate (known: {', '.join(map(str, PCIE_LANE_RATES))}); "
            "give pcie_bytes_per_s_per_direction"
        )
    rate, efficiency = PCIE_LANE_RATES[generation]
    return rate * lanes * efficiency / 8


class GPUSpec(BaseModel):
    """One GPU model: memory, bandwidth, dense peak compute and links, in base units, with its source."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=add_field_docstrings, strict=True, allow_inf_nan=False)

    name: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    """Lower-case kebab id (h100-sxm)."""
    display_name: str
    """Full product name."""
    vendor: str
    """NVIDIA, AMD, ..."""
    aliases: list[str] = Field(default_factory=list)
    """Other names that find this GPU (h100 → h100-sxm)."""
    memory_bytes: int = Field(ge=2**20, le=2**50)
    """Device memory: the datasheet capacity in GiB × 2^30."""
    driver_memory_bytes: int | None = Field(None, ge=2**20, le=2**50)
    """Total memory as the driver reports it (nvidia-smi memory.total, MiB × 2^20, ECC on); None where not known."""
    memory_type: str = ""
    """HBM3, GDDR6X, ..."""
    hbm_bytes_per_s: PositiveFloat
    """Peak device-memory bandwidth, B/s (GDDR bandwidth on cards without HBM)."""
    bf16_flops_per_s: PositiveFloat
    """Dense BF16 tensor peak (FP32 accumulate), FLOP/s. FP16 runs at the same rate on every GPU listed."""
    fp8_flops_per_s: PositiveFloat | None = None
    """Dense FP8 tensor peak, FLOP/s; None where there are no FP8 tensor cores."""
    fp4_flops_per_s: PositiveFloat | None = None
    """Dense FP4 tensor peak, FLOP/s; None where unsupported or not published."""
    int8_ops_per_s: PositiveFloat | None = None
    """Dense INT8 tensor peak, OP/s."""
    interconnect: Interconnect
    """GPU-to-GPU link: nvlink (through NVSwitch), nvlink-bridge (pairs), infinity-fabric, or pcie-only."""
    link_bytes_per_s_per_direction: PositiveFloat | None = None
    """GPU-to-GPU bandwidth per GPU per direction, B/s (all links together); the PCIe figure for pcie-only cards."""
    link_domain_gpus: PositiveInt | None = None
    """GPUs that link joins at that bandwidth (HGX board 8, GB200 NVL72 72, a bridged pair 2); None for pcie-only."""
    pcie_generation: PositiveInt | None = None
    """Host-link PCIe generation; None where the host link is not PCIe (GB200: NVLink-C2C)."""
    pcie_lanes: PositiveInt | None = None
    """Host-link PCIe lanes."""
    pcie_bytes_per_s_per_direction: PositiveFloat | None = None
    """Raw PCIe bandwidth per direction, B/s; computed from generation and lanes when not given."""
    tdp_w: PositiveFloat | None = None
    """Maximum board power, W."""
    source: str
    """The document (URL where there is one) and what it says."""
    notes: str = ""
    """Conversions made (sparse figures halved, per-board figures divided) and caveats."""

    @property
    def visible_memory_bytes(self) -> int:
        """Memory a framework sees (torch.cuda.mem_get_info's total): the driver figure, else the datasheet one."""
        return self.driver_memory_bytes or self.memory_bytes

    @property
    def node_gpus(self) -> int:
        """GPUs one scale-up domain joins (GB200/GB300 NVL72: 72; HGX: 8); 8 for cards without one."""
        scale_up = self.interconnect in ("nvlink", "infinity-fabric") and self.link_domain_gpus
        return self.link_domain_gpus if scale_up else DEFAULT_NODE_GPUS

    @model_validator(mode="after")
    def _derive_links(self) -> "GPUSpec":
        if self.pcie_bytes_per_s_per_direction is None and self.pcie_generation is not None:
            if self.pcie_lanes is None:
                raise ValueError("pcie_lanes is needed with pcie_generation")
            self.pcie_bytes_per_s_per_direction = pcie_bytes_per_s_per_direction(self.pcie_generation, self.pcie_lanes)
        if self.link_bytes_per_s_per_direction is None:
            if self.interconnect != "pcie-only":
                raise ValueError(f"link_bytes_per_s_per_direction is needed for a {self.interconnect} GPU")
            if self.pcie_bytes_per_s_per_direction is None:
                raise ValueError("a pcie-only GPU needs pcie_generation and pcie_lanes, or pcie_bytes_per_s_per_direction")
            self.link_bytes_per_s_per_direction = self.pcie_bytes_per_s_per_direction
        return self


@cache
def catalogue() -> tuple[GPUSpec, ...]:
    """The built-in GPUs (moeplan/data/gpus.json), in file order."""
    data = json.loads((files("moeplan") / "data" / "gpus.json").read_text())
    return tuple(GPUSpec.model_validate(row) for row in data["gpus"])


@cache
def _index() -> dict[str, GPUSpec]:
    return {key.lower(): gpu for gpu in catalogue() for key in (gpu.name, *gpu.aliases)}


def get_gpu(name: str) -> GPUSpec:
    """A catalogue GPU by its name or an alias, case-insensitive and exact; otherwise SpecError with the nearest names."""
    key = name.strip().lower()
    if key in _index():
        return _index()[key]
    close = difflib.get_close_matches(key, list(_index()), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(g.name for g in catalogue())}"
    raise SpecError(f"unknown GPU {name!r}; {hint} (or give a GPU file, see `moeplan gpus --help`)")


def gpu_from_file(path: Path) -> GPUSpec:
    """A custom GPU from a JSON or YAML file holding GPUSpec's fields."""
    if not path.is_file():
        raise SpecError(f"no such GPU file: {path}")
    data = load_document(path)
    if isinstance(data, dict) and isinstance(data.get("gpus"), list):  # what `moeplan gpus NAME --json` writes
        if len(data["gpus"]) != 1:
            raise SpecError(f"{path}: lists {len(data['gpus'])} GPUs; a GPU file holds one (write it with `moeplan gpus NAME --json`)")
        data = data["gpus"][0]
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a GPU file must hold one mapping of GPUSpec fields")
    try:
        return GPUSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(f"{path}: {describe_validation(error)}") from None


OVERRIDES = {
    "memory_gib": ("memory_bytes", GiB),
    "hbm_tb_s": ("hbm_bytes_per_s", TB),
    "bf16_tflops": ("bf16_flops_per_s", 1e12),
    "fp8_tflops": ("fp8_flops_per_s", 1e12),
    "link_gb_s": ("link_bytes_per_s_per_direction", GB),
}
"""Override key → (GPUSpec field, base units per override unit): GiB, TB/s, TFLOP/s, GB/s per direction."""


def apply_overrides(gpu: GPUSpec, overrides: Mapping[str, float | None]) -> GPUSpec:
    """A copy of ``gpu`` with the given OVERRIDES applied (None values are skipped); each must be positive."""
    changes, applied = {}, []
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in OVERRIDES:
            raise SpecError(f"unknown GPU override {key!r}; known: {', '.join(OVERRIDES)}")
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise SpecError(f"GPU override {key} must be a positive number, not {value!r}")
        field, scale = OVERRIDES[key]
        changes[field] = round(value * scale) if field == "memory_bytes" else value * scale
        if field == "memory_bytes":
            changes["driver_memory_bytes"] = None  # the override is the memory the user has
        applied.append(f"{key}={value:g}")
    if not changes:
        return gpu
    note = f"Overridden: {', '.join(applied)}."
    fields = gpu.model_dump() | changes | {
        "display_name": f"{gpu.display_name} (custom)",
        "notes": f"{gpu.notes} {note}".strip(),
    }
    return GPUSpec.model_validate(fields)


def _is_file_reference(text: str) -> bool:
    path = Path(text)
    return path.suffix.lower() in (".json", ".yaml", ".yml") or "/" in text or path.is_file()


def load_gpu(name_or_path: str, overrides: Mapping[str, float | None] | None = None) -> GPUSpec:
    """A GPU by catalogue name/alias or from a JSON/YAML file, with OVERRIDES applied."""
    gpu = gpu_from_file(Path(name_or_path)) if _is_file_reference(name_or_path) else get_gpu(name_or_path)
    return apply_overrides(gpu, overrides or {})
