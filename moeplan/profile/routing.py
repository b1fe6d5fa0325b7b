"""Expert loads and routing samples for the GEMM and all-to-all benchmarks (numpy, seeded; no torch).

Routing is drawn by the planner's own ``moeplan.traffic.routing.simulate_routing`` so the profiler measures
the traffic the planner models. Letters: n ranks (= EP), T tokens per rank, E routed experts, k top-k;
expert e lives on rank e // (E/n); token t of a sample comes from rank t // T.

Load patterns of the GEMM section:
- ``balanced``: the T·k rows a GPU receives on average, split evenly over its E/n experts.
- ``multinomial``: uniform random top-k routing of n·T tokens (vLLM/SGLang random logits).
- ``skewed``: Zipf(s=1) expert popularity (``zipf:1.0``).
For the last two the GPU measured is the busiest rank of the sample (the one that sets the step time).
"""

from typing import Literal

import numpy as np

from moeplan.traffic.routing import simulate_routing

LoadPattern = Literal["balanced", "multinomial", "skewed"]
LOAD_PATTERNS: tuple[LoadPattern, ...] = ("balanced", "multinomial", "skewed")
ROUTING = {"multinomial": "uniform", "skewed": "zipf:1.0"}
"""Load pattern → simulate_routing distribution."""


def routing_sample(num_ranks: int, tokens_per_rank: int, num_experts: int, top_k: int, distribution: str, seed: int) -> np.ndarray:
    """Top-k expert ids of every token on every rank ([n, T, k]); the same seed gives the same sample on every rank."""
    return simulate_routing(num_ranks * tokens_per_rank, num_experts, top_k, distribution, seed).reshape(num_ranks, tokens_per_rank, top_k)


def balanced_loads(rows: int, local_experts: int) -> np.ndarray:
    """``rows`` split as evenly as possible over the local experts ([E/n] int64; remainder to the first)."""
    loads = np.full(local_experts, rows // local_experts, dtype=np.int64)
    loads[: rows % local_experts] += 1
    return loads


def expert_loads(tokens_per_rank: int, ep: int, num_experts: int, top_k: int, pattern: LoadPattern, seed: int) -> np.ndarray:
    """Rows each expert of one GPU receives ([E/ep] int64) when each of the ep ranks routes T tokens.

    balanced: exactly T·k rows in all; otherwise the experts of the rank receiving the most rows.
    """
    local = num_experts // ep
    if pattern == "balanced":
        return balanced_loads(tokens_per_rank * top_k, local)
    sample = simulate_routing(ep * tokens_per_rank, num_experts, top_k, ROUTING[pattern], seed)
    per_expert = np.bincount(sample.ravel(), minlength=num_experts).reshape(ep, local)  # [ep, E/ep]
    return per_expert[np.argmax(per_expert.sum(axis=1))].astype(np.int64)
