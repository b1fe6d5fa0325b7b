"""vLLM (V1 engine): its flags, how it divides a GPU, and the launch command of a layout.

Start-up (vllm/v1/worker/gpu_worker.py, ``Worker.determine_available_memory``, v0.19): each worker loads its
weights ("Model loading took X GiB"), runs one profiling step of ``max_num_batched_tokens`` tokens and a
sampler warm-up of ``max_num_seqs`` rows, and sizes the KV cache as

    available KV = gpu_memory_utilization × total − weights − peak activation − non-torch memory

where total is torch's view of the device and non-torch memory is what grew outside torch's allocator (CUDA
context, cuBLAS workspace, NCCL and custom all-reduce buffers). The peak activation is the largest set of
tensors alive at once (torch's allocated-bytes peak, vllm/utils/mem_utils.py ``memory_profiling``): the
forward's transients are freed before the sampler warm-up, but the MoE experts' workspace stays allocated
(profile_activation_bytes). CUDA graphs are captured after the KV cache is
allocated, from the 1 − utilisation slack, so they are not subtracted (llm-d-planner's v0.19 accuracy report
finds the logged pool equals the formula without them). The pool is cut into blocks of ``block_size`` tokens
over every attention layer of the GPU; the engine takes the smallest pool of its workers. MLA's latent cache is
replicated on every TP rank; each DP rank (and DP-attention rank) holds its own pool.
"""

from moeplan.accounting.activations import (
    ACTIVATION_BYTES,
    FUSED_MOE_CHUNK_TOKENS,
    fused_moe_workspace_bytes,
    inference_activations,
)
from moeplan.engines.command import EngineCommand
from moeplan.engines.flags import Flag, choice, fraction, json_object, text, tokens, whole
from moeplan.engines.startup import (
    Allocation,
    EngineStartup,
    StartupInputs,
    checkpoint_or,
    fail_first,
    gib,
    page_bytes_per_token,
    pool_figures,
    quantization_refusal,
    request_bytes,
    stage_sequences,
    torch_total_bytes,
)
from moeplan.errors import SpecError
from moeplan.hardware.catalogue import GPUSpec
from moeplan.layout.parallel import Layout, stage_layers
from moeplan.spec.deployment import Deployment
from moeplan.spec.model import ModelSpec
from moeplan.units import GiB

KV_DTYPES = {"auto": None, "bfloat16": "bf16", "float16": "fp16", "fp8": "fp8", "fp8_e4m3": "fp8", "fp8_e5m2": "fp8",
             "fp8_inc": "fp8"}
QUANTIZATIONS = {"fp8": "fp8", "mxfp4": "mxfp4", "awq": "int4-awq", "awq_marlin": "int4-awq", "gptq": "int4-gptq",
                 "gptq_marlin": "int4-gptq", "modelopt_fp4": "nvfp4", "compressed-tensors": None, "bitsandbytes": None}
"""--quantization spellings → moeplan formats; None: the checkpoint's own (compressed-tensors, bitsandbytes)."""
DTYPES = {"auto": None, "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32"}

FLAGS = [
    Flag(("--model",), "model", text),
    Flag(("--tensor-parallel-size", "-tp"), "tp", whole),
    Flag(("--pipeline-parallel-size", "-pp"), "pp", whole),
    Flag(("--data-parallel-size", "-dp"), "dp", whole),
    Flag(("--enable-expert-parallel", "-ep"), "expert_parallel"),
    Flag(("--max-model-len",), "max_model_len", tokens),
    Flag(("--gpu-memory-utilization",), "memory_fraction", fraction),
    Flag(("--kv-cache-dtype",), "kv_dtype", choice(KV_DTYPES)),
    Flag(("--max-num-seqs",), "max_num_seqs", whole),
    Flag(("--max-num-batched-tokens",), "max_num_batched_tokens", tokens),
    Flag(("--quantization", "-q"), "quantization", choice(QUANTIZATIONS)),
    Flag(("--dtype",), "dtype", choice(DTYPES)),
    Flag(("--enforce-eager",), "enforce_eager"),
    Flag(("--speculative-config",), "speculative", json_object),
    Flag(("--block-size",), "block_size", whole),
]
"""vLLM's engine arguments that move memory or the layout (vllm/engine/arg_utils.py, v0.19)."""
IGNORED_SWITCHES = frozenset({"--trust-remote-code", "--enable-prefix-caching", "--no-enable-prefix-caching",
                              "--enable-chunked-prefill", "--disable-log-requests", "--enable-log-requests",
                              "--disable-log-stats", "--enable-auto-tool-choice", "--async-scheduling",
                              "--enable-sleep-mode", "--disable-custom-all-reduce"})
POSITIONAL_MODEL = True
MODEL_HINT = "vllm serve MODEL"

DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
"""vLLM's --gpu-memory-utilization default (vllm/config/cache.py, v0.19)."""
LARGE_GPU_BYTES = 70 * GiB
"""vLLM raises its serving defaults on GPUs of at least 70 GiB other than A100 (arg_utils._set_default_args, v0.19)."""
SERVE_DEFAULTS = {True: (8192, 1024), False: (2048, 256)}
"""(max_num_batched_tokens, max_num_seqs) for `vllm serve` on a large GPU / otherwise (arg_utils, v0.19)."""
BLOCK_SIZE = 16
"""Default KV block size (vllm/config/cache.py); CUDA attention backends."""
MLA_BLOCK_SIZE = 64
"""FlashMLA, vLLM's MLA backend on Hopper, needs 64-token blocks; vLLM switches to them for MLA models."""
NON_TORCH_BYTES = {"single": round(0.27 * GiB), "pipeline": round(0.07 * GiB), "collective": round(2.10 * GiB)}
"""Non-torch memory per GPU measured on H100 with vLLM 0.19: one GPU 0.27 GiB, TP 1 with PP > 1 0.07 GiB, TP ≥ 2
2.10 GiB (NCCL and custom all-reduce buffers). llm-d-incubation/llm-d-planner,
data/configuration/vllm_memory_constants.json (non_torch_overhead_gib). DP with expert parallelism is taken
as the TP ≥ 2 case (its all-to-all buffers are NCCL's too)."""
SAMPLER_LOGIT_COPIES = 3.7
"""The sampler warm-up's temporaries (bf16 logits, their fp32 copy, probabilities, ...) peak at about 3.7 fp32
copies of the [max_num_seqs, vocab] logits: fitted to vLLM 0.19's profiled activation of Llama-3.1-8B (1.89 GiB,
3.72 copies) and Qwen2.5-7B (2.21 GiB, 3.70) at 8,192 tokens and 1,024 sequences on H100 (llm-d-planner
vllm_memory_constants.json activation_profiles), whose peak is the sampler phase: the published figure is the
same at TP 1, 2 and 4 (the forward's MLP share would shrink with TP; the logits are gathered whole)."""
SAMPLER_LOGIT_COPIES_BEFORE_0_17 = 10.2
"""Before v0.17 the sampler warm-up held about 10.2 fp32 logit copies: the mean of the three published start-ups
that pin it, each one's activation being its sampler phase: gpt-oss-120b on one H100 with v0.10.1 (weights
65.97 GiB, "Available KV cache memory: -2.14 GiB" at util 0.9: 7.17 GiB, 9.3 copies; vllm-project/vllm#23278),
Qwen3-235B-A22B-FP8 on 4 × H100 in July 2025 ("Available KV cache memory: 8.11 GiB", 10.1 copies;
vllm-project/vllm#21348) and gpt-oss-120b with v0.11 at 1,024 batched tokens ("Available KV cache memory:
1.71 GiB", 11.3 copies; vllm-project/vllm#27508). The spread is ±10% (±0.8 GiB for gpt-oss's 201k vocabulary).
It puts Llama-3.1-8B at 5.1 GiB (llm-d-planner's older constant: 4.8 GiB) and makes v0.19's 1.89 GiB the ~60%
cut the issue describes."""
KEPT_MOE_WORKSPACE_SINCE = (0, 11)
"""From about v0.11 the modular MoE kernel takes its workspace from buffers shared by all MoE layers and kept
between steps (the shared resizable buffers vllm-project/vllm#27426 patches in October 2025, the worker's
workspace manager since); before, fused_experts allocated it per call."""
OLDEST_VERSION = (0, 8)
"""vLLM before 0.8 ran the V0 engine, whose profiling differs; not modelled."""
MXFP4_INTERMEDIATE_ALIGN = 256
"""vLLM's MXFP4 MoE (vllm/model_executor/layers/quantization/mxfp4.py) pads each expert's intermediate size per
partition up to a multiple of 256 for its Triton kernel; with it gpt-oss-120b loads as 64.4 GiB on one H100
("Model loading took 64.38 GiB", vllm-project/vllm#33155, v0.14.1) against 60.8 GiB stored."""
CUDA_GRAPH_BYTES_MAX = round(1.85 * GiB)
"""Largest CUDA-graph pool llm-d-planner observed with vLLM 0.19 on H100 (0.51–1.85 GiB); it comes out of the
1 − gpu_memory_utilization slack."""


def _large_gpu(gpu: GPUSpec) -> bool:
    return gpu.memory_bytes >= LARGE_GPU_BYTES and not gpu.name.startswith("a100")


def serve_defaults(gpu: GPUSpec) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) `vllm serve` uses on this GPU."""
    return SERVE_DEFAULTS[_large_gpu(gpu)]


def block_size(spec: ModelSpec, command: EngineCommand) -> int:
    return command.block_size or (MLA_BLOCK_SIZE if spec.attention.kind == "mla" else BLOCK_SIZE)


def deployment_fields(command: EngineCommand, spec: ModelSpec, gpu: GPUSpec) -> dict:
    """The moeplan Deployment settings this command implies (layout, formats, utilisation, step size)."""
    expert = command.expert_parallel and spec.moe is not None
    fields = {"tp": command.tp, "pp": command.pp, "dp": command.dp,
              "ep": command.tp * command.dp if expert else None, "etp": 1 if expert else None,
              "gpu_util": command.memory_fraction or DEFAULT_GPU_MEMORY_UTILIZATION,
              "prefill_chunk": command.max_num_batched_tokens or serve_defaults(gpu)[0],
              "dtype": checkpoint_or(spec, command)}
    if command.kv_dtype:
        fields["kv_dtype"] = command.kv_dtype
    return fields


def loaded_weight_bytes(spec: ModelSpec, layout: Layout, held: dict[str, int], expert_format: str) -> int:
    """Weights one worker holds after loading: moeplan's bytes, MXFP4 experts padded (MXFP4_INTERMEDIATE_ALIGN)."""
    total = sum(held.values())
    if spec.moe is not None and expert_format == "mxfp4":
        inner = spec.moe.expert_intermediate_size // layout.expert_tp
        padded = -(-inner // MXFP4_INTERMEDIATE_ALIGN) * MXFP4_INTERMEDIATE_ALIGN
        total += held.get("routed_experts", 0) * (padded - inner) // inner
    return total


def non_torch_bytes(layout: Layout) -> int:
    """Non-torch memory of one worker (NON_TORCH_BYTES)."""
    if layout.tp > 1 or (layout.dp > 1 and layout.ep > 1):
        return NON_TORCH_BYTES["collective"]
    return NON_TORCH_BYTES["pipeline" if layout.pp > 1 else "single"]


def moe_workspace_bytes(spec: ModelSpec, layout: Layout, layers: range, batched_tokens: int, expert_format: str,
                        version: tuple[int, ...] | None) -> int:
    """The MoE experts' workspace a worker keeps from its profiling step, bytes (0 without an MoE layer).

    vLLM's modular MoE kernel takes its scratch from the worker's workspace manager (one buffer per worker,
    grown to the largest request and never freed: vllm/v1/worker/workspace.py, modular_kernel.py
    ``_allocate_buffers``, v0.19), so it is still allocated during the sampler warm-up. Triton experts:
    ``fused_moe_workspace_bytes``. MXFP4 experts run OpenAI's Triton kernels (``OAITritonExperts``), whose
    workspace is the MoE output [M, H] and the activation output [M·k, N_act]. Before v0.11 the kernels
    allocated their scratch per call (KEPT_MOE_WORKSPACE_SINCE): it is part of the forward's transients."""
    if spec.moe is None or not any(spec.is_moe_layer(layer) for layer in layers):
        return 0
    if version is not None and version < KEPT_MOE_WORKSPACE_SINCE:
        return 0
    if expert_format != "mxfp4":
        return fused_moe_workspace_bytes(spec, layout, batched_tokens)
    moe = spec.moe
    tokens = min(batched_tokens * layout.replicas_per_expert_group, FUSED_MOE_CHUNK_TOKENS)
    inner = moe.expert_intermediate_size // layout.expert_tp
    return tokens * (spec.hidden_size + moe.top_k * inner) * ACTIVATION_BYTES


def profile_activation_bytes(spec: ModelSpec, layout: Layout, layers: range, last_stage: bool, batched_tokens: int,
                             max_num_seqs: int, version: tuple[int, ...] | None, expert_format: str = "") -> int:
    """Peak activation of vLLM's profiling run on one GPU: the MoE workspace it keeps (moe_workspace_bytes) plus
    the larger of the forward step's other transients at ``batched_tokens`` (moeplan's activation model, the
    Triton experts' workspace taken out) and, on the last stage, the sampler warm-up: the step's output
    hidden states [batched_tokens, H] and their rows [max_num_seqs, H] still held, and the sampler's fp32
    logit copies of [max_num_seqs, vocab] (gpu_model_runner ``profile_run``, v0.19)."""
    if version is not None and version < OLDEST_VERSION:
        raise SpecError(f"--engine vllm=={'.'.join(map(str, version))}: vLLM before 0.8 (the V0 engine) is not modelled")
    kept = moe_workspace_bytes(spec, layout, layers, batched_tokens, expert_format, version)
    step = inference_activations(spec, layout, layers, 1, batched_tokens, last_stage=False)
    others = dict(step.workspace_bytes)
    if kept:
        others["moe"] -= fused_moe_workspace_bytes(spec, layout, batched_tokens)
    forward = step.hidden_bytes + max(others.values(), default=0)
    if not last_stage:
        return kept + forward
    held = (batched_tokens + max_num_seqs) * spec.hidden_size * ACTIVATION_BYTES
    sampler = held + round(sampler_logit_copies(version) * max_num_seqs * spec.vocab_size * 4)
    return kept + max(forward, sampler)


def sampler_logit_copies(version: tuple[int, ...] | None) -> float:
    """fp32 [max_num_seqs, vocab] copies the sampler warm-up holds in this release."""
    return SAMPLER_LOGIT_COPIES_BEFORE_0_17 if version is not None and version < (0, 17) else SAMPLER_LOGIT_COPIES


def startup(inputs: StartupInputs) -> EngineStartup:
    """vLLM's start-up on the most constrained GPU (the worker with the smallest KV pool)."""
    spec, cmd, layout = inputs.spec, inputs.command, inputs.layout
    total = torch_total_bytes(inputs.gpu)
    util = cmd.memory_fraction or DEFAULT_GPU_MEMORY_UTILIZATION
    budget = int(util * total)
    default_tokens, default_seqs = serve_defaults(inputs.gpu)
    batched, seqs = cmd.max_num_batched_tokens or default_tokens, cmd.max_num_seqs or default_seqs
    size = block_size(spec, cmd)
    non_torch = non_torch_bytes(layout)
    expert_format = inputs.weights.formats.get("routed_experts", "") if spec.moe is not None else ""
    sequences = stage_sequences(spec, inputs.deployment.kv_dtype, layout)
    stages = []
    for s, layers in enumerate(stage_layers(spec.num_layers, layout.pp)):
        weights = loaded_weight_bytes(spec, layout, inputs.memory.stages[s].weights_by_component_bytes, expert_format)
        activation = profile_activation_bytes(spec, layout, layers, s == layout.pp - 1, batched, seqs,
                                              inputs.version.version, expert_format)
        stages.append((budget - weights - activation - non_torch, weights, activation, sequences[s]))
    pool, weights, activation, sequence = min(stages, key=lambda st: st[0])
    need = request_bytes(sequence, inputs.max_model_len, size)
    blocks, _, concurrency = pool_figures(pool, sequence, size, inputs.max_model_len)
    # vLLM logs "GPU KV cache size" as max concurrency × max_model_len (kv_cache_utils): with windowed layers
    # that is more tokens than blocks × block_size
    tokens_ = blocks * size * page_bytes_per_token(sequence) * inputs.max_model_len // need if blocks else 0
    heaviest = max(st[1] for st in stages)
    trained = spec.max_position_embeddings
    refusal = quantization_refusal(spec, cmd)
    failure, shortfall = fail_first([
        (refusal is not None, refusal, 0),
        (trained is not None and inputs.max_model_len > trained and "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1" not in cmd.argv,
         f"--max-model-len {inputs.max_model_len:,} is greater than the model's max_position_embeddings {trained or 0:,} "
         "(vLLM refuses it unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1)", 0),
        (heaviest + non_torch > total, "model loading: CUDA out of memory (weights exceed the GPU)", heaviest + non_torch - total),
        (pool <= 0, "No available memory for the cache blocks (increase --gpu-memory-utilization)", -pool),
        (need > pool, f"KV cache: one request of max_model_len {inputs.max_model_len:,} needs {gib(need)}, more than the "
                      f"available KV cache memory {gib(max(pool, 0))} (increase --gpu-memory-utilization or decrease "
                      "--max-model-len)", need - pool),
    ])
    notes = [f"profiling run: {batched:,} batched tokens, sampler warm-up of {seqs:,} sequences; block size {size}"]
    slack = total - budget
    if not cmd.enforce_eager and slack < CUDA_GRAPH_BYTES_MAX:
        notes.append(f"CUDA-graph capture takes up to {gib(CUDA_GRAPH_BYTES_MAX)} from the {gib(slack)} left outside "
                     "--gpu-memory-utilization; it may run out of memory after the KV cache is allocated (--enforce-eager avoids it)")
    copies = sampler_logit_copies(inputs.version.version)
    if copies != SAMPLER_LOGIT_COPIES:
        notes.append(f"vLLM {'.'.join(map(str, inputs.version.version))}: before v0.17 the sampler warm-up held about "
                     f"{copies} fp32 logit copies (today {SAMPLER_LOGIT_COPIES})")
    if concurrency > seqs:
        notes.append(f"the KV cache holds {concurrency:,.1f} requests of max_model_len, the scheduler runs at most "
                     f"--max-num-seqs {seqs:,} at once")
    if cmd.speculative:
        notes.append("speculative decoding's draft weights and cache are not counted")
    if spec.attention.kind == "mla" and layout.tp > 1:
        notes.append("MLA: the latent cache is replicated on every TP rank (use DP attention to partition it)")
    return EngineStartup(
        starts=failure is None, failure=failure, shortfall_bytes=shortfall, total_bytes=total,
        budget=[Allocation(name="gpu_memory_utilization × total", bytes=budget, basis=f"{util:g} × {gib(total)}"),
                Allocation(name="weights (Model loading took)", bytes=weights, basis="moeplan's weights of the most-loaded GPU"
                           + (f", MXFP4 experts padded to {MXFP4_INTERMEDIATE_ALIGN}" if expert_format == "mxfp4" else "")),
                Allocation(name="peak activation (profiling run)", bytes=activation,
                           basis=("MoE workspace kept + " if spec.moe is not None else "")
                           + f"max(forward at {batched:,} tokens, sampler: {copies} × {seqs:,} fp32 logit rows)"),
                Allocation(name="non-torch memory", bytes=non_torch, basis="measured on H100, vLLM 0.19 (llm-d-planner)"),
                Allocation(name="Available KV cache memory", bytes=pool, basis="the remainder (vLLM logs it even when negative)")],
        weights_per_gpu_bytes=heaviest, kv_pool_bytes=max(pool, 0), kv_bytes_per_token=page_bytes_per_token(sequence),
        block_size=size, kv_blocks=blocks, kv_tokens=tokens_,
        max_model_len=inputs.max_model_len, max_concurrency=concurrency, replicas=layout.dp, notes=notes)


def launch_argv(model: str, layout: Layout, deployment: Deployment, spec: ModelSpec) -> list[str]:
    """`vllm serve` realising a layout; SpecError when vLLM cannot express it."""
    if layout.ep > 1 and (layout.ep != layout.tp * layout.dp or layout.expert_tp != 1):
        raise SpecError(f"vLLM cannot express {layout.describe()}: its expert parallelism is EP = TP × DP with whole experts")
    if layout.ep == 1 and layout.expert_tp != layout.tp:
        raise SpecError(f"vLLM cannot express {layout.describe()}: without EP its experts are split over TP")
    argv = ["vllm", "serve", model, "--tensor-parallel-size", str(layout.tp)]
    if layout.pp > 1:
        argv += ["--pipeline-parallel-size", str(layout.pp)]
    if layout.dp > 1:
        argv += ["--data-parallel-size", str(layout.dp)]
    if layout.ep > 1:
        argv.append("--enable-expert-parallel")
    argv += ["--max-model-len", str(deployment.context),
             "--gpu-memory-utilization", f"{deployment.gpu_util or DEFAULT_GPU_MEMORY_UTILIZATION:g}"]
    if deployment.kv_dtype != "bf16":
        argv += ["--kv-cache-dtype", {"fp8": "fp8", "fp16": "float16"}.get(deployment.kv_dtype, deployment.kv_dtype)]
    if deployment.dtype:
        argv += _format_flags(deployment.dtype)
    return argv


def _format_flags(dtype: str) -> list[str]:
    for table, flag in ((DTYPES, "--dtype"), (QUANTIZATIONS, "--quantization")):
        spelling = next((k for k, v in table.items() if v == dtype), None)
        if spelling:
            return [flag, spelling]
    raise SpecError(f"vLLM has no --quantization or --dtype for the weight format {dtype!r}; it reads the checkpoint's")
