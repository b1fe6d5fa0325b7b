"""Routing simulation, capacity and experts touched, against Monte-Carlos and exact sums written here."""

import math
from fractions import Fraction

import numpy as np
import pytest

from moeplan.errors import SpecError
from moeplan.traffic.alltoall import all_to_all_traffic
from moeplan.traffic.routing import (
    dropped_fraction_uniform,
    expert_capacity_tokens,
    experts_touched_uniform,
    routing_estimate,
    simulate_rank_traffic,
    simulate_routing,
    simulated_dropped_fraction,
    simulated_experts_touched,
    simulated_rank_traffic,
)


def top_k_by_scores(rng, tokens, experts, k):
    """Real top-k routing: the k highest of uniform random scores per token (a uniform k-subset)."""
    return np.argpartition(-rng.random((tokens, experts)), k - 1, axis=1)[:, :k]


def test_simulated_assignments_are_distinct_seeded_and_grouped():
    a = simulate_routing(20_000, 64, 6, "zipf:1.2", seed=3, groups=(8, 2))
    assert a.shape == (20_000, 6) and a.min() >= 0 and a.max() < 64
    assert (np.diff(np.sort(a, axis=1), axis=1) > 0).all()
    assert (a == simulate_routing(20_000, 64, 6, "zipf:1.2", seed=3, groups=(8, 2))).all()
    assert (a != simulate_routing(20_000, 64, 6, "zipf:1.2", seed=4, groups=(8, 2))).any()
    groups_used = np.array([len(set(row)) for row in a // 8])
    assert groups_used.max() <= 2


def test_zipf_sampling_is_sequential_without_replacement():
    """Inclusion frequencies match numpy's own weighted sampling without replacement (Generator.choice),
    compared popularity-sorted since the simulator permutes which expert is popular."""
    experts, k, s = 32, 4, 1.0
    weights = 1 / np.arange(1, experts + 1) ** s
    weights /= weights.sum()
    rng = np.random.default_rng(7)
    reference = np.zeros(experts)
    for _ in range(20_000):
        reference[rng.choice(experts, size=k, replace=False, p=weights)] += 1
    simulated = np.bincount(simulate_routing(200_000, experts, k, "zipf:1.0", seed=1).ravel(), minlength=experts)
    assert np.sort(simulated / 200_000)[::-1] == pytest.approx(reference / 20_000, abs=0.012)
    # the first pick of each token is ∝ popularity
    first = np.bincount(simulate_routing(200_000, experts, k, "zipf:1.0", seed=2)[:, 0], minlength=experts)
    assert np.sort(first / 200_000)[::-1] == pytest.approx(weights, abs=0.004)


def test_capacity_tokens():
    assert expert_capacity_tokens(1.25, 4096, 256, 8) == 160
    assert expert_capacity_tokens(1.0, 100, 16, 3) == 19  # ⌈18.75⌉


def exact_dropped_fraction(tokens: int, experts: int, k: int, capacity: int) -> Fraction:
    """Σ_x (x − cap)⁺ · C(T, x) p^x (1 − p)^(T − x) / (T·p) with p = k/E, in exact rationals."""
    p = Fraction(k, experts)
    overflow = sum((x - capacity) * math.comb(tokens, x) * p**x * (1 - p) ** (tokens - x) for x in range(capacity + 1, tokens + 1))
    return overflow / (tokens * p)


@pytest.mark.parametrize("factor, tokens, experts, k", [(1.0, 64, 16, 2), (1.25, 512, 64, 8), (2.0, 100, 8, 2), (0.5, 300, 32, 4)])
def test_dropped_fraction_is_the_binomial_sum(factor, tokens, experts, k):
    capacity = expert_capacity_tokens(factor, tokens, experts, k)
    exact = float(exact_dropped_fraction(tokens, experts, k, capacity))
    assert dropped_fraction_uniform(factor, tokens, experts, k) == pytest.approx(exact, rel=1e-9)


def test_dropped_fraction_matches_monte_carlo():
    """Batches of 64 tokens, 16 experts, top-2, capacity factor 1: buffers of 8 tokens."""
    rng = np.random.default_rng(2024)
    batches, tokens, experts, k = 8000, 64, 16, 2
    chosen = top_k_by_scores(rng, batches * tokens, experts, k).reshape(batches, tokens * k)
    loads = np.stack([np.bincount(row, minlength=experts) for row in chosen])
    monte_carlo = np.maximum(loads - 8, 0).sum() / (batches * tokens * k)
    closed = dropped_fraction_uniform(1.0, tokens, experts, k)
    assert closed == pytest.approx(monte_carlo, rel=0.01)
    assert closed == pytest.approx(0.13055, abs=1e-5)
    assert simulated_dropped_fraction(simulate_routing(batches * tokens, experts, k, seed=5), experts, 1.0, tokens) == pytest.approx(closed, rel=0.01)


def test_skew_drops_more_than_uniform():
    skewed = simulated_dropped_fraction(simulate_routing(64 * 4096, 256, 8, "zipf:1.0", seed=0), 256, 1.25, 4096)
    assert skewed > 10 * dropped_fraction_uniform(1.25, 4096, 256, 8)


def test_experts_touched_closed_form_is_exact():
    for experts, k, batch in [(256, 8, 1), (256, 8, 64), (8, 2, 5), (64, 6, 17)]:
        exact = experts * (1 - Fraction(math.comb(experts - 1, k), math.comb(experts, k)) ** batch)
        approx = experts * (1 - (1 - Fraction(k, experts)) ** batch)
        assert exact == approx  # C(E−1, k)/C(E, k) = (E − k)/E: the two forms are identical
        assert experts_touched_uniform(experts, k, batch) == pytest.approx(float(exact), rel=1e-12)


@pytest.mark.parametrize("experts, k, batch", [(256, 8, 16), (64, 6, 4), (128, 8, 64)])
def test_experts_touched_matches_monte_carlo(experts, k, batch):
    rng = np.random.default_rng(99)
    batches = 3000
    chosen = top_k_by_scores(rng, batches * batch, experts, k).reshape(batches, batch * k)
    monte_carlo = np.mean([len(np.unique(row)) for row in chosen])
    closed = experts_touched_uniform(experts, k, batch)
    assert closed == pytest.approx(monte_carlo, rel=0.01)
    assert simulated_experts_touched(simulate_routing(batches * batch, experts, k, seed=1), experts, batch) == pytest.approx(closed, rel=0.01)


def test_skewed_experts_touched_against_numpy_choice():
    experts, k, batch, batches = 64, 4, 16, 2000
    weights = 1 / np.arange(1, experts + 1)
    weights /= weights.sum()
    rng = np.random.default_rng(11)
    reference = np.mean([
        len({e for _ in range(batch) for e in rng.choice(experts, size=k, replace=False, p=weights)}) for _ in range(batches)
    ])
    simulated = simulated_experts_touched(simulate_routing(20_000 * batch, experts, k, "zipf:1.0", seed=4), experts, batch)
    assert simulated == pytest.approx(reference, rel=0.01)
    assert simulated < experts_touched_uniform(experts, k, batch)


def test_routing_estimate_uses_closed_forms_for_uniform_and_simulates_skew():
    uniform = routing_estimate(256, 8, batch=64, tokens=4096, capacity_factor=1.0)
    assert uniform.method == "closed form"
    assert uniform.experts_touched == experts_touched_uniform(256, 8, 64)
    assert uniform.capacity_tokens == 128
    assert uniform.dropped_fraction == dropped_fraction_uniform(1.0, 4096, 256, 8)
    skewed = routing_estimate(256, 8, batch=64, tokens=4096, capacity_factor=1.0, distribution="zipf:1.0", seed=1)
    assert skewed.method.startswith("simulation")
    assert skewed.experts_touched < uniform.experts_touched and skewed.dropped_fraction > uniform.dropped_fraction
    # node-limited uniform routing keeps each expert's marginal k/E, so the closed forms still hold
    grouped = simulate_routing(3000 * 64, 256, 8, seed=2, groups=(8, 4))
    assert simulated_experts_touched(grouped, 256, 64) == pytest.approx(uniform.experts_touched, rel=0.01)
    assert routing_estimate(256, 8, batch=64, tokens=4096, groups=(8, 4)).method == "closed form"


def test_bad_inputs_are_spec_errors():
    with pytest.raises(SpecError, match="zipf:S"):
        simulate_routing(10, 8, 2, "pareto")
    with pytest.raises(SpecError, match="capacity factor"):
        dropped_fraction_uniform(0, 4096, 256, 8)


def test_rank_traffic_bookkeeping_by_hand():
    """E = 4 experts on N = 2 ranks (experts 0-1 on rank 0), T = 2 tokens per rank, k = 2, one node per rank.
    Rank 0 sends tokens 0, 1; rank 1 sends tokens 2, 3."""
    assignments = np.array([[0, 1], [2, 3], [2, 0], [3, 2]])
    # destination ranks: t0 {0}, t1 {1}, t2 {1, 0}, t3 {1}. Rank mode copies 0→1: 1, 1→0: 1, self: 0→0 1, 1→1 2.
    rank = simulated_rank_traffic(assignments, 4, 2, 2, hidden=64, mode="rank", gpus_per_node=1)
    assert rank.dispatch_bytes_per_rank_mean == 1 * 128 and rank.dispatch_bytes_per_rank_max == 128
    assert rank.self_bytes_per_rank_mean == 1.5 * 256
    assert rank.inter_node_bytes_per_rank_mean == 256 and rank.rdma_bytes_per_rank_mean == 256
    # expert mode: 0→1 sends 2 (t1 twice), 1→0 sends 1 (t2's expert 0); rank 0 is busiest with 2.
    expert = simulated_rank_traffic(assignments, 4, 2, 2, hidden=64, mode="expert", dispatch_dtype="fp8")
    assert expert.dispatch_bytes_per_rank_mean == 1.5 * (64 + 4) and expert.dispatch_bytes_per_rank_max == 2 * 68
    assert expert.combine_bytes_per_rank_max == 2 * 128
    assert expert.inter_node_bytes_per_rank_mean == 0  # one node


@pytest.mark.parametrize("mode", ["rank", "expert"])
@pytest.mark.parametrize("dtype", ["bf16", "fp8"])
def test_simulated_rank_traffic_mean_matches_closed_form(mode, dtype):
    rng = np.random.default_rng(8)
    assignments = top_k_by_scores(rng, 16 * 2048 * 3, 128, 8)
    simulated = simulated_rank_traffic(assignments, 128, 16, 2048, 4096, mode, dtype, gpus_per_node=4)
    closed = all_to_all_traffic(128, 8, 4096, 16, 2048, mode, dtype, gpus_per_node=4)
    assert simulated.steps == 3
    for field in ("dispatch", "combine", "self", "inter_node", "rdma"):
        assert getattr(simulated, f"{field}_bytes_per_rank_mean") == pytest.approx(getattr(closed, f"{field}_bytes_per_rank"), rel=0.01)
    assert 1 <= simulated.imbalance < 1.05


def test_skew_makes_a_bottleneck_rank():
    skewed = simulate_rank_traffic(256, 8, 7168, 8, 1024, "rank", "fp8", distribution="zipf:1.0", seed=0)
    uniform = simulate_rank_traffic(256, 8, 7168, 8, 1024, "rank", "fp8", seed=0)
    assert uniform.imbalance < 1.05 < 1.25 < skewed.imbalance
    assert skewed.dispatch_bytes_per_rank_max > 1.25 * uniform.dispatch_bytes_per_rank_max
