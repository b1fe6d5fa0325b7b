"""What every section needs: the devices, the model's expert shapes, the sweeps, the predictor and a way
to read clocks while a benchmark runs. Sweeps are scaled down on CPU, and the report says so."""

from collections.abc import Callable
from dataclasses import dataclass

from moeplan.profile.nvml import NvmlApi
from moeplan.profile.predict import Predictor
from moeplan.profile.results import ClockSample, ModelShape
from moeplan.profile.topology import CLOCK_REASONS, TopologySnapshot, clock_reason_names

MiB, GiB = 2**20, 2**30


@dataclass(frozen=True)
class Sweeps:
    """Sizes and repetitions of every section on one kind of device."""

    warmup: int
    iters: int
    hbm_bytes: tuple[int, ...]
    gemm_tokens: tuple[int, ...]
    """Tokens per rank T; the GPU receives about T·k rows."""
    gemm_scale: int
    """H and I are divided by this (1 on CUDA)."""
    h2d_bytes: tuple[int, ...]
    peer_bytes: int
    a2a_bytes: tuple[int, ...]
    """Per-rank all-to-all buffer sizes S."""
    a2a_tokens: tuple[int, ...]
    """Tokens per rank of the MoE-shaped dispatch/combine."""
    notes: tuple[str, ...] = ()


VLLM_TOKENS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 1536, 2048, 3072, 4096)
"""benchmark_moe.py's default batch sizes (vLLM), the GEMM section's T on CUDA."""
CUDA_SWEEPS = Sweeps(
    warmup=5,
    iters=20,
    hbm_bytes=(256 * MiB, GiB, 4 * GiB),
    gemm_tokens=VLLM_TOKENS,
    gemm_scale=1,
    h2d_bytes=(MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB, GiB),
    peer_bytes=256 * MiB,
    a2a_bytes=tuple(2**i for i in range(10, 31)),
    a2a_tokens=(128, 4096),
)
CPU_GEMM_SCALE, CPU_GEMM_TOKENS, CPU_A2A_TOKENS = 32, (1, 16, 128), (64,)
CPU_SWEEPS = Sweeps(
    warmup=2,
    iters=7,
    hbm_bytes=(16 * MiB, 64 * MiB),
    gemm_tokens=CPU_GEMM_TOKENS,
    gemm_scale=CPU_GEMM_SCALE,
    h2d_bytes=(),
    peer_bytes=0,
    a2a_bytes=tuple(4**i * 1024 for i in range(7)),
    a2a_tokens=CPU_A2A_TOKENS,
    notes=(
        f"CPU run, sweeps scaled down to finish in seconds: copies of 16 and 64 MiB; expert GEMMs with H and I divided by {CPU_GEMM_SCALE} "
        f"and T in {', '.join(map(str, CPU_GEMM_TOKENS))}; all-to-all of 1 KiB to 4 MiB per rank; MoE all-to-all with T = {CPU_A2A_TOKENS[0]} "
        "and the model's real H. The figures describe this host, not a GPU.",
    ),
)


@dataclass(frozen=True)
class Target:
    """One device a benchmark runs on."""

    label: str
    """'cpu' or 'cuda:N' (torch index)."""
    device: object
    """The torch.device."""
    nvml_index: int | None = None


@dataclass
class RunContext:
    device_type: str
    """'cuda' or 'cpu'."""
    targets: list[Target]
    shape: ModelShape
    sweeps: Sweeps
    predictor: Predictor
    seed: int
    timeout_s: float
    nvml: NvmlApi | None = None
    topology: TopologySnapshot | None = None
    measured_dram_bytes_per_s: float | None = None
    """The slowest GPU's DRAM rate from the hbm section, the GEMM section's achievable bandwidth."""
    nodes: int = 1
    """Nodes the all-to-all ranks span (torchrun: WORLD_SIZE / LOCAL_WORLD_SIZE)."""

    def clock_reader(self, targets: list[Target]) -> Callable[[], list[ClockSample]] | None:
        """A callable reading NVML clocks, clock reasons and PCIe link of the targets (None without NVML)."""
        nvml = self.nvml
        if nvml is None:
            return None
        indices = [t.nvml_index for t in targets if t.nvml_index is not None]

        def read() -> list[ClockSample]:
            samples = []
            for i in indices:
                clocks, reasons, link = nvml.clocks(i), nvml.throttle_reasons(i), nvml.pcie(i)
                if clocks is None and reasons is None and link is None:
                    continue  # every query refused: nothing to sample
                samples.append(ClockSample(
                    gpu=i, sm_mhz=clocks.sm_mhz if clocks else None, mem_mhz=clocks.mem_mhz if clocks else None,
                    clock_reasons=clock_reason_names(reasons or 0), pcie_gen=link.cur_gen if link else None, pcie_width=link.cur_width if link else None,
                ))
            return samples

        return read

    def nvlinked(self) -> bool:
        """Whether NVLinks join every pair of selected GPUs (assumed without a topology snapshot)."""
        if self.topology is None:
            return True
        return all(pair.nvlinks > 0 for pair in self.topology.pairs)

    def a2a_link(self) -> str | None:
        """What the all-to-all crosses: 'gloo' on CPU, 'network' across nodes, else 'nvlink' or 'pcie' from the
        topology snapshot (None when there is none: the link is not known)."""
        if self.device_type == "cpu":
            return "gloo"
        if self.nodes > 1:
            return "network"
        if self.topology is None or len(self.topology.gpus) < 2:
            return None  # a torchrun rank sees only its own GPU
        return "nvlink" if self.nvlinked() else "pcie"

    def hints(self, gpus: list[int | None], codes: tuple[str, ...]) -> list[str]:
        """Topology flag messages of the given kinds that concern these GPUs (or the whole host)."""
        if self.topology is None:
            return []
        wanted = {g for g in gpus if g is not None}
        return [f.message for f in self.topology.flags if f.code in codes and (not f.gpus or wanted & set(f.gpus))]


def clock_hints(samples: list[ClockSample]) -> list[str]:
    """Throttle reasons seen while the benchmark ran (idle and application-clock bits left out)."""
    seen = sorted({r for s in samples for r in s.clock_reasons if r not in (CLOCK_REASONS[0x1], CLOCK_REASONS[0x2])})
    return [f"clock reasons during the run: {', '.join(seen)}"] if seen else []
