"""llama.cpp (`llama-server`): its flags and how it fills a GPU.

llama.cpp has no memory fraction: it allocates the weights of the layers it offloads (-ngl) less the tensors
its overrides keep in host memory (-ot, --cpu-moe, --n-cpu-moe: moeplan.perf.offload places them exactly as
`moeplan estimate` does), a KV cache of exactly ``-c`` cells per GPU layer (src/llama-kv-cache.cpp; K and V each
n_ctx × kv_heads · head_dim elements of --cache-type-k / --cache-type-v, sliding-window layers only their window
unless --swa-full), a compute buffer for one micro-batch (min(-b, -ub) tokens) and, with host weights, the
op-offload copy of one of them; start-up fails with "cudaMalloc failed: out of memory" when these exceed the
device. Flag spellings and defaults: common/arg.cpp and common/common.h (n_batch 2048, n_ubatch 512).
"""

import math

from moeplan.accounting.activations import inference_activations
from moeplan.engines.command import EngineCommand
from moeplan.engines.flags import Flag, choice, count, text, whole
from moeplan.engines.startup import Allocation, EngineStartup, StartupInputs, fail_first, gib, torch_total_bytes
from moeplan.errors import SpecError
from moeplan.hardware.catalogue import GPUSpec
from moeplan.layout.parallel import Layout
from moeplan.perf.offload import DEFAULT_UBATCH
from moeplan.spec.deployment import Deployment
from moeplan.spec.model import ModelSpec

CACHE_TYPE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32, "q5_0": 22 / 32,
                    "q4_1": 20 / 32, "q4_0": 18 / 32, "iq4_nl": 18 / 32}
"""Bytes per cached element of each --cache-type (ggml type traits: 32-element blocks, q8_0 = 32 int8 + fp16
scale = 34 B, q4_0 = 16 B + fp16 scale = 18 B, ...)."""
CACHE_TYPES = {name: name for name in CACHE_TYPE_BYTES}
KV_DTYPES = {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}
"""Cache types moeplan's KV dtype expresses (the estimate's KV cache equals llama.cpp's); quantized ones are
counted by this module's start-up only."""
AUTO_SLOTS = 4
"""Slots without -np: tools/server/server.cpp sets n_parallel = 4 and kv_unified = true when -np is auto."""
DEFAULT_BATCH = 2048
"""-b default: the logical batch (common/common.h n_batch); llama.cpp runs min(-b, -ub) tokens at a time."""
ALL_LAYERS = -2
"""-ngl all (common/arg.cpp stores -2); -ngl auto is -1, here None."""


def gpu_layers_value(value: str, flag: str) -> int | None:
    """-ngl N, 'auto' (None: fit) or 'all' (ALL_LAYERS), as common/arg.cpp reads it."""
    word = value.strip().lower()
    if word == "auto":
        return None
    if word == "all":
        return ALL_LAYERS
    return count(value, flag)


FLAGS = [
    Flag(("-m", "--model", "-hf", "--hf-repo"), "model", text),
    Flag(("-ngl", "--gpu-layers", "--n-gpu-layers"), "gpu_layers", gpu_layers_value),
    Flag(("--n-cpu-moe", "-ncmoe"), "n_cpu_moe", count),
    Flag(("--cpu-moe", "-cmoe"), "cpu_moe"),
    Flag(("-ot", "--override-tensor"), "override_tensor", text, repeat=True),
    Flag(("-c", "--ctx-size"), "max_model_len", count),
    Flag(("-ctk", "--cache-type-k"), "cache_type_k", choice(CACHE_TYPES)),
    Flag(("-ctv", "--cache-type-v"), "cache_type_v", choice(CACHE_TYPES)),
    Flag(("-np", "--parallel"), "max_num_seqs", whole),
    Flag(("-kvu", "--kv-unified"), "kv_unified"),
    Flag(("-b", "--batch-size"), "batch_size", whole),
    Flag(("-ub", "--ubatch-size"), "max_num_batched_tokens", whole),
]
"""llama-server options that move GPU memory or speed (common/arg.cpp; tools/server/README.md)."""
IGNORED_SWITCHES = frozenset({"--jinja", "--cont-batching", "--no-mmap", "--mlock", "--swa-full", "--no-webui",
                              "--metrics", "--no-op-offload", "--op-offload", "-nkvo", "--no-kv-offload"})
NOT_MODELLED = {"--no-op-offload": "prefill is modelled with op offload on (host-weight ops of ≥ 32-token micro-batches "
                                   "on the GPU); with --no-op-offload the CPU runs them, slower (its compute is not modelled)",
                "-nkvo": "the KV cache is counted in VRAM; -nkvo keeps it in host memory",
                "--no-kv-offload": "the KV cache is counted in VRAM; --no-kv-offload keeps it in host memory"}
"""Switches moeplan reads but does not model, and what the figures assume instead."""
POSITIONAL_MODEL = False
MODEL_HINT = "llama-server -m MODEL"
FIT_MARGIN_BYTES = 1024 * 2**20
"""Without -ngl, llama.cpp fits layers and context into the free memory, leaving at least 1024 MiB free
(common_fit_params: "will leave 49133 >= 1024 MiB of free device memory", ollama/ollama#16416's log)."""


def _context(command: EngineCommand, spec: ModelSpec) -> int:
    """-c, where 0 (the default in current llama-server, tools/server/README.md) is the model's trained context."""
    if command.max_model_len:
        return command.max_model_len
    if spec.max_position_embeddings is None:
        raise SpecError("-c: the model gives no trained context; set -c")
    return spec.max_position_embeddings


def ubatch_tokens(command: EngineCommand) -> int:
    """Tokens llama.cpp computes at once: min(-b, -ub) (src/llama-context.cpp caps n_ubatch at n_batch)."""
    return min(command.batch_size or DEFAULT_BATCH, command.max_num_batched_tokens or DEFAULT_UBATCH)


def deployment_fields(command: EngineCommand, spec: ModelSpec, gpu: GPUSpec) -> dict:
    """One GPU (moeplan does not model -ts/--split-mode); the context -c, micro-batch min(-b, -ub), and the
    placement flags as `moeplan estimate` takes them (-ngl absent, auto or all: every layer and the output)."""
    layers = command.gpu_layers
    kv = command.cache_type_k or "f16", command.cache_type_v or "f16"
    return {"tp": 1, "gpu_util": 1.0, "context": _context(command, spec), "prefill_chunk": ubatch_tokens(command),
            "gpu_layers": spec.num_layers + 1 if layers in (None, ALL_LAYERS) else layers,
            "n_cpu_moe": command.n_cpu_moe or None, "offload_experts": command.cpu_moe or None,
            "override_tensor": command.override_tensor, "kv_dtype": KV_DTYPES.get(kv[0]) if kv[0] == kv[1] else None}


def kv_cache_bytes(spec: ModelSpec, n_ctx: int, layers: range, cache_k: str, cache_v: str) -> int:
    """llama.cpp's KV cache of ``n_ctx`` cells over the attention layers among ``layers`` (those on the GPU)."""
    k_bytes, v_bytes = CACHE_TYPE_BYTES[cache_k], CACHE_TYPE_BYTES[cache_v]
    attn = spec.attention
    if attn.kind == "mla":
        k_width, v_width = attn.kv_lora_rank + attn.qk_rope_head_dim, 0
    else:
        k_width = v_width = attn.kv_heads * spec.head_dim
    caps = {"full": None, "sliding": attn.sliding_window, "chunked": attn.chunk_size}
    kinds = iter(spec.attention_layer_types())
    by_layer = {i: next(kinds) for i in range(spec.num_layers) if spec.is_attention_layer(i)}
    total = 0.0
    for i in layers:
        if i in by_layer:
            cap = caps[by_layer[i]]
            total += (n_ctx if cap is None else min(n_ctx, cap)) * (k_width * k_bytes + v_width * v_bytes)
    return math.ceil(total)


def slot_context(cmd: EngineCommand, n_ctx: int) -> tuple[int, int]:
    """(slots, cells one slot may use): with a unified KV cache (-kvu, or -np not given) every slot may use all
    n_ctx cells; else n_ctx / -np padded to 256 (src/llama-context.cpp n_ctx_seq, GGML_PAD)."""
    slots = cmd.max_num_seqs or AUTO_SLOTS
    unified = cmd.kv_unified if cmd.kv_unified is not None else cmd.max_num_seqs is None
    if unified or slots == 1:
        return slots, n_ctx
    return slots, min(n_ctx, -(-(n_ctx // slots) // 256) * 256)


def _override_order(cmd: EngineCommand) -> list[str]:
    """A note when an -ot to the GPU follows --cpu-moe/--n-cpu-moe: llama.cpp keeps the overrides in the order
    given (first match wins), moeplan.perf.offload applies -ot first."""
    words = [word.split("=")[0] for word in cmd.argv]
    moe = [i for i, w in enumerate(words) if w in ("--cpu-moe", "-cmoe", "--n-cpu-moe", "-ncmoe")]
    ot = [i for i, w in enumerate(words) if w in ("-ot", "--override-tensor")]
    to_gpu = [item for item in (cmd.override_tensor or "").split(",") if not item.upper().endswith(("=CPU", "_HOST"))]
    if moe and ot and max(ot) > min(moe) and to_gpu:
        return [f"-ot {to_gpu[0]} comes after --cpu-moe/--n-cpu-moe: llama.cpp applies the overrides in the order given "
                "(first match wins), moeplan applies -ot first; put -ot first for the placement shown"]
    return []


def startup(inputs: StartupInputs) -> EngineStartup:
    """llama-server on one GPU: the GPU share of the weights + KV cache + compute buffer (+ the op-offload copy)."""
    spec, cmd, offload = inputs.spec, inputs.command, inputs.offload
    total = torch_total_bytes(inputs.gpu)
    gpu_blocks = range(spec.num_layers - offload.gpu_layers, spec.num_layers)
    n_ctx = _context(cmd, spec)
    cache_k, cache_v = cmd.cache_type_k or "f16", cmd.cache_type_v or "f16"
    kv = kv_cache_bytes(spec, n_ctx, gpu_blocks, cache_k, cache_v)
    ubatch = ubatch_tokens(cmd)
    compute = inference_activations(spec, Layout(), gpu_blocks, ubatch, ubatch, len(gpu_blocks) == spec.num_layers).peak_bytes
    staging = offload.staging_bytes
    used = offload.gpu_bytes + kv + compute + staging
    auto = cmd.gpu_layers is None
    failure, shortfall = fail_first([(used > total and not auto,
                                      "cudaMalloc failed: out of memory (weights + KV cache + compute buffer)", used - total)])
    slots, length = slot_context(cmd, n_ctx)
    per_token = kv // n_ctx
    attention_layers = sum(1 for i in gpu_blocks if spec.is_attention_layer(i))
    notes = [f"llama_kv_cache: {n_ctx:,} cells, {attention_layers} layers on the GPU, K ({cache_k}) + V ({cache_v}): {gib(kv)}",
             f"host memory: {gib(offload.host_bytes)} of weights ({', '.join(offload.rules) or 'the token embedding'}); "
             "-ts/--split-mode over several GPUs is not modelled"]
    if auto and used > total - FIT_MARGIN_BYTES:
        fewest = (f"; moeplan's fewest --n-cpu-moe that fits is {offload.fewest_n_cpu_moe}"
                  if offload.fewest_n_cpu_moe is not None else "")
        notes.append(f"all layers need {gib(used)} against {gib(total)}: without -ngl llama.cpp's auto-fit moves layers or "
                     f"context to host memory to keep 1 GiB free, so it starts, slower; give -ngl to check a full offload{fewest}")
    if length < n_ctx:
        notes.append(f"-np {slots}: the {n_ctx:,} cells are split, {length:,} per slot (-kvu shares them)")
    else:
        notes.append(f"{slots} slot{'s' if slots > 1 else ''} share the {n_ctx:,} cells (unified KV cache): one request may use all")
    if cmd.cache_type_k != cmd.cache_type_v or (cmd.cache_type_k or "f16") not in KV_DTYPES:
        notes.append(f"-ctk {cache_k} -ctv {cache_v}: the KV cache above is llama.cpp's; the speed figures read it as bf16")
    notes += [f"{flag}: {why}" for flag, why in NOT_MODELLED.items() if flag in cmd.ignored]
    notes += _override_order(cmd)
    budget = [Allocation(name="model buffer (GPU)", bytes=offload.gpu_bytes,
                         basis=f"{len(gpu_blocks)} of {spec.num_layers} layers, host tensors left out"),
              Allocation(name="KV cache", bytes=kv, basis=f"{n_ctx:,} cells"),
              Allocation(name="compute buffer", bytes=compute, basis=f"moeplan's activation model at {ubatch} tokens (min(-b, -ub))")]
    if staging:
        budget.append(Allocation(name="op-offload copy", bytes=staging, basis="the largest host tensor, copied per micro-batch"))
    return EngineStartup(
        starts=failure is None, failure=failure, shortfall_bytes=shortfall, total_bytes=total, budget=budget,
        weights_per_gpu_bytes=offload.gpu_bytes, kv_pool_bytes=kv, kv_bytes_per_token=per_token, block_size=1, kv_blocks=n_ctx,
        kv_tokens=n_ctx, max_model_len=length, max_concurrency=n_ctx / length, notes=notes)


def launch_argv(model: str, layout: Layout, deployment: Deployment, spec: ModelSpec) -> list[str]:
    """`llama-server` for one GPU, with the deployment's placement (-ngl, -ot, --n-cpu-moe, --cpu-moe), micro-batch
    and KV cache type, so that `check` reads it back as the same deployment."""
    if layout.num_gpus != 1:
        raise SpecError(f"llama-server: moeplan prints single-GPU commands only, not {layout.describe()}")
    d = deployment
    layers = spec.num_layers + 1 if d.gpu_layers is None else d.gpu_layers  # N > layers: the output layer too
    argv = ["llama-server", "-m", model, "-ngl", str(layers), "-c", str(d.context)]
    if d.override_tensor:
        argv += ["-ot", d.override_tensor]
    if d.n_cpu_moe:
        argv += ["--n-cpu-moe", str(d.n_cpu_moe)]
    if d.offload_experts:
        argv.append("--cpu-moe")
    if d.prefill_chunk != DEFAULT_UBATCH:
        argv += (["-b", str(d.prefill_chunk)] if d.prefill_chunk > DEFAULT_BATCH else []) + ["-ub", str(d.prefill_chunk)]
    cache = {"fp32": "f32", "bf16": "bf16"}.get(d.kv_dtype)  # fp16: llama.cpp's default f16
    if d.kv_dtype == "fp8":
        raise SpecError("llama-server: llama.cpp has no fp8 KV cache; its 8-bit cache is -ctk q8_0 -ctv q8_0 (34/32 B per element)")
    if cache:
        argv += ["-ctk", cache, "-ctv", cache]
    return argv
