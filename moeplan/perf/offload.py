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
bytes in proportion to parameters. Fit: VRAM holds the GPU tensors, the KV cache and the activations
(memory_report on the GPU share); host RAM holds the rest. Decode: llama.cpp runs the blocks in order, so a
step takes GPU bytes / HBM bandwidth + host bytes / --host-memory-gb-s (both read the routed experts a step
touches, nothing else of the embedding). See docs/formulas.md §Offload.
"""

import re

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
    """Per decode step: GPU weights read (routed experts: the share touched) and the GPU blocks' KV cache, over HBM."""
    cpu_time_s: float
    """Per decode step: host weights read (routed experts: the share touched) and host KV cache, at --host-memory-gb-s."""
    pcie_stream_time_s: float
    """For comparison: streaming those host bytes to the GPU over PCIe instead."""
    time_per_output_token_s: float
    decode_tokens_per_s: float
    """batch / (gpu_time_s + cpu_time_s): the headline decode rate with offload."""
    fewest_n_cpu_moe: int | None = None
    """When VRAM does not hold the GPU share: the smallest --n-cpu-moe that makes it fit with the other flags kept
    (None: none does, or it fits)."""
    assumptions: list[str]


def offload_requested(d: Deployment) -> bool:
    """Any llama.cpp placement flag is given."""
    return bool(d.offload_experts or d.n_cpu_moe or d.override_tensor or d.gpu_layers is not None)


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


def _overrides(d: Deployment, num_layers: int) -> tuple[list[tuple[re.Pattern, bool, str]], list[str]]:
    """(pattern, to host, as written) in llama.cpp's order: -ot, then --n-cpu-moe, then --offload-experts."""
    rules, written = [], []
    for item in filter(None, (p.strip() for p in (d.override_tensor or "").split(","))):
        pattern, sep, buffer = item.rpartition("=")
        if not sep or not pattern:
            raise SpecError(f"--override-tensor {item!r}: expected PATTERN=BUFFER, as llama.cpp's -ot \"exps=CPU\"")
        try:
            rules.append((re.compile(pattern), buffer.strip().upper() == "CPU", item))
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
                     fits) -> int | None:
    """The smallest --n-cpu-moe N, the deployment's other flags kept, whose GPU share ``fits(bytes by component)``;
    None when not even every layer's experts on the CPU fit. Bisection: more layers on the CPU never need more VRAM."""
    def fits_with(n: int) -> bool:
        update = {"n_cpu_moe": max(n, d.n_cpu_moe or 0)}
        return fits(plan_placement(spec, d.model_copy(update=update), layout, weights, stored).gpu_by_component_bytes)

    low, high = d.n_cpu_moe or 0, spec.num_layers
    if not fits_with(high):
        return None
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if fits_with(middle) else (middle + 1, high)
    return low


def _read_bytes(tensors: list[Tensor], touched: float) -> float:
    """Bytes one decode step reads of these tensors: all but the embedding (a lookup), routed experts at the share touched."""
    return sum(t.bytes * (touched if t.component == "routed_experts" else 1.0) for t in tensors if t.component != "embedding")


def offload_estimate(spec: ModelSpec, d: Deployment, gpu: GPUSpec, placement: Placement, memory: MemoryReport,
                     eff: Efficiency | None = None) -> OffloadEstimate:
    """Fit on both sides and the decode speed of ``placement``; ``memory`` is the memory report of the GPU share."""
    eff = eff or Efficiency()
    touched = touched_fraction(spec, d.batch, d)
    host_blocks = range(spec.num_layers - placement.gpu_layers)
    host_kv = memory.batch * sequence_kv(spec, d.kv_dtype, host_blocks).bytes(memory.context) if host_blocks else 0
    gpu_kv = memory.most_loaded.kv_cache_bytes - host_kv
    gpu_time = (_read_bytes(placement.gpu, touched) + gpu_kv) / (gpu.hbm_bytes_per_s * eff.hbm)
    host_read = _read_bytes(placement.host, touched) + host_kv
    cpu_time = host_read / (d.host_memory_gb_s * 1e9)
    pcie = (gpu.pcie_bytes_per_s_per_direction or gpu.link_bytes_per_s_per_direction) * eff.pcie
    host_bytes = sum(t.bytes for t in placement.host)
    available = int(d.host_memory_gib * GiB)
    vram_fits = memory.per_gpu_bytes - host_kv <= memory.usable_bytes
    tpot = gpu_time + cpu_time
    names = [t.name for t in placement.host]
    listed = names[:12] + ([f"... {len(names) - 12} more"] if len(names) > 12 else [])
    return OffloadEstimate(
        rules=placement.rules, gpu_layers=placement.gpu_layers, host_bytes=host_bytes, host_kv_cache_bytes=host_kv,
        gpu_bytes=sum(t.bytes for t in placement.gpu), host_by_component_bytes=_by_component(placement.host),
        gpu_by_component_bytes=placement.gpu_by_component_bytes, host_tensors=listed, host_memory_bytes=available,
        fits_in_host_memory=host_bytes + host_kv <= available, fits_in_vram=vram_fits, gpu_time_s=gpu_time, cpu_time_s=cpu_time,
        pcie_stream_time_s=host_read / pcie, time_per_output_token_s=tpot, decode_tokens_per_s=d.batch / tpot,
        assumptions=[
            f"offload: {', '.join(placement.rules)}; the token embedding stays in host RAM (llama.cpp's input layer)",
            f"decode step = GPU bytes / {gpu.hbm_bytes_per_s * eff.hbm / 1e12:,.2f} TB/s + host bytes / {d.host_memory_gb_s:g} GB/s "
            f"(the blocks run in order; routed experts read at the {touched:.1%} a step of {d.batch} tokens touches)",
            "a block on the CPU keeps its KV cache in host RAM, as llama.cpp does; the largest batch and context are "
            "still computed with every block's KV cache in VRAM",
            "prefill and time to first token are not modelled with offload: those figures assume every weight in VRAM",
        ],
    )


def with_offload(memory: MemoryReport, speed, estimate: OffloadEstimate):
    """The memory report and speed of an offloaded deployment: it fits when VRAM and host RAM each hold their
    share, and its decode rate is the offload one."""
    kv = estimate.host_kv_cache_bytes
    worst = memory.most_loaded.model_copy(update={"kv_cache_bytes": memory.most_loaded.kv_cache_bytes - kv,
                                                  "total_bytes": memory.most_loaded.total_bytes - kv})
    per_gpu = memory.per_gpu_bytes - kv
    fits = estimate.fits_in_vram and estimate.fits_in_host_memory
    reason = [] if estimate.fits_in_host_memory else [
        f"host RAM: {(estimate.host_bytes + kv) / GiB:,.1f} GiB of offloaded weights and KV cache exceed --host-memory-gib "
        f"{estimate.host_memory_bytes / GiB:g}"]
    if estimate.fewest_n_cpu_moe is not None:
        reason.append(f"VRAM: the GPU share fits from --n-cpu-moe {estimate.fewest_n_cpu_moe} (the other flags kept)")
    memory = memory.model_copy(update={
        "fits": fits, "weights_bytes": estimate.gpu_bytes + estimate.host_bytes, "most_loaded": worst, "stages": [worst],
        "per_gpu_bytes": per_gpu, "headroom_bytes": memory.usable_bytes - per_gpu,
        "headroom_fraction": (memory.usable_bytes - per_gpu) / memory.usable_bytes,
        "assumptions": [*memory.assumptions, *reason, *estimate.assumptions]})
    per_gpu = estimate.decode_tokens_per_s  # one GPU
    speed = speed.model_copy(update={
        "offload": estimate, "decode_tokens_per_s": estimate.decode_tokens_per_s, "tokens_per_s_per_gpu": per_gpu,
        "tokens_per_s_per_user": 1 / estimate.time_per_output_token_s, "time_per_output_token_s": estimate.time_per_output_token_s,
    })
    return memory, speed
