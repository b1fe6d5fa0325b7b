"""moeplan estimate's memory and speed model, evaluated over many layouts at once.

Everything that does not depend on the layout comes from one scalar estimate of the 1-GPU layout
(GPU, weight formats, usable memory, parameters). What depends on the layout is decomposed into tables
computed by the scalar functions themselves, once per distinct value of the layout sizes they depend on,
then combined per layout with numpy:

- weights: each part's rank-0 share (``rank_amount``; rank 0 holds the most of every part) per distinct
  (tp, ep, etp), summed per position and weight group, prefix-summed so a stage's weights are two lookups;
- KV cache: ``sequence_kv`` of each single layer per distinct tp (perf.speed.LayerTable.layer_caches, which the speed
  model reads too; the cache is additive over layers);
- inference activations: ``inference_activations`` workspaces per distinct (tp, batch) and ``fused_moe_bytes``
  per distinct (tp, dp, ep, etp, batch) — a stage's peak is the hidden states plus the largest workspace of the
  layer kinds it holds; training activations: ``stage_activation`` per distinct (pp, stage) and
  ``activation_bytes`` on arrays; training state: ``training_state_bytes`` on arrays;
- speed: perf.speed.StageTerms per distinct (pp, stage, tp), the busiest EP rank's expert load per distinct
  (ep, routed tokens), and then perf.step.step_ops and perf.speed.serving_figures themselves, over arrays —
  the very formulas `moeplan estimate` evaluates on one layout.

Each layout's GPU memory is evaluated for every pipeline stage (layouts grouped by pp) and the
most-loaded stage, the first on ties as memory_report picks it, decides fit and feeds the speed model.
"""

from typing import NamedTuple

import numpy as np

from moeplan.accounting.activations import ALLOCATOR_RESERVE_FRACTION, fused_moe_bytes, inference_activations
from moeplan.accounting.shard import placed_amounts, rank_amount
from moeplan.accounting.training import Coefficients, activation_bytes, stage_activation, training_state_bytes
from moeplan.layout.parallel import Layout, stage_layers
from moeplan.namespace import numpy_namespace
from moeplan.perf.constants import PerfConstants, calibrated
from moeplan.perf.roofline import Efficiency
from moeplan.perf.speed import MIXERS, LayerTable, StageTerms, expert_load, fixed_terms, format_peaks, routed_tokens, serving_figures
from moeplan.perf.step import BOUND, StepShape, step_ops
from moeplan.plan.layouts import LayoutArrays
from moeplan.report.estimate import EstimateReport, build_estimate
from moeplan.spec.deployment import Deployment
from moeplan.spec.resolve import ResolvedSpec

GROUPS = {"mixer": MIXERS, "mlp": ("dense_mlp", "shared_experts"), "expert": ("routed_experts",), "router": ("router",),
          "lm_head": ("lm_head",), "embedding": ("embedding",)}
"""Weight groups the speed model reads (perf.speed.held_bytes); norms are held but not read by it."""


class LayoutMetrics(NamedTuple):
    """Per layout (arrays): the most-loaded GPU's memory, in bytes, and the expected speed beside its bound."""

    per_gpu_bytes: np.ndarray
    weights_bytes: np.ndarray
    """Weights on that GPU (training: bf16 parameters after ZeRO sharding)."""
    state_bytes: np.ndarray
    """Gradients and optimizer states (training; 0 for inference)."""
    kv_cache_bytes: np.ndarray
    activation_bytes: np.ndarray
    overhead_bytes: np.ndarray
    """CUDA context and allocator reserve."""
    worst_stage: np.ndarray
    decode_tokens_per_s: np.ndarray
    time_per_output_token_s: np.ndarray
    prefill_tokens_per_s: np.ndarray
    ttft_s: np.ndarray
    roofline_time_per_output_token_s: np.ndarray
    bound: np.ndarray
    """Decode bound, an index into perf.speed.BOUNDS."""


def _packed(columns) -> tuple[np.ndarray, list[int]]:
    """The stacked non-negative int columns as one mixed-radix key (np.unique sorts it far faster than rows)."""
    radices = [int(c.max()) + 1 for c in columns]
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column, radix in zip(columns, radices):
        key = key * radix + column
    return key, radices


def unique_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows of the stacked non-negative int columns, index of each input row among them)."""
    key, radices = _packed(columns)
    values, inverse = np.unique(key, return_inverse=True)
    rows = []
    for radix in reversed(radices):
        values, digit = np.divmod(values, radix)
        rows.append(digit)
    return np.stack(rows[::-1], axis=1), inverse


def representatives(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of one input row of each distinct row of the stacked non-negative int columns, ascending, index of each
    input row among the distinct ones)."""
    _, inverse = np.unique(_packed(columns)[0], return_inverse=True)
    one = np.empty(int(inverse.max()) + 1, dtype=np.int64)
    one[inverse] = np.arange(len(inverse))  # any row of each: they are alike in everything the caller reads
    return one, inverse


class _PerLayout(dict):
    """step_ops results evaluated once per distinct row, read per layout: ``ops[name][inverse]``, on first use."""

    def __init__(self, ops: dict, inverse: np.ndarray):
        super().__init__()
        self._ops, self._inverse, self._rows = ops, inverse, len(ops["total"])

    def __missing__(self, name: str) -> np.ndarray:
        self[name] = value = np.broadcast_to(self._ops[name], self._rows)[self._inverse]
        return value


def prefix_sums(rows: np.ndarray) -> np.ndarray:
    """Row-wise cumulative sums with a leading 0: the sum of columns [a, b) is prefix[:, b] − prefix[:, a]."""
    return np.concatenate([np.zeros((len(rows), 1), np.int64), np.cumsum(rows, axis=1)], axis=1)


def reference_estimate(resolved: ResolvedSpec, deployment: Deployment, efficiency: Efficiency | None = None) -> EstimateReport:
    """The scalar estimate of the 1-GPU layout (valid for every model): the source of every
    layout-independent figure."""
    single = deployment.model_copy(update={"num_gpus": None, "tp": 1, "ep": 1, "pp": 1, "dp": 1, "etp": None})
    return build_estimate(resolved, single, efficiency)


class LayoutModel:
    """The per-model, per-deployment tables; ``evaluate`` applies them to arrays of layouts."""

    def __init__(self, resolved: ResolvedSpec, deployment: Deployment, efficiency: Efficiency | None = None):
        self.reference = ref = reference_estimate(resolved, deployment, efficiency)
        self.spec, self.d, self.gpu = ref.spec, deployment, ref.gpu
        self.constants = calibrated(efficiency)
        self.training = deployment.mode == "training"
        self.serving = deployment.concurrency is not None
        self.context = deployment.isl + deployment.osl if self.serving else deployment.context
        spec = self.spec
        self.usable_bytes = ref.memory.usable_bytes
        self.context_bytes = ref.memory.most_loaded.cuda_context_bytes
        amounts = ref.params.by_component if self.training else ref.weights.by_component_bytes
        single = placed_amounts(spec, amounts, 1)
        self.parts = [(part, amount) for part, amount, _ in single]
        self.pipelined_parts = [(part, amount) for part, amount, _ in placed_amounts(spec, amounts, 2)[len(single):]]
        """Parts that exist only with pp > 1 (the last stage's own copy of a tied embedding), on the last stage."""
        layers = range(spec.num_layers)
        self.is_attention = np.array([spec.is_attention_layer(i) for i in layers])
        self.is_moe = np.array([spec.is_moe_layer(i) for i in layers])
        self._attention_prefix, self._moe_prefix = (np.cumsum([0, *flags], dtype=np.int64) for flags in (self.is_attention, self.is_moe))
        """Layers of each kind before layer i (a stage's count is a difference)."""
        peaks, _ = format_peaks(spec, self.gpu, ref.weights)
        self.fixed = fixed_terms(spec, deployment, self.gpu, peaks)
        self.layer_table = LayerTable(spec, deployment)
        self._stages: dict[int, list[range]] = {}

    def stages(self, pp: int) -> list[range]:
        """The layers of each of ``pp`` pipeline stages (layout.parallel.stage_layers), computed once per pp."""
        if pp not in self._stages:
            self._stages[pp] = stage_layers(self.spec.num_layers, pp)
        return self._stages[pp]

    def batch(self, layouts: LayoutArrays) -> np.ndarray:
        """Sequences per replica memory is sized for (perf.speed.serving_shape): ⌈C/dp⌉ serving, else --batch."""
        if self.serving:
            return -(-self.d.concurrency // layouts.dp)
        return np.full(len(layouts), self.d.batch, dtype=np.int64)

    def memory_sizes(self, layouts: LayoutArrays) -> tuple[np.ndarray, ...]:
        """The sizes a layout's memory and its StepShape fields depend on: pp, tp, ep, etp and the batch memory is
        sized for (serving: ⌈C/dp⌉); in training also dp (ZeRO shards by it). Layouts alike in these share them."""
        sizes = (layouts.pp, layouts.tp, layouts.ep, layouts.expert_tp)
        if self.training:
            return (*sizes, layouts.dp)
        return (*sizes, self.batch(layouts)) if self.serving else sizes

    # --- tables over distinct layout sizes -------------------------------------------------------------

    def _weight_tables(self, keys: np.ndarray) -> dict[str, np.ndarray]:
        """Per distinct (tp, ep, etp): prefix sums over positions (−1 … L, shifted by one) of rank 0's
        non-expert and expert amounts and of each weight group, its amount of the pp > 1 parts, and its
        amount per layer."""
        spec, positions = self.spec, self.spec.num_layers + 2
        # a rank's share of a part does not depend on the part's layer: one rank_amount per part alike in its other
        # fields, and how many such parts each position holds
        alike: dict = {}
        count = np.zeros((len(self.parts), positions), dtype=np.int64)
        for part, amount in self.parts:
            count[alike.setdefault((part._replace(position=0), amount), len(alike)), part.position + 1] += 1
        count, distinct = count[:len(alike)], list(alike)
        expert = np.array([p.split.startswith("expert") for p, _ in distinct])
        held = np.zeros((len(keys), len(distinct)), dtype=np.int64)
        extra = np.zeros(len(keys), dtype=np.int64)
        for k, (tp, ep, etp) in enumerate(keys.tolist()):
            layout = Layout(tp=tp, ep=ep, dp=ep * etp, etp=etp)
            held[k] = [rank_amount(part, amount, spec, layout, 0, 0) for part, amount in distinct]
            extra[k] = sum(rank_amount(part, amount, spec, layout, 0, 0) for part, amount in self.pipelined_parts)
        tables = {"other": prefix_sums((held * ~expert) @ count), "expert": prefix_sums((held * expert) @ count),
                  "extra": extra, "per_layer": (held @ count)[:, 1:-1]}
        for group, components in GROUPS.items():
            member = np.array([p.component in components for p, _ in distinct])
            tables[f"group_{group}"] = prefix_sums((held * member) @ count)
        return tables

    def _kv_table(self, tps: np.ndarray) -> np.ndarray:
        """Per distinct tp: prefix sums over layers of one sequence's cache at the context memory is sized for."""
        per_layer = [[cache.bytes(self.context) for cache in self.layer_table.layer_caches(tp)] for tp in tps.tolist()]
        return prefix_sums(np.array(per_layer, dtype=np.int64))

    def _workspaces(self, layouts: LayoutArrays) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per layout, each layer kind's inference workspace bytes and the hidden-state bytes, evaluated once
        per distinct (tp, batch)."""
        d, kinds = self.d, ("attention", "mamba", "dense_mlp", "logits")
        layers = range(self.spec.num_layers)  # each kind's workspace is the same in every layer of that kind
        rows, inverse = unique_rows(layouts.tp, self.batch(layouts))
        steps = [inference_activations(self.spec, Layout(tp=tp), layers, batch, d.prefill_chunk, True) for tp, batch in rows.tolist()]
        table = {kind: np.array([s.workspace_bytes.get(kind, 0) for s in steps], dtype=np.int64)[inverse] for kind in kinds}
        return table, np.array([s.hidden_bytes for s in steps], dtype=np.int64)[inverse]

    def _moe_workspace(self, layouts: LayoutArrays) -> np.ndarray:
        """Per layout, fused_moe_bytes (0 for a dense model) at the step's tokens, max(chunk, batch), evaluated
        once per distinct (tp, replicas per expert group, etp, batch)."""
        if not self.is_moe.any():
            return np.zeros(len(layouts), dtype=np.int64)
        group = -(-layouts.ep * layouts.expert_tp // layouts.tp)  # fused_moe_bytes reads tp, etp and replicas per group
        rows, inverse = unique_rows(layouts.tp, group, layouts.expert_tp, self.batch(layouts))
        values = [fused_moe_bytes(self.spec, Layout(tp=tp, dp=r, ep=r * tp // etp if r > 1 else 1, etp=etp), max(self.d.prefill_chunk, batch))
                  for tp, r, etp, batch in rows.tolist()]
        return np.array(values, dtype=np.int64)[inverse]

    # --- memory --------------------------------------------------------------------------------------

    def _stage_rows(self, pp: np.ndarray) -> dict[str, np.ndarray]:
        """Every (layout, stage) pair of layouts with pipeline sizes ``pp`` as one row (a layout's rows together, stage
        order): its layout, stage, index among the distinct (pp, stage) pairs and first and last layer."""
        owner = np.repeat(np.arange(len(pp)), pp)
        stage = np.arange(len(owner)) - (np.cumsum(pp) - pp)[owner]
        sizes = np.unique(pp).tolist()
        offset = np.zeros(sizes[-1] + 1, dtype=np.int64)
        offset[sizes] = np.cumsum([0, *sizes[:-1]])
        pairs = [r for size in sizes for r in self.stages(size)]
        pair = offset[pp][owner] + stage
        first, last = (np.array([r[i] for r in pairs])[pair] for i in (0, -1))
        return {"owner": owner, "stage": stage, "pair": pair, "first": first, "last": last, "sizes": sizes}

    def _stage_memory(self, group: LayoutArrays, rows: dict, tables: dict) -> dict[str, np.ndarray]:
        """Every stage of every layout: one row per (layout, stage) pair (``rows``, from _stage_rows)."""
        spec = self.spec
        owner, stage, first, last = rows["owner"], rows["stage"], rows["first"], rows["last"]
        pp = group.pp[owner]
        is_last = stage == pp - 1
        low = np.where(stage == 0, -1, first) + 1  # prefix indices of the positions the stage holds
        high = np.where(is_last, spec.num_layers, last) + 2
        key = tables["key"][owner]
        other = tables["other"][key, high] - tables["other"][key, low]
        expert = tables["expert"][key, high] - tables["expert"][key, low]
        other += np.where(is_last & (pp > 1), tables["extra"][key], 0)
        layers = last - first + 1
        moe = self._moe_prefix[last + 1] - self._moe_prefix[first]
        out = {"expert": expert, "held": other + expert, "layers": layers, "moe_layers": moe, "low": low, "high": high}
        if self.training:
            out.update(self._training_terms(group, rows, other, expert, tables))
        else:
            out.update(self._inference_terms(rows, layers, moe, is_last, other, expert, tables))
        reserve = np.ceil(ALLOCATOR_RESERVE_FRACTION * out["activations"]).astype(np.int64)
        out["overhead"] = self.context_bytes + reserve
        out["total"] = out["weights"] + out["state"] + out["kv"] + out["activations"] + out["overhead"]
        return out

    def _training_terms(self, group: LayoutArrays, rows: dict, other: np.ndarray, expert: np.ndarray, tables: dict) -> dict:
        """ZeRO-sharded state (with one gathered layer at ZeRO-3) and 1F1B activations of every stage."""
        d, owner, sizes = self.d, rows["owner"], rows["sizes"]
        gathered = 0
        if d.zero == 3:  # per weight key and (pp, stage) pair: the stage's largest layer
            largest = np.concatenate([np.maximum.reduceat(tables["per_layer"], [r[0] for r in self.stages(pp)], axis=1) for pp in sizes], axis=1)
            gathered = largest[tables["key"][owner], rows["pair"]]
        params, grads, optimizer = (np.asarray(x).astype(np.int64) for x in training_state_bytes(
            numpy_namespace(), other, expert, group.dp[owner], group.expert_replicas[owner], d.zero, d.grad_dtype, gathered))
        coefficients = [stage_activation(self.spec, Layout(pp=pp), s, r, d.recompute) for pp in sizes for s, r in enumerate(self.stages(pp))]
        linear, quadratic = (np.array(c, dtype=np.int64)[rows["pair"]] for c in zip(*coefficients))
        activations = activation_bytes(Coefficients(linear, quadratic), d.batch, d.context, group.tp[owner])
        # training holds bf16 parameters: what a decode step would read
        return {"weights": params, "state": grads + optimizer, "kv": np.zeros_like(params), "activations": activations,
                "held": 2 * (other + expert), "expert": 2 * expert}

    def _inference_terms(self, rows: dict, layers: np.ndarray, moe: np.ndarray, is_last: np.ndarray, other: np.ndarray,
                         expert: np.ndarray, tables: dict) -> dict:
        """KV cache of the batch and the activation peak of every stage: hidden states plus the largest
        workspace among the layer kinds the stage holds (logits on the last stage)."""
        owner, first = rows["owner"], rows["first"]
        attention = self._attention_prefix[first + layers] - self._attention_prefix[first]
        tp, ws = tables["tp"][owner], {kind: values[owner] for kind, values in tables["workspace"].items()}
        kv = tables["batch"][owner] * (tables["kv"][tp, first + layers] - tables["kv"][tp, first])
        present = lambda flags, values: np.where(flags, values, 0)  # noqa: E731
        largest = present(attention > 0, ws["attention"])
        for flags, values in ((layers - attention > 0, ws["mamba"]), (moe > 0, tables["moe_workspace"][owner]),
                              (layers - moe > 0, ws["dense_mlp"]), (is_last, ws["logits"])):
            np.maximum(largest, present(flags, values), out=largest)
        return {"weights": other + expert, "state": np.zeros_like(kv), "kv": kv, "activations": tables["hidden"][owner] + largest}

    def _tables(self, layouts: LayoutArrays) -> dict:
        keys, key = unique_rows(layouts.tp, layouts.ep, layouts.expert_tp)
        tables = {"key": key, **self._weight_tables(keys)}
        if not self.training:
            tps, tp = np.unique(layouts.tp, return_inverse=True)
            workspace, hidden = self._workspaces(layouts)
            tables.update(tp=tp, kv=self._kv_table(tps), workspace=workspace, hidden=hidden, batch=self.batch(layouts),
                          moe_workspace=self._moe_workspace(layouts))
        return tables

    def memory(self, layouts: LayoutArrays) -> dict[str, np.ndarray]:
        """Per layout, the most-loaded stage's memory terms and what the speed model needs of it."""
        tables = self._tables(layouts)
        names = ("total", "weights", "state", "kv", "activations", "overhead", "held", "expert", "layers", "moe_layers", "low", "high")
        rows = self._stage_rows(layouts.pp)
        stages, owner = self._stage_memory(layouts, rows, tables), rows["owner"]
        # the most-loaded stage of each layout, the first on ties
        starts = np.cumsum(layouts.pp) - layouts.pp
        peak = np.maximum.reduceat(stages["total"], starts)
        worst = np.minimum.reduceat(np.where(stages["total"] == peak[owner], np.arange(len(owner)), len(owner)), starts)
        out = {name: stages[name][worst] for name in names}
        out["stage"] = worst - starts
        scale = 2 if self.training else 1  # training holds bf16 parameters: what a step reads
        for name in GROUPS:  # the weight groups of the most-loaded stage
            table = tables[f"group_{name}"]
            out[f"group_{name}"] = scale * (table[tables["key"], out["high"]] - table[tables["key"], out["low"]])
        last = (out["stage"] == layouts.pp - 1) & (layouts.pp > 1)
        out["group_lm_head"] += np.where(last, scale * tables["extra"][tables["key"]], 0)  # a tied table's own copy
        return out

    # --- speed -------------------------------------------------------------------------------------------

    def _stage_terms(self, layouts: LayoutArrays, stage: np.ndarray) -> dict[str, np.ndarray]:
        """Per layout, perf.speed.StageTerms of its most-loaded stage, once per distinct (pp, stage, tp)."""
        rows, inverse = unique_rows(layouts.pp, stage, layouts.tp)
        terms = [StageTerms(self.layer_table, self.stages(pp)[s], tp, s == pp - 1).values for pp, s, tp in rows.tolist()]
        return {name: np.array([t[name] for t in terms])[inverse] for name in terms[0]}

    def _shape(self, layouts: LayoutArrays, m: dict[str, np.ndarray]) -> dict:
        """The layout-dependent StepShape fields (float arrays), as perf.speed._Layout builds them for one layout."""
        last = m["stage"] == layouts.pp - 1
        tied = self.spec.tie_word_embeddings & last & (m["group_lm_head"] == 0)
        held = {f"{name}_bytes": m[f"group_{name}"].astype(float) for name in GROUPS}
        held["lm_head_bytes"] = np.where(tied, m["group_embedding"], m["group_lm_head"]).astype(float)
        held["embedding_bytes"] = np.where(tied, 0, m["group_embedding"]).astype(float)
        return {**self.fixed, **self._stage_terms(layouts, m["stage"]), **held, "tp": layouts.tp.astype(float),
                "ep": layouts.ep.astype(float), "etp": layouts.expert_tp.astype(float),
                "group_replicas": (-(-layouts.ep * layouts.expert_tp // layouts.tp)).astype(float)}

    def _run(self, base: dict, row: np.ndarray, constants: PerfConstants):
        """step_ops as a function of (decode sequences, prefill tokens), each a float or an array of one per layout,
        for layouts whose StepShape fields are row ``row`` of ``base``: evaluated once per distinct (row, decode,
        prefill), read per layout."""
        ns, n, distinct = numpy_namespace(), len(row), len(base["tp"])

        def run(decode, prefill):
            if np.ndim(decode) or np.ndim(prefill):  # one per layout: the distinct (row, decode, prefill)
                decode, prefill = np.broadcast_to(decode, n).astype(float), np.broadcast_to(prefill, n).astype(float)
                first, inverse = representatives(row, *(np.unique(x, return_inverse=True)[1] for x in (decode, prefill)))
                fields = {name: value[row[first]] if np.ndim(value) else value for name, value in base.items()}
                decode, prefill = decode[first], prefill[first]
            else:
                fields, inverse = base, row
                decode, prefill = np.broadcast_to(decode, distinct).astype(float), np.broadcast_to(prefill, distinct).astype(float)
            tokens = np.ceil(routed_tokens(decode, prefill, self.d.mtp, fields["group_replicas"]) - 1e-9).astype(np.int64)
            rows, index = unique_rows(fields["ep"].astype(np.int64), tokens)
            load = np.array([expert_load(self.spec, t, ep, self.d.routing) for ep, t in rows.tolist()]).reshape(-1, 3)[index]
            shape = StepShape(decode=decode, prefill=prefill, experts_touched=load[:, 0], expert_rows=load[:, 1],
                              dispatch_imbalance=load[:, 2], **fields)
            return _PerLayout(step_ops(ns, shape, constants), inverse)

        return run

    def speed(self, layouts: LayoutArrays, m: dict[str, np.ndarray], row: np.ndarray) -> dict[str, np.ndarray]:
        """Expected speed and bound of layouts whose memory terms are row ``row`` of ``m`` (perf.speed.serving_figures
        over arrays; the StepShape fields once per distinct row)."""
        first, index = representatives(row)
        base = self._shape(layouts.take(first), {name: values[row[first]] for name, values in m.items()})
        row = index  # each layout's row of base
        sequences = self.d.concurrency / layouts.dp if self.serving else float(self.d.batch)  # a float: one step per row
        args = (sequences, layouts.dp, layouts.pp, base["layers"][row], layouts.num_gpus)
        ns = numpy_namespace()
        f = serving_figures(ns, self._run(base, row, self.constants), self.d, self.constants, *args)
        b = serving_figures(ns, self._run(base, row, BOUND), self.d, BOUND, *args, ttft=False)
        terms = np.stack([b["decode"]["memory_s"], b["decode"]["compute_s"], b["decode"]["communication_s"]])
        return {"decode_tokens_per_s": f["rate"], "time_per_output_token_s": f["tpot"], "prefill_tokens_per_s": f["prefill_rate"],
                "ttft_s": f["ttft"], "roofline_time_per_output_token_s": b["tpot"], "bound": np.argmax(terms, axis=0)}

    def evaluate(self, layouts: LayoutArrays) -> LayoutMetrics:
        """Memory of every layout, and the expected speed and bound of those that fit (of the one needing the least
        memory when none does); NaN (bound 0) for the others, which the search never ranks. Memory is evaluated once
        per distinct sizes it depends on (memory_sizes), and so is each step at a given decode batch and prompt."""
        first, row = representatives(*self.memory_sizes(layouts))
        distinct = self.memory(layouts.take(first))
        m = {name: distinct[name][row] for name in ("total", "weights", "state", "kv", "activations", "overhead", "stage")}
        index = np.flatnonzero(m["total"] <= self.usable_bytes)
        if not len(index):
            index = np.array([np.argmin(m["total"])])
        speed = self.speed(layouts.take(index), distinct, row[index])
        full = {}
        for name, values in speed.items():
            full[name] = np.zeros(len(layouts), dtype=values.dtype) if name == "bound" else np.full(len(layouts), np.nan)
            full[name][index] = values
        return LayoutMetrics(
            per_gpu_bytes=m["total"], weights_bytes=m["weights"], state_bytes=m["state"], kv_cache_bytes=m["kv"],
            activation_bytes=m["activations"], overhead_bytes=m["overhead"], worst_stage=m["stage"], **full)
