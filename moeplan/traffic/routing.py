"""Top-k routing: a seeded numpy simulation for skewed routing, and the uniform closed forms it is checked
against (expert capacity and dropped tokens, experts touched per decode step, per-rank all-to-all bytes).

Letters: T tokens, E routed experts, k top-k, N ranks, B decode batch, C capacity factor, s Zipf exponent.
Assignments are an int array [T, k] of distinct expert ids per token. See docs/formulas.md §Compute and traffic.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, computed_field

from moeplan.errors import SpecError
from moeplan.traffic.alltoall import A2AMode, DispatchDtype, combine_bytes_per_copy, dispatch_bytes_per_copy

if TYPE_CHECKING:  # numpy is imported where a simulation runs: `moeplan estimate` with uniform routing needs none
    import numpy as np

CHUNK_TOKENS = 8192
"""Tokens sampled at a time (bounds the [chunk, E] key matrix)."""

_ZIPF = re.compile(r"^zipf:(\d+(?:\.\d*)?|\.\d+)$")


def expert_popularity(num_experts: int, distribution: str, rng: np.random.Generator) -> np.ndarray:
    """Routing weight of each expert, summing to 1: 'uniform', or 'zipf:s' where the expert of popularity
    rank r gets weight ∝ 1/r^s and the ranks are a random permutation of the experts."""
    import numpy as np
    if distribution == "uniform":
        return np.full(num_experts, 1 / num_experts)
    match = _ZIPF.match(distribution)
    if not match:
        raise SpecError(f"routing must be 'uniform' or 'zipf:S' with S ≥ 0 (e.g. zipf:1.0), not {distribution!r}")
    weights = 1 / np.arange(1, num_experts + 1) ** float(match.group(1))
    return (weights / weights.sum())[rng.permutation(num_experts)]


def _smallest_k(keys: np.ndarray, top_k: int) -> np.ndarray:
    """Column indices of the k smallest keys of each row, smallest first (k passes of argmin; keys are clobbered)."""
    import numpy as np
    rows = np.arange(len(keys))
    picked = np.empty((len(keys), top_k), dtype=np.int64)
    for j in range(top_k):
        picked[:, j] = keys.argmin(axis=1)
        keys[rows, picked[:, j]] = np.inf
    return picked

MAX_SIMULATED_DRAWS = 2**28
"""Most tokens × experts one routing simulation draws (a few seconds, its arrays well under 1 GB)."""
MAX_SIMULATED_RANKS = 4096
"""Most expert-parallel ranks in a simulated all-to-all (its rank × rank matrices stay under 150 MB)."""


def simulate_routing(
    num_tokens: int,
    num_experts: int,
    top_k: int,
    distribution: str = "uniform",
    seed: int = 0,
    groups: tuple[int, int] | None = None,
) -> np.ndarray:
    """Draw k distinct experts per token, [T, k], seeded.

    Without replacement, weighted by expert_popularity, by the Gumbel-top-k trick in its exponential-race
    form: the k smallest Exp(1)/p_e per token (equivalent to the k largest log p_e + Gumbel), i.e. successive
    sampling ∝ p among the experts not yet drawn. groups = (G, M): node-limited routing; the token first
    draws M of G contiguous groups the same way, weighted by each group's total popularity, then its k
    experts among those groups. Uniform routing gives uniform M-subsets and uniform k-subsets within them.
    """
    import numpy as np
    if num_tokens * num_experts > MAX_SIMULATED_DRAWS:
        raise SpecError(f"a routing simulation of {num_tokens:,} tokens over {num_experts:,} experts is too large "
                        f"(at most {MAX_SIMULATED_DRAWS:,} token-expert draws): lower --tokens-per-rank, --batch or the "
                        "expert-parallel size, or use --routing uniform")
    rng = np.random.default_rng(seed)
    popularity = expert_popularity(num_experts, distribution, rng)
    inverse = (1 / popularity).astype(np.float32)
    if groups is not None:
        num_groups, topk_groups = groups
        if num_experts % num_groups or topk_groups > num_groups or topk_groups * num_experts // num_groups < top_k:
            raise SpecError(f"groups {groups} do not fit {num_experts} experts with top-{top_k}")
        group_inverse = (1 / popularity.reshape(num_groups, -1).sum(axis=1)).astype(np.float32)
    assignments = np.empty((num_tokens, top_k), dtype=np.int64)
    for start in range(0, num_tokens, CHUNK_TOKENS):
        size = min(CHUNK_TOKENS, num_tokens - start)
        keys = rng.standard_exponential((size, num_experts), dtype=np.float32) * inverse  # [chunk, E]
        if groups is not None:
            group_keys = rng.standard_exponential((size, num_groups), dtype=np.float32) * group_inverse  # [chunk, G]
            chosen = np.zeros((size, num_groups), dtype=bool)
            np.put_along_axis(chosen, _smallest_k(group_keys, topk_groups), True, axis=1)
            keys[~np.repeat(chosen, num_experts // num_groups, axis=1)] = np.inf
        assignments[start : start + size] = _smallest_k(keys, top_k)
    return assignments


def expert_capacity_tokens(capacity_factor: float, tokens: int, num_experts: int, top_k: int) -> int:
    """Buffer size of one expert, in tokens: ⌈C·T·k/E⌉ (GShard/Switch), T = tokens routed together."""
    if capacity_factor <= 0:
        raise SpecError(f"capacity factor must be positive, not {capacity_factor}")
    return math.ceil(capacity_factor * tokens * top_k / num_experts)


def dropped_fraction_uniform(capacity_factor: float, tokens: int, num_experts: int, top_k: int) -> float:
    """Expected share of the T·k (token, expert) assignments that overflow their expert's buffer, uniform routing.

    Each token picks a given expert with probability p = k/E, independently of other tokens, so the load X
    of one expert is Binomial(T, p) exactly; dropped share = E[(X − cap)⁺]/(T·p), with
    E[(X − cap)⁺] = T·p − Σ_x min(x, cap)·P(X = x).
    """
    import numpy as np
    capacity = expert_capacity_tokens(capacity_factor, tokens, num_experts, top_k)
    if capacity >= tokens:
        return 0.0
    p = top_k / num_experts
    if p == 1:
        return (tokens - capacity) / tokens
    x = np.arange(capacity)  # P(X = x) for x < cap by the ratio P(x+1)/P(x) = (T−x)/(x+1) · p/(1−p)
    log_pmf = tokens * math.log1p(-p) + np.concatenate(([0.0], np.cumsum(np.log((tokens - x[:-1]) / (x[:-1] + 1)) + math.log(p / (1 - p)))))
    pmf = np.exp(log_pmf)
    kept = float(x @ pmf) + capacity * (1 - pmf.sum())  # E[min(X, cap)]
    return max(0.0, 1 - kept / (tokens * p))


def simulated_dropped_fraction(assignments: np.ndarray, num_experts: int, capacity_factor: float, tokens: int) -> float:
    """Share of assignments dropped when consecutive batches of `tokens` tokens share expert buffers of ⌈C·T·k/E⌉."""
    import numpy as np
    batches = len(assignments) // tokens
    top_k = assignments.shape[1]
    capacity = expert_capacity_tokens(capacity_factor, tokens, num_experts, top_k)
    batch_of = np.repeat(np.arange(batches), tokens * top_k)
    loads = np.bincount(batch_of * num_experts + assignments[: batches * tokens].ravel(), minlength=batches * num_experts)
    return float(np.maximum(loads - capacity, 0).sum() / (batches * tokens * top_k))


def experts_touched_uniform(num_experts: int, top_k: int, batch: int) -> float:
    """Expected distinct experts one MoE layer runs for a decode batch of B tokens, uniform routing: E·(1 − (1 − k/E)^B).

    Exact for k distinct experts per token: a token misses a given expert with probability
    C(E−1, k)/C(E, k) = (E−k)/E = 1 − k/E, and tokens route independently.
    """
    return num_experts * (1 - (1 - top_k / num_experts) ** batch)


def simulated_experts_touched(assignments: np.ndarray, num_experts: int, batch: int) -> float:
    """Mean distinct experts per consecutive batch of B tokens of the assignments."""
    import numpy as np
    batches = len(assignments) // batch
    batch_of = np.repeat(np.arange(batches), batch * assignments.shape[1])
    hit = np.zeros(batches * num_experts, dtype=bool)
    hit[batch_of * num_experts + assignments[: batches * batch].ravel()] = True
    return float(hit.sum() / batches)


class RoutingEstimate(BaseModel):
    """Capacity, dropped tokens and experts touched for one routing distribution."""

    distribution: str
    method: str
    """'closed form' (uniform) or 'simulation of N tokens, seed S'."""
    capacity_factor: float | None
    capacity_tokens: int | None
    """Per-expert buffer ⌈C·T·k/E⌉ for T tokens routed together (None without a capacity factor)."""
    dropped_fraction: float | None
    """Expected share of (token, expert) assignments beyond their expert's buffer."""
    batch: int
    experts_touched: float
    """Distinct experts one MoE layer runs per decode step of B tokens."""
    experts_touched_fraction: float
    """experts_touched / E: the share of routed-expert weights read per step."""


def routing_estimate(
    num_experts: int,
    top_k: int,
    batch: int,
    tokens: int,
    capacity_factor: float | None = None,
    distribution: str = "uniform",
    groups: tuple[int, int] | None = None,
    seed: int = 0,
    simulated_tokens: int = 1 << 17,
) -> RoutingEstimate:
    """Closed forms for uniform routing (node-limited or not: each token still picks a given expert with
    probability k/E, independently of other tokens); for skew a seeded simulation of
    max(simulated_tokens, B, T) tokens, split into whole batches of B (decode) and of T (capacity)."""
    capacity = expert_capacity_tokens(capacity_factor, tokens, num_experts, top_k) if capacity_factor else None
    if distribution == "uniform":
        method = "closed form"
        touched = experts_touched_uniform(num_experts, top_k, batch)
        dropped = dropped_fraction_uniform(capacity_factor, tokens, num_experts, top_k) if capacity_factor else None
    else:
        count = max(simulated_tokens, batch, tokens)
        assignments = simulate_routing(count, num_experts, top_k, distribution, seed, groups)
        method = f"simulation of {count} tokens, seed {seed}"
        touched = simulated_experts_touched(assignments, num_experts, batch)
        dropped = simulated_dropped_fraction(assignments, num_experts, capacity_factor, tokens) if capacity_factor else None
    return RoutingEstimate(
        distribution=distribution,
        method=method,
        capacity_factor=capacity_factor,
        capacity_tokens=capacity,
        dropped_fraction=dropped,
        batch=batch,
        experts_touched=touched,
        experts_touched_fraction=touched / num_experts,
    )


class RankTraffic(BaseModel):
    """All-to-all bytes per rank and MoE layer from simulated routing: the mean rank and the bottleneck rank.

    The bottleneck is the busiest rank in either direction, max over ranks of max(sent, received), as
    nccl-tests' alltoallv counts it; it is averaged over the simulated steps. Same conventions as
    AllToAllTraffic: dispatch and combine bytes exclude self-traffic; inter-node bytes add both exchanges.
    """

    routing: str
    """How the assignments were drawn."""
    mode: A2AMode
    dispatch_dtype: DispatchDtype
    ep_size: int
    tokens_per_rank: int
    steps: int
    """Simulated all-to-all steps (each of N·T tokens)."""
    dispatch_bytes_per_rank_mean: float
    dispatch_bytes_per_rank_max: float
    combine_bytes_per_rank_mean: float
    combine_bytes_per_rank_max: float
    self_bytes_per_rank_mean: float
    inter_node_bytes_per_rank_mean: float
    inter_node_bytes_per_rank_max: float
    rdma_bytes_per_rank_mean: float
    """Inter-node bytes with one copy per token and remote node, sent to the rail peer (same local index)."""
    rdma_bytes_per_rank_max: float

    @computed_field
    @property
    def imbalance(self) -> float:
        """Bottleneck over mean dispatch bytes (1 for perfectly even traffic)."""
        return self.dispatch_bytes_per_rank_max / self.dispatch_bytes_per_rank_mean if self.dispatch_bytes_per_rank_mean else 1.0


def _per_token_destinations(destinations: np.ndarray, dedupe: bool) -> tuple[np.ndarray, np.ndarray]:
    """(token index, destination) pairs, once per distinct destination when dedupe, else once per expert."""
    import numpy as np
    token = np.repeat(np.arange(len(destinations)), destinations.shape[1])
    if not dedupe:
        return token, destinations.ravel()
    ordered = np.sort(destinations, axis=1)
    first = np.ones_like(ordered, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    return token[first.ravel()], ordered[first]


def _copy_matrix(token: np.ndarray, destination: np.ndarray, steps: int, ep_size: int, tokens_per_rank: int) -> np.ndarray:
    """Copies from each source rank to each destination rank, [steps, N, N]; token t of a step comes from rank t // T."""
    import numpy as np
    step, source = np.divmod(token // tokens_per_rank, ep_size)
    flat = (step * ep_size + source) * ep_size + destination
    return np.bincount(flat, minlength=steps * ep_size * ep_size).reshape(steps, ep_size, ep_size)


def _busiest(copies: np.ndarray, counted: np.ndarray) -> tuple[float, float]:
    """(mean copies sent per rank, mean over steps of the busiest rank's max(sent, received)) over counted pairs."""
    import numpy as np
    kept = copies * counted
    sent, received = kept.sum(axis=2), kept.sum(axis=1)  # [steps, N]
    return float(sent.mean()), float(np.maximum(sent, received).max(axis=1).mean())


def simulated_rank_traffic(
    assignments: np.ndarray,
    num_experts: int,
    ep_size: int,
    tokens_per_rank: int,
    hidden: int,
    mode: A2AMode = "rank",
    dispatch_dtype: DispatchDtype = "bf16",
    gpus_per_node: int | None = None,
    routing: str = "given assignments",
) -> RankTraffic:
    """Per-rank all-to-all bytes from assignments of whole steps of N·T tokens (rank r sends tokens r·T … r·T+T−1 of each step)."""
    import numpy as np
    if num_experts % ep_size:
        raise SpecError(f"expert parallelism {ep_size} must divide the {num_experts} routed experts")
    steps = len(assignments) // (ep_size * tokens_per_rank)
    if steps == 0:
        raise SpecError(f"need at least N·T = {ep_size * tokens_per_rank} simulated tokens, got {len(assignments)}")
    per_node = min(gpus_per_node or ep_size, ep_size)
    if ep_size % per_node:
        raise SpecError(f"expert parallelism {ep_size} must be a multiple of gpus per node ({per_node})")
    ranks = assignments[: steps * ep_size * tokens_per_rank] // (num_experts // ep_size)  # [steps·N·T, k]
    copies = _copy_matrix(*_per_token_destinations(ranks, mode == "rank"), steps, ep_size, tokens_per_rank)
    rank_ids = np.arange(ep_size)
    node = rank_ids // per_node
    remote = rank_ids[:, None] != rank_ids[None, :]
    other_node = node[:, None] != node[None, :]
    sent, busiest = _busiest(copies, remote)
    inter_sent, inter_busiest = _busiest(copies, other_node)
    rdma_sent, rdma_busiest = inter_sent, inter_busiest
    if mode == "rank":  # once per remote node, to the rail peer (same local index) that fans it out over NVLink
        token, dest_node = _per_token_destinations(ranks // per_node, dedupe=True)
        rail_peer = dest_node * per_node + token // tokens_per_rank % per_node
        rdma_sent, rdma_busiest = _busiest(_copy_matrix(token, rail_peer, steps, ep_size, tokens_per_rank), other_node)
    dispatch, combine = dispatch_bytes_per_copy(hidden, dispatch_dtype), combine_bytes_per_copy(hidden)
    both = dispatch + combine
    return RankTraffic(
        routing=routing,
        mode=mode,
        dispatch_dtype=dispatch_dtype,
        ep_size=ep_size,
        tokens_per_rank=tokens_per_rank,
        steps=steps,
        dispatch_bytes_per_rank_mean=sent * dispatch,
        dispatch_bytes_per_rank_max=busiest * dispatch,
        combine_bytes_per_rank_mean=sent * combine,
        combine_bytes_per_rank_max=busiest * combine,
        self_bytes_per_rank_mean=float(np.trace(copies, axis1=1, axis2=2).mean() / ep_size) * both,
        inter_node_bytes_per_rank_mean=inter_sent * both,
        inter_node_bytes_per_rank_max=inter_busiest * both,
        rdma_bytes_per_rank_mean=rdma_sent * both,
        rdma_bytes_per_rank_max=rdma_busiest * both,
    )


def simulate_rank_traffic(
    num_experts: int,
    top_k: int,
    hidden: int,
    ep_size: int,
    tokens_per_rank: int,
    mode: A2AMode = "rank",
    dispatch_dtype: DispatchDtype = "bf16",
    gpus_per_node: int | None = None,
    distribution: str = "uniform",
    groups: tuple[int, int] | None = None,
    seed: int = 0,
    steps: int = 1,
) -> RankTraffic:
    """simulated_rank_traffic over `steps` freshly simulated steps of N·T tokens."""
    if ep_size > MAX_SIMULATED_RANKS:
        raise SpecError(f"a simulated all-to-all over {ep_size:,} expert-parallel ranks is too large (at most "
                        f"{MAX_SIMULATED_RANKS:,}); use --routing uniform")
    assignments = simulate_routing(steps * ep_size * tokens_per_rank, num_experts, top_k, distribution, seed, groups)
    where = f"{distribution}{f', {groups[1]} of {groups[0]} groups' if groups else ''}, seed {seed}"
    return simulated_rank_traffic(assignments, num_experts, ep_size, tokens_per_rank, hidden, mode, dispatch_dtype, gpus_per_node, where)
