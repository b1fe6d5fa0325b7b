"""A parsed engine launch command, and which engine a command line starts.

Entry points recognised: ``vllm serve MODEL``, ``python -m vllm.entrypoints.openai.api_server --model MODEL``,
``python -m sglang.launch_server --model-path MODEL``, ``sglang serve --model-path MODEL``,
``trtllm-serve [serve] MODEL``, ``llama-server -m MODEL.gguf``. Leading ``VAR=value`` words and a ``python3``
interpreter are accepted.
"""

import importlib
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from moeplan.docstrings import add_field_docstrings
from moeplan.engines.flags import ParsedFlags, parse_flags, split_command
from moeplan.errors import SpecError

EngineName = Literal["vllm", "sglang", "trtllm", "llamacpp"]
ENGINES: tuple[str, ...] = ("vllm", "sglang", "trtllm", "llamacpp")
"""Engine names as `--engine` takes them; each has a module moeplan.engines.<name>."""

_ENTRY_POINTS: dict[tuple[str, ...], str] = {
    ("vllm", "serve"): "vllm",
    ("-m", "vllm.entrypoints.openai.api_server"): "vllm",
    ("-m", "sglang.launch_server"): "sglang",
    ("sglang", "serve"): "sglang",
    ("trtllm-serve", "serve"): "trtllm",
    ("trtllm-serve",): "trtllm",
    ("llama-server",): "llamacpp",
}
"""argv prefixes (after env assignments and the python interpreter) → engine."""


class EngineVersion(BaseModel):
    """`--engine vllm==0.19`: an engine and, optionally, the version whose semantics to apply."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: EngineName
    version: tuple[int, ...] | None = None
    """Release as numbers (0, 19); None: the newest semantics moeplan knows."""

    @classmethod
    def parse(cls, text: str) -> "EngineVersion":
        name, _, version = text.strip().lower().partition("==")
        name = {"llama.cpp": "llamacpp", "llama-cpp": "llamacpp", "tensorrt-llm": "trtllm", "trt-llm": "trtllm"}.get(name, name)
        if name not in ENGINES:
            raise SpecError(f"--engine: {text!r} is not one of {', '.join(ENGINES)} (optionally with ==VERSION, e.g. vllm==0.19)")
        if not version:
            return cls(engine=name)
        if not re.fullmatch(r"\d+(\.\d+){0,2}", version):
            raise SpecError(f"--engine: version {version!r} must look like 0.19 or 0.19.1")
        return cls(engine=name, version=tuple(int(p) for p in version.split(".")))

    def describe(self) -> str:
        return self.engine + (f"=={'.'.join(map(str, self.version))}" if self.version else "")


class EngineCommand(BaseModel):
    """The settings of a launch command that move memory or the layout, in the engine's own terms."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=add_field_docstrings)

    engine: EngineName
    argv: list[str]
    """The command as given, word by word."""
    model: str
    """The model argument: a Hugging Face id, a path, or a moeplan preset."""
    tp: int = 1
    """Tensor-parallel size (SGLang: all GPUs of one server, attention and MoE together)."""
    pp: int = 1
    dp: int = 1
    """Data-parallel size (vLLM: engine replicas; SGLang: with --enable-dp-attention, attention DP within --tp)."""
    expert_parallel: bool = False
    """vLLM --enable-expert-parallel: EP = TP × DP, whole experts per GPU."""
    ep_size: int | None = None
    """SGLang --ep-size / TensorRT-LLM --ep_size."""
    dp_attention: bool = False
    """SGLang --enable-dp-attention."""
    max_model_len: int | None = None
    """--max-model-len / --context-length / --max_seq_len / -c; None: the model's own."""
    memory_fraction: float | None = None
    """--gpu-memory-utilization / --mem-fraction-static / --kv_cache_free_gpu_memory_fraction; None: the engine default."""
    kv_dtype: str | None = None
    """moeplan's KV dtype (bf16, fp8, ...) from --kv-cache-dtype; None: the model's dtype."""
    quantization: str | None = None
    """moeplan weight format from --quantization; None: as the checkpoint stores it."""
    dtype: str | None = None
    """--dtype (bf16, fp16, fp32); None: the checkpoint's."""
    max_num_seqs: int | None = None
    """--max-num-seqs / --max-running-requests / --max_batch_size / -np."""
    max_num_batched_tokens: int | None = None
    """--max-num-batched-tokens / --chunked-prefill-size / --max_num_tokens / -ub."""
    max_total_tokens: int | None = None
    """SGLang --max-total-tokens: a cap on the KV pool in tokens."""
    block_size: int | None = None
    """--block-size / --page-size: tokens per KV block."""
    enforce_eager: bool = False
    """vLLM --enforce-eager / SGLang --disable-cuda-graph."""
    mixed_chunk: bool = False
    """SGLang --enable-mixed-chunk: prompt chunks ride in decode steps instead of batches of their own."""
    speculative: dict | None = None
    """vLLM --speculative-config (parsed JSON) / SGLang --speculative-algorithm."""
    moe_a2a_backend: str | None = None
    """SGLang --moe-a2a-backend (deepep, mooncake, ...)."""
    gpu_layers: int | None = None
    """llama.cpp -ngl: layers on the GPU; None: all."""
    n_cpu_moe: int = 0
    """llama.cpp --n-cpu-moe: the routed experts of the first N layers stay in host memory."""
    cpu_moe: bool = False
    """llama.cpp --cpu-moe: every layer's routed experts stay in host memory."""
    override_tensor: str | None = None
    """llama.cpp -ot PATTERN=BUFT,... (every -ot given, in order, comma-joined)."""
    batch_size: int | None = None
    """llama.cpp -b: the logical batch; the micro-batch is min(-b, -ub)."""
    kv_unified: bool | None = None
    """llama.cpp -kvu/--no-kv-unified: one KV buffer all slots share; None: on when -np is not given."""
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    """llama.cpp -ctk/-ctv (f16, q8_0, q4_0, ...)."""
    ignored: list[str] = Field(default_factory=list)
    """Flags (with their values) and words moeplan does not model."""
    written: dict[str, str] = Field(default_factory=dict, exclude=True)
    """Field → the flag as written (for messages)."""


def _entry(argv: list[str]) -> tuple[str, int, list[str]]:
    """(engine, index after the entry point, skipped env words)."""
    start, skipped = 0, []
    while start < len(argv) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[start]):
        skipped.append(argv[start])
        start += 1
    words = argv[start:]
    if words and re.fullmatch(r"(.*/)?python[0-9.]*", words[0]):
        words, start = words[1:], start + 1
    if words:
        words = [words[0].rsplit("/", 1)[-1], *words[1:]]
    for prefix, engine in _ENTRY_POINTS.items():
        if tuple(words[: len(prefix)]) == prefix:
            return engine, start + len(prefix), skipped
    shown = " ".join(argv[:3]) or "(empty)"
    raise SpecError(f"engine command: {shown!r} starts no engine moeplan reads (vllm serve, python -m sglang.launch_server, "
                    "sglang serve, trtllm-serve, llama-server)")


def engine_module(name: str):
    """The module holding an engine's flags and memory semantics (imported on first use)."""
    return importlib.import_module(f"moeplan.engines.{name}")


def parse_command(command: str | list[str]) -> EngineCommand:
    """Parse a launch command (argv, or one string split as a shell would)."""
    argv = split_command(command)
    engine, start, skipped = _entry(argv)
    module = engine_module(engine)
    parsed: ParsedFlags = parse_flags(argv[start:], module.FLAGS, module.IGNORED_SWITCHES)
    values = dict(parsed.values)
    model = values.pop("model", None)
    positional = list(parsed.positional)
    if model is None and positional and module.POSITIONAL_MODEL:
        model = positional.pop(0)
    if model is None:
        raise SpecError(f"engine command: no model given ({module.MODEL_HINT})")
    return EngineCommand(engine=engine, argv=argv, model=model, **values, written=parsed.written,
                         ignored=[*skipped, *parsed.ignored, *positional])
