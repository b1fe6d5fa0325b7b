"""All-to-all traffic of expert parallelism under uniform routing, in closed form.

Letters: N ranks in the EP group, P GPUs per node, T tokens per rank, E routed experts, k top-k, H hidden
size, G expert groups, M groups a token may use. Experts sit evenly and contiguously on ranks (rank j holds
experts [j·E/N, (j+1)·E/N)); groups are contiguous blocks of E/G experts; nodes hold P contiguous ranks.
Byte counts are per rank and per MoE layer unless a name says otherwise; expectations average over the
source rank. See docs/formulas.md §Compute and traffic.
"""

import math
from typing import Literal

from pydantic import BaseModel, computed_field

from moeplan.errors import SpecError
from moeplan.spec.model import ModelSpec

A2AMode = Literal["rank", "expert"]
"""rank: one copy per token and destination rank (DeepEP normal kernels); expert: one copy per token and
chosen expert (DeepEP low-latency kernels, pplx-kernels)."""
DispatchDtype = Literal["bf16", "fp8"]
FP8_SCALE_GROUP = 128
"""Channels per fp32 scale in fp8 dispatch (DeepEP's per_token_cast_to_fp8)."""


def dispatch_bytes_per_copy(hidden: int, dtype: DispatchDtype) -> int:
    """Bytes of one token copy at dispatch: bf16 2·H; fp8 H + 4·⌈H/128⌉ (one fp32 scale per 128 channels)."""
    if dtype == "bf16":
        return 2 * hidden
    return hidden + 4 * math.ceil(hidden / FP8_SCALE_GROUP)


def combine_bytes_per_copy(hidden: int) -> int:
    """Bytes of one token copy at combine: always bf16, 2·H."""
    return 2 * hidden


def _miss_probability(candidates: int, top_k: int, held: int) -> float:
    """P(none of k distinct experts drawn uniformly from `candidates` is among `held` of them) = C(c−h, k)/C(c, k)."""
    return math.comb(max(candidates - held, 0), top_k) / math.comb(candidates, top_k)


def expected_destination_ranks(num_experts: int, top_k: int, ep_size: int) -> float:
    """Distinct ranks one token's k experts live on, uniform routing: N·(1 − C(E − E/N, k)/C(E, k)). Self included."""
    _check_layout(num_experts, ep_size)
    return ep_size * (1 - _miss_probability(num_experts, top_k, num_experts // ep_size))


def unit_touch_probabilities(num_experts: int, top_k: int, unit_experts: int, expert_groups: int = 1, topk_groups: int = 1) -> list[float]:
    """P(a token has at least one expert in unit u), for contiguous units of `unit_experts` experts (a rank or a node).

    Node-limited routing: the token picks M of the G groups uniformly, then k distinct experts uniformly
    among the M·E/G experts of those groups. If unit u overlaps group i in o_i experts, the token holds
    a = Σ_{i∈chosen} o_i of the unit's experts as candidates, and P(touch u) = Σ_a P(a)·(1 − C(M·E/G − a, k)/C(M·E/G, k));
    P(a) counts the M-subsets of groups by their overlap (a small dynamic programme). G = M = 1 is plain uniform routing.
    Plain Python: the tables are small, and numpy would double the start-up time of `moeplan estimate`.
    """
    group_size = num_experts // expert_groups
    candidates = topk_groups * group_size
    if top_k > candidates:
        raise SpecError(f"top_k ({top_k}) exceeds the {candidates} experts in {topk_groups} of {expert_groups} groups")
    miss = [_miss_probability(candidates, top_k, a) for a in range(unit_experts + 1)]
    probabilities = []
    for start in range(0, num_experts, unit_experts):
        overlaps = [max(0, min(start + unit_experts, (g + 1) * group_size) - max(start, g * group_size)) for g in range(expert_groups)]
        subsets = [[0.0] * (unit_experts + 1) for _ in range(topk_groups + 1)]  # [groups chosen][candidates held]
        subsets[0][0] = 1.0
        for overlap in overlaps:
            for chosen in range(topk_groups, 0, -1):  # descending: each group is chosen at most once
                row, previous = subsets[chosen], subsets[chosen - 1]
                for held in range(unit_experts, overlap - 1, -1):
                    row[held] += previous[held - overlap]
        ways = math.comb(expert_groups, topk_groups)
        probabilities.append(1 - sum(count / ways * m for count, m in zip(subsets[topk_groups], miss)))
    return probabilities


class Destinations(BaseModel):
    """Expected destinations of one token under uniform (optionally node-limited) routing, self included."""

    ranks: float
    """Distinct ranks holding at least one of the token's experts."""
    nodes: float
    """Distinct nodes holding at least one of the token's experts."""
    num_nodes: int
    """Nodes the EP group spans."""


def expected_destinations(
    num_experts: int, top_k: int, ep_size: int, gpus_per_node: int | None = None, expert_groups: int = 1, topk_groups: int = 1
) -> Destinations:
    """Expected distinct destination ranks and nodes per token (node-limited when topk_groups < expert_groups)."""
    _check_layout(num_experts, ep_size)
    num_nodes = _num_nodes(ep_size, gpus_per_node)
    per_rank = num_experts // ep_size
    ranks = sum(unit_touch_probabilities(num_experts, top_k, per_rank, expert_groups, topk_groups))
    nodes = sum(unit_touch_probabilities(num_experts, top_k, per_rank * ep_size // num_nodes, expert_groups, topk_groups))
    return Destinations(ranks=float(ranks), nodes=float(nodes), num_nodes=num_nodes)


def _check_layout(num_experts: int, ep_size: int) -> None:
    if ep_size < 1 or num_experts % ep_size:
        raise SpecError(f"expert parallelism {ep_size} must divide the {num_experts} routed experts")


def _num_nodes(ep_size: int, gpus_per_node: int | None) -> int:
    """Nodes spanned by N ranks, P per node; no P means one node (one NVLink domain)."""
    if gpus_per_node is None or ep_size <= gpus_per_node:
        return 1
    if ep_size % gpus_per_node:
        raise SpecError(f"expert parallelism {ep_size} must be a multiple of gpus per node ({gpus_per_node})")
    return ep_size // gpus_per_node


class AllToAllTraffic(BaseModel):
    """Expected all-to-all bytes of one rank, uniform routing. `*_bytes_per_rank` are per MoE layer and count
    bytes the rank sends (received bytes are the same by symmetry); GB = 1e9 B."""

    mode: A2AMode
    dispatch_dtype: DispatchDtype
    ep_size: int
    """N, ranks in the expert-parallel group."""
    tokens_per_rank: int
    """T, tokens each rank routes per step."""
    num_nodes: int
    """Nodes the EP group spans (1 when gpus_per_node is not given)."""
    moe_layers: int
    dispatch_bytes_per_copy: int
    combine_bytes_per_copy: int
    destination_ranks_per_token: float
    """Expected distinct ranks a token's experts are on, self included."""
    destination_nodes_per_token: float
    """Expected distinct nodes a token's experts are on, own node included."""
    copies_per_token: float
    """Copies dispatched per token, self included: destination ranks (rank mode) or k (expert mode)."""
    self_copies_per_token: float
    """Of those, copies to the token's own rank (moved locally, not sent)."""
    inter_node_copies_per_token: float
    """Copies to ranks on other nodes, one per destination rank (rank) or chosen expert (expert)."""
    rdma_copies_per_token: float
    """Copies crossing nodes when a token goes once per remote node and fans out over NVLink there (DeepEP
    internode normal kernels); equals inter_node_copies_per_token in expert mode, which does not deduplicate."""
    dispatch_bytes_per_rank: float
    """Bytes sent to other ranks at dispatch: T·(copies − self copies)·dispatch payload."""
    combine_bytes_per_rank: float
    """Bytes sent to other ranks at combine: the same copies in bf16."""
    self_bytes_per_rank: float
    """Bytes a rank 'sends' to itself at dispatch plus combine (excluded from the two above)."""
    inter_node_bytes_per_rank: float
    """Bytes sent to other nodes at dispatch plus combine, one copy per destination rank or expert."""
    rdma_bytes_per_rank: float
    """Bytes sent to other nodes at dispatch plus combine with one copy per destination node."""
    assumptions: list[str]

    @computed_field
    @property
    def per_layer_bytes_per_rank(self) -> float:
        """Dispatch plus combine bytes sent to other ranks in one MoE layer (two all-to-alls)."""
        return self.dispatch_bytes_per_rank + self.combine_bytes_per_rank

    @computed_field
    @property
    def all_to_alls_per_forward(self) -> int:
        """Two exchanges (dispatch and combine) in every MoE layer."""
        return 2 * self.moe_layers

    @computed_field
    @property
    def per_forward_bytes_per_rank(self) -> float:
        """per_layer_bytes_per_rank × MoE layers: one forward pass of T tokens per rank."""
        return self.per_layer_bytes_per_rank * self.moe_layers

    @computed_field
    @property
    def per_forward_inter_node_bytes_per_rank(self) -> float:
        """inter_node_bytes_per_rank × MoE layers."""
        return self.inter_node_bytes_per_rank * self.moe_layers


def all_to_all_traffic(
    num_experts: int,
    top_k: int,
    hidden: int,
    ep_size: int,
    tokens_per_rank: int,
    mode: A2AMode = "rank",
    dispatch_dtype: DispatchDtype = "bf16",
    gpus_per_node: int | None = None,
    expert_groups: int = 1,
    topk_groups: int = 1,
    moe_layers: int = 1,
) -> AllToAllTraffic:
    """Expected dispatch/combine bytes per rank under uniform (optionally node-limited) routing."""
    dest = expected_destinations(num_experts, top_k, ep_size, gpus_per_node, expert_groups, topk_groups)
    remote_node_share = 1 - 1 / dest.num_nodes  # of a token's destinations, the expected share on other nodes
    if mode == "rank":
        copies, rdma = dest.ranks, dest.nodes * remote_node_share
        self_copies = dest.ranks / ep_size
    else:
        copies, rdma = float(top_k), top_k * remote_node_share
        self_copies = top_k / ep_size
    inter_node = copies * remote_node_share
    dispatch, combine = dispatch_bytes_per_copy(hidden, dispatch_dtype), combine_bytes_per_copy(hidden)
    both = dispatch + combine
    grouping = f"node-limited: {topk_groups} of {expert_groups} groups per token, experts uniform within them" if topk_groups < expert_groups else "uniform top-k"
    return AllToAllTraffic(
        mode=mode,
        dispatch_dtype=dispatch_dtype,
        ep_size=ep_size,
        tokens_per_rank=tokens_per_rank,
        num_nodes=dest.num_nodes,
        moe_layers=moe_layers,
        dispatch_bytes_per_copy=dispatch,
        combine_bytes_per_copy=combine,
        destination_ranks_per_token=dest.ranks,
        destination_nodes_per_token=dest.nodes,
        copies_per_token=copies,
        self_copies_per_token=self_copies,
        inter_node_copies_per_token=inter_node,
        rdma_copies_per_token=rdma if mode == "rank" else inter_node,
        dispatch_bytes_per_rank=tokens_per_rank * (copies - self_copies) * dispatch,
        combine_bytes_per_rank=tokens_per_rank * (copies - self_copies) * combine,
        self_bytes_per_rank=tokens_per_rank * self_copies * both,
        inter_node_bytes_per_rank=tokens_per_rank * inter_node * both,
        rdma_bytes_per_rank=tokens_per_rank * (rdma if mode == "rank" else inter_node) * both,
        assumptions=[
            f"routing: {grouping}; expectations, averaged over source ranks",
            f"{num_experts // ep_size} experts per rank, placed contiguously; "
            + (f"{ep_size // dest.num_nodes} ranks per node, contiguous" if dest.num_nodes > 1 else "all ranks in one node"),
            f"{'one copy per token and destination rank' if mode == 'rank' else 'one copy per token and chosen expert'}; "
            f"dispatch {dispatch_dtype} ({dispatch} B/copy), combine bf16 ({combine} B/copy)",
            "self-traffic excluded from dispatch/combine bytes; received bytes equal sent bytes by symmetry",
        ],
    )


def spec_all_to_all_traffic(
    spec: ModelSpec,
    ep_size: int,
    tokens_per_rank: int,
    mode: A2AMode = "rank",
    dispatch_dtype: DispatchDtype = "bf16",
    gpus_per_node: int | None = None,
) -> AllToAllTraffic:
    """all_to_all_traffic for a model: its E, k, H (a latent MoE's latent width: Nemotron-3-Super dispatches its
    tokens after the down-projection), MoE layer count and expert groups (node-limited routing)."""
    if spec.moe is None:
        raise SpecError(f"{spec.name} is a dense model: it has no expert all-to-all")
    moe = spec.moe
    return all_to_all_traffic(
        moe.num_experts, moe.top_k, moe.latent_size or spec.hidden_size, ep_size, tokens_per_rank, mode, dispatch_dtype,
        gpus_per_node, moe.num_expert_groups, moe.topk_groups, spec.moe_layer_count,
    )
