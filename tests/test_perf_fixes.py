"""The three speed fixes of issue 10, through the CLI: expert replicas under data parallelism, the input
embedding as a lookup, and the busiest expert-parallel rank."""

import pytest

from moeplan.perf.experts import busiest_rank_experts, busiest_rank_assignments
from moeplan.traffic.routing import simulate_routing


def _speed(cli, *args):
    return cli("estimate", *args, "--json").json()


def test_dp_replicas_hold_their_own_experts(cli):
    """tp1/dp8 Mixtral: each replica holds all 8 experts and routes only its own batch-1 token: 2 experts touched,
    the same step as one replica (it used to count batch × dp = 8 tokens: 7.2 experts)."""
    one = _speed(cli, "mixtral-8x7b", "--gpu", "h200", "--tp", "1", "--dp", "1", "--batch", "1")
    eight = _speed(cli, "mixtral-8x7b", "--gpu", "h200", "--tp", "1", "--dp", "8", "--batch", "1")
    assert eight["throughput"]["experts_touched_per_layer"] == pytest.approx(2.0, rel=1e-12)
    assert eight["throughput"]["decode"]["bytes_read"] == one["throughput"]["decode"]["bytes_read"]
    assert eight["throughput"]["decode_tokens_per_s"] == pytest.approx(8 * one["throughput"]["decode_tokens_per_s"], rel=1e-9)
    # fused-MoE workspace: no gather of other replicas' tokens
    assert eight["memory"]["most_loaded"]["activation_bytes"] == one["memory"]["most_loaded"]["activation_bytes"]


def test_ep_across_replicas_routes_their_tokens_together(cli):
    """ep8 over dp8 (tp1): one copy of the experts serves all 8 replicas, so 8 tokens are routed together."""
    data = _speed(cli, "mixtral-8x7b", "--gpu", "h200", "--tp", "1", "--dp", "8", "--ep", "8", "--batch", "1")
    # 8 tokens over 8 ranks of one expert each: a rank is idle with probability (6/8)^8, the busiest unless all are
    assert data["throughput"]["experts_touched_per_layer"] == pytest.approx(1 - (0.75 ** 8) ** 8, rel=1e-9)


def test_input_embedding_is_a_lookup(cli):
    """Decode reads one embedding row per token, not the table (gpt-oss-20b: untied, 201,088 × 2,880 bf16)."""
    data = _speed(cli, "gpt-oss-20b", "--gpu", "h100", "--batch", "4")
    held = data["memory"]["most_loaded"]["weights_by_component_bytes"]
    table = held["embedding"]
    assert table == 201_088 * 2_880 * 2
    kv = data["memory"]["most_loaded"]["kv_cache_bytes"]
    experts = held["routed_experts"]
    touched = data["throughput"]["experts_touched_per_layer"] / 32
    kv_token = data["memory"]["kv_cache_bytes_per_token"]
    read = sum(held.values()) - held["norms"] - table - experts  # the bound reads weight matrices, not norms
    expected = read + table * 4 / 201_088 + experts * touched + kv + 4 * kv_token
    assert data["throughput"]["decode"]["bytes_read"] == pytest.approx(expected, abs=2)


def test_tied_embedding_is_read_whole_as_lm_head(cli):
    """A tied table is also the lm_head matmul's weight: decode reads all of it (olmoe is untied; qwen3-0.6b-like via --set)."""
    data = _speed(cli, "mixtral-8x7b", "--set", "tie_word_embeddings=true", "--gpu", "h100")
    held = data["memory"]["most_loaded"]["weights_by_component_bytes"]
    assert held["lm_head"] == 0 and held["embedding"] == 2 * 32000 * 4096
    experts = held["routed_experts"]
    kv = data["memory"]["most_loaded"]["kv_cache_bytes"]
    expected = sum(held.values()) - held["norms"] - experts + experts * 2 / 8 + kv + data["memory"]["kv_cache_bytes_per_token"]
    assert data["throughput"]["decode"]["bytes_read"] == pytest.approx(expected, abs=2)


def test_busiest_ep_rank_sets_the_step(cli):
    """DeepSeek-V3 TP8/EP8 batch 1: the busiest rank touches ≈3.4 experts per layer (mean 1): group-limited
    routing (4 of 8 groups, one group per rank) piles a token's 8 experts onto 4 ranks."""
    data = _speed(cli, "deepseek-v3", "--gpu", "h200", "--tp", "8", "--ep", "8", "--batch", "1")
    assert data["throughput"]["experts_touched_per_layer"] == pytest.approx(3.3617, abs=1e-3)
    assert busiest_rank_experts(256, 8, 8, 8, (8, 4)) / (256 * (1 - (1 - 8 / 256) ** 8) / 8) == pytest.approx(1.667, abs=0.01)
    assert busiest_rank_experts(256, 8, 64, 8, (8, 4)) / (256 * (1 - (1 - 8 / 256) ** 64) / 8) == pytest.approx(1.099, abs=0.01)


@pytest.mark.parametrize(("tokens", "ep", "groups"), [(1, 8, (8, 4)), (8, 8, (8, 4)), (64, 8, (8, 4)), (4, 32, (8, 4)),
                                                      (16, 4, (8, 4)), (2, 8, None), (16, 16, None)])
def test_busiest_rank_closed_form_matches_the_seeded_simulation(tokens, ep, groups):
    import numpy as np

    steps = 1500
    assignments = simulate_routing(steps * tokens, 256, 8, "uniform", seed=1, groups=groups).reshape(steps, tokens * 8)
    per_rank = 256 // ep
    busiest = [max(len(np.unique(row[row // per_rank == r])) for r in range(ep)) for row in assignments]
    assert busiest_rank_experts(256, 8, tokens, ep, groups) == pytest.approx(float(np.mean(busiest)), rel=0.06)


def test_busiest_rank_assignments():
    assert busiest_rank_assignments(8, 16, 1) == 128
    assert 128 / 8 < busiest_rank_assignments(8, 16, 8) < 128 / 8 + 3 * (128 * 7 / 64) ** 0.5
    assert busiest_rank_assignments(8, 1, 64) <= 8
