"""NVML behind one small interface: a live implementation on pynvml (nvidia-ml-py) and a recorded one.

``NvmlApi`` is every question the profiler asks about the GPUs (indexed in NVML order, which is PCI order
and ignores CUDA_VISIBLE_DEVICES) plus one about the host (does the CPU report a hypervisor?). Every per-GPU
answer may be None: VMs, vGPU guests and cgroup device limits refuse queries one by one, and one refusal must
not end the run (the snapshot lists what was refused).
``record(api)`` captures all the answers as a ``RecordedBox`` (JSON), and ``RecordedNvml`` replays one, so
tests and offline reviews see exactly what a real box said. pynvml is imported only by ``PynvmlApi``.
"""

import json
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ValidationError

from moeplan.errors import EnvError, SpecError, describe_validation

P2PCapability = Literal["read", "write", "nvlink"]
P2P_CAPABILITIES: tuple[P2PCapability, ...] = ("read", "write", "nvlink")
PROFILE_EXTRA = "pip install 'moeplan[profile]'"
_P2P_CAPS_INDEX = {"read": 0, "write": 1, "nvlink": 2}
"""nvmlGpuP2PCapsIndex_t values (nvml.h); pynvml's own NVML_P2P_CAPS_INDEX_READ is a tuple by a stray comma."""


class MemoryInfo(BaseModel):
    """Device memory as NVML counts it (all processes), bytes."""

    total_bytes: int
    free_bytes: int
    used_bytes: int
    reserved_bytes: int = 0


class Clocks(BaseModel):
    """Current and maximum clocks (MHz)."""

    sm_mhz: int
    sm_max_mhz: int
    mem_mhz: int
    mem_max_mhz: int


class PcieLink(BaseModel):
    """PCIe link generation and width: maximum for this device in this slot, and current."""

    max_gen: int
    max_width: int
    cur_gen: int
    cur_width: int


class NvLink(BaseModel):
    """One active NVLink and its remote end."""

    link: int
    remote_bus_id: str
    remote_type: Literal["gpu", "switch", "ibmnpu", "unknown"]


class NvmlApi(Protocol):
    """The queries the profiler makes; ``i``, ``j`` are NVML device indices; None: the driver refused the query."""

    def device_count(self) -> int: ...
    def driver_version(self) -> str | None: ...
    def name(self, i: int) -> str | None: ...
    def uuid(self, i: int) -> str | None: ...
    def bus_id(self, i: int) -> str | None: ...
    def memory(self, i: int) -> MemoryInfo | None: ...
    def sm_count(self, i: int) -> int | None: ...
    def clocks(self, i: int) -> Clocks | None: ...
    def throttle_reasons(self, i: int) -> int | None: ...
    def pcie(self, i: int) -> PcieLink | None: ...
    def numa_node(self, i: int) -> int | None: ...
    def nvlinks(self, i: int) -> list[NvLink] | None: ...
    def virtualization_mode(self, i: int) -> int | None: ...
    def compute_mode(self, i: int) -> int | None: ...
    def p2p_status(self, i: int, j: int, capability: P2PCapability) -> int | None: ...
    def topology_level(self, i: int, j: int) -> int | None: ...
    def hypervisor(self) -> bool: ...


class RecordedDevice(BaseModel):
    """One GPU's answers; None where the driver refused the query."""

    name: str | None
    uuid: str | None
    bus_id: str | None
    memory: MemoryInfo | None
    sm_count: int | None
    clocks: Clocks | None
    throttle_reasons: int | None
    pcie: PcieLink | None
    numa_node: int | None
    nvlinks: list[NvLink] | None
    virtualization_mode: int | None
    compute_mode: int | None = 0
    """nvmlComputeMode_t: 0 default, 2 prohibited, 3 exclusive process."""


class RecordedBox(BaseModel):
    """Every answer of an ``NvmlApi`` for one machine; pair tables are [i][j] over NVML indices."""

    description: str = ""
    """Where the recording came from."""
    driver_version: str | None
    hypervisor: bool
    devices: list[RecordedDevice]
    p2p: dict[P2PCapability, list[list[int | None]]]
    """NVML P2P status (0 = OK) per capability; the diagonal is 0."""
    topology_level: list[list[int | None]]
    """nvmlDeviceGetTopologyCommonAncestor per pair (PCIe path only); the diagonal is 0."""


class RecordedNvml:
    """An ``NvmlApi`` that replays a ``RecordedBox``."""

    def __init__(self, box: RecordedBox):
        self.box = box

    @classmethod
    def from_file(cls, path: Path) -> "RecordedNvml":
        try:
            return cls(RecordedBox.model_validate(json.loads(Path(path).read_text())))
        except (OSError, json.JSONDecodeError) as error:
            raise SpecError(f"{path}: cannot read an NVML recording: {error}") from error
        except ValidationError as error:
            raise SpecError(f"{path}: not an NVML recording: {describe_validation(error)}") from error

    def device_count(self) -> int:
        return len(self.box.devices)

    def driver_version(self) -> str | None:
        return self.box.driver_version

    def name(self, i: int) -> str | None:
        return self.box.devices[i].name

    def uuid(self, i: int) -> str | None:
        return self.box.devices[i].uuid

    def bus_id(self, i: int) -> str | None:
        return self.box.devices[i].bus_id

    def memory(self, i: int) -> MemoryInfo | None:
        return self.box.devices[i].memory

    def sm_count(self, i: int) -> int | None:
        return self.box.devices[i].sm_count

    def clocks(self, i: int) -> Clocks | None:
        return self.box.devices[i].clocks

    def throttle_reasons(self, i: int) -> int | None:
        return self.box.devices[i].throttle_reasons

    def pcie(self, i: int) -> PcieLink | None:
        return self.box.devices[i].pcie

    def numa_node(self, i: int) -> int | None:
        return self.box.devices[i].numa_node

    def nvlinks(self, i: int) -> list[NvLink] | None:
        return self.box.devices[i].nvlinks

    def virtualization_mode(self, i: int) -> int | None:
        return self.box.devices[i].virtualization_mode

    def compute_mode(self, i: int) -> int | None:
        return self.box.devices[i].compute_mode

    def p2p_status(self, i: int, j: int, capability: P2PCapability) -> int | None:
        return self.box.p2p[capability][i][j]

    def topology_level(self, i: int, j: int) -> int | None:
        return self.box.topology_level[i][j]

    def hypervisor(self) -> bool:
        return self.box.hypervisor


def record(api: NvmlApi, description: str = "") -> RecordedBox:
    """Every answer ``api`` gives, as a RecordedBox (``--nvml-record`` writes this as JSON)."""
    count = api.device_count()
    devices = [
        RecordedDevice(
            name=api.name(i),
            uuid=api.uuid(i),
            bus_id=api.bus_id(i),
            memory=api.memory(i),
            sm_count=api.sm_count(i),
            clocks=api.clocks(i),
            throttle_reasons=api.throttle_reasons(i),
            pcie=api.pcie(i),
            numa_node=api.numa_node(i),
            nvlinks=api.nvlinks(i),
            virtualization_mode=api.virtualization_mode(i),
            compute_mode=api.compute_mode(i),
        )
        for i in range(count)
    ]
    pairs = [(i, j) for i in range(count) for j in range(count)]

    def table(answer) -> list[list[int | None]]:
        flat = [0 if i == j else answer(i, j) for i, j in pairs]
        return [flat[i * count : (i + 1) * count] for i in range(count)]

    return RecordedBox(
        description=description,
        driver_version=api.driver_version(),
        hypervisor=api.hypervisor(),
        devices=devices,
        p2p={cap: table(lambda i, j, cap=cap: api.p2p_status(i, j, cap)) for cap in P2P_CAPABILITIES},
        topology_level=table(api.topology_level),
    )


def cpu_reports_hypervisor(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU flags include 'hypervisor' (the kernel runs as a guest in a VM)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    return any(line.startswith("flags") and "hypervisor" in line.split() for line in text.splitlines())


class PynvmlApi:
    """The live ``NvmlApi`` on pynvml (package nvidia-ml-py). Only NVML start-up and the device count are
    required; every other query the driver refuses (NVMLError) answers None."""

    _REMOTE_TYPES = {0: "gpu", 1: "ibmnpu", 2: "switch"}

    def __init__(self):
        try:
            import pynvml
        except ImportError as error:
            raise EnvError(f"NVML bindings are not installed: {PROFILE_EXTRA}") from error
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as error:
            raise EnvError(f"NVML did not start ({error}); is the NVIDIA driver loaded? check with: nvidia-smi") from error
        self.nvml = pynvml
        self._handles = [self._ask(pynvml.nvmlDeviceGetHandleByIndex, i) for i in range(count)]

    def _ask(self, query, *args):
        try:
            return query(*args)
        except self.nvml.NVMLError:
            return None

    def _device(self, i: int, query, *args):
        """query(handle of GPU i, *args), None when there is no handle or the driver refuses."""
        handle = self._handles[i]
        return None if handle is None else self._ask(query, handle, *args)

    def device_count(self) -> int:
        return len(self._handles)

    def driver_version(self) -> str | None:
        return self._ask(self.nvml.nvmlSystemGetDriverVersion)

    def name(self, i: int) -> str | None:
        return self._device(i, self.nvml.nvmlDeviceGetName)

    def uuid(self, i: int) -> str | None:
        return self._device(i, self.nvml.nvmlDeviceGetUUID)

    def bus_id(self, i: int) -> str | None:
        info = self._device(i, self.nvml.nvmlDeviceGetPciInfo)
        return _text(info.busId) if info is not None else None

    def memory(self, i: int) -> MemoryInfo | None:
        info = self._device(i, lambda h: self.nvml.nvmlDeviceGetMemoryInfo(h, version=self.nvml.nvmlMemory_v2))
        return MemoryInfo(total_bytes=info.total, free_bytes=info.free, used_bytes=info.used, reserved_bytes=info.reserved) if info is not None else None

    def sm_count(self, i: int) -> int | None:
        attributes = self._device(i, self.nvml.nvmlDeviceGetAttributes_v2)
        return attributes.multiprocessorCount if attributes is not None else None

    def clocks(self, i: int) -> Clocks | None:
        n = self.nvml
        values = [self._device(i, query, kind) for query in (n.nvmlDeviceGetClockInfo, n.nvmlDeviceGetMaxClockInfo) for kind in (n.NVML_CLOCK_SM, n.NVML_CLOCK_MEM)]
        if None in values:
            return None
        sm, mem, sm_max, mem_max = values
        return Clocks(sm_mhz=sm, sm_max_mhz=sm_max, mem_mhz=mem, mem_max_mhz=mem_max)

    def throttle_reasons(self, i: int) -> int | None:
        reasons = self._device(i, self.nvml.nvmlDeviceGetCurrentClocksEventReasons)
        if reasons is None:  # drivers older than the "event reasons" name
            reasons = self._device(i, self.nvml.nvmlDeviceGetCurrentClocksThrottleReasons)
        return reasons

    def pcie(self, i: int) -> PcieLink | None:
        n = self.nvml
        queries = (n.nvmlDeviceGetMaxPcieLinkGeneration, n.nvmlDeviceGetMaxPcieLinkWidth, n.nvmlDeviceGetCurrPcieLinkGeneration, n.nvmlDeviceGetCurrPcieLinkWidth)
        values = [self._device(i, q) for q in queries]
        if None in values:
            return None
        return PcieLink(max_gen=values[0], max_width=values[1], cur_gen=values[2], cur_width=values[3])

    def numa_node(self, i: int) -> int | None:
        node = self._device(i, self.nvml.nvmlDeviceGetNumaNodeId)
        return node if node is not None and node >= 0 else None

    def nvlinks(self, i: int) -> list[NvLink] | None:
        if self._handles[i] is None:
            return None
        links = []
        for link in range(self.nvml.NVML_NVLINK_MAX_LINKS):
            if not self._device(i, self.nvml.nvmlDeviceGetNvLinkState, link):
                continue
            remote = self._device(i, self.nvml.nvmlDeviceGetNvLinkRemotePciInfo, link)
            kind = self._device(i, self.nvml.nvmlDeviceGetNvLinkRemoteDeviceType, link)
            links.append(NvLink(link=link, remote_bus_id=_text(remote.busId) if remote else "", remote_type=self._REMOTE_TYPES.get(kind, "unknown")))
        return links

    def virtualization_mode(self, i: int) -> int | None:
        return self._device(i, self.nvml.nvmlDeviceGetVirtualizationMode)

    def compute_mode(self, i: int) -> int | None:
        return self._device(i, self.nvml.nvmlDeviceGetComputeMode)

    def p2p_status(self, i: int, j: int, capability: P2PCapability) -> int | None:
        if self._handles[j] is None:
            return None
        return self._device(i, self.nvml.nvmlDeviceGetP2PStatus, self._handles[j], _P2P_CAPS_INDEX[capability])

    def topology_level(self, i: int, j: int) -> int | None:
        if self._handles[j] is None:
            return None
        return self._device(i, self.nvml.nvmlDeviceGetTopologyCommonAncestor, self._handles[j])

    def hypervisor(self) -> bool:
        return cpu_reports_hypervisor()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
