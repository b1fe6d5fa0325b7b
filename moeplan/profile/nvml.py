"""NVML behind one small interface: a live implementation on pynvml (nvidia-ml-py) and a recorded one.

``NvmlApi`` is every question the profiler asks about the GPUs (indexed in NVML order, which is PCI order
and ignores CUDA_VISIBLE_DEVICES) plus one about the host (does the CPU report a hypervisor?).
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
    """The queries the profiler makes; ``i``, ``j`` are NVML device indices."""

    def device_count(self) -> int: ...
    def driver_version(self) -> str: ...
    def name(self, i: int) -> str: ...
    def uuid(self, i: int) -> str: ...
    def bus_id(self, i: int) -> str: ...
    def memory(self, i: int) -> MemoryInfo: ...
    def sm_count(self, i: int) -> int | None: ...
    def clocks(self, i: int) -> Clocks: ...
    def throttle_reasons(self, i: int) -> int: ...
    def pcie(self, i: int) -> PcieLink: ...
    def numa_node(self, i: int) -> int | None: ...
    def nvlinks(self, i: int) -> list[NvLink]: ...
    def virtualization_mode(self, i: int) -> int: ...
    def p2p_status(self, i: int, j: int, capability: P2PCapability) -> int: ...
    def topology_level(self, i: int, j: int) -> int: ...
    def hypervisor(self) -> bool: ...


class RecordedDevice(BaseModel):
    name: str
    uuid: str
    bus_id: str
    memory: MemoryInfo
    sm_count: int | None
    clocks: Clocks
    throttle_reasons: int
    pcie: PcieLink
    numa_node: int | None
    nvlinks: list[NvLink]
    virtualization_mode: int


class RecordedBox(BaseModel):
    """Every answer of an ``NvmlApi`` for one machine; pair tables are [i][j] over NVML indices."""

    description: str = ""
    """Where the recording came from."""
    driver_version: str
    hypervisor: bool
    devices: list[RecordedDevice]
    p2p: dict[P2PCapability, list[list[int]]]
    """NVML P2P status (0 = OK) per capability; the diagonal is 0."""
    topology_level: list[list[int]]
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

    def driver_version(self) -> str:
        return self.box.driver_version

    def name(self, i: int) -> str:
        return self.box.devices[i].name

    def uuid(self, i: int) -> str:
        return self.box.devices[i].uuid

    def bus_id(self, i: int) -> str:
        return self.box.devices[i].bus_id

    def memory(self, i: int) -> MemoryInfo:
        return self.box.devices[i].memory

    def sm_count(self, i: int) -> int | None:
        return self.box.devices[i].sm_count

    def clocks(self, i: int) -> Clocks:
        return self.box.devices[i].clocks

    def throttle_reasons(self, i: int) -> int:
        return self.box.devices[i].throttle_reasons

    def pcie(self, i: int) -> PcieLink:
        return self.box.devices[i].pcie

    def numa_node(self, i: int) -> int | None:
        return self.box.devices[i].numa_node

    def nvlinks(self, i: int) -> list[NvLink]:
        return self.box.devices[i].nvlinks

    def virtualization_mode(self, i: int) -> int:
        return self.box.devices[i].virtualization_mode

    def p2p_status(self, i: int, j: int, capability: P2PCapability) -> int:
        return self.box.p2p[capability][i][j]

    def topology_level(self, i: int, j: int) -> int:
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
        )
        for i in range(count)
    ]
    pairs = [(i, j) for i in range(count) for j in range(count)]

    def table(answer) -> list[list[int]]:
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
    """The live ``NvmlApi`` on pynvml (package nvidia-ml-py). Optional queries the driver refuses return None."""

    _REMOTE_TYPES = {0: "gpu", 1: "ibmnpu", 2: "switch"}

    def __init__(self):
        try:
            import pynvml
        except ImportError as error:
            raise EnvError(f"NVML bindings are not installed: {PROFILE_EXTRA}") from error
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as error:
            raise EnvError(f"NVML did not start ({error}); is the NVIDIA driver loaded? check with: nvidia-smi") from error
        self.nvml = pynvml
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]

    def _optional(self, query, *args):
        try:
            return query(*args)
        except self.nvml.NVMLError:
            return None

    def device_count(self) -> int:
        return len(self._handles)

    def driver_version(self) -> str:
        return self.nvml.nvmlSystemGetDriverVersion()

    def name(self, i: int) -> str:
        return self.nvml.nvmlDeviceGetName(self._handles[i])

    def uuid(self, i: int) -> str:
        return self.nvml.nvmlDeviceGetUUID(self._handles[i])

    def bus_id(self, i: int) -> str:
        return _text(self.nvml.nvmlDeviceGetPciInfo(self._handles[i]).busId)

    def memory(self, i: int) -> MemoryInfo:
        info = self.nvml.nvmlDeviceGetMemoryInfo(self._handles[i], version=self.nvml.nvmlMemory_v2)
        return MemoryInfo(total_bytes=info.total, free_bytes=info.free, used_bytes=info.used, reserved_bytes=info.reserved)

    def sm_count(self, i: int) -> int | None:
        attributes = self._optional(self.nvml.nvmlDeviceGetAttributes_v2, self._handles[i])
        return attributes.multiprocessorCount if attributes is not None else None

    def clocks(self, i: int) -> Clocks:
        h, n = self._handles[i], self.nvml
        return Clocks(
            sm_mhz=n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM),
            sm_max_mhz=n.nvmlDeviceGetMaxClockInfo(h, n.NVML_CLOCK_SM),
            mem_mhz=n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM),
            mem_max_mhz=n.nvmlDeviceGetMaxClockInfo(h, n.NVML_CLOCK_MEM),
        )

    def throttle_reasons(self, i: int) -> int:
        try:
            return self.nvml.nvmlDeviceGetCurrentClocksEventReasons(self._handles[i])
        except self.nvml.NVMLError:  # drivers older than the "event reasons" name
            return self.nvml.nvmlDeviceGetCurrentClocksThrottleReasons(self._handles[i])

    def pcie(self, i: int) -> PcieLink:
        h, n = self._handles[i], self.nvml
        return PcieLink(
            max_gen=n.nvmlDeviceGetMaxPcieLinkGeneration(h),
            max_width=n.nvmlDeviceGetMaxPcieLinkWidth(h),
            cur_gen=n.nvmlDeviceGetCurrPcieLinkGeneration(h),
            cur_width=n.nvmlDeviceGetCurrPcieLinkWidth(h),
        )

    def numa_node(self, i: int) -> int | None:
        node = self._optional(self.nvml.nvmlDeviceGetNumaNodeId, self._handles[i])
        return node if node is not None and node >= 0 else None

    def nvlinks(self, i: int) -> list[NvLink]:
        h, links = self._handles[i], []
        for link in range(self.nvml.NVML_NVLINK_MAX_LINKS):
            if not self._optional(self.nvml.nvmlDeviceGetNvLinkState, h, link):
                continue
            remote = self._optional(self.nvml.nvmlDeviceGetNvLinkRemotePciInfo, h, link)
            kind = self._optional(self.nvml.nvmlDeviceGetNvLinkRemoteDeviceType, h, link)
            links.append(
                NvLink(link=link, remote_bus_id=_text(remote.busId) if remote else "", remote_type=self._REMOTE_TYPES.get(kind, "unknown"))
            )
        return links

    def virtualization_mode(self, i: int) -> int:
        mode = self._optional(self.nvml.nvmlDeviceGetVirtualizationMode, self._handles[i])
        return mode or 0

    def p2p_status(self, i: int, j: int, capability: P2PCapability) -> int:
        return self.nvml.nvmlDeviceGetP2PStatus(self._handles[i], self._handles[j], _P2P_CAPS_INDEX[capability])

    def topology_level(self, i: int, j: int) -> int:
        return self.nvml.nvmlDeviceGetTopologyCommonAncestor(self._handles[i], self._handles[j])

    def hypervisor(self) -> bool:
        return cpu_reports_hypervisor()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
