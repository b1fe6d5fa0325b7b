"""SGLang: its flags, how it divides a GPU, and the launch command of a layout.

Start-up (python/sglang/srt/model_executor/model_runner.py, ``ModelRunner.profile_max_num_token``, 0.4–0.5):
the server reads the free memory before loading (``total``), loads the weights, reads the free memory again
(``available``) and keeps

    rest = available − total × (1 − mem_fraction_static)  =  mem_fraction_static × total − weights
    max_total_num_tokens = rest // cell_size

where cell_size is one token of every layer's cache on the GPU (MHA: 2 · kv_heads/TP · head_dim · bytes per
layer; MLA: (kv_lora_rank + qk_rope_head_dim) · bytes, replicated on every attention-TP rank). Activations and
CUDA graphs live in the 1 − mem_fraction_static remainder. ``rest <= 0`` stops the server with "Not enough
memory. Please try to increase --mem-fraction-static". With --enable-dp-attention each attention-DP rank holds
its own pool, so MLA's cache is partitioned across them instead of replicated.
"""

from moeplan.engines.command import EngineCommand
from moeplan.engines.flags import Flag, choice, fraction, text, tokens, whole
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
    stage_sequences,
    torch_total_bytes,
)
from moeplan.engines.vllm import NON_TORCH_BYTES, non_torch_bytes
from moeplan.errors import SpecError
from moeplan.hardware.catalogue import GPUSpec
from moeplan.layout.parallel import Layout
from moeplan.spec.deployment import Deployment
from moeplan.spec.model import ModelSpec

KV_DTYPES = {"auto": None, "bf16": "bf16", "bfloat16": "bf16", "fp8_e4m3": "fp8", "fp8_e5m2": "fp8"}
QUANTIZATIONS = {"fp8": "fp8", "mxfp4": "mxfp4", "awq": "int4-awq", "awq_marlin": "int4-awq", "gptq": "int4-gptq",
                 "gptq_marlin": "int4-gptq", "modelopt_fp4": "nvfp4", "w8a8_int8": "int8", "compressed-tensors": None}
DTYPES = {"auto": None, "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32"}

FLAGS = [
    Flag(("--model-path", "--model"), "model", text),
    Flag(("--tp", "--tp-size", "--tensor-parallel-size"), "tp", whole),
    Flag(("--dp", "--dp-size", "--data-parallel-size"), "dp", whole),
    Flag(("--pp-size", "--pp", "--pipeline-parallel-size"), "pp", whole),
    Flag(("--ep-size", "--ep", "--expert-parallel-size"), "ep_size", whole),
    Flag(("--enable-dp-attention",), "dp_attention"),
    Flag(("--mem-fraction-static",), "memory_fraction", fraction),
    Flag(("--context-length",), "max_model_len", tokens),
    Flag(("--chunked-prefill-size",), "max_num_batched_tokens", tokens),
    Flag(("--max-running-requests",), "max_num_seqs", whole),
    Flag(("--max-total-tokens",), "max_total_tokens", tokens),
    Flag(("--kv-cache-dtype",), "kv_dtype", choice(KV_DTYPES)),
    Flag(("--quantization",), "quantization", choice(QUANTIZATIONS)),
    Flag(("--dtype",), "dtype", choice(DTYPES)),
    Flag(("--page-size",), "block_size", whole),
    Flag(("--disable-cuda-graph",), "enforce_eager"),
    Flag(("--enable-mixed-chunk",), "mixed_chunk"),
    Flag(("--moe-a2a-backend",), "moe_a2a_backend", text),
]
"""SGLang server arguments that move memory or the layout (python/sglang/srt/server_args.py)."""
IGNORED_SWITCHES = frozenset({"--trust-remote-code", "--enable-torch-compile", "--disable-radix-cache",
                              "--enable-metrics", "--enable-p2p-check", "--skip-server-warmup"})
POSITIONAL_MODEL = True
MODEL_HINT = "python -m sglang.launch_server --model-path MODEL"


def default_mem_fraction_static(world_size: int) -> float:
    """SGLang's default by GPUs per server: ≥ 16: 0.79, ≥ 8: 0.81, ≥ 4: 0.85, ≥ 2: 0.87, else 0.88
    (server_args.py, ServerArgs.__post_init__, 0.4.x)."""
    for size, value in ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87)):
        if world_size >= size:
            return value
    return 0.88


CHUNKED_PREFILL = (8192, 2048)
"""--chunked-prefill-size default: 8192, or 2048 on GPUs under 25,000 MB (server_args.py, 0.4.x)."""
SMALL_GPU_BYTES = 25_000 * 2**20
PAGE_SIZE = 1
"""--page-size default: one token per page (server_args.py)."""


def _layout_fields(command: EngineCommand) -> dict:
    tp, dp = command.tp, command.dp
    ep = command.ep_size or (tp if command.moe_a2a_backend and command.moe_a2a_backend != "none" else 1)
    if tp % ep:
        raise SpecError(f"{command.written.get('ep_size', '--ep-size')}: {ep} must divide --tp {tp}")
    if command.dp_attention:
        if tp % dp:
            raise SpecError(f"--enable-dp-attention: --tp {tp} must be a multiple of --dp {dp}")
        return {"tp": tp // dp, "dp": dp, "pp": command.pp, "ep": ep if ep > 1 else None, "etp": tp // ep}
    return {"tp": tp, "dp": dp, "pp": command.pp, "ep": ep if ep > 1 else None, "etp": tp // ep if ep > 1 else None}


def deployment_fields(command: EngineCommand, spec: ModelSpec, gpu: GPUSpec) -> dict:
    """The moeplan Deployment settings this command implies."""
    fields = _layout_fields(command) if spec.moe is not None else {"tp": command.tp // (command.dp if command.dp_attention else 1),
                                                                    "dp": command.dp, "pp": command.pp}
    fields["gpu_util"] = command.memory_fraction or default_mem_fraction_static(command.tp * command.pp)
    fields["prefill_chunk"] = command.max_num_batched_tokens or CHUNKED_PREFILL[gpu.memory_bytes < SMALL_GPU_BYTES]
    fields["dtype"] = checkpoint_or(spec, command)
    # prompts run in batches of their own before decoding resumes, unless --enable-mixed-chunk (scheduler.py)
    fields["prefill_first"] = not command.mixed_chunk
    if command.kv_dtype:
        fields["kv_dtype"] = command.kv_dtype
    return fields


def startup(inputs: StartupInputs) -> EngineStartup:
    """SGLang's start-up on the most constrained GPU."""
    spec, cmd, layout = inputs.spec, inputs.command, inputs.layout
    total = torch_total_bytes(inputs.gpu)
    fraction_ = cmd.memory_fraction or default_mem_fraction_static(cmd.tp * cmd.pp)
    start_free = total - non_torch_bytes(layout)
    page = cmd.block_size or PAGE_SIZE
    sequences = stage_sequences(spec, inputs.deployment.kv_dtype, layout)
    rests = [(int(fraction_ * start_free) - stage.weights_bytes, stage.weights_bytes, sequences[s])
             for s, stage in enumerate(inputs.memory.stages)]
    rest, weights, sequence = min(rests, key=lambda r: r[0])
    cell = page_bytes_per_token(sequence)
    tokens_ = max(rest, 0) // cell // page * page if cell else 0
    if cmd.max_total_tokens:
        tokens_ = min(tokens_, cmd.max_total_tokens)
    pool = tokens_ * cell
    blocks, _, concurrency = pool_figures(pool, sequence, page, inputs.max_model_len)
    heaviest = max(r[1] for r in rests)
    trained = spec.max_position_embeddings
    refusal = quantization_refusal(spec, cmd)
    failure, shortfall = fail_first([
        (refusal is not None, refusal, 0),
        (trained is not None and inputs.max_model_len > trained and "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1" not in cmd.argv,
         f"--context-length {inputs.max_model_len:,} is longer than the model's max_position_embeddings {trained or 0:,} "
         "(SGLang refuses it unless SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1)", 0),
        (heaviest > start_free, "loading weights: CUDA out of memory (weights exceed the free memory)", heaviest - start_free),
        (rest <= 0, "Not enough memory. Please try to increase --mem-fraction-static", -rest),
    ])
    half = pool // 2
    notes = [f"KV Cache is allocated. #tokens: {tokens_:,}, "
             + (f"KV size: {pool / 2**30:.2f} GB" if spec.attention.kind == "mla" else
                f"K size: {half / 2**30:.2f} GB, V size: {half / 2**30:.2f} GB")]
    if cmd.memory_fraction is None:
        notes.append(f"--mem-fraction-static not given: {fraction_:g} from the 0.4.x table; SGLang since 0.5.3 derives "
                     "it from reserved memory (chunked prefill, CUDA graphs; sgl-project/sglang#10975), so give it for "
                     "an exact pool")
    if 0 < tokens_ < inputs.max_model_len:
        notes.append(f"the pool holds fewer tokens than --context-length {inputs.max_model_len:,}: SGLang starts but "
                     "caps requests at the pool size")
    if spec.attention.kind == "mla":
        notes.append("MLA: the latent cache is " + ("partitioned over the DP-attention ranks" if cmd.dp_attention
                                                    else "replicated on every TP rank (--enable-dp-attention partitions it)"))
    return EngineStartup(
        starts=failure is None, failure=failure, shortfall_bytes=shortfall, total_bytes=total,
        budget=[Allocation(name="free memory before loading", bytes=start_free,
                           basis=f"total − non-torch memory ({gib(NON_TORCH_BYTES['single'])} on one GPU, "
                                 f"{gib(NON_TORCH_BYTES['collective'])} with TP)"),
                Allocation(name="mem_fraction_static × free memory", bytes=int(fraction_ * start_free), basis=f"{fraction_:g}"),
                Allocation(name="weights", bytes=weights, basis="moeplan's weights of the most-loaded GPU"),
                Allocation(name="KV pool (rest)", bytes=pool, basis=f"{tokens_:,} tokens × {cell:,} B cell size")],
        weights_per_gpu_bytes=heaviest, kv_pool_bytes=pool, kv_bytes_per_token=cell, block_size=page, kv_blocks=blocks,
        kv_tokens=tokens_, max_model_len=inputs.max_model_len, max_concurrency=concurrency, replicas=layout.dp, notes=notes)


def launch_argv(model: str, layout: Layout, deployment: Deployment, spec: ModelSpec) -> list[str]:
    """`python -m sglang.launch_server` realising a layout; SpecError when SGLang cannot express it."""
    moe_gpus = layout.ep * layout.expert_tp
    argv = ["python", "-m", "sglang.launch_server", "--model-path", model]
    if layout.dp > 1 and spec.moe is not None and moe_gpus == layout.tp * layout.dp:
        server_tp = layout.tp * layout.dp
        argv += ["--tp", str(server_tp), "--dp", str(layout.dp), "--enable-dp-attention"]
    elif spec.moe is None or moe_gpus == layout.tp:
        server_tp = layout.tp
        argv += ["--tp", str(server_tp)] + (["--dp", str(layout.dp)] if layout.dp > 1 else [])
    else:
        raise SpecError(f"SGLang cannot express {layout.describe()}: its MoE spans the TP group (or all GPUs with DP attention)")
    if layout.ep > 1:
        argv += ["--ep-size", str(layout.ep)]
    if layout.pp > 1:
        argv += ["--pp-size", str(layout.pp)]
    argv += ["--context-length", str(deployment.context)]
    fraction_ = deployment.gpu_util or default_mem_fraction_static(server_tp * layout.pp)
    argv += ["--mem-fraction-static", f"{fraction_:g}"]
    if not deployment.prefill_first:  # the estimate mixed prompt chunks into decode steps
        argv += ["--enable-mixed-chunk"]
    if deployment.kv_dtype == "fp8":
        argv += ["--kv-cache-dtype", "fp8_e4m3"]
    if deployment.dtype:
        spelling = next((k for k, v in {**DTYPES, **QUANTIZATIONS}.items() if v == deployment.dtype), None)
        if spelling is None:
            raise SpecError(f"SGLang has no --quantization for the weight format {deployment.dtype!r}; it reads the checkpoint's")
        argv += ["--dtype" if spelling in DTYPES else "--quantization", spelling]
    return argv
