"""Routed-expert load of one step on the busiest expert-parallel rank, in closed form (no numpy).

A decode step's routed-expert time is set by the EP rank that touches the most distinct experts (it reads
those experts' weights) and receives the most (token, expert) assignments (its grouped GEMM's rows), not by
the mean rank. Letters: E routed experts, k top-k, B tokens routed together by one copy of the experts,
N EP ranks (E/N experts each), G expert groups of which a token picks M (node-limited routing; G = M = 1
without it). See docs/formulas.md §Speed, "Busiest expert-parallel rank".
"""

import math
from functools import lru_cache
from statistics import NormalDist


def _binomial_terms(n: int, xs: range, p: float) -> list[float]:
    """P(X = x) for x in ``xs``, X ~ Binomial(n, p) (the logarithms that do not depend on x computed once)."""
    if p <= 0 or p >= 1:
        return [float(x == (n if p >= 1 else 0)) for x in xs]
    top, log_p, log_q = math.lgamma(n + 1), math.log(p), math.log1p(-p)
    return [math.exp(top - math.lgamma(x + 1) - math.lgamma(n - x + 1) + x * log_p + (n - x) * log_q) for x in xs]


def _log_binomial_coefficients(n: int) -> list[float]:
    """ln C(n, x), x = 0 … n, as lgamma(n + 1) − lgamma(x + 1) − lgamma(n − x + 1)."""
    top = math.lgamma(n + 1)
    return [top - math.lgamma(x + 1) - math.lgamma(n - x + 1) for x in range(n + 1)]


def _binomial_pmf(n: int, p: float, log_coefficients: list[float]) -> list[float]:
    """P(X = x), x = 0 … n, for X ~ Binomial(n, p), in log space (``log_coefficients``: _log_binomial_coefficients(n))."""
    if p <= 0:
        return [1.0] + [0.0] * n
    if p >= 1:
        return [0.0] * n + [1.0]
    log_p, log_q = math.log(p), math.log1p(-p)
    return [math.exp(c + x * log_p + (n - x) * log_q) for x, c in enumerate(log_coefficients)]


def _convolve(a: list[float], b: list[float]) -> list[float]:
    out = [0.0] * (len(a) + len(b) - 1)
    for i, pa in enumerate(a):
        if pa:
            for j, pb in enumerate(b):
                out[i + j] += pa * pb
    return out


def _group_share_pmf(experts: int, per_group: int, picks: int, top_k: int, tokens: int, choose: float) -> list[float]:
    """Distribution of the distinct experts touched among ``experts`` experts of one group (of per_group).

    A token selects the group with probability ``choose`` (M/G); when it does, each expert of the group is
    among its k with probability k/(M·E/G). The n ~ Binomial(B, M/G) tokens that select the group touch
    each of its experts with probability 1 − (1 − k/(M·E/G))ⁿ, independently (the approximation).
    """
    per_expert = top_k / (picks * per_group)
    mixture = [0.0] * (experts + 1)
    mean, spread = tokens * choose, 10 * math.sqrt(tokens * choose * (1 - choose)) + 10
    low, high = max(0, int(mean - spread)), min(tokens, int(mean + spread) + 1)  # weights outside are below 1e-20
    coefficients = _log_binomial_coefficients(experts)
    for n, weight in zip(range(low, high + 1), _binomial_terms(tokens, range(low, high + 1), choose)):
        if weight > 1e-15:
            touch = 1 - (1 - per_expert) ** n
            if touch >= 1:  # every expert touched: the other entries would gain weight · 0
                mixture[-1] += weight
            else:
                mixture = [total + weight * p for total, p in zip(mixture, _binomial_pmf(experts, touch, coefficients))]
    return mixture


@lru_cache(maxsize=4096)
def busiest_rank_experts(num_experts: int, top_k: int, tokens: int, ep: int, groups: tuple[int, int] | None = None) -> float:
    """Expected distinct experts touched on the busiest of N = ep ranks for B = tokens routed tokens, uniform routing.

    Each rank's count X_r is the sum over the groups it holds of _group_share_pmf; ranks are taken as
    independent, so E[max_r X_r] = Σ_{j≥1} (1 − F(j − 1)^N) with F the CDF of one rank's count. N = 1 gives
    the exact mean E·(1 − (1 − k/E)^B). Checked against the seeded simulation in tests/test_perf_experts.py.
    """
    if tokens <= 0:
        return 0.0
    num_groups, picks = groups or (1, 1)
    per_group = num_experts // num_groups
    per_rank = num_experts // ep
    if ep == 1:
        return num_experts * (1 - (1 - top_k / num_experts) ** tokens)
    if per_rank <= per_group:  # the rank's experts lie in one group
        pmf = _group_share_pmf(per_rank, per_group, picks, top_k, tokens, picks / num_groups)
    else:  # whole groups per rank, taken as independent of each other
        one = _group_share_pmf(per_group, per_group, picks, top_k, tokens, picks / num_groups)
        pmf = [1.0]
        for _ in range(per_rank // per_group):
            pmf = _convolve(pmf, one)
    expected, cdf = 0.0, 0.0
    for j in range(1, len(pmf)):
        cdf += pmf[j - 1]
        expected += 1 - min(cdf, 1.0) ** ep
    return expected


def expected_max_normal(n: int) -> float:
    """E[max of n independent standard normals], by Blom's approximation Φ⁻¹((n − 0.375)/(n + 0.25)); 0 for n = 1."""
    return 0.0 if n <= 1 else NormalDist().inv_cdf((n - 0.375) / (n + 0.25))


def busiest_rank_assignments(top_k: int, tokens: int, ep: int) -> float:
    """Expected (token, expert) assignments the busiest of N ranks receives: each of the B·k assignments lands on
    a given rank with probability 1/N, so a rank's load is Binomial(B·k, 1/N); its maximum over N ranks is taken
    as mean + σ·E[max of N normals], never more than B·k (N = 1: exactly B·k)."""
    assignments = tokens * top_k
    if ep == 1:
        return float(assignments)
    mean = assignments / ep
    sigma = math.sqrt(assignments * (1 / ep) * (1 - 1 / ep))
    return min(float(assignments), mean + sigma * expected_max_normal(ep))


SIMULATED_TOKENS = 1 << 14
"""Fewest routed tokens the skewed-routing simulation draws (whole steps of B tokens; at least one step)."""


@lru_cache(maxsize=1024)
def simulated_busiest_rank_load(num_experts: int, top_k: int, tokens: int, ep: int, distribution: str,
                                groups: tuple[int, int] | None = None, seed: int = 0) -> tuple[float, float, float]:
    """(distinct experts, (token, expert) assignments, busiest over mean assignments) on the busiest of N = ep ranks
    for B = tokens routed together, skewed routing: ⌈SIMULATED_TOKENS/B⌉ steps of B tokens drawn by
    traffic.routing.simulate_routing (seeded; the popularity ranks are placed once, so a hot expert stays on its
    rank), each rank's counts maxed over the ranks per step and averaged over the steps. The mean rank receives
    B·k/N assignments. numpy is imported here only: uniform routing keeps the closed forms above."""
    import numpy as np

    from moeplan.traffic.routing import simulate_routing
    if tokens <= 0:
        return 0.0, 0.0, 1.0
    steps = -(-SIMULATED_TOKENS // tokens)
    expert = simulate_routing(steps * tokens, num_experts, top_k, distribution, seed, groups).reshape(steps, -1)
    flat = (np.arange(steps)[:, None] * num_experts + expert).ravel()
    counts = np.bincount(flat, minlength=steps * num_experts).reshape(steps, num_experts)  # assignments per expert
    per_rank = counts.reshape(steps, ep, num_experts // ep)
    touched = float((per_rank > 0).sum(axis=2).max(axis=1).mean())
    assignments = float(per_rank.sum(axis=2).max(axis=1).mean())
    return touched, assignments, assignments / (tokens * top_k / ep)
