"""Candidate parallel layouts as numpy arrays, and the layout rules evaluated over all of them at once.

A layout is (tp, ep, pp, dp, etp) as in moeplan.layout.parallel: GPUs = tp × pp × dp, EP spreads a stage's
experts over its tp × dp GPUs. The search enumerates every combination up to a GPU budget under the
rules of ``layout_problems`` and ``Layout`` (vectorised by ``allowed``) plus the placement rules of
``placement_allowed``. See docs/plan.md.
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from moeplan.layout.parallel import Layout, mixer_tp_counts, placement_allowed, search_gpu_counts
from moeplan.spec.model import ModelSpec


@dataclass(frozen=True)
class LayoutArrays:
    """Layouts as parallel int64 arrays; attribute names match Layout's, so arithmetic written for a Layout
    reads them too."""

    tp: np.ndarray
    ep: np.ndarray
    pp: np.ndarray
    dp: np.ndarray
    expert_tp: np.ndarray
    """ETP in effect (Layout.expert_tp)."""

    def __len__(self) -> int:
        return len(self.tp)

    @cached_property
    def num_gpus(self) -> np.ndarray:
        return self.tp * self.pp * self.dp

    @property
    def expert_replicas(self) -> np.ndarray:
        """Copies of each routed expert within a stage (Layout.expert_replicas)."""
        return self.tp * self.dp // (self.ep * self.expert_tp)

    def take(self, index) -> "LayoutArrays":
        """The layouts at ``index`` (a boolean mask or indices)."""
        return LayoutArrays(self.tp[index], self.ep[index], self.pp[index], self.dp[index], self.expert_tp[index])

    def layout(self, i: int) -> Layout:
        """Layout ``i`` as a Layout (etp given only where it differs from the default rule)."""
        tp, ep = int(self.tp[i]), int(self.ep[i])
        etp = int(self.expert_tp[i])
        return Layout(tp=tp, ep=ep, pp=int(self.pp[i]), dp=int(self.dp[i]), etp=None if etp == (tp if ep == 1 else 1) else etp)


def default_expert_tp(tp: np.ndarray, ep: np.ndarray, etp: int | None = None) -> np.ndarray:
    """Layout.expert_tp over arrays: the given etp, else tp where ep = 1 and 1 otherwise."""
    if etp is not None:
        return np.full_like(tp, etp)
    return np.where(ep == 1, tp, 1)


def allowed(spec: ModelSpec, layouts: LayoutArrays) -> np.ndarray:
    """Layouts that Layout's validator and layout_problems accept, as a boolean mask (the same rules, over
    arrays): ep × etp divides tp × dp; tp divides the query heads, the dense MLP, the shared experts and the
    Mamba inner size and the other mixers' heads; tp and the KV heads divide one another; ep divides the experts and etp the expert
    intermediate size; pp is at most the layer count; a dense model has ep = 1."""
    tp, ep, etp = layouts.tp, layouts.ep, layouts.expert_tp
    t, e, x = (_sizes(v) for v in (tp, ep, etp))  # a rule of one size: once per size, looked up per layout
    tp_ok = np.ones(len(t), dtype=bool)
    attn = spec.attention
    if spec.attention_layer_count:
        tp_ok &= attn.num_heads % t == 0
        if attn.kind == "gqa":
            kv = attn.kv_heads
            tp_ok &= np.where(kv >= t, kv % t == 0, t % kv == 0)
    if spec.mamba:
        tp_ok &= (spec.mamba.expand * spec.hidden_size) % t == 0
    for count in mixer_tp_counts(spec).values():
        tp_ok &= count % t == 0
    if spec.intermediate_size and any(not spec.is_moe_layer(i) for i in range(spec.num_layers)):
        tp_ok &= spec.intermediate_size % t == 0
    if spec.moe:
        tp_ok &= spec.moe.shared_size % t == 0
    ok = ((tp * layouts.dp) % (ep * etp) == 0) & tp_ok[tp]
    if spec.moe:
        ok &= (spec.moe.num_experts % e == 0)[ep]
        ok &= (spec.moe.expert_intermediate_size % x == 0)[etp]
    else:
        ok &= ep == 1
    return ok & (layouts.pp <= spec.num_layers)


def _sizes(values: np.ndarray) -> np.ndarray:
    """0, 1, …, max(values) with the 0 (never looked up) made 1: ``rule(_sizes(v))[v]`` is rule(v)."""
    sizes = np.arange(int(values.max()) + 1)
    sizes[0] = 1
    return sizes


def gpu_counts(max_gpus: int, gpus_per_node: int) -> np.ndarray:
    """GPU counts a deployment uses (moeplan.layout.parallel.search_gpu_counts): any count within one node, then whole nodes."""
    return np.array(search_gpu_counts(max_gpus, gpus_per_node), dtype=np.int64)


def _divisors(n: int) -> np.ndarray:
    values = np.arange(1, n + 1)
    return values[n % values == 0]


def enumerate_layouts(spec: ModelSpec, counts: np.ndarray, gpus_per_node: int, fixed: dict[str, int] | None = None) -> LayoutArrays:
    """Every layout on one of the GPU ``counts`` that ``allowed`` and ``placement_allowed`` accept, with the
    sizes in ``fixed`` (keys tp, ep, pp, dp, etp) held at their values. Candidates: tp up to a node, pp up
    to the layer count, ep among the divisors of the expert count, dp = GPUs / (tp·pp)."""
    fixed = fixed or {}
    counts = np.asarray(counts, dtype=np.int64)
    tp, pp = np.arange(1, gpus_per_node + 1), np.arange(1, spec.num_layers + 1)
    t, p = np.repeat(tp, len(pp)), np.tile(pp, len(tp))  # (tp, pp) pairs, tp-major
    count, pair = np.nonzero(counts[:, None] % (t * p) == 0)  # the pairs whose tp·pp divides a count, count-major
    t, p = t[pair], p[pair]
    d = counts[count] // (t * p)
    eps = _divisors(spec.moe.num_experts) if spec.moe else np.ones(1, dtype=np.int64)
    eps = eps[eps <= counts.max()].astype(np.int64)
    t, p, d, e = np.repeat(t, len(eps)), np.repeat(p, len(eps)), np.repeat(d, len(eps)), np.tile(eps, len(d))  # then ep
    layouts = LayoutArrays(t, e, p, d, default_expert_tp(t, e, fixed.get("etp")))
    keep = allowed(spec, layouts) & placement_allowed(layouts, gpus_per_node)
    for name in ("tp", "ep", "pp", "dp"):
        if name in fixed:
            keep &= getattr(layouts, name) == fixed[name]
    return layouts.take(keep)
