"""llama.cpp-style offload on one GPU: which tensors stay in host RAM, whether VRAM and host RAM each hold their
share, and the decode speed of a step whose host part runs on the CPU.

Placement follows llama.cpp (src/llama-model.cpp, common/arg.cpp):

- tensor overrides first: ``-ot "regex=CPU"`` (comma-separated; a tensor goes where the first pattern found in
  its name sends it), ``--n-cpu-moe N`` adds ``blk\\.i\\.ffn_(up|down|gate)_exps`` for the first N blocks, and
  ``--offload-experts`` (llama.cpp's ``--cpu-moe``) adds ``\\.ffn_(up|down|gate)_exps`` for all of them;
- then the layer: ``-ngl N`` puts the last N blocks on the GPU (blocks i ≥ L − N) and the output head too when
  N > L (default: everything); the token embedding stays in host RAM (llama.cpp keeps the input layer on the CPU:
  one row per token is read).

Tensors are named as llama.cpp names them: a GGUF file's own names; for other sources each block's matrices
are given llama.cpp's names (attn_q, ffn_up_exps, ffn_down_shexp, ffn_gate_inp, ...) and their component's
bytes in proportion to parameters. Fit: VRAM holds the GPU tensors, the GPU blocks' KV cache, the activations
(memory_report on the GPU share) and the op-offload copy of one host tensor; host RAM holds the rest; the
largest batch and context are searched on that VRAM. Decode: llama.cpp runs the blocks in order, so a step
takes the GPU share's expected step (moeplan.perf.speed, less the ops the CPU runs) + host bytes /
--host-memory-gb-s (the routed experts a step touches, nothing of the embedding); the bound puts GPU bytes /
HBM bandwidth in place of the GPU's step.

Prefill: llama.cpp processes a prompt in micro-batches of -ub tokens (--prefill-chunk; default 512,
common/common.h n_ubatch). ggml's scheduler hands an op whose weight sits in host memory to the GPU when
the GPU backend asks for it (ggml-backend.cpp, op offload, on unless --no-op-offload), and CUDA asks for
every op of at least GGML_OP_OFFLOAD_MIN_BATCH = 32 tokens (ggml-cuda.cu): the weight is copied to the
GPU over PCIe for each micro-batch, only the experts the micro-batch uses (llama.cpp #15346, "sched: copy
only the used experts when offloading prompt processing"), and the op runs on the GPU. Below 32 tokens the
CPU runs it, reading the weight at --host-memory-gb-s. See docs/formulas.md §Offload.
"""

import math
import re
from collections.abc import Callable

from pydantic import BaseModel

from moeplan.accounting.kv_cache import sequence_kv
from moeplan.accounting.matrices import layer_matrices
from moeplan.accounting.memory import MemoryReport
from moeplan.accounting.params import COMPONENTS
from moeplan.accounting.weights import WeightMemory
from moeplan.errors import SpecError
from moeplan.hardware.catalogue import GPUSpec
from moeplan.layout.parallel import Layout
from moeplan.perf.roofline import Efficiency, touched_fraction
from moeplan.spec.deployment import Deployment
from moeplan.spec.model import ModelSpec
from moeplan.units import GiB

EXPERTS_PATTERN = r"\.ffn_(up|down|gate)_exps"
"""llama.cpp's --cpu-moe override (common/arg.cpp)."""
DEFAULT_UBATCH = 512
"""llama.cpp's -ub default: a physical micro-batch of 512 tokens (common/common.h n_ubatch; -b 2048 n_batch)."""
OP_OFFLOAD_MIN_BATCH = 32
"""Tokens from which the CUDA backend runs a host-weight op on the GPU (ggml-cuda.cu, GGML_OP_OFFLOAD_MIN_BATCH)."""

_GGUF_NAMES = {
    "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
    "q_a_proj": "attn_q_a", "q_b_proj": "attn_q_b", "kv_a_proj_with_mqa": "attn_kv_a_mqa", "kv_b_proj": "attn_kv_b",
}
_MLP_SUFFIX = {"routed_experts": "_exps", "shared_experts": "_shexp", "dense_mlp": ""}


class Tensor(BaseModel):
    """One weight tensor as llama.cpp names and places it."""

    name: str
    layer: int | None
    component: str
    bytes: int


class OffloadEstimate(BaseModel):
    """One GPU with part of the weights in host RAM (llama.cpp -ngl, --n-cpu-moe, -ot, --offload-experts)."""

    rules: list[str]
    """The placement rules applied, in llama.cpp's spelling."""
    gpu_layers: int
    """Blocks on the GPU (-ngl)."""
    host_bytes: int
    """Weights held in host RAM."""
    host_kv_cache_bytes: int
    """KV cache of the blocks on the CPU (-ngl below the layer count): llama.cpp keeps it in host RAM."""
    gpu_bytes: int
    """Weights held in VRAM."""
    host_by_component_bytes: dict[str, int]
    gpu_by_component_bytes: dict[str, int]
    host_tensors: list[str]
    """Names of the tensors in host RAM (at most 12 listed, then a count)."""
    host_memory_bytes: int
    """Host RAM available (--host-memory-gib)."""
    fits_in_host_memory: bool
    """Host weights and host KV cache fit in --host-memory-gib."""
    fits_in_vram: bool
    """The memory report of the GPU share fits (the host blocks' KV cache taken off)."""
    gpu_time_s: float
    """Per decode step: the expected step of the GPU share (§Speed's per-op model over the weights VRAM holds),
    less the routed-expert op's share of the host experts and the per-layer ops' share of the host blocks (the
    CPU runs those)."""
    gpu_bound_s: float
    """Its bound: GPU weights read (routed experts: the share touched) and the GPU blocks' KV cache, over HBM."""
    cpu_time_s: float
    """Per decode step: host weights read (routed experts: the share touched) and host KV cache, at --host-memory-gb-s."""
    pcie_stream_time_s: float
    """For comparison: streaming those host bytes to the GPU over PCIe instead."""
    time_per_output_token_s: float
    decode_tokens_per_s: float
    """batch / (gpu_time_s + cpu_time_s): the headline decode rate with offload (the blocks run in order)."""
    ubatch_tokens: int
    """Prompt tokens per micro-batch (-ub; --prefill-chunk)."""
    prompt_tokens: int
    """Tokens of the prompt TTFT is for (--context, or --isl when serving)."""
    prefill_host_path: str
    """Where a micro-batch's host-weight ops run: "gpu over PCIe" (≥ 32 tokens, op offload) or "cpu"."""
    prefill_host_s: float
    """Per micro-batch of min(-ub, prompt) tokens: host weights it uses (routed experts: the share it touches)
    copied over PCIe, or read by the CPU below 32 tokens."""
    prompt_host_s: float
    """The host part of the whole prompt: ⌊prompt / ub⌋ full micro-batches and the remainder."""
    staging_bytes: int
    """VRAM for the op-offload copy: the largest host tensor (a split's weight is copied into the compute
    buffer; one weight per split). 0 without op offload."""
    ttft_s: float = 0.0
    """Time to first token with the host part of each micro-batch added (with_offload)."""
    prefill_tokens_per_s: float = 0.0
    """Prompt tokens per second of one full micro-batch with its host part (with_offload)."""
    fewest_n_cpu_moe: int | None = None
    """When VRAM does not hold the GPU share: the smallest --n-cpu-moe that makes it fit with the other flags kept
    (None: none does, or it fits)."""
    most_n_cpu_moe: int | None = None
    """When host RAM does not hold the host share: the largest --n-cpu-moe (in place of --offload-experts or the
    given N) whose host share fits host RAM and whose GPU share fits VRAM (None: none does, or it fits)."""
    assumptions: list[str]


def offload_requested(d: Deployment) -> bool:
    """Any llama.cpp placement flag is given."""
    return bool(d.offload_experts or d.n_cpu_moe or d.override_tensor or d.gpu_layers is not None)


def check_one_gpu(d: Deployment) -> None:
    """Offload is modelled on one GPU: a deployment asking for more is bad input, named by its flags."""
    more = {k: v for k in ("num_gpus", "tp", "ep", "pp", "dp", "etp") if (v := getattr(d, k)) is not None and v > 1}
    if offload_requested(d) and more:
        flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in more.items())
        raise SpecError(f"{flags}: offload (-ngl, --n-cpu-moe, -ot, --offload-experts) is modelled on one GPU; "
                        f"drop {flags} or the offload flags")


def offload_deployment(d: Deployment) -> Deployment:
    """With offload, the prompt is processed in llama.cpp's micro-batches: --prefill-chunk defaults to -ub 512."""
    if offload_requested(d) and "prefill_chunk" not in d.model_fields_set:
        return d.model_copy(update={"prefill_chunk": DEFAULT_UBATCH})
    return d


def _split(component: str, layer: int, matrices, total: int) -> list[Tensor]:
    """A block's bytes of one component, shared among its matrices in proportion to parameters."""
    params = sum(m.params for m in matrices)
    tensors, given = [], 0
    for m in matrices:
        share = total * m.params // params
        given += share
        base = _GGUF_NAMES.get(m.name) or (f"ffn_{m.name.removesuffix('_proj')}{_MLP_SUFFIX[component]}" if component in _MLP_SUFFIX
                                           else "ffn_gate_inp" if component == "router" else f"{component}_{m.name}")
        tensors.append(Tensor(name=f"blk.{layer}.{base}.weight", layer=layer, component=component, bytes=share))
    tensors[0].bytes += total - given
    return tensors


def spec_tensors(spec: ModelSpec, weights: WeightMemory) -> list[Tensor]:
    """The weight tensors of a spec under llama.cpp's names, with bytes from ``weights``."""
    tensors = [Tensor(name="token_embd.weight", layer=None, component="embedding", bytes=weights.by_component_bytes["embedding"])]
    layer_norms = 0
    for i, by_component in enumerate(weights.layer_component_bytes):
        matrices = layer_matrices(spec, i)
        for component in COMPONENTS:
            total = by_component.get(component, 0)
            if not total:
                continue
            own = [m for m in matrices if m.component == component]
            if own:
                tensors += _split(component, i, own, total)
            else:
                tensors.append(Tensor(name=f"blk.{i}.{'attn_norm' if component == 'norms' else component}.weight", layer=i,
                                      component=component, bytes=total))
            layer_norms += total if component == "norms" else 0
    if weights.by_component_bytes["lm_head"]:
        tensors.append(Tensor(name="output.weight", layer=None, component="lm_head", bytes=weights.by_component_bytes["lm_head"]))
    tensors.append(Tensor(name="output_norm.weight", layer=None, component="norms",
                          bytes=weights.by_component_bytes["norms"] - layer_norms))
    return tensors


def _to_host(buffer: str, item: str) -> bool:
    """Whether an -ot buffer type keeps the tensor in host memory: CPU and pinned host buffers (CUDA_Host, ...) do;
    the first GPU's (CUDA0, ROCm0, Vulkan0, Metal, ...) does not; another GPU's is refused (one GPU is modelled)."""
    name = buffer.upper()
    if name == "CPU" or name.endswith("_HOST"):
        return True
    device = re.fullmatch(r"([A-Z]+)(\d*)", name)
    if device is None:
        raise SpecError(f"--override-tensor {item!r}: unknown buffer type {buffer!r} (llama.cpp's are CPU, CUDA0, CUDA_Host, ...)")
    if device.group(2) not in ("", "0"):
        raise SpecError(f"--override-tensor {item!r}: {buffer} is a second GPU; moeplan models offload on one GPU (CUDA0)")
    return False


def _overrides(d: Deployment, num_layers: int) -> tuple[list[tuple[re.Pattern, bool, str]], list[str]]:
    """(pattern, to host, as written) in llama.cpp's order: -ot, then --n-cpu-moe, then --offload-experts."""
    rules, written = [], []
    for item in filter(None, (p.strip() for p in (d.override_tensor or "").split(","))):
        pattern, sep, buffer = item.partition("=")  # llama.cpp splits at the first '='
        if not sep or not pattern:
            raise SpecError(f"--override-tensor {item!r}: expected PATTERN=BUFFER, as llama.cpp's -ot \"exps=CPU\"")
        try:
            rules.append((re.compile(pattern), _to_host(buffer.strip(), item), item))
        except re.error as error:
            raise SpecError(f"--override-tensor {item!r}: not a regular expression ({error})") from None
        written.append(f'-ot "{item}"')
    if d.n_cpu_moe:
        for i in range(min(d.n_cpu_moe, num_layers)):
            rules.append((re.compile(rf"blk\.{i}{EXPERTS_PATTERN}"), True, f"blk.{i} experts"))
        written.append(f"--n-cpu-moe {d.n_cpu_moe}")
    if d.offload_experts:
        rules.append((re.compile(EXPERTS_PATTERN), True, "all experts"))
        written.append("--offload-experts (-ot \"exps=CPU\")")
    return rules, written


def place_tensors(spec: ModelSpec, d: Deployment, tensors: list[Tensor]) -> tuple[list[Tensor], list[Tensor], int, list[str]]:
    """(GPU tensors, host tensors, GPU blocks, rules as written) under the deployment's llama.cpp flags."""
    layers = spec.num_layers
    ngl = layers + 1 if d.gpu_layers is None else d.gpu_layers
    rules, written = _overrides(d, layers)
    if d.gpu_layers is not None:
        written.insert(0, f"-ngl {d.gpu_layers}")
    on_gpu, on_host = [], []
    for tensor in tensors:
        rule = next((host for pattern, host, _ in rules if pattern.search(tensor.name)), None)
        if rule is None:
            if tensor.component == "embedding":
                rule = True
            elif tensor.layer is None:
                rule = ngl <= layers
            else:
                rule = tensor.layer < layers - ngl
        (on_host if rule else on_gpu).append(tensor)
    return on_gpu, on_host, min(ngl, layers), written


def _by_component(tensors: list[Tensor]) -> dict[str, int]:
    out = dict.fromkeys(COMPONENTS, 0)
    for t in tensors:
        out[t.component] += t.bytes
    return out


class Placement(BaseModel):
    """Where the weights are: bytes per component on each side, and the tensors."""

    gpu: list[Tensor]
    host: list[Tensor]
    gpu_layers: int
    rules: list[str]

    @property
    def gpu_by_component_bytes(self) -> dict[str, int]:
        return _by_component(self.gpu)


def plan_placement(spec: ModelSpec, d: Deployment, layout: Layout, weights: WeightMemory,
                   stored: list | None = None) -> Placement:
    """The placement of a one-GPU deployment; ``stored``: a GGUF file's tensors (their names and bytes)."""
    if layout.num_gpus != 1:
        raise SpecError(f"offload (-ngl, --n-cpu-moe, -ot, --offload-experts) is modelled on one GPU, not {layout.describe()}")
    if d.mode != "inference":
        raise SpecError("offload is modelled for inference (llama.cpp), not training")
    if stored is not None:
        tensors = [Tensor(name=t.name, layer=t.layer, component="norms" if t.component == "other" else t.component, bytes=t.bytes)
                   for t in stored if t.layer is None or t.layer < spec.num_layers]
    else:
        tensors = spec_tensors(spec, weights)
    gpu, host, gpu_layers, rules = place_tensors(spec, d, tensors)
    return Placement(gpu=gpu, host=host, gpu_layers=gpu_layers, rules=rules)


def fewest_n_cpu_moe(spec: ModelSpec, d: Deployment, layout: Layout, weights: WeightMemory, stored: list | None,
                     fits: Callable[[Placement], bool]) -> int | None:
    """The smallest --n-cpu-moe N, the deployment's other flags kept, whose placement ``fits`` VRAM; None when not
    even every layer's experts on the CPU fit. Bisection: more layers on the CPU never need more VRAM (the
    op-offload copy is one expert tensor, the same for every N > 0)."""
    def fits_with(n: int) -> bool:
        update = {"n_cpu_moe": max(n, d.n_cpu_moe or 0)}
        return fits(plan_placement(spec, d.model_copy(update=update), layout, weights, stored))

    low, high = d.n_cpu_moe or 0, spec.num_layers
    if not fits_with(high):
        return None
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if fits_with(middle) else (middle + 1, high)
    return low


def most_n_cpu_moe(spec: ModelSpec, d: Deployment, layout: Layout, weights: WeightMemory, stored: list | None,
                   fits_host: Callable[[Placement], bool], fits_vram: Callable[[Placement], bool]) -> int | None:
    """The largest --n-cpu-moe N below the layers now on the CPU (--offload-experts: all of them), the other flags
    kept, whose placement ``fits_host`` RAM, if its GPU share also ``fits_vram``; None otherwise. Bisection: fewer
    layers on the CPU never need more host RAM."""
    def placed(n: int) -> Placement:
        return plan_placement(spec, d.model_copy(update={"offload_experts": False, "n_cpu_moe": n}), layout, weights, stored)

    low, high = 0, (spec.num_layers if d.offload_experts else d.n_cpu_moe or 0) - 1
    if high < 0 or not fits_host(placed(0)):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits_host(placed(middle)) else (low, middle - 1)
    return low if fits_vram(placed(low)) else None


def _read_bytes(tensors: list[Tensor], touched: float) -> float:
    """Bytes a step reads of these tensors: all but the embedding (a lookup), routed experts at the share touched."""
    return sum(t.bytes * (touched if t.component == "routed_experts" else 1.0) for t in tensors if t.component != "embedding")


def host_kv_bytes(spec: ModelSpec, d: Deployment, placement: Placement, batch: int, context: int) -> int:
    """KV cache of the blocks on the CPU (-ngl below the layer count): llama.cpp keeps it in host RAM."""
    host_blocks = range(spec.num_layers - placement.gpu_layers)
    return batch * sequence_kv(spec, d.kv_dtype, host_blocks).bytes(context) if host_blocks else 0


def staging_bytes(placement: Placement, ubatch: int) -> int:
    """VRAM the op-offload copy of host weights takes: the largest host tensor, when micro-batches reach 32 tokens."""
    host = [t.bytes for t in placement.host if t.component != "embedding"]
    return max(host) if host and ubatch >= OP_OFFLOAD_MIN_BATCH else 0


def vram_bytes(spec: ModelSpec, d: Deployment, placement: Placement, memory: MemoryReport) -> int:
    """VRAM of an offloaded deployment: the memory report of the GPU share, less the host blocks' KV cache,
    plus the op-offload copy."""
    return (memory.per_gpu_bytes - host_kv_bytes(spec, d, placement, memory.batch, memory.context)
            + staging_bytes(placement, d.prefill_chunk))


def prefill_host_s(spec: ModelSpec, d: Deployment, gpu: GPUSpec, placement: Placement, tokens: int, eff: Efficiency) -> float:
    """Host part of one micro-batch of ``tokens``: the host weights it uses over PCIe (op offload, ≥ 32 tokens)
    or read by the CPU (fewer: memory-bound at so few tokens)."""
    read = _read_bytes(placement.host, touched_fraction(spec, tokens, d))
    if tokens >= OP_OFFLOAD_MIN_BATCH:
        return read / ((gpu.pcie_bytes_per_s_per_direction or gpu.link_bytes_per_s_per_direction) * eff.pcie)
    return read / (d.host_memory_gb_s * 1e9)


LAYER_OPS = ("attention_proj", "attention", "router", "mlp", "elementwise")
"""Per-layer ops of the step model (moeplan.perf.step) a block on the CPU takes off the GPU."""


def gpu_step_s(spec: ModelSpec, placement: Placement, ops_s: dict[str, float], step_s: float) -> float:
    """The GPU's part of a decode step: the GPU share's expected step less the routed-expert op in proportion to
    the expert bytes in host RAM and the per-layer ops in proportion to the blocks on the CPU."""
    host_experts = sum(t.bytes for t in placement.host if t.component == "routed_experts")
    all_experts = host_experts + sum(t.bytes for t in placement.gpu if t.component == "routed_experts")
    expert_share = host_experts / all_experts if all_experts else 0.0
    block_share = (spec.num_layers - placement.gpu_layers) / spec.num_layers
    return step_s - ops_s.get("routed_experts", 0.0) * expert_share - sum(ops_s.get(op, 0.0) for op in LAYER_OPS) * block_share


def offload_estimate(spec: ModelSpec, d: Deployment, gpu: GPUSpec, placement: Placement, memory: MemoryReport,
                     decode_step, eff: Efficiency | None = None) -> OffloadEstimate:
    """Fit on both sides, the decode speed and the prefill host time of ``placement``; ``memory`` is the memory
    report of the GPU share and ``decode_step`` its expected decode step (moeplan.perf.speed.StepEstimate)."""
    eff = eff or Efficiency()
    batch = math.ceil(decode_step.decode_sequences - 1e-9)  # --batch, or the sequences decoding together when serving
    touched = touched_fraction(spec, batch, d)
    host_kv = host_kv_bytes(spec, d, placement, memory.batch, memory.context)
    gpu_kv = memory.most_loaded.kv_cache_bytes - host_kv
    gpu_bound = (_read_bytes(placement.gpu, touched) + gpu_kv) / (gpu.hbm_bytes_per_s * eff.hbm)
    host_read = _read_bytes(placement.host, touched) + host_kv
    cpu_time = host_read / (d.host_memory_gb_s * 1e9)
    pcie = (gpu.pcie_bytes_per_s_per_direction or gpu.link_bytes_per_s_per_direction) * eff.pcie
    host_bytes = sum(t.bytes for t in placement.host)
    available = int(d.host_memory_gib * GiB)
    from moeplan.perf.speed import prompt_tokens  # perf.speed imports this module

    ubatch, prompt = d.prefill_chunk, prompt_tokens(d)
    staging = staging_bytes(placement, ubatch)
    chunk = min(ubatch, prompt)
    path = "gpu over PCIe" if chunk >= OP_OFFLOAD_MIN_BATCH else "cpu"
    full, rest = divmod(prompt, ubatch)
    host_s = lambda tokens: prefill_host_s(spec, d, gpu, placement, tokens, eff)  # noqa: E731
    gpu_time = gpu_step_s(spec, placement, decode_step.ops_s, decode_step.time_s)
    tpot = gpu_time + cpu_time
    names = [t.name for t in placement.host]
    listed = names[:12] + ([f"... {len(names) - 12} more"] if len(names) > 12 else [])
    return OffloadEstimate(
        rules=placement.rules, gpu_layers=placement.gpu_layers, host_bytes=host_bytes, host_kv_cache_bytes=host_kv,
        gpu_bytes=sum(t.bytes for t in placement.gpu), host_by_component_bytes=_by_component(placement.host),
        gpu_by_component_bytes=placement.gpu_by_component_bytes, host_tensors=listed, host_memory_bytes=available,
        fits_in_host_memory=host_bytes + host_kv <= available,
        fits_in_vram=vram_bytes(spec, d, placement, memory) <= memory.usable_bytes, gpu_time_s=gpu_time, gpu_bound_s=gpu_bound,
        cpu_time_s=cpu_time,
        pcie_stream_time_s=host_read / pcie, time_per_output_token_s=tpot, decode_tokens_per_s=batch / tpot,
        ubatch_tokens=ubatch, prompt_tokens=prompt, prefill_host_path=path, prefill_host_s=host_s(chunk),
        prompt_host_s=full * host_s(ubatch) + (host_s(rest) if rest else 0.0), staging_bytes=staging,
        assumptions=[
            f"offload: {', '.join(placement.rules)}; the token embedding stays in host RAM (llama.cpp's input layer)",
            f"decode step = the GPU share's expected step (less the ops the CPU runs) + host bytes / {d.host_memory_gb_s:g} GB/s (the blocks run in order; "
            f"routed experts read at the {touched:.1%} a step of {batch} tokens touches); bound: GPU bytes / "
            f"{gpu.hbm_bytes_per_s * eff.hbm / 1e12:,.2f} TB/s + the same host part",
            f"prefill: micro-batches of {ubatch} tokens (-ub); host-weight ops of a micro-batch of ≥ {OP_OFFLOAD_MIN_BATCH} tokens "
            f"run on the GPU after their used experts are copied over PCIe at {pcie / 1e9:,.1f} GB/s (ggml op offload; "
            f"{staging / GiB:,.2f} GiB of VRAM hold the copy), below that on the CPU at {d.host_memory_gb_s:g} GB/s",
            "a block on the CPU keeps its KV cache in host RAM, as llama.cpp does; its attention is timed with the GPU's",
        ],
    )


BATCH_SEARCH_CAP = 2**24
"""Sequences the largest-batch search stops at (a model with no per-sequence memory would otherwise not end)."""


def _largest(fits: Callable[[int], bool], low: int, high: int | None) -> int:
    """Largest n ≥ low with fits(n) (fits(low) holds; fits is monotone): doubling up to ``high``, then bisection."""
    step = max(low, 1)
    while fits(step * 2) and (high is None or step * 2 < high):
        step *= 2
    top = min(step * 2, high) if high is not None else step * 2
    if high is not None and fits(high):
        return high
    lo, hi = max(low, step), top
    while lo < hi - 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def offload_limits(spec: ModelSpec, d: Deployment, placement: Placement, memory: MemoryReport,
                   memory_at: Callable[[int, int], MemoryReport]) -> tuple[int, int | None, str]:
    """(largest batch, largest context, what sets it) that fit VRAM after offload: ``memory_at(batch, context)``
    is the memory report of the GPU share; the host blocks' KV cache is taken off and the op-offload copy added."""
    usable = memory.usable_bytes

    def fits(batch: int, context: int) -> bool:
        return vram_bytes(spec, d, placement, memory_at(batch, context)) <= usable

    batch, context = memory.batch, memory.context
    max_batch = _largest(lambda b: fits(b, context), 0, BATCH_SEARCH_CAP) if fits(1, context) else 0
    if memory.max_context is None:
        return max_batch, None, memory.max_context_limit
    trained = spec.max_position_embeddings
    if not fits(batch, 1):
        return max_batch, 0, "memory"
    max_context = _largest(lambda c: fits(batch, c), 1, trained)
    if trained is not None and max_context == trained:
        return max_batch, trained, f"model (max_position_embeddings {trained}; VRAM after offload allows it)"
    return max_batch, max_context, "memory"


def with_offload(memory: MemoryReport, speed, estimate: OffloadEstimate, limits: tuple[int, int | None, str]):
    """The memory report and speed of an offloaded deployment: it fits when VRAM and host RAM each hold their
    share; its decode rate is the offload one; TTFT and prefill add each micro-batch's host part; ``limits``:
    offload_limits."""
    kv, staging = estimate.host_kv_cache_bytes, estimate.staging_bytes
    worst = memory.most_loaded.model_copy(update={
        "kv_cache_bytes": memory.most_loaded.kv_cache_bytes - kv, "activation_bytes": memory.most_loaded.activation_bytes + staging,
        "total_bytes": memory.most_loaded.total_bytes - kv + staging})
    per_gpu = memory.per_gpu_bytes - kv + staging
    fits = estimate.fits_in_vram and estimate.fits_in_host_memory
    reason = [] if estimate.fits_in_host_memory else [
        f"host RAM: {(estimate.host_bytes + kv) / GiB:,.1f} GiB of offloaded weights and KV cache exceed --host-memory-gib "
        f"{estimate.host_memory_bytes / GiB:g}"]
    if estimate.fewest_n_cpu_moe is not None:
        reason.append(f"VRAM: the GPU share fits from --n-cpu-moe {estimate.fewest_n_cpu_moe} (the other flags kept)")
    max_batch, max_context, limit = limits
    memory = memory.model_copy(update={
        "fits": fits, "weights_bytes": estimate.gpu_bytes + estimate.host_bytes, "most_loaded": worst, "stages": [worst],
        "per_gpu_bytes": per_gpu, "headroom_bytes": memory.usable_bytes - per_gpu,
        "headroom_fraction": (memory.usable_bytes - per_gpu) / memory.usable_bytes, "max_batch": max_batch,
        "max_context": max_context, "max_context_limit": limit,
        "assumptions": [*memory.assumptions, *reason, *estimate.assumptions]})
    chunk = min(estimate.ubatch_tokens, estimate.prompt_tokens)
    estimate.ttft_s = speed.ttft_s + estimate.prompt_host_s
    estimate.prefill_tokens_per_s = chunk / (chunk / speed.prefill_tokens_per_s + estimate.prefill_host_s)
    rate, tpot = estimate.decode_tokens_per_s, estimate.time_per_output_token_s  # one GPU
    bound_tpot = estimate.gpu_bound_s + estimate.cpu_time_s
    expected = speed.expected.model_copy(update={
        "time_per_output_token_s": tpot, "ttft_s": estimate.ttft_s, "output_tokens_per_s": rate,
        "output_tokens_per_s_per_gpu": rate, "output_tokens_per_s_per_user": 1 / tpot})
    speed = speed.model_copy(update={
        "offload": estimate, "decode_tokens_per_s": rate, "tokens_per_s_per_gpu": rate, "tokens_per_s_per_user": 1 / tpot,
        "time_per_output_token_s": tpot, "ttft_s": estimate.ttft_s, "prefill_tokens_per_s": estimate.prefill_tokens_per_s,
        "roofline_time_per_output_token_s": bound_tpot, "roofline_decode_tokens_per_s": rate * tpot / bound_tpot,
        "roofline_ttft_s": speed.roofline_ttft_s + estimate.prompt_host_s,
        "expected": expected,
    })
    return memory, speed
