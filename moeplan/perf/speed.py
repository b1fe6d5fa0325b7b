"""`moeplan estimate`'s speed: engine steps per operation (moeplan.perf.step), continuous batching at
--concurrency with --isl/--osl, MTP, and the speed-of-light bound beside it. See docs/formulas.md §Speed.

Serving (continuous batching, what `vllm bench serve` measures): C requests in flight, b = C/dp per replica
(at most what its KV cache holds). While its b sequences decode OSL tokens, a replica prefills the b·ISL prompt
tokens of the requests that replace them, in chunks: m = min(OSL, ⌈b·ISL/chunk⌉) of every OSL decode steps
carry b·ISL/m prompt tokens, the others none, so TPOT = ((OSL − m)·t(decode) + m·t(mixed)) / OSL / tokens per
step. TTFT = the prompt's own ⌈ISL/chunk⌉ chunk steps plus the wait behind the prompts ahead of it (an M/D/1
queue of the replica's prefill work). Without --concurrency: one decode step of --batch sequences at --context,
TTFT one prompt of --context tokens. --disaggregated: one pool of disaggregated serving, whose decode steps
carry no prompts (TPOT of a decode pool) and whose prompts are prefilled alone (TTFT of a prefill pool).
--prefill-first (SGLang's scheduler: waiting prompts run in prefill steps of their own before decoding resumes):
the closed loop stays in waves (a wave's requests start decoding at the same step, so they end and return
together); a prompt waits for the (b − 1)/2 prompts of its wave ahead of it (TTFT) and its decode is stalled by the
(b − 1)/2 behind it, so TPOT = t(decode) + (b − 1)/2 · ISL/chunk · t(chunk alone) / OSL.

serving_figures is written once for a scalar layout (estimate, SCALAR namespace) and for arrays of layouts
(plan, numpy): moeplan.plan.model calls it with its own step function over arrays.
"""

import math
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from moeplan.accounting.flops import FlopsPerToken, layer_attention_flops, lm_head_matmul_params
from moeplan.accounting.kv_cache import decode_read_bytes, sequence_kv
from moeplan.accounting.memory import GPUMemory, MemoryReport
from moeplan.accounting.params import layer_params
from moeplan.accounting.weights import WeightMemory
from moeplan.hardware.catalogue import GPUSpec
from moeplan.layout.parallel import Layout
from moeplan.perf.constants import PerfConstants, calibrated
from moeplan.perf.experts import busiest_rank_assignments, busiest_rank_experts, simulated_busiest_rank_load
from moeplan.perf.formats import format_peak_flops
from moeplan.units import counted
from moeplan.namespace import SCALAR
from moeplan.perf.offload import OffloadEstimate
from moeplan.perf.roofline import Bound, Efficiency, StepTime
from moeplan.perf.step import BOUND, OPS, StepShape, step_ops
from moeplan.spec.deployment import Deployment
from moeplan.spec.model import ModelSpec

MIXERS = ("attention", "mamba", "linear_attention", "short_conv")
"""Components whose weights are a layer's sequence-mixer projections."""
BOUNDS: tuple[Bound, ...] = ("memory", "compute", "communication")
"""Bound labels, in the order ties are broken."""


class StepEstimate(BaseModel):
    """One engine step on the busiest GPU of the busiest pipeline stage."""

    decode_sequences: float
    prefill_tokens: float
    experts_touched_per_layer: float
    """Distinct routed experts the busiest EP rank runs per MoE layer (0 for a dense model)."""
    time_s: float
    ops_s: dict[str, float]
    """Seconds per operation (perf.step.OPS), all layers of the stage together."""


class ServingPoint(BaseModel):
    """The continuous-batching steady state the expected figures are for."""

    isl: int
    osl: int
    concurrency: int
    """Requests in flight over the whole deployment."""
    sequences_per_replica: float
    """Sequences decoding together in a replica: concurrency / dp, at most what its KV cache holds."""
    mixed_steps_per_cycle: float
    """Of every OSL decode steps, those that also carry prompt chunks: min(OSL, ⌈sequences·ISL / chunk⌉)."""
    prefill_tokens_per_mixed_step: float
    """Prompt tokens each of them carries: sequences·ISL / mixed steps."""
    prefill_queue_s: float
    """Mean wait of a prompt behind the prompts ahead of it."""


class Expected(BaseModel):
    """The expected speed: per-operation step model, fixed costs, communication, continuous batching."""

    time_per_output_token_s: float
    ttft_s: float
    output_tokens_per_s: float
    """Output tokens per second of the whole deployment."""
    output_tokens_per_s_per_gpu: float
    output_tokens_per_s_per_user: float
    """1 / TPOT."""
    tokens_per_step: float
    """Output tokens a sequence gains per step: 1, or 1 + A + … + A^N with MTP."""
    decode_step: StepEstimate
    """A decode step without prompt tokens."""
    mixed_step: StepEstimate | None = None
    """Serving: a decode step that also carries a chunk of arriving prompts."""
    prefill_step: StepEstimate
    """One chunk of a prompt (the steps TTFT is made of)."""
    serving: ServingPoint | None = None
    breakdown: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Seconds of one decode step per layer of each kind (attention layer, moe layer, every layer) and once per step."""
    notes: list[str] = Field(default_factory=list)


def tokens_per_step(mtp: int, acceptance: float) -> float:
    """Output tokens per sequence per step with N draft tokens each accepted with probability A given the ones
    before it: 1 + A + A² + … + A^N (the verified token plus the accepted prefix)."""
    return 1 + sum(acceptance ** i for i in range(1, mtp + 1))


def serving_shape(d: Deployment, layout: Layout) -> tuple[int, int]:
    """(sequences per replica, tokens per sequence) memory is sized for: ⌈C/dp⌉ at ISL + OSL in serving mode,
    else --batch at --context."""
    if d.concurrency is None:
        return d.batch, d.context
    return math.ceil(d.concurrency / layout.dp), d.isl + d.osl


def decode_context(d: Deployment) -> float:
    """Keys a decode token attends to on average: ISL + OSL/2 in serving mode, else --context."""
    return d.isl + d.osl / 2 if d.concurrency is not None else d.context


def prompt_tokens(d: Deployment) -> int:
    return d.isl if d.concurrency is not None else d.context


def prefill_queue_s(ns, sequences, prefill_s, cycle_s):
    """Mean wait of a prompt behind the prompts ahead of it. Each replica's prefill work is an M/D/1 server of
    service time prefill_s (one prompt) fed by its `sequences` requests, each back every cycle_s (OSL·TPOT + its
    own prefill): ρ = sequences·prefill_s/cycle_s and the wait ρ/(2(1 − ρ))·prefill_s, at most half a wave,
    (sequences − 1)/2·prefill_s, which is also the wait past saturation (ρ ≥ 1)."""
    load = sequences * prefill_s / cycle_s
    wave = ns.max(sequences - 1, 0) / 2 * prefill_s
    return ns.where(load >= 1, wave, ns.min(load / (2 * ns.max(1 - load, 1e-9)) * prefill_s, wave))


def serving_figures(ns, run: Callable[[Any, Any], dict], d: Deployment, c: PerfConstants, requests, dp, pp, layers, num_gpus,
                    capacity=None, ttft: bool = True) -> dict[str, Any]:
    """TPOT, TTFT and output rates from ``run(decode sequences, prefill tokens) -> step_ops result``, for
    ``requests`` in flight per replica of which at most ``capacity`` (what its KV cache holds; None: all) run; every
    argument but ``d`` and ``c`` may be an array (one entry per layout). ttft=False: TPOT and the output rate only.
    See the module docstring."""
    chunk, prompt = d.prefill_chunk, prompt_tokens(d)
    sequences = requests if capacity is None else ns.min(requests, capacity)
    per_step = tokens_per_step(d.mtp, d.acceptance)

    def draft(ops):  # MTP: N passes of one layer-sized module (the step's per-layer time) and the lm_head
        once = ops["lm_head"] + ops["embedding"] + ops["host_overhead"]
        return d.mtp * ((ops["total"] - once) / layers + ops["lm_head"]) if d.mtp else 0.0

    decode = run(sequences, 0.0)
    out = {"decode": decode, "mixed": None}
    waves = d.concurrency is not None and d.prefill_first and not d.disaggregated
    if waves:  # prompts in steps of their own: a wave's prompts are prefilled before it decodes (see wave_stall_s)
        wave_s = ns.max(sequences - 1, 0) / 2 * prompt / chunk * run(0.0 * sequences, chunk * 1.0)["total"]
        step_s, riding = decode["total"] + draft(decode) + wave_s / d.osl, 0.0 * sequences
        out.update(mixed_steps=0.0, prefill_per_mixed_step=0.0)
    elif d.concurrency is not None and not d.disaggregated:
        per_cycle = sequences * d.isl
        mixed_steps = ns.min(d.osl, ns.ceil(per_cycle / chunk))
        mixed = run(sequences, per_cycle / mixed_steps)
        step_s = ((d.osl - mixed_steps) * (decode["total"] + draft(decode)) + mixed_steps * (mixed["total"] + draft(mixed))) / d.osl
        out.update(mixed=mixed, mixed_steps=mixed_steps, prefill_per_mixed_step=per_cycle / mixed_steps)
        riding = sequences
    else:  # one decode step alone (also a disaggregated decode pool: its prompts are prefilled elsewhere)
        step_s, riding = decode["total"] + draft(decode), 0.0 * sequences
        out.update(mixed_steps=0.0, prefill_per_mixed_step=0.0)
    tpot = pp * step_s / per_step
    if not ttft:  # TPOT and output rate only
        out.update(tpot=tpot, rate=sequences * dp / tpot, sequences=sequences)
        return out
    first = run(riding, min(chunk, prompt))
    full = run(riding, chunk * 1.0) if chunk != prompt else first  # a full chunk step, packing prompts when shorter
    own = pp * math.ceil(prompt / chunk) * first["total"]
    if waves:  # each prompt waits for the half of its wave's prompts ahead of it
        queue = pp * wave_s + (requests / sequences - 1) * (d.osl * tpot + own)
        own = own + c.request_overhead_s
    elif d.concurrency is not None:
        prefill_s = pp * prompt / chunk * full["total"]  # one prompt's share of full chunk steps
        queue = prefill_queue_s(ns, sequences, prefill_s, d.osl * tpot + own)
        if d.num_prompts:  # the first wave arrives at once: its prompts wait for half of the wave on average
            queue = queue + ns.min(d.concurrency / d.num_prompts, 1.0) * ns.max(sequences - 1, 0) / 2 * prefill_s
        if not d.disaggregated:  # a closed loop of `requests` clients served `sequences` at a time waits turns
            queue = queue + (requests / sequences - 1) * (d.osl * tpot + own)
        own = own + c.request_overhead_s
    else:
        queue = 0.0 * own
    rate = sequences * dp / tpot
    out.update(first=first, tpot=tpot, ttft=own + queue, queue=queue, rate=rate, rate_per_gpu=rate / num_gpus, sequences=sequences,
               prefill_rate=dp * min(chunk, prompt) / (pp * first["total"]))
    return out


class LayerTable:
    """Per-layer inputs of StageTerms, computed once per model and deployment: parameters by component, MoE flag,
    attention FLOPs per token (decode at the decode context, prefill causal over the prompt), and one layer's KV
    bytes per token of context and at the decode context, per TP size (on demand)."""

    def __init__(self, spec: ModelSpec, d: Deployment):
        self.spec, self.d = spec, d
        self.params = [layer_params(spec, i) for i in range(spec.num_layers)]
        self.moe = [spec.is_moe_layer(i) for i in range(spec.num_layers)]
        kinds = iter(spec.attention_layer_types())
        self.kind = [next(kinds) if spec.is_attention_layer(i) else None for i in range(spec.num_layers)]
        self.context, self.prompt = decode_context(d), prompt_tokens(d)
        attn = spec.attention
        if attn.kind == "mla":  # decode in the absorbed form FlashMLA runs: 2·heads·(2·kv_lora + rope) per key
            decode_per_key = 2 * attn.num_heads * (2 * attn.kv_lora_rank + attn.qk_rope_head_dim)
            prefill_per_key = 2 * attn.num_heads * (attn.qk_nope_head_dim + attn.qk_rope_head_dim + attn.v_head_dim)
        else:
            decode_per_key = prefill_per_key = 2 * attn.num_heads * 2 * spec.head_dim
        keys = max(int(self.context), 1)
        self.decode_flops = [layer_attention_flops(spec, i, k, keys, "decode", decode_per_key) if k else 0.0
                             for i, k in enumerate(self.kind)]
        self.prefill_flops = [layer_attention_flops(spec, i, k, self.prompt, "causal", prefill_per_key) if k else 0.0
                              for i, k in enumerate(self.kind)]
        rows = []
        for i, (counts, moe, kind) in enumerate(zip(self.params, self.moe, self.kind)):
            rows.append({
                "attention_layers": int(kind is not None), "moe_layers": int(moe), "layers": 1,
                "mlp_layers": int(counts.get("shared_experts" if moe else "dense_mlp", 0) > 0),
                "mixer_params": sum(counts.get(n, 0) for n in MIXERS), "mlp_params": counts.get("dense_mlp", 0) + counts.get("shared_experts", 0),
                "router_params": counts.get("router", 0), "expert_params": counts.get("routed_experts", 0),
                "decode_attention_flops": self.decode_flops[i], "prefill_attention_flops": self.prefill_flops[i]})
        self.prefix = {name: _prefix([row[name] for row in rows]) for name in rows[0]} if rows else {}
        self._kv: dict[int, tuple[list[int], list[int]]] = {}
        self._caches: dict[int, list] = {}

    def layer_caches(self, tp: int) -> list:
        """Each layer's sequence_kv on a TP rank, once per tp (plan's KV memory table reads them too)."""
        if tp not in self._caches:
            self._caches[tp] = [sequence_kv(self.spec, self.d.kv_dtype, [i], tp) for i in range(self.spec.num_layers)]
        return self._caches[tp]

    def kv(self, tp: int) -> tuple[list[int], list[int]]:
        """Prefix sums over layers on a TP rank of (what one decode step reads of one sequence's cache at the decode
        context: all of it, or DeepSeek sparse attention's selected tokens; one token's cache)."""
        if tp not in self._kv:
            keys, spec, dtype = max(int(self.context), 1), self.spec, self.d.kv_dtype
            read = [decode_read_bytes(spec, dtype, keys, [i], tp) for i in range(spec.num_layers)]
            self._kv[tp] = (_prefix(read), _prefix([cache.bytes(1) for cache in self.layer_caches(tp)]))
        return self._kv[tp]


def _prefix(values: list) -> list:
    """[0, v0, v0 + v1, …]: the sum over layers [a, b) is prefix[b] − prefix[a]."""
    out = [0]
    for value in values:
        out.append(out[-1] + value)
    return out


class StageTerms:
    """The layout-light inputs of StepShape for one pipeline stage on one TP size: layer counts, parameter totals,
    KV bytes and attention FLOPs per token (differences of LayerTable's prefix sums, the same in estimate and plan).
    `moeplan plan` computes them once per distinct (stage, tp)."""

    def __init__(self, table: LayerTable, layers: range, tp: int, last: bool):
        a, b = layers.start, layers.stop
        context_bytes, token_bytes = table.kv(tp)
        self.values = {name: float(prefix[b] - prefix[a]) for name, prefix in table.prefix.items()}
        self.values.update(lm_head_params=float(lm_head_matmul_params(table.spec)) if last else 0.0,
                           kv_context_bytes=float(context_bytes[b] - context_bytes[a]),
                           kv_token_bytes=float(token_bytes[b] - token_bytes[a]))


def format_peaks(spec: ModelSpec, gpu: GPUSpec, weights: WeightMemory) -> tuple[dict[str, float], list[str]]:
    """Tensor peak of each weight group's format on this GPU, and notes where a format runs at a lower rate."""
    fmt, peaks, notes = weights.formats, {}, []
    groups = {"mixer": "attention", "mlp": "dense_mlp" if "dense_mlp" in fmt else "shared_experts",
              "expert": "routed_experts", "lm_head": "lm_head"}
    for group, component in groups.items():
        peak, note = format_peak_flops(gpu, fmt.get(component, "bf16"))
        peaks[group] = peak
        if note and note not in notes and component in fmt:
            notes.append(note)
    return peaks, notes


def held_bytes(spec: ModelSpec, held: dict[str, int], last: bool) -> dict[str, float]:
    """A GPU's weights by the groups StepShape reads (a tied table is read whole as lm_head on the last stage)."""
    tied = spec.tie_word_embeddings and last and not held.get("lm_head", 0)
    return {"mixer_bytes": float(sum(held.get(m, 0) for m in MIXERS)),
            "mlp_bytes": float(held.get("dense_mlp", 0) + held.get("shared_experts", 0)),
            "expert_bytes": float(held.get("routed_experts", 0)), "router_bytes": float(held.get("router", 0)),
            "lm_head_bytes": float(held.get("embedding", 0) if tied else held.get("lm_head", 0)),
            "embedding_bytes": 0.0 if tied else float(held.get("embedding", 0))}


def fixed_terms(spec: ModelSpec, d: Deployment, gpu: GPUSpec, peaks: dict[str, float]) -> dict[str, Any]:
    """StepShape fields that depend on neither the layout nor the step."""
    moe = spec.moe
    return {"mtp": float(d.mtp), "num_experts": float(spec.num_experts), "vocab": float(spec.vocab_size),
            "hidden": float(spec.hidden_size), "dispatch_width": float((moe and moe.latent_size) or spec.hidden_size),
            "top_k": float(moe.top_k if moe else 1),
            "dispatch_bytes": 1.0 if d.dispatch_dtype == "fp8" else 2.0, "hbm_bytes_per_s": gpu.hbm_bytes_per_s,
            "mixer_peak": peaks["mixer"], "mlp_peak": peaks["mlp"], "expert_peak": peaks["expert"],
            "lm_head_peak": peaks["lm_head"], "bf16_peak": gpu.bf16_flops_per_s,
            "link_bytes_per_s": gpu.link_bytes_per_s_per_direction or gpu.pcie_bytes_per_s_per_direction,
            "nic_bytes_per_s": d.nic_gb_s * 1e9, "gpus_per_node": float(d.gpus_per_node), "cuda_graphs": not d.enforce_eager}


def expert_load(spec: ModelSpec, routed_tokens: int, ep: int, routing: str = "uniform") -> tuple[float, float, float]:
    """(distinct experts, assignments, busiest over mean copies) on the busiest EP rank for ``routed_tokens`` tokens
    routed together: closed forms for uniform routing (the all-to-all at the mean rank), else the seeded simulation."""
    moe = spec.moe
    if moe is None:
        return 0.0, 0.0, 1.0
    groups = (moe.num_expert_groups, moe.topk_groups) if moe.topk_groups < moe.num_expert_groups else None
    if routing != "uniform":
        return simulated_busiest_rank_load(moe.num_experts, moe.top_k, routed_tokens, ep, routing, groups)
    return (busiest_rank_experts(moe.num_experts, moe.top_k, routed_tokens, ep, groups),
            busiest_rank_assignments(moe.top_k, routed_tokens, ep), 1.0)


def routed_tokens(decode, prefill, mtp: int, group_replicas):
    """Tokens one copy of the experts routes together in a step (an integer: ⌈(decode·(1 + mtp) + prefill)·replicas⌉)."""
    return (decode * (1 + mtp) + prefill) * group_replicas


class _Layout:
    """One layout's StepShape inputs (scalars) and its step function."""

    def __init__(self, spec: ModelSpec, d: Deployment, layout: Layout, gpu: GPUSpec, weights: WeightMemory, worst: GPUMemory):
        self.spec, self.d, self.layout = spec, d, layout
        last = worst.stage == layout.pp - 1
        self.terms = StageTerms(LayerTable(spec, d), range(worst.first_layer, worst.last_layer + 1), layout.tp, last)
        peaks, self.notes = format_peaks(spec, gpu, weights)
        self.base = {**fixed_terms(spec, d, gpu, peaks), **self.terms.values,
                     **held_bytes(spec, worst.weights_by_component_bytes, last),
                     "tp": float(layout.tp), "ep": float(layout.ep), "etp": float(layout.expert_tp),
                     "group_replicas": float(layout.replicas_per_expert_group)}

    def shape(self, decode: float, prefill: float) -> StepShape:
        tokens = math.ceil(routed_tokens(decode, prefill, self.d.mtp, self.layout.replicas_per_expert_group) - 1e-9)
        touched, rows, imbalance = expert_load(self.spec, tokens, self.layout.ep, self.d.routing)
        return StepShape(decode=decode, prefill=prefill, experts_touched=touched, expert_rows=rows, dispatch_imbalance=imbalance,
                         **self.base)

    def run(self, constants: PerfConstants) -> Callable[[float, float], dict]:
        return lambda decode, prefill: step_ops(SCALAR, self.shape(decode, prefill), constants)


def _step(ops: dict[str, float], shape: StepShape) -> StepEstimate:
    return StepEstimate(decode_sequences=shape.decode, prefill_tokens=shape.prefill, experts_touched_per_layer=shape.experts_touched,
                        time_s=ops["total"], ops_s={name: ops[name] for name in OPS})


def _breakdown(terms: StageTerms, ops: dict[str, float]) -> dict[str, dict[str, float]]:
    """Seconds of one decode step per layer of each kind: the stage's per-op times over the layers that run them."""
    v = terms.values
    per = lambda name, count: ops[name] / count if count else 0.0  # noqa: E731
    out = {"attention layer": {"attention_proj": per("attention_proj", v["attention_layers"]),
                               "attention": per("attention", v["attention_layers"])}}
    if v["moe_layers"]:
        out["moe layer"] = {name: per(name, v["moe_layers"]) for name in ("router", "routed_experts", "ep_dispatch_combine")}
    out["every layer"] = {name: per(name, v["layers"]) for name in ("mlp", "elementwise", "tp_all_reduce", "kernel_launches")}
    out["once per step"] = {name: ops[name] for name in ("lm_head", "embedding", "host_overhead")}
    return out


class Throughput(BaseModel):
    """Speed of the deployment: the expected figures first (what `check` asserts and `plan` ranks by), the
    speed-of-light bound beside them (the same operations at catalogue peaks, no fixed costs: no step is faster)."""

    time_per_output_token_s: float
    """Expected TPOT."""
    ttft_s: float
    """Expected time to first token."""
    decode_tokens_per_s: float
    """Expected output tokens per second of the whole deployment."""
    tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float
    prefill_tokens_per_s: float
    """Expected prompt tokens per second of the whole deployment, prefill alone (one chunk step per replica)."""
    experts_touched_per_layer: float
    """Distinct routed experts one decode step reads per MoE layer on the busiest expert-parallel rank."""
    expected: Expected
    roofline_time_per_output_token_s: float
    """The bound on TPOT."""
    roofline_ttft_s: float
    roofline_decode_tokens_per_s: float
    decode: StepTime
    """Bound terms of one decode step (bytes and FLOPs at catalogue peaks, collectives at link rate)."""
    prefill: StepTime
    """Bound terms of one prompt chunk."""
    bound: Bound
    """What bounds the decode step: the largest of its memory, compute and communication terms."""
    offload: OffloadEstimate | None = None
    """Experts in host RAM (--offload-experts): filled by the offload model."""
    assumptions: list[str]


def bound_step(ops: dict[str, float], tokens: float) -> StepTime:
    """A step's roofline terms from step_ops at BOUND constants: max(memory, compute) + communication."""
    terms = {"memory": ops["memory_s"], "compute": ops["compute_s"], "communication": ops["communication_s"]}
    return StepTime(tokens=math.ceil(tokens), bytes_read=int(ops["bytes"]), flops=ops["flops"], memory_s=ops["memory_s"],
                    compute_s=ops["compute_s"], communication_s=ops["communication_s"], bound=max(terms, key=terms.get),
                    time_s=max(ops["memory_s"], ops["compute_s"]) + ops["communication_s"])


def throughput(spec: ModelSpec, d: Deployment, layout: Layout, gpu: GPUSpec, weights: WeightMemory, memory: MemoryReport,
               flops: FlopsPerToken, eff: Efficiency | None = None, constants: PerfConstants | None = None) -> Throughput:
    """Expected speed and bound of a deployment whose memory report is ``memory`` (sized by serving_shape); a
    calibration's efficiencies ``eff`` replace the constants they measured (perf.constants.calibrated)."""
    c = constants or calibrated(eff)
    model = _Layout(spec, d, layout, gpu, weights, memory.most_loaded)
    requests = d.batch * 1.0 if d.concurrency is None else d.concurrency / layout.dp
    capacity = max(memory.max_batch, 1) if d.concurrency is not None else None
    args = (requests, layout.dp, layout.pp, model.terms.values["layers"], layout.num_gpus, capacity)
    f = serving_figures(SCALAR, model.run(c), d, c, *args)
    b = serving_figures(SCALAR, model.run(BOUND), d, BOUND, *args)
    sequences = f["sequences"]
    prompt = min(d.prefill_chunk, prompt_tokens(d))
    decode = _step(f["decode"], model.shape(sequences, 0.0))
    serving = None
    if d.concurrency is not None:
        serving = ServingPoint(isl=d.isl, osl=d.osl, concurrency=d.concurrency, sequences_per_replica=sequences,
                               mixed_steps_per_cycle=f["mixed_steps"], prefill_tokens_per_mixed_step=f["prefill_per_mixed_step"],
                               prefill_queue_s=f["queue"])
    riding = sequences if d.concurrency is not None and not (d.disaggregated or d.prefill_first) else 0.0
    expected = Expected(
        time_per_output_token_s=f["tpot"], ttft_s=f["ttft"], output_tokens_per_s=f["rate"], output_tokens_per_s_per_gpu=f["rate_per_gpu"],
        output_tokens_per_s_per_user=1 / f["tpot"], tokens_per_step=tokens_per_step(d.mtp, d.acceptance), decode_step=decode,
        mixed_step=_step(f["mixed"], model.shape(sequences, f["prefill_per_mixed_step"])) if f["mixed"] else None,
        prefill_step=_step(f["first"], model.shape(riding, prompt)), serving=serving,
        breakdown=_breakdown(model.terms, f["decode"]), notes=model.notes)
    bound_decode = bound_step(b["decode"], sequences * (1 + d.mtp))
    return Throughput(
        time_per_output_token_s=f["tpot"], ttft_s=f["ttft"], decode_tokens_per_s=f["rate"], tokens_per_s_per_gpu=f["rate_per_gpu"],
        tokens_per_s_per_user=1 / f["tpot"], prefill_tokens_per_s=f["prefill_rate"],
        experts_touched_per_layer=decode.experts_touched_per_layer if spec.moe else 1.0, expected=expected,
        roofline_time_per_output_token_s=b["tpot"], roofline_ttft_s=b["ttft"], roofline_decode_tokens_per_s=b["rate"],
        decode=bound_decode, prefill=bound_step(b["first"], prompt + riding), bound=bound_decode.bound,
        assumptions=[*_assumptions(d, layout, gpu, c), *model.notes],
    )


def _assumptions(d: Deployment, layout: Layout, gpu: GPUSpec, c: PerfConstants) -> list[str]:
    calibrated = [f"speed constants measured on {c.measured_on} (moeplan profile calibration)"] if c.measured_on else []
    if c.measured_on and c.measured_on != gpu.name:
        calibrated.append(f"warning: the calibration was measured on {c.measured_on}, not on {gpu.name}")
    steps = (f"prompts run in prefill steps of their own ({d.prefill_chunk} tokens) before their wave decodes (--prefill-first)"
             if d.prefill_first else f"decode steps carry the chunked prefill ({d.prefill_chunk} tokens) of arriving requests")
    serving = (f"continuous batching: {d.concurrency} requests in flight, ISL {d.isl}, OSL {d.osl}; {steps}" if d.concurrency is not None else
               f"one decode step of {counted(d.batch, 'sequence')} at context {d.context:,}; TTFT one {d.context:,}-token prompt")
    return [
        *calibrated, serving,
        f"expected: each op at {c.hbm_fraction:.0%} of {gpu.hbm_bytes_per_s / 1e12:.2f} TB/s HBM or {c.gemm_fraction:.0%} of its "
        f"format's tensor peak, GEMM rows padded to {c.gemm_tile_rows}, {c.kernel_s * 1e6:g} µs per kernel "
        f"({'CUDA graphs' if not d.enforce_eager else 'no CUDA graphs: ' + format(c.eager_kernel_s * 1e6, 'g') + ' µs'}), "
        f"{c.step_overhead_s * 1e3:g} ms host time per step, collectives α + size/β; nothing overlaps",
        "bound: the same operations at catalogue peaks without fixed costs or latency (no real step is faster)",
        ("routed experts: one EP rank holds them all" if layout.ep == 1 else
         f"routed experts: the busiest of {layout.ep} EP ranks sets the step") + "; pipeline stages run one after another for a "
        f"token (TPOT = {layout.pp} × stage step)",
    ]
