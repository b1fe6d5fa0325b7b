"""llama.cpp (`llama-server`): its flags and how it fills a GPU.

llama.cpp has no memory fraction: it allocates the weights of the layers it offloads (-ngl), a KV cache of
exactly ``-c`` cells per layer on the GPU (src/llama-kv-cache.cpp; K and V each n_ctx × kv_heads · head_dim
elements of --cache-type-k / --cache-type-v, sliding-window layers only their window unless --swa-full), and
a compute buffer for one micro-batch (-ub); start-up fails with "cudaMalloc failed: out of memory" when these
exceed the device. --n-cpu-moe N keeps the routed experts of the first N layers in host memory.
"""

import math

from moeplan.accounting.activations import inference_activations
from moeplan.engines.command import EngineCommand
from moeplan.engines.flags import Flag, choice, count, text, whole
from moeplan.engines.startup import Allocation, EngineStartup, StartupInputs, fail_first, gib, torch_total_bytes
from moeplan.errors import SpecError
from moeplan.hardware.catalogue import GPUSpec
from moeplan.layout.parallel import Layout
from moeplan.perf.offload import plan_placement
from moeplan.spec.deployment import Deployment
from moeplan.spec.model import ModelSpec

CACHE_TYPE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32, "q5_0": 22 / 32,
                    "q4_1": 20 / 32, "q4_0": 18 / 32, "iq4_nl": 18 / 32}
"""Bytes per cached element of each --cache-type (ggml type traits: 32-element blocks, q8_0 = 32 int8 + fp16
scale = 34 B, q4_0 = 16 B + fp16 scale = 18 B, ...)."""
CACHE_TYPES = {name: name for name in CACHE_TYPE_BYTES}

FLAGS = [
    Flag(("-m", "--model", "-hf", "--hf-repo"), "model", text),
    Flag(("-ngl", "--gpu-layers", "--n-gpu-layers"), "gpu_layers", count),  # omitted or "auto": fit (see FIT_MARGIN_BYTES)
    Flag(("--n-cpu-moe", "-ncmoe"), "n_cpu_moe", count),
    Flag(("-c", "--ctx-size"), "max_model_len", count),
    Flag(("-ctk", "--cache-type-k"), "cache_type_k", choice(CACHE_TYPES)),
    Flag(("-ctv", "--cache-type-v"), "cache_type_v", choice(CACHE_TYPES)),
    Flag(("-np", "--parallel"), "max_num_seqs", whole),
    Flag(("-ub", "--ubatch-size"), "max_num_batched_tokens", whole),
]
"""llama-server options that move GPU memory (tools/server/README.md)."""
IGNORED_SWITCHES = frozenset({"--jinja", "--cont-batching", "--no-mmap", "--mlock", "--swa-full", "--no-webui",
                              "--metrics", "--cpu-moe"})
POSITIONAL_MODEL = False
MODEL_HINT = "llama-server -m MODEL"
FIT_MARGIN_BYTES = 1024 * 2**20
"""Without -ngl, llama.cpp fits layers and context into the free memory, leaving at least 1024 MiB free
(common_fit_params: "will leave 49133 >= 1024 MiB of free device memory", ollama/ollama#16416's log)."""
DEFAULT_UBATCH = 512
"""-ub default: physical micro-batch of 512 tokens (README)."""


def _context(command: EngineCommand, spec: ModelSpec) -> int:
    """-c, where 0 (the default in current llama-server, tools/server/README.md) is the model's trained context."""
    if command.max_model_len:
        return command.max_model_len
    if spec.max_position_embeddings is None:
        raise SpecError("-c: the model gives no trained context; set -c")
    return spec.max_position_embeddings


def deployment_fields(command: EngineCommand, spec: ModelSpec, gpu: GPUSpec) -> dict:
    """One GPU (moeplan does not model -ts/--split-mode); the context -c, micro-batch -ub."""
    return {"tp": 1, "gpu_util": 1.0, "context": _context(command, spec),
            "prefill_chunk": command.max_num_batched_tokens or DEFAULT_UBATCH}


def kv_cache_bytes(spec: ModelSpec, n_ctx: int, layers: int, cache_k: str, cache_v: str) -> int:
    """llama.cpp's KV cache of ``n_ctx`` cells over the first ``layers`` attention layers offloaded."""
    k_bytes, v_bytes = CACHE_TYPE_BYTES[cache_k], CACHE_TYPE_BYTES[cache_v]
    attn = spec.attention
    if attn.kind == "mla":
        k_width, v_width = attn.kv_lora_rank + attn.qk_rope_head_dim, 0
    else:
        k_width = v_width = attn.kv_heads * spec.head_dim
    caps = {"full": None, "sliding": attn.sliding_window, "chunked": attn.chunk_size}
    total = 0.0
    for kind in spec.attention_layer_types()[:layers]:
        cells = n_ctx if caps[kind] is None else min(n_ctx, caps[kind])
        total += cells * (k_width * k_bytes + v_width * v_bytes)
    return math.ceil(total)


def startup(inputs: StartupInputs) -> EngineStartup:
    """llama-server on one GPU: offloaded weights + KV cache + compute buffer against the device."""
    spec, cmd = inputs.spec, inputs.command
    total = torch_total_bytes(inputs.gpu)
    layers = spec.num_layers if cmd.gpu_layers is None else min(cmd.gpu_layers, spec.num_layers)
    n_ctx = _context(cmd, spec)
    flags = {"gpu_layers": cmd.gpu_layers, "n_cpu_moe": cmd.n_cpu_moe or None}  # placed as moeplan.perf.offload does
    placement = plan_placement(spec, inputs.deployment.model_copy(update=flags), Layout(), inputs.weights)
    weights = sum(t.bytes for t in placement.gpu)
    experts_on_host = sum(t.bytes for t in placement.host if t.component == "routed_experts")
    attention_layers = sum(1 for i in range(layers) if spec.is_attention_layer(i))
    cache_k, cache_v = cmd.cache_type_k or "f16", cmd.cache_type_v or "f16"
    kv = kv_cache_bytes(spec, n_ctx, attention_layers, cache_k, cache_v)
    ubatch = cmd.max_num_batched_tokens or DEFAULT_UBATCH
    compute = inference_activations(spec, Layout(), range(layers), ubatch, ubatch, layers == spec.num_layers).peak_bytes
    used = weights + kv + compute
    auto = cmd.gpu_layers is None
    failure, shortfall = fail_first([(used > total and not auto,
                                      "cudaMalloc failed: out of memory (weights + KV cache + compute buffer)", used - total)])
    slots = min(cmd.max_num_seqs or 1, n_ctx)
    per_token = kv // n_ctx
    notes = [f"llama_kv_cache: {n_ctx:,} cells, {attention_layers} layers on the GPU, K ({cache_k}) + V ({cache_v}): {gib(kv)}",
             "the token embedding stays in host memory; -ts/--split-mode over several GPUs is not modelled"]
    if auto and used > total - FIT_MARGIN_BYTES:
        notes.append(f"all layers need {gib(used)} against {gib(total)}: without -ngl llama.cpp's auto-fit moves layers or "
                     "context to host memory to keep 1 GiB free, so it starts, slower; give -ngl to check a full offload")
    if experts_on_host:
        notes.append(f"--n-cpu-moe {cmd.n_cpu_moe}: {gib(experts_on_host)} of routed experts in host memory")
    if slots > 1:
        notes.append(f"-np {slots}: the {n_ctx:,} cells are shared, {n_ctx // slots:,} per slot")
    return EngineStartup(
        starts=failure is None, failure=failure, shortfall_bytes=shortfall, total_bytes=total,
        budget=[Allocation(name="model buffer (GPU layers)", bytes=weights, basis=f"{layers} of {spec.num_layers} layers"),
                Allocation(name="KV cache", bytes=kv, basis=f"{n_ctx:,} cells"),
                Allocation(name="compute buffer", bytes=compute, basis=f"moeplan's activation model at -ub {ubatch}")],
        weights_per_gpu_bytes=weights, kv_pool_bytes=kv, kv_bytes_per_token=per_token, block_size=1, kv_blocks=n_ctx,
        kv_tokens=n_ctx, max_model_len=n_ctx // slots, max_concurrency=float(slots), notes=notes)


def launch_argv(model: str, layout: Layout, deployment: Deployment, spec: ModelSpec) -> list[str]:
    """`llama-server` for one GPU."""
    if layout.num_gpus != 1:
        raise SpecError(f"llama-server: moeplan prints single-GPU commands only, not {layout.describe()}")
    return ["llama-server", "-m", model, "-ngl", str(spec.num_layers), "-c", str(deployment.context)]
