"""Result models of `moeplan profile`: one ``Measurement`` per timed point, one ``ProfileReport`` per run.

``--json`` prints the report (``{"schema": 1, ...}``); ``--out run.jsonl`` appends one JSON object per line as
each measurement finishes. Units: seconds, bytes, FLOPs; rates in B/s or FLOP/s (displayed as GB/s = 1e9 B/s
and TFLOP/s = 1e12 FLOP/s); copy rates are per direction unless the name says otherwise.
"""

from typing import Literal

from pydantic import BaseModel, Field

from moeplan.profile.a2a_bytes import A2ATraffic
from moeplan.report.document import Document
from moeplan.profile.stats import AlphaBetaFit, Stats
from moeplan.profile.topology import TopologySnapshot

SCHEMA_VERSION = 1
"""The ``schema`` of the report and of every --out line (moeplan.report.document.Document)."""
Section = Literal["topo", "hbm", "gemm", "h2d", "p2p", "a2a"]
SECTIONS: tuple[Section, ...] = ("topo", "hbm", "gemm", "h2d", "p2p", "a2a")
Verdict = Literal["ok", "warn", "fail", "n/a"]
Scalar = int | float | str | bool | None


class Prediction(BaseModel):
    """What moeplan expects for one measurement, and the ceilings beside it."""

    time_s: float | None = None
    """Predicted time (s); None when there is no prediction (see ``unavailable``)."""
    spec_ceiling_per_s: float | None = None
    """The data-sheet ceiling for the measurement's primary rate (B/s or FLOP/s)."""
    achievable_per_s: float | None = None
    """An achievable ceiling for the primary rate, from another measurement on this box or the NCCL link model."""
    basis: str = ""
    """How the prediction was computed, with its figures."""
    unavailable: str | None = None
    """Why there is no prediction (e.g. a CPU run, a GPU missing from the catalogue)."""


class ClockSample(BaseModel):
    """NVML readings taken while a benchmark was running on a GPU."""

    gpu: int
    """NVML index."""
    sm_mhz: int | None
    """None where NVML refused the query (also mem_mhz, pcie_gen, pcie_width)."""
    mem_mhz: int | None
    clock_reasons: list[str]
    pcie_gen: int | None
    pcie_width: int | None


class Measurement(BaseModel):
    """One timed point: its parameters, raw samples and summary, derived rates, prediction and verdict."""

    type: Literal["measurement"] = "measurement"
    section: Section
    name: str
    """What was timed within the section, e.g. 'copy', 'ffn', 'h2d', 'write', 'uniform', 'dispatch'."""
    device: str
    """Where it ran: 'cpu', 'cuda:0', 'cuda:0->cuda:1', 'ranks 0-3'."""
    params: dict[str, Scalar] = Field(default_factory=dict)
    stats: Stats | None = None
    """Timing samples; None when the point was skipped."""
    bytes: int | None = None
    """Bytes the primary rate is computed from."""
    flops: int | None = None
    rates: dict[str, float] = Field(default_factory=dict)
    """Rates from the median time, named with their unit (e.g. copy_bytes_per_s, flops_per_s, busbw_bytes_per_s)."""
    primary_rate: str | None = None
    """The entry of ``rates`` compared with the prediction's ceilings."""
    prediction: Prediction = Field(default_factory=Prediction)
    ratio: float | None = None
    """Measured median time / predicted time (above 1: moeplan is optimistic)."""
    verdict: Verdict = "n/a"
    hints: list[str] = Field(default_factory=list)
    """Likely causes of a gap, from the topology flags and the measurement itself."""
    notes: list[str] = Field(default_factory=list)
    clocks: list[ClockSample] = Field(default_factory=list)
    traffic: A2ATraffic | None = None
    """MoE all-to-all: bytes actually moved, from the split sizes and row sizes of the tensors sent."""
    predicted_traffic: A2ATraffic | None = None
    """MoE all-to-all: moeplan's byte prediction for the same routing sample (moeplan.profile.a2a_bytes)."""
    skipped: str | None = None
    """Why this point has no samples (out of memory at this size, ...)."""


class SectionResult(BaseModel):
    type: Literal["section"] = "section"
    section: Section
    status: Literal["ran", "skipped", "failed"]
    reason: str | None = None
    """Why the section was skipped or failed."""
    notes: list[str] = Field(default_factory=list)
    """What the section did differently here (CPU scaling, kernel paths unavailable, ...)."""


class Environment(BaseModel):
    python: str
    platform: str
    hostname: str
    torch: str
    cuda: str | None
    nccl: str | None
    cpu_count: int
    env: dict[str, str]
    """NCCL_*, CUDA_* and TORCH_* variables that are set."""


class ModelShape(BaseModel):
    """The expert shapes the GEMM and all-to-all sections use."""

    model: str
    hidden_size: int
    expert_intermediate_size: int
    num_experts: int
    top_k: int
    gated: bool
    ep: int
    """Expert-parallel degree: experts per GPU = num_experts / ep."""
    shared_expert_units: int = 0
    """Shared experts fused into the GEMMs as this many extra local experts of size I (0: none, or not a multiple of I)."""


class ProfileReport(Document):
    """`moeplan profile --json`: the whole run."""

    type: Literal["report"] = "report"
    created_at: str
    device: Literal["cpu", "cuda"]
    options: dict[str, Scalar | list[str] | list[int]]
    environment: Environment
    shape: ModelShape | None
    topology: TopologySnapshot | None = None
    sections: list[SectionResult] = Field(default_factory=list)
    measurements: list[Measurement] = Field(default_factory=list)
    alltoall_fit: AlphaBetaFit | None = None
    """The α–β fit of the uniform all-to-all sweep."""
    notes: list[str] = Field(default_factory=list)
    """How this run differs from a full GPU run (CPU scaling)."""
    stopped: str | None = None
    """The signal that stopped the run early (SIGTERM, SIGINT); the sections after it did not run."""
    conventions: dict[str, str] = Field(
        default_factory=lambda: {
            "units": "seconds, bytes, FLOPs; GB/s = 1e9 B/s, TFLOP/s = 1e12 FLOP/s, GiB = 2^30 B",
            "copies": "per direction unless named bidirectional; hbm dram_bytes_per_s = 2 x copy rate (read + write)",
            "alltoall": "nccl-tests: algbw = S/t with S the per-rank buffer incl. self; busbw = algbw*(n-1)/n; time = max over ranks",
            "moe_alltoall": "physical = max over ranks of max(remote sent, remote received) / t; logical = max received incl. self / t (DeepEP)",
            "ratio": "measured time / predicted time; verdict ok within 15%, warn within 50%, fail beyond",
        }
    )
