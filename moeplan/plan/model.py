"""moeplan estimate's memory and roofline model, evaluated over many layouts at once.

Everything that does not depend on the layout comes from one scalar estimate of the 1-GPU layout
(GPU, weight formats, usable memory, FLOPs per token, peak). What depends on the layout is decomposed
into tables computed by the scalar functions themselves, once per distinct value of the layout sizes
they depend on, then combined per layout with numpy:

- weights: each part's rank-0 share (``rank_amount``; rank 0 holds the most of every part) per distinct
  (tp, ep, etp), summed per position, prefix-summed so a stage's weights are two lookups;
- KV cache: ``sequence_kv`` of each single layer per distinct tp (the cache is additive over layers);
- inference activations: ``inference_activations`` workspaces per distinct tp and ``fused_moe_bytes``
  per distinct (tp, dp, ep, etp) — a stage's peak is the hidden states plus the largest workspace of the
  layer kinds it holds; training activations: ``stage_activation`` per distinct (pp, stage) and
  ``activation_bytes`` on arrays;
- roofline: experts touched on the busiest EP rank per distinct (ep, replicas per expert group), all-to-all bytes per token per distinct ep, all-reduce time
  per distinct tp; the rest by the array forms in moeplan.plan.twins.

Each layout's GPU memory is evaluated for every pipeline stage (layouts grouped by pp) and the
most-loaded stage, the first on ties as memory_report picks it, decides fit and feeds the roofline.
"""

from typing import NamedTuple

import numpy as np

from moeplan.accounting.activations import ALLOCATOR_RESERVE_FRACTION, fused_moe_bytes, inference_activations
from moeplan.accounting.kv_cache import sequence_kv
from moeplan.accounting.training import Coefficients, activation_bytes, stage_activation
from moeplan.layout.parallel import Layout, stage_layers
from moeplan.layout.shard import placed_amounts, rank_amount
from moeplan.plan.layouts import LayoutArrays
from moeplan.plan.twins import all_to_all_layer_s, communication_s, step_time, training_state_bytes
from moeplan.report.estimate import EstimateReport, build_estimate
from moeplan.spec.deployment import Deployment
from moeplan.spec.resolve import ResolvedSpec
from moeplan.throughput.roofline import Efficiency, peak_flops, touched_fraction, tp_allreduce_time_s
from moeplan.traffic.alltoall import spec_all_to_all_traffic


class LayoutMetrics(NamedTuple):
    """Per layout (arrays): the most-loaded GPU's memory, in bytes, and the roofline throughput."""

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
    bound: np.ndarray
    """Decode bound, an index into twins.BOUNDS."""


def unique_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows of the stacked non-negative int columns, index of each input row among them); the
    columns are packed into one mixed-radix key, which np.unique sorts far faster than rows."""
    radices = [int(c.max()) + 1 for c in columns]
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column, radix in zip(columns, radices):
        key = key * radix + column
    values, inverse = np.unique(key, return_inverse=True)
    rows = []
    for radix in reversed(radices):
        values, digit = np.divmod(values, radix)
        rows.append(digit)
    return np.stack(rows[::-1], axis=1), inverse


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
        self.eff = efficiency or Efficiency()
        self.training = deployment.mode == "training"
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
        self.chunk = min(deployment.prefill_chunk, deployment.context)
        self.link_bytes_per_s = (self.gpu.link_bytes_per_s_per_direction or self.gpu.pcie_bytes_per_s_per_direction) * self.eff.link
        self.nic_bytes_per_s = deployment.nic_gb_s * 1e9
        self.peak_flops_per_s = peak_flops(self.gpu, ref.weights) * self.eff.gemm
        self.hbm_bytes_per_s = self.gpu.hbm_bytes_per_s * self.eff.hbm

    # --- tables over distinct layout sizes -------------------------------------------------------------

    def _weight_tables(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per distinct (tp, ep, etp): prefix sums over positions (−1 … L, shifted by one) of rank 0's
        non-expert and expert amounts, its amount of the pp > 1 parts, and its amount per layer."""
        spec, positions = self.spec, self.spec.num_layers + 2
        onehot = np.zeros((len(self.parts), positions), dtype=np.int64)
        onehot[np.arange(len(self.parts)), [p.position + 1 for p, _ in self.parts]] = 1
        expert = np.array([p.split.startswith("expert") for p, _ in self.parts])
        held = np.zeros((len(keys), len(self.parts)), dtype=np.int64)
        extra = np.zeros(len(keys), dtype=np.int64)
        for k, (tp, ep, etp) in enumerate(keys.tolist()):
            layout = Layout(tp=tp, ep=ep, dp=ep * etp, etp=etp)
            held[k] = [rank_amount(part, amount, spec, layout, 0, 0) for part, amount in self.parts]
            extra[k] = sum(rank_amount(part, amount, spec, layout, 0, 0) for part, amount in self.pipelined_parts)
        per_layer = (held @ onehot)[:, 1:-1]
        return prefix_sums((held * ~expert) @ onehot), prefix_sums((held * expert) @ onehot), extra, per_layer

    def _kv_table(self, tps: np.ndarray) -> np.ndarray:
        """Per distinct tp: prefix sums over layers of one sequence's cache at the deployment's context."""
        d = self.d
        per_layer = [[sequence_kv(self.spec, d.kv_dtype, [i], tp).bytes(d.context) for i in range(self.spec.num_layers)] for tp in tps.tolist()]
        return prefix_sums(np.array(per_layer, dtype=np.int64))

    def _workspaces(self, tps: np.ndarray) -> tuple[dict[str, np.ndarray], int, int]:
        """Per distinct tp, each layer kind's inference workspace bytes; the hidden-state bytes; T."""
        d, kinds = self.d, ("attention", "mamba", "dense_mlp", "logits")
        layers = range(self.spec.num_layers)  # each kind's workspace is the same in every layer of that kind
        steps = [inference_activations(self.spec, Layout(tp=tp), layers, d.batch, d.prefill_chunk, True) for tp in tps.tolist()]
        table = {kind: np.array([s.workspace_bytes.get(kind, 0) for s in steps], dtype=np.int64) for kind in kinds}
        return table, steps[0].hidden_bytes, steps[0].tokens

    def _moe_workspace(self, layouts: LayoutArrays, tokens: int) -> np.ndarray:
        """Per layout, fused_moe_bytes (0 for a dense model), evaluated once per distinct (tp, dp, etp)."""
        if not self.is_moe.any():
            return np.zeros(len(layouts), dtype=np.int64)
        rows, inverse = unique_rows(layouts.tp, layouts.dp, layouts.ep, layouts.expert_tp)
        values = [fused_moe_bytes(self.spec, Layout(tp=tp, dp=dp, ep=ep, etp=etp), tokens) for tp, dp, ep, etp in rows.tolist()]
        return np.array(values, dtype=np.int64)[inverse]

    # --- memory --------------------------------------------------------------------------------------

    def _stage_memory(self, group: LayoutArrays, pp: int, tables: dict) -> dict[str, np.ndarray]:
        """Every stage of layouts sharing ``pp``: arrays of shape (layouts, pp)."""
        spec = self.spec
        ranges = stage_layers(spec.num_layers, pp)
        first = np.array([r[0] for r in ranges])
        last = np.array([r[-1] for r in ranges])
        stage = np.arange(pp)
        low = np.where(stage == 0, -1, first) + 1  # prefix indices of the positions the stage holds
        high = np.where(stage == pp - 1, spec.num_layers, last) + 2
        key = tables["key"][:, None]
        other = tables["other"][key, high] - tables["other"][key, low]
        expert = tables["expert"][key, high] - tables["expert"][key, low]
        if pp > 1:
            other[:, -1] += tables["extra"][tables["key"]]
        moe = np.add.reduceat(self.is_moe.astype(np.int64), first)
        embedding = np.where(stage == 0, tables["other"][key, 1] - tables["other"][key, 0], 0)  # position −1 on stage 0
        out = {"expert": expert, "held": other + expert, "embedding": embedding, "layers": np.broadcast_to(last - first + 1, other.shape),
               "moe_layers": np.broadcast_to(moe, other.shape)}
        if self.training:
            out.update(self._training_terms(group, ranges, other, expert, tables))
            out["embedding"] = 2 * embedding  # bf16 parameters, as "held"
        else:
            out.update(self._inference_terms(ranges, other, expert, tables))
        reserve = np.ceil(ALLOCATOR_RESERVE_FRACTION * out["activations"]).astype(np.int64)
        out["overhead"] = self.context_bytes + reserve
        out["total"] = out["weights"] + out["state"] + out["kv"] + out["activations"] + out["overhead"]
        return out

    def _training_terms(self, group: LayoutArrays, ranges: list[range], other: np.ndarray, expert: np.ndarray, tables: dict) -> dict:
        """ZeRO-sharded state (with one gathered layer at ZeRO-3) and 1F1B activations of every stage."""
        d, pp = self.d, len(ranges)
        first = [r[0] for r in ranges]
        gathered = np.maximum.reduceat(tables["per_layer"], first, axis=1)[tables["key"]] if d.zero == 3 else 0
        params, grads, optimizer = training_state_bytes(other, expert, group.dp[:, None], group.expert_replicas[:, None],
                                                        d.zero, d.grad_dtype, gathered)
        coefficients = [stage_activation(self.spec, Layout(pp=pp), s, ranges[s], d.recompute) for s in range(pp)]
        linear, quadratic = (np.array(c, dtype=np.int64) for c in zip(*coefficients))
        activations = activation_bytes(Coefficients(linear, quadratic), d.batch, d.context, group.tp[:, None])
        # training holds bf16 parameters: what a decode step would read
        return {"weights": params, "state": grads + optimizer, "kv": np.zeros_like(params), "activations": activations,
                "held": 2 * (other + expert), "expert": 2 * expert}

    def _inference_terms(self, ranges: list[range], other: np.ndarray, expert: np.ndarray, tables: dict) -> dict:
        """KV cache of the batch and the activation peak of every stage: hidden states plus the largest
        workspace among the layer kinds the stage holds (logits on the last stage)."""
        first = np.array([r[0] for r in ranges])
        layers = np.array([len(r) for r in ranges])
        attention, moe = (np.add.reduceat(flags.astype(np.int64), first) for flags in (self.is_attention, self.is_moe))
        tp, ws = tables["tp"][:, None], tables["workspace"]
        kv = self.d.batch * (tables["kv"][tp, first + layers] - tables["kv"][tp, first])
        present = lambda flags, values: np.where(flags, values, 0)  # noqa: E731
        largest = np.maximum.reduce([
            present(attention > 0, ws["attention"][tp]), present(layers - attention > 0, ws["mamba"][tp]),
            present(moe > 0, tables["moe_workspace"][:, None]), present(layers - moe > 0, ws["dense_mlp"][tp]),
            present(np.arange(len(ranges)) == len(ranges) - 1, ws["logits"][tp]),
        ])
        return {"weights": other + expert, "state": np.zeros_like(kv), "kv": kv, "activations": tables["hidden"] + largest}

    def _tables(self, layouts: LayoutArrays) -> dict:
        keys, key = unique_rows(layouts.tp, layouts.ep, layouts.expert_tp)
        other, expert, extra, per_layer = self._weight_tables(keys)
        tables = {"key": key, "other": other, "expert": expert, "extra": extra, "per_layer": per_layer}
        if not self.training:
            tps, tp = np.unique(layouts.tp, return_inverse=True)
            workspace, hidden, tokens = self._workspaces(tps)
            tables.update(tp=tp, kv=self._kv_table(tps), workspace=workspace, hidden=hidden,
                          moe_workspace=self._moe_workspace(layouts, tokens))
        return tables

    def memory(self, layouts: LayoutArrays) -> dict[str, np.ndarray]:
        """Per layout, the most-loaded stage's memory terms and what the roofline needs of it."""
        tables = self._tables(layouts)
        names = ("total", "weights", "state", "kv", "activations", "overhead", "held", "expert", "embedding", "layers", "moe_layers")
        out = {name: np.zeros(len(layouts), dtype=np.int64) for name in (*names, "stage")}
        for pp in np.unique(layouts.pp).tolist():
            index = np.flatnonzero(layouts.pp == pp)
            sub = {k: (v[index] if k in ("key", "tp", "moe_workspace") else v) for k, v in tables.items()}
            stages = self._stage_memory(layouts.take(index), pp, sub)
            worst = np.argmax(stages["total"], axis=1)
            out["stage"][index] = worst
            for name in names:
                out[name][index] = np.take_along_axis(stages[name], worst[:, None], axis=1)[:, 0]
        return out

    # --- roofline ------------------------------------------------------------------------------------

    def _touched(self, layouts: LayoutArrays, tokens: int) -> np.ndarray:
        """Share of a GPU's routed-expert weights a step reads (roofline.touched_fraction: the busiest EP rank, for
        the tokens of the replicas one copy of the experts serves), per distinct (ep, replicas per expert group)."""
        group = -(-layouts.ep * layouts.expert_tp // layouts.tp)
        rows, inverse = unique_rows(layouts.ep, group)
        return np.array([touched_fraction(self.spec, tokens * r, self.d, ep) for ep, r in rows.tolist()])[inverse]

    def _lookup(self, layouts: LayoutArrays, embedding: np.ndarray, stage: np.ndarray, tokens: int) -> np.ndarray:
        """roofline.lookup_bytes over arrays: a row per token of the held table, or all of a tied table that is also lm_head."""
        rows = embedding * np.minimum(1.0, tokens * layouts.tp / self.spec.vocab_size)
        if self.spec.tie_word_embeddings:
            return np.where((layouts.pp == 1) & (stage == 0), embedding, rows)
        return rows

    def _traffic_per_token(self, ep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per layout, all-to-all bytes per token routed by a rank, per MoE layer: (all sent, sent to other
        nodes), from all_to_all_traffic at one token per rank (its bytes are linear in tokens), per distinct ep."""
        d = self.d
        values, inverse = np.unique(ep, return_inverse=True)
        per_layer, inter_node = np.zeros(len(values)), np.zeros(len(values))
        for i, size in enumerate(values.tolist()):
            if size > 1:
                traffic = spec_all_to_all_traffic(self.spec, size, 1, d.a2a_mode, d.dispatch_dtype, d.gpus_per_node)
                per_layer[i], inter_node[i] = traffic.per_layer_bytes_per_rank, traffic.inter_node_bytes_per_rank
        return per_layer[inverse], inter_node[inverse]

    def _communication(self, layouts: LayoutArrays, tokens: int, layers: np.ndarray, moe_layers: np.ndarray,
                       traffic: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        tps, tp_index = np.unique(layouts.tp, return_inverse=True)
        latency = self.eff.collective_latency_s
        allreduce = np.array([tp_allreduce_time_s(tokens, self.spec.hidden_size, tp, self.link_bytes_per_s, latency) for tp in tps.tolist()])
        all_to_all = all_to_all_layer_s(tokens, layouts.tp, *traffic, self.link_bytes_per_s, self.nic_bytes_per_s, latency)
        return communication_s(layers, moe_layers, layouts.ep, allreduce[tp_index], all_to_all)

    def evaluate(self, layouts: LayoutArrays) -> LayoutMetrics:
        """Memory and throughput of every layout (arrays of the same length as ``layouts``)."""
        d, flops = self.d, self.reference.flops
        m = self.memory(layouts)
        traffic = self._traffic_per_token(layouts.ep)
        share = layouts.tp * layouts.pp
        held, expert, kv, embedding = m["held"], m["expert"], m["kv"], m["embedding"]
        dense = held - expert - embedding
        decode_bytes = dense + self._lookup(layouts, embedding, m["stage"], d.batch) + expert * self._touched(layouts, d.batch) + kv
        decode_s, bound = step_time(decode_bytes, flops.decode_per_token * d.batch / share,
                                    self._communication(layouts, d.batch, m["layers"], m["moe_layers"], traffic),
                                    self.hbm_bytes_per_s, self.peak_flops_per_s)
        chunk = self.chunk
        prefill_bytes = (dense + self._lookup(layouts, embedding, m["stage"], chunk) + expert * self._touched(layouts, chunk)
                         + kv / max(d.batch, 1) / d.context * chunk)
        prefill_s, _ = step_time(prefill_bytes, flops.prefill_per_token * chunk / share,
                                 self._communication(layouts, chunk, m["layers"], m["moe_layers"], traffic),
                                 self.hbm_bytes_per_s, self.peak_flops_per_s)
        tpot = layouts.pp * decode_s
        prefill_chunk_s = layouts.pp * prefill_s
        return LayoutMetrics(
            per_gpu_bytes=m["total"], weights_bytes=m["weights"], state_bytes=m["state"], kv_cache_bytes=kv,
            activation_bytes=m["activations"], overhead_bytes=m["overhead"], worst_stage=m["stage"],
            decode_tokens_per_s=d.batch * layouts.dp / tpot, time_per_output_token_s=tpot,
            prefill_tokens_per_s=chunk * layouts.dp / prefill_chunk_s,
            ttft_s=-(-d.context // chunk) * prefill_chunk_s, bound=bound,
        )
