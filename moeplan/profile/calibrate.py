"""Turn a finished profile into a calibration file (the model and its reader live in core ``moeplan.calibration``).

Only figures that can make an estimate better become efficiencies: a CPU run records none (no catalogue GPU),
the GEMM compute efficiency comes only from compute-bound points and the memory one only from memory-bound
points, an all-to-all that crossed the network is not an NVLink efficiency, and a ratio outside (0, 1.2] is
dropped with a note instead of written.
"""

import math
import statistics
from datetime import datetime, timezone
from pathlib import Path

from moeplan.calibration import MAX_EFFICIENCY, Calibration, GemmPoint
from moeplan.hardware.catalogue import GPUSpec
from moeplan.profile.predict import roofline_bound
from moeplan.profile.results import Measurement, ProfileReport


class _Ratios:
    """achieved / spec ratios, None (with a note) when there is no spec or the ratio is outside (0, 1.2]."""

    def __init__(self):
        self.notes: list[str] = []

    def __call__(self, what: str, value: float | None, spec: float | None) -> float | None:
        if value is None or not spec:
            return None
        ratio = value / spec
        if not 0 < ratio <= MAX_EFFICIENCY or not math.isfinite(ratio):
            self.notes.append(f"{what}: {ratio:.3g} of the catalogue figure is outside (0, {MAX_EFFICIENCY}]; not used")
            return None
        return ratio


def _done(report: ProfileReport, section: str, name: str | None = None) -> list[Measurement]:
    return [m for m in report.measurements if m.section == section and m.stats is not None and (name is None or m.name == name)]


def _largest(points: list[Measurement]) -> Measurement | None:
    return max(points, key=lambda m: m.params["size_bytes"], default=None)


def gemm_bound(m: Measurement, gpu: GPUSpec | None) -> str | None:
    """'compute' when FLOPs / bf16 peak ≥ weight bytes / HBM at this point on the catalogue GPU, else 'memory'."""
    if gpu is None or not m.flops or not m.bytes:
        return None
    return roofline_bound(m.flops, gpu.bf16_flops_per_s, m.bytes, gpu.hbm_bytes_per_s)


def _gemm_points(report: ProfileReport, gpu: GPUSpec | None, ratio: _Ratios) -> list[GemmPoint]:
    best: dict[float, Measurement] = {}
    for m in _done(report, "gemm"):
        if m.params["pattern"] != "balanced" or m.params.get("dtype", "bf16") != "bf16":
            continue  # the estimate's GEMM efficiency is a fraction of the bf16 peak
        rows = m.params["rows_per_expert"]
        if rows not in best or m.stats.median_s < best[rows].stats.median_s:
            best[rows] = m
    points = []
    for rows, m in sorted(best.items()):
        bound = gemm_bound(m, gpu)
        achieved, spec = (m.rates["flops_per_s"], gpu.bf16_flops_per_s) if bound == "compute" else (m.rates["weight_bytes_per_s"], gpu.hbm_bytes_per_s if gpu else None)
        points.append(GemmPoint(
            rows_per_expert=rows,
            flops_per_s=m.rates["flops_per_s"],
            weight_bytes_per_s=m.rates["weight_bytes_per_s"],
            kernel_path=m.params["kernel_path"],
            bound=bound,
            efficiency=ratio(f"gemm at {rows:g} rows per expert ({bound}-bound)", achieved, spec),
            roofline_fraction=1 / m.ratio if m.ratio else None,
        ))
    return points


def _largest_efficiency(points: list[GemmPoint], bound: str) -> float | None:
    """The efficiency at the largest load with this bound."""
    return next((p.efficiency for p in reversed(points) if p.bound == bound and p.efficiency), None)


def alltoall_link(report: ProfileReport) -> str | None:
    """The link the uniform all-to-all sweep crossed, as its measurements recorded it."""
    return next((m.params.get("link") for m in _done(report, "a2a", "uniform")), None)


def calibration_from_report(report: ProfileReport, device_name: str, gpu_count: int, gpu: GPUSpec | None) -> Calibration:
    """The efficiencies a finished profile supports."""
    ratio = _Ratios()
    hbm_by_device: dict[str, Measurement] = {}
    for m in _done(report, "hbm", "copy"):
        if m.device not in hbm_by_device or m.params["size_bytes"] > hbm_by_device[m.device].params["size_bytes"]:
            hbm_by_device[m.device] = m
    dram = min((m.rates["dram_bytes_per_s"] for m in hbm_by_device.values()), default=None)
    single = [m for m in _done(report, "h2d") if m.params["gpus"] == 1 and m.params["memory"] == "pinned"]
    h2d, d2h = (_largest([m for m in single if m.name == d]) for d in ("h2d", "d2h"))
    h2d_rate = h2d.rates["per_direction_bytes_per_s"] if h2d else None
    d2h_rate = d2h.rates["per_direction_bytes_per_s"] if d2h else None
    nvlink = [m.rates["per_direction_bytes_per_s"] for m in _done(report, "p2p", "write") if m.params["via"] == "p2p" and str(m.params["link"]).startswith("NV")]
    nvlink_rate = statistics.median(nvlink) if nvlink else None
    fit, link = report.alltoall_fit, alltoall_link(report)
    pcie = gpu.pcie_bytes_per_s_per_direction if gpu else None
    link_rate = {"nvlink": gpu.link_bytes_per_s_per_direction, "pcie": pcie}.get(link) if gpu else None
    if fit and link == "network":
        ratio.notes.append("the all-to-all crossed nodes: its β is a NIC rate, not an NVLink efficiency; estimates use --nic-gb-s")
    gemm = _gemm_points(report, gpu, ratio)
    if gpu and gemm and _largest_efficiency(gemm, "compute") is None:
        ratio.notes.append("no GEMM point passed the ridge (all memory-bound): the compute efficiency stays at the catalogue peak")
    return Calibration(
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        device_kind=report.device,
        device_name=device_name,
        catalogue_gpu=gpu.name if gpu else None,
        gpu_count=gpu_count,
        nodes=next((int(m.params.get("nodes") or 1) for m in _done(report, "a2a", "uniform")), 1),
        model=report.shape.model if report.shape else "",
        hbm_dram_bytes_per_s=dram,
        hbm_efficiency=ratio("hbm", dram, gpu.hbm_bytes_per_s if gpu else None),
        gemm=gemm,
        gemm_compute_efficiency=_largest_efficiency(gemm, "compute"),
        gemm_memory_efficiency=_largest_efficiency(gemm, "memory"),
        h2d_bytes_per_s=h2d_rate,
        d2h_bytes_per_s=d2h_rate,
        pcie_efficiency=ratio("pcie", min(h2d_rate, d2h_rate), pcie) if h2d_rate and d2h_rate else None,
        nvlink_bytes_per_s=nvlink_rate,
        nvlink_efficiency=ratio("nvlink", nvlink_rate, gpu.link_bytes_per_s_per_direction if gpu else None),
        alltoall_link=link,
        alltoall_alpha_s=fit.alpha_s if fit else None,
        alltoall_beta_bytes_per_s=fit.beta_bytes_per_s if fit else None,
        alltoall_ranks=next((m.params["ranks"] for m in _done(report, "a2a", "uniform")), None),
        alltoall_efficiency=ratio("all-to-all β", fit.beta_bytes_per_s if fit else None, link_rate),
        notes=ratio.notes,
    )


def save_calibration(calibration: Calibration, path: Path) -> None:
    Path(path).write_text(calibration.model_dump_json(indent=2) + "\n")
