"""TensorRT-LLM (`trtllm-serve`, PyTorch backend): its flags, how it divides a GPU, and the launch command.

Start-up (tensorrt_llm/_torch/pyexecutor, KV-cache estimation; KvCacheConfig docs, 1.x): the executor loads
the weights, runs a warm-up of ``max_num_tokens`` tokens, and gives the KV cache a fraction of what is then free:

    KV pool = free_gpu_memory_fraction × (total − weights − non-torch memory − peak activation)

The pool is cut into blocks of ``tokens_per_block`` tokens. A pool smaller than one ``max_seq_len`` request does
not stop the server (requests are capped); a pool of zero does.
"""

import shlex

from moeplan.accounting.activations import inference_activations
from moeplan.engines.command import EngineCommand
from moeplan.engines.flags import Flag, fraction, text, tokens, whole
from moeplan.engines.startup import (
    Allocation,
    EngineStartup,
    StartupInputs,
    fail_first,
    gib,
    page_bytes_per_token,
    pool_figures,
    stage_sequences,
    torch_total_bytes,
)
from moeplan.engines.vllm import non_torch_bytes
from moeplan.errors import SpecError
from moeplan.hardware.catalogue import GPUSpec
from moeplan.layout.parallel import Layout, stage_layers
from moeplan.spec.deployment import Deployment
from moeplan.spec.model import ModelSpec


def _names(name: str) -> tuple[str, ...]:
    """trtllm-serve spells its options with underscores; accept the dashed form too."""
    return (f"--{name}", f"--{name.replace('_', '-')}")


FLAGS = [
    Flag(("--model",), "model", text),
    Flag(_names("tp_size"), "tp", whole),
    Flag(_names("pp_size"), "pp", whole),
    Flag(_names("ep_size") + _names("moe_expert_parallel_size"), "ep_size", whole),
    Flag(_names("max_seq_len"), "max_model_len", tokens),
    Flag(_names("max_batch_size"), "max_num_seqs", whole),
    Flag(_names("max_num_tokens"), "max_num_batched_tokens", tokens),
    Flag(_names("kv_cache_free_gpu_memory_fraction"), "memory_fraction", fraction),
]
"""trtllm-serve options that move memory or the layout (tensorrt_llm/commands/serve.py, 1.x)."""
IGNORED_SWITCHES = frozenset({"--trust_remote_code", "--trust-remote-code"})
POSITIONAL_MODEL = True
MODEL_HINT = "trtllm-serve MODEL"

FREE_GPU_MEMORY_FRACTION = 0.9
"""KvCacheConfig.free_gpu_memory_fraction default (TensorRT-LLM LLM API reference, 1.x); trtllm-serve's help:
"Free GPU memory fraction reserved for KV Cache, after allocating model weights and buffers"
(nvidia.github.io/TensorRT-LLM/0.18.2/commands/trtllm-serve.html)."""
MAX_BATCH_SIZE = 2048
MAX_NUM_TOKENS = 8192
"""trtllm-serve defaults for --max_batch_size and --max_num_tokens: BuildConfig's 2048 and 8192
(tensorrt_llm/commands/serve.py, 0.18–1.x; some third-party pages list 256 batch)."""
TOKENS_PER_BLOCK = 32
"""KvCacheConfig tokens_per_block default (1.x)."""


def deployment_fields(command: EngineCommand, spec: ModelSpec, gpu: GPUSpec) -> dict:
    """The moeplan Deployment settings this command implies (MoE TP = TP / EP)."""
    ep = command.ep_size or 1
    if command.tp % ep:
        raise SpecError(f"{command.written.get('ep_size', '--ep_size')}: {ep} must divide --tp_size {command.tp}")
    expert = spec.moe is not None and ep > 1
    fields = {"tp": command.tp, "pp": command.pp, "ep": ep if expert else None, "etp": command.tp // ep if expert else None,
              "gpu_util": command.memory_fraction or FREE_GPU_MEMORY_FRACTION,
              "prefill_chunk": command.max_num_batched_tokens or MAX_NUM_TOKENS}
    return fields


def startup(inputs: StartupInputs) -> EngineStartup:
    """TensorRT-LLM's start-up on the most constrained GPU."""
    spec, cmd, layout = inputs.spec, inputs.command, inputs.layout
    total = torch_total_bytes(inputs.gpu)
    fraction_ = cmd.memory_fraction or FREE_GPU_MEMORY_FRACTION
    batch, step = cmd.max_num_seqs or MAX_BATCH_SIZE, cmd.max_num_batched_tokens or MAX_NUM_TOKENS
    non_torch = non_torch_bytes(layout)
    sequences = stage_sequences(spec, inputs.deployment.kv_dtype, layout)
    stages = []
    for s, layers in enumerate(stage_layers(spec.num_layers, layout.pp)):
        weights = inputs.memory.stages[s].weights_bytes
        activation = inference_activations(spec, layout, layers, min(batch, step), step, s == layout.pp - 1).peak_bytes
        free = total - weights - non_torch - activation
        stages.append((int(fraction_ * max(free, 0)), free, weights, activation, sequences[s]))
    pool, free, weights, activation, sequence = min(stages, key=lambda st: st[0])
    blocks, tokens_, concurrency = pool_figures(pool, sequence, TOKENS_PER_BLOCK, inputs.max_model_len)
    heaviest = max(st[2] for st in stages)
    failure, shortfall = fail_first([
        (heaviest + non_torch > total, "loading weights: CUDA out of memory", heaviest + non_torch - total),
        (blocks == 0, "KV cache: no memory free for a single block after loading and warm-up", -free),
    ])
    notes = [f"warm-up of {step:,} tokens, max batch {batch:,}; {TOKENS_PER_BLOCK} tokens per block"]
    if 0 < concurrency < 1:
        notes.append(f"the pool holds less than one request of --max_seq_len {inputs.max_model_len:,}: requests are capped")
    return EngineStartup(
        starts=failure is None, failure=failure, shortfall_bytes=shortfall, total_bytes=total,
        budget=[Allocation(name="total", bytes=total, basis="torch's view of the GPU"),
                Allocation(name="weights", bytes=weights, basis="moeplan's weights of the most-loaded GPU"),
                Allocation(name="non-torch memory", bytes=non_torch, basis="as vLLM 0.19 measured (NCCL, CUDA context)"),
                Allocation(name="peak activation (warm-up)", bytes=activation, basis=f"moeplan's activation model at {step:,} tokens"),
                Allocation(name="KV pool", bytes=pool, basis=f"{fraction_:g} × the {gib(max(free, 0))} free")],
        weights_per_gpu_bytes=heaviest, kv_pool_bytes=pool, kv_bytes_per_token=page_bytes_per_token(sequence),
        block_size=TOKENS_PER_BLOCK, kv_blocks=blocks, kv_tokens=tokens_,
        max_model_len=inputs.max_model_len, max_concurrency=concurrency, replicas=layout.dp, notes=notes)


def launch_argv(model: str, layout: Layout, deployment: Deployment, spec: ModelSpec) -> list[str]:
    """`trtllm-serve` realising a layout; SpecError when its flags cannot express it."""
    moe_in_replica = spec.moe is None or layout.ep * layout.expert_tp == layout.tp
    if layout.dp > 1:
        if moe_in_replica:
            single = layout.model_copy(update={"dp": 1})
            line = shlex.join(launch_argv(model, single, deployment, spec))
            raise SpecError(f"trtllm-serve has no data-parallel flag: run {layout.dp} servers of `{line}`")
        raise SpecError("trtllm-serve: experts spread over DP ranks need enable_attention_dp in --extra_llm_api_options")
    if not moe_in_replica:
        raise SpecError(f"trtllm-serve cannot express {layout.describe()}: MoE TP × EP must equal TP")
    argv = ["trtllm-serve", model, "--tp_size", str(layout.tp)]
    if layout.pp > 1:
        argv += ["--pp_size", str(layout.pp)]
    if layout.ep > 1:
        argv += ["--ep_size", str(layout.ep)]
    argv += ["--max_seq_len", str(deployment.context),
             "--kv_cache_free_gpu_memory_fraction", f"{deployment.gpu_util or FREE_GPU_MEMORY_FRACTION:g}"]
    if deployment.kv_dtype != "bf16" or deployment.dtype:
        raise SpecError("trtllm-serve sets KV and weight formats in --extra_llm_api_options (kv_cache_config.dtype) "
                        "or by the checkpoint; moeplan prints only the flags")
    return argv
