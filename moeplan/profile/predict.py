"""Predictions beside the measurements: the roofline moeplan expects on the catalogue's figures for this GPU.

Every function states its time model; ``Predictor`` returns ``Prediction(unavailable=reason)`` when there is
no catalogue entry (a CPU run, an unknown GPU). Verdict bands: |log(measured/predicted)| within log 1.15 →
ok, within log 1.5 → warn, beyond → fail. GB/s = 1e9 B/s; link and PCIe figures per direction.
"""

import math

from moeplan.hardware.catalogue import PCIE_LANE_RATES, GPUSpec, get_gpu
from moeplan.profile.nvml import PcieLink
from moeplan.profile.results import Measurement, Prediction, Verdict
from moeplan.profile.stats import AlphaBetaFit
from moeplan.spec.deployment import Deployment

OK_BAND, WARN_BAND = 1.15, 1.5
NIC_BYTES_PER_S = Deployment.model_fields["nic_gb_s"].default * 1e9
"""Per-GPU NIC rate inter-node traffic is predicted at: the planner's default ``--nic-gb-s``."""
REPORTED_NAMES = {
    "nvidia h100 80gb hbm3": "h100-sxm",
    "nvidia h100 pcie": "h100-pcie",
    "nvidia h100 nvl": "h100-nvl",
    "nvidia h200": "h200",
    "nvidia h800": "h800",
    "nvidia h20": "h20",
    "nvidia a100-sxm4-80gb": "a100-80gb",
    "nvidia a100-sxm4-40gb": "a100-40gb",
    "nvidia b200": "b200",
    "nvidia gb200": "gb200",
    "nvidia l40s": "l40s",
    "nvidia l4": "l4",
    "nvidia geforce rtx 4090": "rtx-4090",
    "nvidia geforce rtx 5090": "rtx-5090",
}
"""Device name as CUDA and NVML report it (lower case) → catalogue name."""


def catalogue_gpu_for(device_name: str) -> tuple[GPUSpec | None, str | None]:
    """The catalogue entry for a reported device name, or None and the reason (pass --gpu NAME to choose one)."""
    key = REPORTED_NAMES.get(device_name.strip().lower())
    if key is None:
        return None, f"no catalogue entry is known for {device_name!r}; pass --gpu NAME (see `moeplan gpus`) to compare with one"
    return get_gpu(key), None


def pcie_nccl_bytes_per_s(gen: int, width: int) -> float:
    """NCCL's effective PCIe rate per direction (B/s): width × speed / 80 GB/s with speed = 7.5 × GT/s
    (src/graph/topo.cc kvDictPciGen): Gen3 x16 12, Gen4 x16 24, Gen5 x16 48 GB/s, 75% of raw."""
    transfers_per_s, _ = PCIE_LANE_RATES[gen]
    return width * 7.5 * transfers_per_s / 80


def ffn_activation_bytes(rows: int, hidden: int, intermediate: int, gated: bool, element_bytes: int) -> int:
    """Unfused activation traffic of an expert FFN (B), g = 2 projections in (gate, up) when gated else 1: per row
    read X (H), write the g·I projection, read it and write the activation (g·I + I), read that for down (I),
    write the output (H): rows·b·(2H + (2g + 2)·I), i.e. 2H + 6I gated."""
    g = 2 if gated else 1
    return rows * element_bytes * (2 * hidden + (2 * g + 2) * intermediate)


def roofline_bound(flops: float, peak_flops_per_s: float, nbytes: float, bytes_per_s: float) -> str:
    """'compute' when FLOPs / peak ≥ bytes / bandwidth (the point is past the roofline's ridge), else 'memory'."""
    return "compute" if flops / peak_flops_per_s >= nbytes / bytes_per_s else "memory"


def judge(measured_s: float, predicted_s: float | None) -> tuple[float | None, Verdict]:
    """ratio = measured / predicted and its verdict (ok within 15%, warn within 50%, fail beyond, n/a without a prediction)."""
    if predicted_s is None:
        return None, "n/a"
    ratio = measured_s / predicted_s
    spread = abs(math.log(ratio))
    return ratio, "ok" if spread <= math.log(OK_BAND) else "warn" if spread <= math.log(WARN_BAND) else "fail"


def apply_verdict(measurement: Measurement) -> Measurement:
    """Fill ratio and verdict from the median time and the prediction."""
    if measurement.stats is not None:
        measurement.ratio, measurement.verdict = judge(measurement.stats.median_s, measurement.prediction.time_s)
    return measurement


class Predictor:
    """Predictions for one GPU model; every method returns an 'unavailable' Prediction when ``gpu`` is None."""

    def __init__(self, gpu: GPUSpec | None, unavailable: str | None = None):
        self.gpu = gpu
        self.unavailable = unavailable

    def _none(self, reason: str | None = None) -> Prediction:
        return Prediction(unavailable=reason or self.unavailable)

    def _gpu_link(self, nvlink: bool) -> tuple[float | None, str]:
        """The catalogue's per-direction rate between two GPUs, NVLink when it joins them, else PCIe, and its name."""
        if nvlink:
            return self.gpu.link_bytes_per_s_per_direction, "NVLink"
        return self.gpu.pcie_bytes_per_s_per_direction, "PCIe"

    def hbm_copy(self, copy_bytes: int) -> Prediction:
        """Device-local copy: read + write = 2·bytes at the spec HBM bandwidth."""
        if self.gpu is None:
            return self._none()
        hbm = self.gpu.hbm_bytes_per_s
        return Prediction(time_s=2 * copy_bytes / hbm, spec_ceiling_per_s=hbm, basis=f"2 x bytes / HBM {hbm / 1e9:,.0f} GB/s ({self.gpu.name})")

    def gemm(self, flops: int, traffic_bytes: int, measured_dram_bytes_per_s: float | None = None, fp8: bool = False) -> Prediction:
        """Roofline: max(FLOPs / peak, bytes / HBM), the dense bf16 peak (fp8 for the fp8 paths); the achievable
        ceiling uses the measured HBM rate instead."""
        if self.gpu is None:
            return self._none()
        peak, hbm = (self.gpu.fp8_flops_per_s if fp8 else self.gpu.bf16_flops_per_s), self.gpu.hbm_bytes_per_s
        if peak is None:
            return self._none(f"the catalogue has no fp8 peak for {self.gpu.name}")
        time_s = max(flops / peak, traffic_bytes / hbm)
        bound = roofline_bound(flops, peak, traffic_bytes, hbm)
        achievable = flops / max(flops / peak, traffic_bytes / measured_dram_bytes_per_s) if measured_dram_bytes_per_s else None
        return Prediction(
            time_s=time_s,
            spec_ceiling_per_s=peak,
            achievable_per_s=achievable,
            basis=f"max(FLOPs / {peak / 1e12:,.0f} TFLOP/s, bytes / {hbm / 1e9:,.0f} GB/s): {bound}-bound ({self.gpu.name})",
        )

    def pcie(self, nbytes: int, link: PcieLink | None = None) -> Prediction:
        """Host copy: bytes at the catalogue PCIe rate per direction; achievable = NCCL's model of the link NVML reports."""
        if self.gpu is None:
            return self._none()
        rate = self.gpu.pcie_bytes_per_s_per_direction
        if rate is None:
            return self._none(f"the catalogue has no PCIe figure for {self.gpu.name}")
        achievable = pcie_nccl_bytes_per_s(link.max_gen, link.max_width) if link else None
        return Prediction(time_s=nbytes / rate, spec_ceiling_per_s=rate, achievable_per_s=achievable, basis=f"bytes / PCIe {rate / 1e9:,.1f} GB/s per direction ({self.gpu.name})")

    def peer(self, nbytes: int, nvlink: bool) -> Prediction:
        """Peer copy: bytes at the NVLink rate per direction when NVLinks join the pair, else at the PCIe rate."""
        if self.gpu is None:
            return self._none()
        rate, name = self._gpu_link(nvlink)
        if rate is None:
            return self._none(f"the catalogue has no {name} figure for {self.gpu.name}")
        return Prediction(time_s=nbytes / rate, spec_ceiling_per_s=rate, basis=f"bytes / {name} {rate / 1e9:,.1f} GB/s per direction ({self.gpu.name})")

    def alltoall(self, remote_bytes: int, nvlink: bool = True, fit: AlphaBetaFit | None = None, inter_bytes: int = 0) -> Prediction:
        """All-to-all: α + max(the busiest rank's intra-node remote bytes / β, its inter-node bytes / NIC), with β
        the catalogue rate per direction of the link inside a node (NVLink, else PCIe), the NIC at the planner's
        default ``nic_gb_s``, and α = 0 (the catalogue has no latency; calibration supplies a measured α).
        Achievable: the fitted β of this run's uniform sweep."""
        if self.gpu is None:
            return self._none()
        rate, name = self._gpu_link(nvlink)
        if rate is None:
            return self._none(f"the catalogue has no {name} figure for {self.gpu.name}")
        link = f"{name} {rate / 1e9:,.1f} GB/s per direction"
        if inter_bytes:
            return Prediction(
                time_s=max(remote_bytes / rate, inter_bytes / NIC_BYTES_PER_S),
                spec_ceiling_per_s=NIC_BYTES_PER_S,
                basis=f"0 + max(intra-node bytes / {link}, inter-node bytes / NIC {NIC_BYTES_PER_S / 1e9:,.0f} GB/s) ({self.gpu.name}; α not modelled)",
            )
        return Prediction(
            time_s=remote_bytes / rate,
            spec_ceiling_per_s=rate,
            achievable_per_s=fit.beta_bytes_per_s if fit else None,
            basis=f"0 + remote bytes / {link} ({self.gpu.name}; α not modelled)",
        )
