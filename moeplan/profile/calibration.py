"""Measured efficiencies of one box, written by ``moeplan profile --save calib.json`` (no torch).

An efficiency is achieved / spec, with the spec from the GPU catalogue entry named in ``catalogue_gpu``;
it is None when there is no entry (a CPU run), while the absolute achieved figures are always kept.
``roofline_fraction`` of a GEMM point is predicted time / measured time, so a calibrated estimate is
roofline time / roofline_fraction(rows per expert). Units: B/s, FLOP/s, s; link rates per direction.
"""

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from moeplan.errors import SpecError, describe_validation
from moeplan.hardware.catalogue import GPUSpec
from moeplan.profile.results import Measurement, ProfileReport
from moeplan.report.document import Document

CALIBRATION_SCHEMA = 1
"""The ``schema`` a calibration file is read with."""


class GemmPoint(BaseModel):
    """Expert-FFN throughput at one load (balanced pattern, fastest kernel path)."""

    rows_per_expert: float
    flops_per_s: float
    weight_bytes_per_s: float
    kernel_path: str
    efficiency: float | None
    """flops_per_s / catalogue bf16 peak."""
    roofline_fraction: float | None
    """Roofline-predicted time / measured time (1 = on the roofline)."""


class Calibration(Document):
    """``moeplan profile --save``: what this box achieved, for ``moeplan estimate --calibration``."""

    kind: Literal["moeplan-calibration"] = "moeplan-calibration"
    created_at: str
    device_name: str
    """What torch calls the device ('NVIDIA H100 80GB HBM3', or 'cpu')."""
    catalogue_gpu: str | None
    """The catalogue entry the efficiencies divide by."""
    gpu_count: int
    """GPUs profiled (1 on a CPU run: the host)."""
    model: str
    """The model whose expert shapes the GEMM points used."""
    hbm_dram_bytes_per_s: float | None = None
    """Read + write DRAM rate of a device-local copy: the slowest GPU at its largest size."""
    hbm_efficiency: float | None = None
    gemm: list[GemmPoint] = Field(default_factory=list)
    """Sorted by rows per expert."""
    h2d_bytes_per_s: float | None = None
    """Pinned host→device, one GPU alone, largest size."""
    d2h_bytes_per_s: float | None = None
    pcie_efficiency: float | None = None
    """min(h2d, d2h) / catalogue PCIe rate per direction."""
    nvlink_bytes_per_s: float | None = None
    """Median peer write rate over pairs joined by NVLink with P2P on."""
    nvlink_efficiency: float | None = None
    alltoall_alpha_s: float | None = None
    alltoall_beta_bytes_per_s: float | None = None
    """Asymptotic all-to-all busbw from the α–β fit."""
    alltoall_ranks: int | None = None
    alltoall_efficiency: float | None = None
    """β / catalogue link rate per direction (PCIe where the GPU has no NVLink)."""

    def gemm_roofline_fraction(self, rows_per_expert: float) -> float | None:
        """roofline_fraction interpolated linearly in log(rows per expert), held constant beyond the measured range."""
        points = [(p.rows_per_expert, p.roofline_fraction) for p in self.gemm if p.roofline_fraction is not None]
        if not points:
            return None
        rows, fractions = zip(*points)
        return float(np.interp(math.log(rows_per_expert), np.log(rows), fractions))


def _ratio(value: float | None, spec: float | None) -> float | None:
    return value / spec if value is not None and spec else None


def _done(report: ProfileReport, section: str, name: str | None = None) -> list[Measurement]:
    return [m for m in report.measurements if m.section == section and m.stats is not None and (name is None or m.name == name)]


def _largest(points: list[Measurement]) -> Measurement | None:
    return max(points, key=lambda m: m.params["size_bytes"], default=None)


def _gemm_points(report: ProfileReport, gpu: GPUSpec | None) -> list[GemmPoint]:
    best: dict[float, Measurement] = {}
    for m in _done(report, "gemm"):
        if m.params["pattern"] != "balanced":
            continue
        rows = m.params["rows_per_expert"]
        if rows not in best or m.stats.median_s < best[rows].stats.median_s:
            best[rows] = m
    return [
        GemmPoint(
            rows_per_expert=rows,
            flops_per_s=m.rates["flops_per_s"],
            weight_bytes_per_s=m.rates["weight_bytes_per_s"],
            kernel_path=m.params["kernel_path"],
            efficiency=_ratio(m.rates["flops_per_s"], gpu.bf16_flops_per_s if gpu else None),
            roofline_fraction=1 / m.ratio if m.ratio else None,
        )
        for rows, m in sorted(best.items())
    ]


def calibration_from_report(report: ProfileReport, device_name: str, gpu_count: int, gpu: GPUSpec | None) -> Calibration:
    """The efficiencies a finished profile supports."""
    hbm_by_device: dict[str, Measurement] = {}
    for m in _done(report, "hbm"):
        if m.device not in hbm_by_device or m.params["size_bytes"] > hbm_by_device[m.device].params["size_bytes"]:
            hbm_by_device[m.device] = m
    dram = min((m.rates["dram_bytes_per_s"] for m in hbm_by_device.values()), default=None)
    single = [m for m in _done(report, "h2d") if m.params["gpus"] == 1 and m.params["memory"] == "pinned"]
    h2d, d2h = (_largest([m for m in single if m.name == d]) for d in ("h2d", "d2h"))
    h2d_rate = h2d.rates["per_direction_bytes_per_s"] if h2d else None
    d2h_rate = d2h.rates["per_direction_bytes_per_s"] if d2h else None
    nvlink = [m.rates["per_direction_bytes_per_s"] for m in _done(report, "p2p", "write") if m.params["via"] == "p2p" and str(m.params["link"]).startswith("NV")]
    nvlink_rate = float(np.median(nvlink)) if nvlink else None
    fit = report.alltoall_fit
    pcie = gpu.pcie_bytes_per_s_per_direction if gpu else None
    link = gpu.link_bytes_per_s_per_direction if gpu else None
    return Calibration(
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        device_name=device_name,
        catalogue_gpu=gpu.name if gpu else None,
        gpu_count=gpu_count,
        model=report.shape.model if report.shape else "",
        hbm_dram_bytes_per_s=dram,
        hbm_efficiency=_ratio(dram, gpu.hbm_bytes_per_s if gpu else None),
        gemm=_gemm_points(report, gpu),
        h2d_bytes_per_s=h2d_rate,
        d2h_bytes_per_s=d2h_rate,
        pcie_efficiency=_ratio(min(h2d_rate, d2h_rate), pcie) if h2d_rate and d2h_rate else None,
        nvlink_bytes_per_s=nvlink_rate,
        nvlink_efficiency=_ratio(nvlink_rate, link),
        alltoall_alpha_s=fit.alpha_s if fit else None,
        alltoall_beta_bytes_per_s=fit.beta_bytes_per_s if fit else None,
        alltoall_ranks=next((m.params["ranks"] for m in _done(report, "a2a", "uniform")), None),
        alltoall_efficiency=_ratio(fit.beta_bytes_per_s if fit else None, link or pcie),
    )


def save_calibration(calibration: Calibration, path: Path) -> None:
    Path(path).write_text(calibration.model_dump_json(indent=2) + "\n")


def load_calibration(path: Path) -> Calibration:
    """Read a calibration file (for ``moeplan estimate --calibration``); SpecError when it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SpecError(f"{path}: cannot read a calibration file: {error}") from error
    if data.get("schema") != CALIBRATION_SCHEMA:
        raise SpecError(f"{path}: calibration schema {data.get('schema')!r} is not {CALIBRATION_SCHEMA} (re-run moeplan profile --save)")
    try:
        return Calibration.model_validate(data)
    except ValidationError as error:
        raise SpecError(f"{path}: not a moeplan calibration: {describe_validation(error)}") from error
