"""The options of one profile run, checked before anything is measured (no torch)."""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, PositiveFloat, PositiveInt

from moeplan.errors import SpecError
from moeplan.profile.results import SECTIONS, Section


class ProfileOptions(BaseModel):
    model: str = "mixtral-8x7b"
    """Preset, config file or model directory whose expert shapes the GEMM and all-to-all sections use."""
    device: Literal["cuda", "cpu"] = "cuda"
    gpus: str = "all"
    """NVML (nvidia-smi) indices: 0-7, 0,2,4, or all (every GPU CUDA sees)."""
    procs: PositiveInt | None = None
    """All-to-all ranks on --device cpu (default 2); on CUDA one per selected GPU."""
    only: list[Section] = Field(default_factory=lambda: list(SECTIONS))
    ep: PositiveInt | None = None
    """Expert parallelism for the GEMM shapes (experts per GPU = E/ep); default: the number of ranks."""
    gpu: str | None = None
    """Catalogue name or GPU file to predict with, instead of the one matched from the device name."""
    warmup: int | None = Field(None, ge=0)
    iters: PositiveInt | None = None
    timeout_s: PositiveFloat = 300.0
    """Longest any single step may take."""
    seed: int = 0
    nvml_file: Path | None = None
    """Replay a recorded box for the topology section (with --device cpu)."""
    nvml_record: Path | None = None
    """Write what NVML reports on this box to a file."""
    min_busbw_gb_s: PositiveFloat | None = None
    """Fail (exit 1) when the largest uniform all-to-all's busbw is below this (GB/s), as nccl-tests' NCCL_TESTS_MIN_BW."""


def parse_only(text: str | None) -> list[Section]:
    """The sections named by --only (comma list), in report order; all when None."""
    if text is None:
        return list(SECTIONS)
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise SpecError(f"--only {text!r}: unknown section {', '.join(unknown) or '(none given)'}; choose from {','.join(SECTIONS)}")
    return [s for s in SECTIONS if s in names]
