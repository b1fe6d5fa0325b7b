"""Memory per GPU under a parallel layout, and fit: does it fit, with what headroom, and the largest batch
and context that fit, solved directly from the (piecewise) linear memory model.

Every pipeline stage is evaluated at its most-loaded rank; the most-loaded stage decides fit. See
docs/formulas.md §Memory.
"""

import math
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from moeplan.accounting.activations import (
    ALLOCATOR_RESERVE_FRACTION,
    CUDA_CONTEXT_BYTES,
    DEFAULT_GPU_UTIL,
    DEFAULT_PREFILL_CHUNK,
    FUSED_MOE_CHUNK_TOKENS,
    inference_activations,
    inference_assumptions,
)
from moeplan.accounting.kv_cache import (
    CONV_STATE_BYTES,
    SSM_STATE_BYTES,
    KVCacheSummary,
    KVDtype,
    kv_cache_bytes,
    kv_cache_summary,
    sequence_kv,
)
from moeplan.accounting.params import count_params
from moeplan.accounting.training import (
    GradDtype,
    Recompute,
    ZeroStage,
    activation_bytes,
    stage_activation,
    training_assumptions,
    training_state,
)
from moeplan.accounting.weights import WeightMemory
from moeplan.docstrings import add_field_docstrings
from moeplan.hardware.catalogue import GPUSpec
from moeplan.layout.parallel import Layout, check_layout, stage_layers
from moeplan.accounting.shard import most_loaded_rank, rank_layer_amounts
from moeplan.spec.model import ModelSpec

Mode = Literal["inference", "training"]


class GPUMemory(BaseModel):
    """What one GPU holds, in bytes: the most-loaded rank of one pipeline stage."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=add_field_docstrings)

    stage: int
    """Pipeline stage (0-based)."""
    first_layer: int
    last_layer: int
    """Decoder layers of the stage, inclusive."""
    tp_rank: int
    dp_rank: int
    weights_bytes: int
    """Weights (training: bf16 parameters, sharded at ZeRO-3, plus one gathered layer)."""
    weights_by_component_bytes: dict[str, int]
    """This rank's weights per component, before any ZeRO sharding."""
    kv_cache_bytes: int
    """KV cache and Mamba state of the batch (inference)."""
    gradients_bytes: int
    optimizer_bytes: int
    """fp32 master weights and Adam moments (training)."""
    activation_bytes: int
    """Transient peak (inference) or stored activations (training)."""
    cuda_context_bytes: int
    allocator_reserve_bytes: int
    total_bytes: int


class MemoryReport(BaseModel):
    """Memory of a model on a GPU type under a layout; `--json` prints it as ``memory``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=add_field_docstrings)

    mode: Mode
    gpu: str
    """GPU name from the catalogue."""
    gpu_memory_bytes: int
    """Memory the driver reports (the datasheet capacity where the catalogue has no driver figure)."""
    gpu_util: float
    """Fraction of capacity the framework may use."""
    usable_bytes: int
    """floor(gpu_util × gpu_memory_bytes), as vLLM's gpu_memory_utilization applies to the driver's total."""
    layout: Layout
    batch: int
    """Concurrent sequences per model replica (inference) or micro-batch size per DP rank (training)."""
    context: int
    """Tokens per sequence."""
    kv_dtype: KVDtype
    weights_bytes: int
    """All weights of one model copy."""
    kv_cache_bytes_per_token: int
    """One sequence, all attention layers, unsharded, at the KV dtype (windows ignored)."""
    kv_cache: KVCacheSummary
    kv_cache_bytes: int
    """KV cache and Mamba state of the whole batch, one model replica, unsharded, windows applied (inference)."""
    per_gpu_bytes: int
    """Total of the most-loaded GPU."""
    most_loaded: GPUMemory
    stages: list[GPUMemory]
    """The most-loaded rank of each pipeline stage."""
    fits: bool
    headroom_bytes: int
    """usable_bytes − per_gpu_bytes (negative when it does not fit)."""
    headroom_fraction: float
    """headroom_bytes / usable_bytes."""
    max_batch: int
    """Largest batch that fits at this context (0: not even one)."""
    max_context: int | None
    """Largest context that fits at this batch, at most the model's max_position_embeddings (None: unbounded)."""
    max_context_limit: str
    """What sets max_context: memory, the model's trained context, or nothing (every layer windowed)."""
    assumptions: list[str]


class _Stage:
    """One pipeline stage's most-loaded GPU as a function of batch and context."""

    def __init__(self, spec: ModelSpec, layout: Layout, stage: int, layers: range, options: dict):
        self.spec, self.layout, self.stage, self.layers, self.o = spec, layout, stage, layers, options
        self.last = stage == layout.pp - 1
        amounts = options["params"] if options["mode"] == "training" else options["weight_bytes"]
        self.tp_rank, self.dp_rank, held = most_loaded_rank(spec, amounts, layout, stage)
        if options["mode"] == "training":
            self.by_component = {c: 2 * p for c, p in held.items()}
            per_layer = rank_layer_amounts(spec, amounts, layout, stage, self.tp_rank, self.dp_rank)
            gathered = max((v for k, v in per_layer.items() if 0 <= k < spec.num_layers), default=0)
            expert = held["routed_experts"]
            self.state = training_state(sum(held.values()) - expert, expert, layout, options["zero"], options["grad_dtype"], gathered)
            self.coefficients = stage_activation(spec, layout, stage, layers, options["recompute"])
        else:
            self.by_component = held
            self.sequence = sequence_kv(spec, options["kv_dtype"], layers, layout.tp)

    def activations(self, batch: int, context: int) -> int:
        if self.o["mode"] == "training":
            return activation_bytes(self.coefficients, batch, context, self.layout.tp)
        return inference_activations(self.spec, self.layout, self.layers, batch, self.o["prefill_chunk"], self.last).peak_bytes

    def fixed_bytes(self) -> int:
        """Everything independent of batch and context."""
        if self.o["mode"] == "training":
            state = self.state
            return state.params_bytes + state.gradients_bytes + state.optimizer_bytes + self.o["cuda_context_bytes"]
        return sum(self.by_component.values()) + self.o["cuda_context_bytes"]

    def memory(self, batch: int, context: int) -> GPUMemory:
        activations = self.activations(batch, context)
        reserve = math.ceil(ALLOCATOR_RESERVE_FRACTION * activations)
        kv = 0 if self.o["mode"] == "training" else batch * self.sequence.bytes(context)
        training = self.o["mode"] == "training"
        weights = self.state.params_bytes if training else sum(self.by_component.values())
        grads, optimizer = (self.state.gradients_bytes, self.state.optimizer_bytes) if training else (0, 0)
        context_bytes = self.o["cuda_context_bytes"]
        return GPUMemory(
            stage=self.stage, first_layer=self.layers[0], last_layer=self.layers[-1], tp_rank=self.tp_rank,
            dp_rank=self.dp_rank, weights_bytes=weights, weights_by_component_bytes=self.by_component,
            kv_cache_bytes=kv, gradients_bytes=grads, optimizer_bytes=optimizer, activation_bytes=activations,
            cuda_context_bytes=context_bytes, allocator_reserve_bytes=reserve,
            total_bytes=weights + kv + grads + optimizer + activations + context_bytes + reserve,
        )

    def fits(self, batch: int, context: int) -> bool:
        return self.memory(batch, context).total_bytes <= self.o["usable"]

    def _settle(self, guess: int, fits) -> int:
        """Round a closed-form solution to the exact integer answer: the model's integer roundings (ceil of
        the reserve and of split activations) can move the boundary by one."""
        guess = max(guess, 0)
        while guess > 0 and not fits(guess):
            guess -= 1
        while fits(guess + 1):
            guess += 1
        return guess

    def max_batch(self, context: int) -> int:
        """Largest B with memory(B, context) ≤ usable."""
        fits = lambda b: self.fits(b, context)  # noqa: E731
        if not fits(1):
            return 0
        room = self.o["usable"] - self.fixed_bytes()
        factor = 1 + ALLOCATOR_RESERVE_FRACTION
        if self.o["mode"] == "training":
            per_sequence = factor * self.activations(1, context)
            return self._settle(math.floor(room / per_sequence), fits)
        return self._settle(self._inference_max_batch(room, context, factor), fits)

    def _inference_max_batch(self, room: int, context: int, factor: float) -> int:
        """On each interval of B between the kinks of T = max(P, B) and of the fused-MoE chunk, hidden states and
        every workspace are affine in B; memory = fixed + B·kv(C) + factor·(hidden + max workspace) ≤ usable
        holds iff it holds with each workspace, so B = min over workspaces of its linear bound."""
        kv = self.sequence.bytes(context)
        prefill = self.o["prefill_chunk"]
        kinks = sorted({1, prefill, math.ceil(FUSED_MOE_CHUNK_TOKENS / self.layout.dp)})

        def bound(lo: int) -> float:
            at = [inference_activations(self.spec, self.layout, self.layers, b, prefill, self.last) for b in (lo, lo + 1)]
            bounds = [math.inf]
            for kind in at[0].workspace_bytes:
                start = at[0].hidden_bytes + at[0].workspace_bytes[kind]
                slope = at[1].hidden_bytes + at[1].workspace_bytes[kind] - start
                per_batch = kv + factor * slope
                if per_batch:
                    bounds.append(math.floor((room - factor * (start - slope * lo)) / per_batch))
            return min(bounds)

        for lo, hi in zip(kinks, kinks[1:]):
            within = bound(lo)
            if within < hi:
                return lo - 1 if within < lo else within
        return max(kinks[-1] - 1, bound(kinks[-1]))  # past the last kink every term grows with B

    def max_context(self, batch: int) -> int | None:
        """Largest C with memory(batch, C) ≤ usable (None when no context exhausts memory)."""
        fits = lambda c: self.fits(batch, c)  # noqa: E731
        if not fits(1):
            return 0
        room = self.o["usable"] - self.fixed_bytes()
        factor = 1 + ALLOCATOR_RESERVE_FRACTION
        if self.o["mode"] == "training":
            linear, quadratic = (factor * batch * c / self.layout.tp for c in self.coefficients)
            if quadratic == 0:
                return self._settle(math.floor(room / linear), fits)
            return self._settle(math.floor((-linear + math.sqrt(linear * linear + 4 * quadratic * room)) / (2 * quadratic)), fits)
        activations = self.activations(batch, 1)
        per_sequence = (room - activations - math.ceil(ALLOCATOR_RESERVE_FRACTION * activations)) // batch
        return self.sequence.max_context(per_sequence)


def _component_bytes(weights: WeightMemory | Mapping[str, int]) -> dict[str, int]:
    return dict(weights.by_component_bytes) if isinstance(weights, WeightMemory) else dict(weights)


def memory_report(
    spec: ModelSpec,
    weights: WeightMemory | Mapping[str, int],
    gpu: GPUSpec,
    layout: Layout,
    batch: int = 1,
    context: int = 4096,
    kv_dtype: KVDtype = "bf16",
    mode: Mode = "inference",
    *,
    prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
    gpu_util: float | None = None,
    zero: ZeroStage = 1,
    recompute: Recompute = "selective",
    grad_dtype: GradDtype = "fp32",
    cuda_context_bytes: int = CUDA_CONTEXT_BYTES,
) -> MemoryReport:
    """Per-GPU memory of ``spec`` on ``gpu`` under ``layout``, and fit.

    ``weights``: bytes per component (a WeightMemory, or a dict keyed like params.COMPONENTS); used for
    inference (training holds bf16 parameters). ``gpu_util``: default 0.9 for inference (vLLM), 1.0 for training.
    """
    check_layout(spec, layout)
    util = gpu_util if gpu_util is not None else (DEFAULT_GPU_UTIL if mode == "inference" else 1.0)
    params = count_params(spec)
    weight_bytes = _component_bytes(weights)
    options = {
        "mode": mode, "kv_dtype": kv_dtype, "prefill_chunk": prefill_chunk, "zero": zero, "recompute": recompute,
        "grad_dtype": grad_dtype, "cuda_context_bytes": cuda_context_bytes, "weight_bytes": weight_bytes,
        "params": params.by_component, "usable": math.floor(util * gpu.visible_memory_bytes),
    }
    stages = [_Stage(spec, layout, s, layers, options) for s, layers in enumerate(stage_layers(spec.num_layers, layout.pp))]
    memories = [stage.memory(batch, context) for stage in stages]
    worst = max(range(len(stages)), key=lambda s: memories[s].total_bytes)
    usable = options["usable"]
    per_gpu = memories[worst].total_bytes
    by_memory = [stage.max_context(batch) for stage in stages]
    memory_limit = None if all(c is None for c in by_memory) else min(c for c in by_memory if c is not None)
    max_context, limit = _cap_context(memory_limit, spec.max_position_embeddings)
    whole_weights = 2 * params.total if mode == "training" else sum(weight_bytes.values())
    summary = kv_cache_summary(spec, kv_dtype)
    assumptions = _assumptions(spec, layout, mode, memories[worst], prefill_chunk, util, cuda_context_bytes, zero, recompute, grad_dtype)
    return MemoryReport(
        mode=mode, gpu=gpu.name, gpu_memory_bytes=gpu.visible_memory_bytes, gpu_util=util, usable_bytes=usable, layout=layout,
        batch=batch, context=context, kv_dtype=kv_dtype, weights_bytes=whole_weights,
        kv_cache_bytes_per_token=summary.kv_cache_bytes_per_token, kv_cache=summary,
        kv_cache_bytes=0 if mode == "training" else kv_cache_bytes(spec, batch, context, kv_dtype),
        per_gpu_bytes=per_gpu, most_loaded=memories[worst], stages=memories, fits=per_gpu <= usable,
        headroom_bytes=usable - per_gpu, headroom_fraction=(usable - per_gpu) / usable,
        max_batch=min(stage.max_batch(context) for stage in stages),
        max_context=max_context, max_context_limit=limit, assumptions=assumptions,
    )


def _cap_context(by_memory: int | None, trained: int | None) -> tuple[int | None, str]:
    """The memory limit, capped at the model's trained context when it has one."""
    if trained is not None and (by_memory is None or by_memory > trained):
        return trained, f"model: max_position_embeddings {trained:,}, memory allows {'any' if by_memory is None else f'{by_memory:,}'}"
    if by_memory is None:
        return None, "none: every layer's cache is capped by a window or chunk"
    return by_memory, "memory"


def _assumptions(spec: ModelSpec, layout: Layout, mode: Mode, worst: GPUMemory, prefill_chunk: int, util: float,
                 cuda_context_bytes: int, zero: ZeroStage, recompute: Recompute, grad_dtype: GradDtype) -> list[str]:
    lines = [
        f"layout {layout.describe()}; the most-loaded GPU is stage {worst.stage} (layers {worst.first_layer}–{worst.last_layer}), "
        f"tp rank {worst.tp_rank}",
        "TP splits query heads, dense and shared-expert MLPs, Mamba mixers, embedding and lm_head; KV heads are split, or "
        "replicated when fewer than TP; the MLA latent projections, norms and router are replicated; each EP rank "
        f"holds E/ep whole experts (etp={layout.expert_tp}); a component's bytes split between its replicated and "
        "sharded parts in proportion to parameters",
        "pipeline stages split layers as vLLM does (the remainder to the stages before the last); embedding on the "
        "first stage, lm_head and final norm on the last",
    ]
    if spec.tie_word_embeddings and layout.pp > 1:
        lines.append("tied embeddings with pp > 1: the last stage holds its own copy of the table as lm_head")
    if spec.mtp_layers:
        lines.append("multi-token-prediction modules are not loaded (vLLM loads them only for MTP speculative decoding)")
    if mode == "training":
        return lines + training_assumptions(zero, recompute, grad_dtype) + [
            "training holds bf16 parameters whatever the checkpoint's format",
            f"CUDA context {cuda_context_bytes / 2**20:.0f} MiB; allocator reserve {ALLOCATOR_RESERVE_FRACTION:.0%} of activations",
        ]
    lines.append("batch = concurrent sequences per model replica (per DP rank); each holds the full context")
    if any(kind != "full" for kind in spec.attention.layer_pattern):
        lines.append("sliding-window and chunked layers keep at most window/chunk tokens per sequence (vLLM's hybrid "
                     "KV-cache manager, SGLang's SWA pool); engines without it allocate full context in every layer")
    if spec.mamba:
        lines.append(f"Mamba state per sequence and layer: conv d_conv·D in bf16 ({CONV_STATE_BYTES} B) and SSM D·d_state in "
                     f"fp32 ({SSM_STATE_BYTES} B), as transformers keeps it; vLLM keeps d_conv − 1 columns and the SSM "
                     "state in the model dtype by default, about half of this")
    if any(spec.mixer(i) in ("mamba2", "linear_attention", "short_conv") for i in range(spec.num_layers)):
        lines.append("Mamba-2, linear-attention and short-convolution state per sequence: conv states in bf16 and recurrent "
                     "states in fp32 (MiniMax's lightning state in bf16), the shapes and dtypes transformers' cache holds; "
                     "vLLM keeps d_conv − 1 conv columns and the recurrent state in the model dtype by default")
    if spec.attention.indexer:
        lines.append("DeepSeek sparse attention: each layer with an indexer also caches one index_head_dim-wide key per "
                     "token at the KV dtype (vLLM stores it in fp8 with a scale, 132 B per token for DeepSeek-V3.2)")
    return lines + inference_assumptions(prefill_chunk, util, cuda_context_bytes)

