"""A calibration: what one box achieved, written by ``moeplan profile --save`` and read by ``--calibration``.

An efficiency is achieved / catalogue spec for the GPU named in ``catalogue_gpu``; the absolute figures are kept
beside it. Reading one (``load_calibration``) refuses, with exit 2 and the reason, a file that cannot make an
estimate better: measured on another device kind than ``--gpu`` (a CPU/gloo run, another catalogue GPU), an
efficiency outside (0, 1.2], a negative α (clamped to 0). Units: B/s, FLOP/s, s; link rates per direction.
Pure core: no torch, NVML or numpy.
"""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationError

from moeplan.inputs import load_document
from moeplan.errors import SpecError, describe_validation
from moeplan.hardware.catalogue import load_gpu
from moeplan.report.document import Document
from moeplan.perf.roofline import COLLECTIVE_LATENCY_S, Efficiency

CALIBRATION_SCHEMA = 2
"""The ``schema`` a calibration file is read with (2: device kind, GEMM bounds, link of the all-to-all)."""
MAX_EFFICIENCY = 1.2
"""Above this a figure beats the data sheet by more than clocks and rounding explain (a cache-resident buffer, a
wrong catalogue entry), so it is not used."""


def _efficiency(value: float) -> float:
    if not 0 < value <= MAX_EFFICIENCY:
        raise ValueError(f"an efficiency (achieved / catalogue peak) must lie in (0, {MAX_EFFICIENCY}], got {value:g}")
    return value


Fraction = Annotated[float, AfterValidator(_efficiency)]
"""achieved / catalogue peak, in (0, 1.2]."""
LatencyS = Annotated[float, AfterValidator(lambda alpha: max(alpha, 0.0))]
"""A fitted latency, clamped at 0 (a fit on tail-only points can extrapolate below)."""
Link = Literal["nvlink", "pcie", "network", "gloo"]
"""What an all-to-all crossed: NVLink or PCIe inside a node, the NIC between nodes, local processes on CPU."""


class GemmPoint(BaseModel):
    """Expert-FFN throughput at one load (balanced pattern, fastest kernel path)."""

    rows_per_expert: float
    flops_per_s: float
    weight_bytes_per_s: float
    kernel_path: str
    bound: Literal["compute", "memory"] | None = None
    """Which roofline term is larger at this load on the catalogue GPU (None without one)."""
    efficiency: Fraction | None = None
    """Achieved / peak of the bounding resource: FLOP/s / bf16 peak when compute-bound, bytes/s / HBM when memory-bound."""
    roofline_fraction: float | None = Field(None, gt=0)
    """Roofline-predicted time / measured time (1 = on the roofline)."""


class Calibration(Document):
    """``moeplan profile --save``: what this box achieved, for ``moeplan estimate --calibration``."""

    schema_: int = Field(CALIBRATION_SCHEMA, alias="schema")
    kind: Literal["moeplan-calibration"] = "moeplan-calibration"
    created_at: str
    device_kind: Literal["cuda", "cpu"]
    """Where it was measured: GPUs, or the host (a CPU run never calibrates a GPU estimate)."""
    device_name: str
    """What torch calls the device ('NVIDIA H100 80GB HBM3', or 'cpu')."""
    catalogue_gpu: str | None
    """The catalogue entry the efficiencies divide by (None: none, so no efficiencies)."""
    gpu_count: int
    """GPUs profiled (1 on a CPU run: the host)."""
    nodes: int = 1
    model: str
    """The model whose expert shapes the GEMM points used."""
    hbm_dram_bytes_per_s: float | None = None
    """Read + write DRAM rate of a device-local copy: the slowest GPU at its largest size."""
    hbm_efficiency: Fraction | None = None
    gemm: list[GemmPoint] = Field(default_factory=list)
    """Sorted by rows per expert."""
    gemm_compute_efficiency: Fraction | None = None
    """FLOP/s / bf16 peak at the largest compute-bound load (None when no point passed the ridge)."""
    gemm_memory_efficiency: Fraction | None = None
    """Weight bytes/s / HBM at the largest memory-bound load."""
    h2d_bytes_per_s: float | None = None
    """Pinned host→device, one GPU alone, largest size."""
    d2h_bytes_per_s: float | None = None
    pcie_efficiency: Fraction | None = None
    """min(h2d, d2h) / catalogue PCIe rate per direction."""
    nvlink_bytes_per_s: float | None = None
    """Median peer write rate over pairs joined by NVLink with P2P on."""
    nvlink_efficiency: Fraction | None = None
    alltoall_link: Link | None = None
    alltoall_alpha_s: LatencyS | None = None
    alltoall_beta_bytes_per_s: float | None = Field(None, gt=0)
    """Asymptotic all-to-all busbw from the α–β fit on the tail of the size sweep."""
    alltoall_ranks: int | None = None
    alltoall_efficiency: Fraction | None = None
    """β / catalogue rate of ``alltoall_link`` per direction (intra-node links only)."""
    notes: list[str] = Field(default_factory=list)
    """Figures measured but not turned into efficiencies, and why."""


def _read(path: Path) -> Calibration:
    data = load_document(Path(path), "calibration file", fmt="json")  # a regular file or a pipe, bounded
    if not isinstance(data, dict) or data.get("kind") != "moeplan-calibration":
        raise SpecError(f"{path}: not a moeplan calibration (no \"kind\": \"moeplan-calibration\"; write one with moeplan profile --save)")
    if data.get("schema") != CALIBRATION_SCHEMA:
        raise SpecError(f"{path}: calibration schema {data.get('schema')!r} is not {CALIBRATION_SCHEMA} (re-run moeplan profile --save)")
    try:
        return Calibration.model_validate(data)
    except ValidationError as error:
        raise SpecError(f"{path}: not a moeplan calibration: {describe_validation(error)}") from error


def check_device(cal: Calibration, gpu_name: str, path: Path) -> None:
    """SpecError unless the calibration was measured on the catalogue GPU the estimate is for."""
    fix = f"profile a {gpu_name} with `moeplan profile --save`, or drop --calibration"
    if cal.device_kind != "cuda" or cal.catalogue_gpu is None:
        where = "the host CPU" if cal.device_kind == "cpu" else f"{cal.device_name!r}, which has no catalogue entry"
        raise SpecError(f"{path}: measured on {where}; its figures cannot stand for --gpu {gpu_name} ({fix})")
    if cal.catalogue_gpu != gpu_name:
        raise SpecError(f"{path}: measured on {cal.catalogue_gpu}, not on --gpu {gpu_name}; efficiencies do not carry across GPU kinds ({fix})")


def load_calibration(path: Path | None, gpu: str) -> tuple[Efficiency | None, str | None]:
    """(efficiencies, file name) for an estimate on ``gpu`` (catalogue name or GPU file); (None, None) without a file.

    HBM: the device-local copy's DRAM rate / catalogue, else memory-bound GEMM points; GEMM: the largest
    compute-bound load; links: the all-to-all β when it crossed NVLink/PCIe inside a node, else peer NVLink copies;
    PCIe: min(H2D, D2H); α: the all-to-all fit's latency. A figure not measured stays at the roofline (1.0, α 10 µs).
    """
    if path is None:
        return None, None
    try:
        cal = _read(path)
        check_device(cal, load_gpu(gpu).name, path)
    except SpecError as error:  # the flag's file: say so
        raise SpecError(f"--calibration {error}") from None
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as error:
        raise SpecError(f"--calibration {path}: {error.strerror or error}") from None
    intra = cal.alltoall_link in ("nvlink", "pcie")
    alpha = cal.alltoall_alpha_s if intra and cal.alltoall_alpha_s is not None else COLLECTIVE_LATENCY_S
    efficiency = Efficiency(
        hbm=cal.hbm_efficiency or cal.gemm_memory_efficiency or 1.0,
        gemm=cal.gemm_compute_efficiency or 1.0,
        link=(cal.alltoall_efficiency if intra else None) or cal.nvlink_efficiency or 1.0,
        pcie=cal.pcie_efficiency or 1.0,
        collective_latency_s=alpha,
        measured_on=cal.catalogue_gpu,
    )
    return efficiency, str(path)
