"""Topology snapshot: what NVML (and torch, for the CUDA index) say about the selected GPUs, with no traffic.

NVML indices follow PCI order and ignore CUDA_VISIBLE_DEVICES; CUDA's order may differ, so GPUs are
matched to CUDA devices by UUID. Path codes follow ``nvidia-smi topo -m``; ``NV#`` counts active NVLinks
between a pair, and an NVSwitch fabric (remote type SWITCH) connects every GPU on it with the GPU's
full link count. Where the remote end is not reported (vGPU guests refuse the remote queries), NVML's
P2P status for the NVLink capability decides. Any query may be refused: the field is None and
``refused`` names the query; nothing here ends the run.
"""

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel

from moeplan.profile.nvml import P2P_CAPABILITIES, Clocks, MemoryInfo, NvLink, NvmlApi, PcieLink

PATH_CODES = {0: "PIX", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}
"""NVML common-ancestor level → nvidia-smi code (INTERNAL, a two-GPU board, behaves like PIX)."""
P2P_CODES = {0: "OK", 1: "CNS", 2: "GNS", 3: "TNS", 4: "DR", 5: "NS", 6: "U"}
"""NVML P2P status → nvidia-smi ``topo -p2p`` legend (chipset/GPU/topology not supported, disabled by regkey, not supported, unknown)."""
VIRTUALIZATION = {0: "none", 1: "passthrough", 2: "vgpu", 3: "host_vgpu", 4: "host_vsga"}
CLOCK_REASONS = {
    0x1: "GpuIdle",
    0x2: "ApplicationsClocksSetting",
    0x4: "SwPowerCap",
    0x8: "HwSlowdown",
    0x10: "SyncBoost",
    0x20: "SwThermalSlowdown",
    0x40: "HwThermalSlowdown",
    0x80: "HwPowerBrakeSlowdown",
    0x100: "DisplayClockSetting",
}
THROTTLING_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80
"""Reasons that lower clocks below what the workload asks for (power, thermal, hardware slowdown)."""

FlagCode = Literal["pcie_downtrained", "pcie_gen_below_max", "p2p_disabled", "vm", "throttling", "nccl_env", "not_visible_to_cuda", "refused", "exclusive"]
COMPUTE_MODES = {0: "default", 1: "exclusive_thread", 2: "prohibited", 3: "exclusive_process"}


class CudaDevice(BaseModel):
    """A device as torch sees it."""

    index: int
    uuid: str
    name: str
    sm_count: int
    capability: str
    """Compute capability, e.g. '9.0'."""


class GpuInfo(BaseModel):
    nvml_index: int
    cuda_index: int | None
    """The torch/CUDA index of the same GPU (matched by UUID); None when CUDA does not see it."""
    name: str | None
    uuid: str | None
    bus_id: str | None
    memory: MemoryInfo | None
    sm_count: int | None
    capability: str | None
    clocks: Clocks | None
    clock_reason_bits: int | None
    """nvmlDeviceGetCurrentClocksEventReasons bit mask."""
    clock_reasons: list[str]
    """The same reasons by name."""
    pcie: PcieLink | None
    numa_node: int | None
    nvlinks: list[NvLink] | None
    nvswitch: bool
    """At least one active NVLink ends at an NVSwitch."""
    virtualization: str
    compute_mode: str | None = None
    """default, exclusive_process, prohibited (None: refused)."""
    refused: list[str] = []
    """NVML queries the driver refused for this GPU (VM, vGPU, cgroup limits)."""


class PairInfo(BaseModel):
    a: int
    b: int
    """NVML indices of the ordered pair."""
    path: str
    """PCIe path (PIX, PXB, PHB, NODE, SYS)."""
    nvlinks: int
    """Active NVLinks joining the pair (through an NVSwitch: a's active link count)."""
    link: str
    """What nvidia-smi topo -m would print: NV# when NVLinks join the pair, else the PCIe path."""
    p2p: dict[str, str]
    """P2P status per capability (read, write, nvlink) in nvidia-smi codes."""


class Flag(BaseModel):
    code: FlagCode
    gpus: list[int]
    """NVML indices concerned (empty for host-wide flags)."""
    message: str


class TopologySnapshot(BaseModel):
    driver_version: str
    hypervisor: bool
    """The host CPU reports a hypervisor (a VM)."""
    gpus: list[GpuInfo]
    pairs: list[PairInfo]
    nccl_env: dict[str, str]
    """Every NCCL_* environment variable that is set."""
    flags: list[Flag]


def normalize_uuid(uuid: str) -> str:
    """A GPU UUID as bare lower-case hex: NVML's 'GPU-xxxxxxxx-...' and torch's 'xxxxxxxx-...' compare equal."""
    text = uuid.lower().removeprefix("gpu-")
    return text.replace("-", "")


def clock_reason_names(bits: int) -> list[str]:
    """Names of the set clock event reason bits."""
    return [name for bit, name in CLOCK_REASONS.items() if bits & bit]


def pair_nvlinks(a: GpuInfo, b: GpuInfo, p2p_nvlink_ok: bool = False) -> int:
    """Active NVLinks from a to b: links whose remote is b, all of a's links when both sit on an NVSwitch, else,
    when NVML's P2P status says the pair talks over NVLink, a's links whose remote end is not identified (at least 1)."""
    links = a.nvlinks or []
    if a.nvswitch and b.nvswitch:
        return sum(link.remote_type == "switch" for link in links)
    direct = sum(bool(b.bus_id) and link.remote_bus_id.lower() == b.bus_id.lower() for link in links)
    if direct or not p2p_nvlink_ok:
        return direct
    return max(1, sum(link.remote_type in ("switch", "unknown") or not link.remote_bus_id for link in links))


REQUIRED_ANSWERS = ("name", "uuid", "bus_id", "memory", "clocks", "throttle_reasons", "pcie", "nvlinks", "virtualization_mode", "compute_mode")
"""Per-GPU queries whose refusal is listed in ``GpuInfo.refused`` (sm_count and numa_node are often absent)."""


def _gpu(api: NvmlApi, i: int, cuda: Mapping[str, CudaDevice] | None) -> GpuInfo:
    answers = {name: getattr(api, name)(i) for name in REQUIRED_ANSWERS}
    uuid, nvlinks, reasons = answers["uuid"], answers["nvlinks"], answers["throttle_reasons"]
    match = cuda.get(normalize_uuid(uuid)) if cuda is not None and uuid else None
    sm_count = api.sm_count(i)
    mode = answers["virtualization_mode"]
    return GpuInfo(
        nvml_index=i,
        cuda_index=match.index if match else None,
        name=answers["name"],
        uuid=uuid,
        bus_id=answers["bus_id"],
        memory=answers["memory"],
        sm_count=sm_count if sm_count is not None else (match.sm_count if match else None),
        capability=match.capability if match else None,
        clocks=answers["clocks"],
        clock_reason_bits=reasons,
        clock_reasons=clock_reason_names(reasons or 0),
        pcie=answers["pcie"],
        numa_node=api.numa_node(i),
        nvlinks=nvlinks,
        nvswitch=any(link.remote_type == "switch" for link in nvlinks or []),
        virtualization=VIRTUALIZATION.get(mode, "unknown") if mode is not None else "unknown",
        compute_mode=COMPUTE_MODES.get(answers["compute_mode"]),
        refused=[name for name, value in answers.items() if value is None],
    )


def _pair(api: NvmlApi, a: GpuInfo, b: GpuInfo) -> PairInfo:
    level = api.topology_level(a.nvml_index, b.nvml_index)
    path = PATH_CODES.get(level, "?") if level is not None else "?"
    p2p = {cap: P2P_CODES.get(api.p2p_status(a.nvml_index, b.nvml_index, cap), "U") for cap in P2P_CAPABILITIES}
    nvlinks = pair_nvlinks(a, b, p2p["nvlink"] == "OK")
    return PairInfo(a=a.nvml_index, b=b.nvml_index, path=path, nvlinks=nvlinks, link=f"NV{nvlinks}" if nvlinks else path, p2p=p2p)


def topology_flags(gpus: list[GpuInfo], pairs: list[PairInfo], hypervisor: bool, nccl_env: Mapping[str, str], cuda_checked: bool) -> list[Flag]:
    """The warnings the snapshot supports: downtrained PCIe, P2P off, VM, throttling, NCCL_* set, GPUs CUDA cannot see."""
    flags = []
    for g in gpus:
        p = g.pcie
        if g.refused:
            flags.append(Flag(code="refused", gpus=[g.nvml_index], message=f"GPU {g.nvml_index}: NVML refused {', '.join(g.refused)} (VM, vGPU or cgroup limits?); those fields are empty"))
        if g.compute_mode in ("exclusive_process", "exclusive_thread", "prohibited"):
            flags.append(Flag(code="exclusive", gpus=[g.nvml_index], message=f"GPU {g.nvml_index}: compute mode {g.compute_mode}: one CUDA context at a time, so the all-to-all ranks run before this process touches the GPU"))
        if p is None:
            pass
        elif p.cur_width < p.max_width:
            flags.append(Flag(code="pcie_downtrained", gpus=[g.nvml_index], message=f"GPU {g.nvml_index}: PCIe link x{p.cur_width} of x{p.max_width} (Gen{p.cur_gen} of Gen{p.max_gen}): a downtrained or mis-seated link; host copies will be slow"))
        elif p.cur_gen < p.max_gen:
            flags.append(Flag(code="pcie_gen_below_max", gpus=[g.nvml_index], message=f"GPU {g.nvml_index}: PCIe Gen{p.cur_gen} of Gen{p.max_gen} at the snapshot; normal at idle (power saving), the h2d section re-reads it under load"))
        throttled = clock_reason_names((g.clock_reason_bits or 0) & THROTTLING_MASK)
        if throttled and g.clocks is not None:
            flags.append(Flag(code="throttling", gpus=[g.nvml_index], message=f"GPU {g.nvml_index}: clocks held back by {', '.join(throttled)} (SM {g.clocks.sm_mhz} of {g.clocks.sm_max_mhz} MHz)"))
        if cuda_checked and g.cuda_index is None:
            flags.append(Flag(code="not_visible_to_cuda", gpus=[g.nvml_index], message=f"GPU {g.nvml_index} ({g.uuid}) is not visible to CUDA (CUDA_VISIBLE_DEVICES?)"))
    blocked = [p for p in pairs if p.p2p["read"] != "OK" or p.p2p["write"] != "OK"]
    if blocked:
        listed = ", ".join(f"{p.a}→{p.b} {p.p2p['read']}/{p.p2p['write']}" for p in blocked)
        flags.append(Flag(code="p2p_disabled", gpus=sorted({p.a for p in blocked} | {p.b for p in blocked}), message=f"P2P disabled for {listed} (read/write status): peer copies go through host memory; ACS, IOMMU or a VM?"))
    virtual = [g.nvml_index for g in gpus if g.virtualization != "none"]
    if virtual or hypervisor:
        modes = ", ".join(f"GPU {g.nvml_index} {g.virtualization}" for g in gpus if g.virtualization != "none")
        where = "; ".join(part for part in (modes, "the CPU reports a hypervisor" if hypervisor else "") if part)
        flags.append(Flag(code="vm", gpus=virtual, message=f"running in a VM ({where}): PCIe and P2P figures may be lower than bare metal"))
    if nccl_env:
        flags.append(Flag(code="nccl_env", gpus=[], message=f"NCCL variables set, they change what all-to-all measures: {' '.join(f'{k}={v}' for k, v in sorted(nccl_env.items()))}"))
    return flags


def snapshot(api: NvmlApi, selected: list[int], cuda: list[CudaDevice] | None, env: Mapping[str, str]) -> TopologySnapshot:
    """The topology of the selected NVML devices; ``cuda`` (torch's devices) matches them by UUID when given."""
    by_uuid = {normalize_uuid(d.uuid): d for d in cuda} if cuda is not None else None
    gpus = [_gpu(api, i, by_uuid) for i in selected]
    pairs = [_pair(api, a, b) for a in gpus for b in gpus if a.nvml_index != b.nvml_index]
    nccl_env = {k: v for k, v in env.items() if k.startswith("NCCL_")}
    hypervisor = api.hypervisor()
    return TopologySnapshot(
        driver_version=api.driver_version() or "unknown (refused)",
        hypervisor=hypervisor,
        gpus=gpus,
        pairs=pairs,
        nccl_env=nccl_env,
        flags=topology_flags(gpus, pairs, hypervisor, nccl_env, cuda is not None),
    )
