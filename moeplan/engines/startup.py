"""What an engine reports at start-up, and the pieces every engine's memory semantics share: the memory the
framework sees, one pipeline stage's KV cache per token, blocks and concurrency.

Bytes throughout; GiB = 2^30 B in every engine log this mirrors (vLLM's "GiB", SGLang's "GB" are both 2^30).
"""

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from moeplan.accounting.kv_cache import SequenceKV, sequence_kv
from moeplan.accounting.memory import MemoryReport
from moeplan.accounting.weights import WeightMemory
from moeplan.docstrings import add_field_docstrings
from moeplan.engines.command import EngineCommand, EngineVersion
from moeplan.hardware.catalogue import GPUSpec
from moeplan.layout.parallel import Layout, stage_layers
from moeplan.perf.offload import OffloadEstimate
from moeplan.spec.deployment import Deployment
from moeplan.spec.model import ModelSpec
from moeplan.units import GiB

H100_TORCH_TOTAL_BYTES = round(79.19 * GiB)
"""Total memory torch.cuda.mem_get_info reports on an H100 80GB SXM: 79.19 GiB (llm-d-planner,
docs/accuracy/vllm-v0.19.0-accuracy-report.md: "catalog memory = 80 GiB, actual = ~79.19 GiB"; vLLM's own log
shows total_gpu_memory 79.22GiB in vllm-project/vllm#10511)."""
H100_DRIVER_BYTES = 81559 * 2**20
"""nvidia-smi's memory.total on the same GPU (81,559 MiB)."""
CUDA_RESERVED_BYTES = H100_DRIVER_BYTES - H100_TORCH_TOTAL_BYTES
"""What CUDA keeps of the driver's total (0.46 GiB on H100), taken as the same on every GPU the catalogue gives a
driver figure for."""


def torch_total_bytes(gpu: GPUSpec) -> int:
    """The total an engine divides (torch's view): measured on H100; the driver-reported total less CUDA's reserve
    where the catalogue has one; else the datasheet capacity."""
    if gpu.name == "h100-sxm":
        return H100_TORCH_TOTAL_BYTES
    driver = getattr(gpu, "driver_memory_bytes", None)
    return driver - CUDA_RESERVED_BYTES if driver else gpu.memory_bytes


class Allocation(BaseModel):
    """One line of an engine's memory budget on the most constrained GPU."""

    model_config = ConfigDict(extra="forbid")

    name: str
    bytes: int
    basis: str
    """How the engine (and moeplan) arrives at it."""


class EngineStartup(BaseModel):
    """What the engine will say at start-up, in its own terms, for the most constrained GPU."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=add_field_docstrings)

    starts: bool
    failure: str | None = None
    """Which allocation or check fails, in the engine's words."""
    shortfall_bytes: int = 0
    """How much memory that allocation lacks (0 when it starts)."""
    total_bytes: int
    """Memory the engine sees per GPU (torch's total)."""
    budget: list[Allocation]
    """The engine's division of one GPU, in the order it makes it."""
    weights_per_gpu_bytes: int
    """vLLM's "Model loading took"; the most-loaded GPU."""
    kv_pool_bytes: int
    """vLLM's "Available KV cache memory", SGLang's K + V size, TensorRT-LLM's KV pool (0 when negative)."""
    kv_bytes_per_token: int
    """Cache of one token over the GPU's attention layers (all layers as full attention: the pool's page size)."""
    block_size: int
    """Tokens per KV block (page)."""
    kv_blocks: int
    """vLLM's "# GPU blocks"; pool blocks."""
    kv_tokens: int
    """vLLM's "GPU KV cache size: N tokens", SGLang's max_total_num_tokens, per engine replica."""
    max_model_len: int
    max_concurrency: float
    """vLLM's "Maximum concurrency for max_model_len tokens per request": requests of max_model_len at once, per replica."""
    replicas: int = 1
    """Engine replicas each holding their own pool (DP ranks, DP-attention ranks)."""
    notes: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class StartupInputs:
    """What an engine's memory semantics read: the model, the parsed command, the hardware and moeplan's memory."""

    spec: ModelSpec
    command: EngineCommand
    version: EngineVersion
    gpu: GPUSpec
    layout: Layout
    memory: MemoryReport
    """moeplan's memory report for the deployment (per-stage weights of the most-loaded rank)."""
    weights: WeightMemory
    """The formats and bytes of the whole model."""
    deployment: Deployment
    max_model_len: int
    offload: OffloadEstimate | None = None
    """llama.cpp placement (moeplan.perf.offload) as the estimate made it."""


def stage_sequences(spec: ModelSpec, kv_dtype: str, layout: Layout) -> list[SequenceKV]:
    """One sequence's cache on one GPU of each pipeline stage (KV heads split over TP; MLA latent replicated)."""
    return [sequence_kv(spec, kv_dtype, layers, layout.tp) for layers in stage_layers(spec.num_layers, layout.pp)]


def page_bytes_per_token(sequence: SequenceKV) -> int:
    """Per-token bytes of every attention layer of the GPU: the unit a block pool is sized in (windowed layers
    draw pages from the same pool)."""
    return sequence.full_bytes_per_token + sum(per_token for _, per_token in sequence.capped)


def request_bytes(sequence: SequenceKV, max_model_len: int, block_size: int) -> int:
    """Cache one request of max_model_len tokens holds, whole blocks per layer (window layers: the window)."""
    def blocks(tokens: int) -> int:
        return math.ceil(tokens / block_size) * block_size

    capped = sum(per_token * blocks(min(max_model_len, cap)) for cap, per_token in sequence.capped)
    return sequence.full_bytes_per_token * blocks(max_model_len) + capped + sequence.state_bytes


def pool_figures(pool_bytes: int, sequence: SequenceKV, block_size: int, max_model_len: int) -> tuple[int, int, float]:
    """(blocks, tokens, concurrency at max_model_len) of a pool of ``pool_bytes``."""
    per_token = page_bytes_per_token(sequence)
    if pool_bytes <= 0 or per_token == 0:
        return 0, 0, 0.0
    blocks = pool_bytes // (per_token * block_size)
    usable = blocks * block_size * per_token
    return blocks, blocks * block_size, usable / request_bytes(sequence, max_model_len, block_size)


def fail_first(checks: list[tuple[bool, str, int]]) -> tuple[str | None, int]:
    """(failure, shortfall) of the first failing (failed, message, shortfall) check; (None, 0) when all pass."""
    for failed, message, shortfall in checks:
        if failed:
            return message, max(shortfall, 0)
    return None, 0


ONLINE_QUANTIZATIONS = frozenset({"fp8"})
"""--quantization formats vLLM and SGLang apply to an unquantized checkpoint as they load it (dynamic FP8); every
other (AWQ, GPTQ, ModelOpt NVFP4, MXFP4) needs a checkpoint quantized that way: without its quantization config
vLLM stops with "Cannot find the config file for awq", with another one with "Quantization method specified in
the model config (...) does not match the quantization method specified in the `quantization` argument"."""


def written_value(command: EngineCommand, field: str) -> str | None:
    """The value of ``field``'s flag as the command wrote it (``--flag value`` or ``--flag=value``)."""
    flag = command.written.get(field)
    for i, word in enumerate(command.argv):
        if flag and word == flag and i + 1 < len(command.argv):
            return command.argv[i + 1]
        if flag and word.startswith(f"{flag}="):
            return word.split("=", 1)[1]
    return None


def quantization_refusal(spec: ModelSpec, command: EngineCommand) -> str | None:
    """Why the engine refuses the command's ``--quantization`` for this checkpoint; None when it loads."""
    from moeplan.accounting.weights import formats_from_quantization_config
    from moeplan.errors import SpecError

    if command.quantization is None:
        return None
    flag = f"{command.written.get('quantization', '--quantization')} {written_value(command, 'quantization') or command.quantization}"
    if not spec.quantization:
        if command.quantization in ONLINE_QUANTIZATIONS:
            return None
        return (f"{flag}: the checkpoint is not quantized (no quantization_config); {command.quantization} weights "
                "load only from a checkpoint quantized that way")
    try:
        stored = {f.name for f in formats_from_quantization_config(spec.quantization, spec.num_layers)[0].values()}
    except SpecError:  # a quantization method moeplan does not model: the engine's own check is not mirrored
        return None
    if command.quantization in stored:
        return None
    return f"{flag} does not match the checkpoint's quantization_config ({', '.join(sorted(stored))})"


def checkpoint_or(spec: ModelSpec, command: EngineCommand) -> str | None:
    """The weight format a command loads: None (the checkpoint's own formats) when its --quantization names the
    checkpoint's quantization (vLLM's MXFP4 of gpt-oss quantizes the experts only, not every linear layer),
    else --quantization or --dtype."""
    if command.quantization is not None and spec.quantization and quantization_refusal(spec, command) is None:
        return None
    return command.quantization or command.dtype


def gib(n: float) -> str:
    return f"{n / GiB:,.2f} GiB"
