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


def _prefill_ops(data):
    return data["throughput"]["expected"]["prefill_step"]["ops_s"]


def test_skewed_routing_sets_the_busiest_rank(cli):
    """Mixtral tp1/ep8 (dp8), zipf:3: one prompt step routes 8 × 4,096 tokens over 8 ranks of one expert each; the
    hot expert gets almost every token. Routed-expert GEMM time (compute-bound, one expert per rank) grows by the
    simulated busiest rank's assignments over the uniform closed form's, and the all-to-all carries the busiest
    rank's copies: the busiest/mean ratio of the simulated traffic (simulate_rank_traffic, same seeded draws)."""
    import numpy as np

    from moeplan.traffic.routing import simulate_rank_traffic

    uniform = _speed(cli, "mixtral-8x7b", "--ep", "8")
    skew = _speed(cli, "mixtral-8x7b", "--ep", "8", "--routing", "zipf:3")
    tokens = 8 * 4096  # replicas × prompt tokens, routed together by one copy of the experts
    draws = simulate_routing(tokens, 8, 2, "zipf:3", seed=0)
    busiest = np.bincount(draws.ravel(), minlength=8).max()  # hand count: one expert per rank
    assert busiest / (tokens * 2 / 8) == pytest.approx(3.94, abs=0.01)
    u, z = _prefill_ops(uniform), _prefill_ops(skew)
    assert z["routed_experts"] / u["routed_experts"] == pytest.approx(busiest / busiest_rank_assignments(2, tokens, 8), rel=0.02)
    traffic = simulate_rank_traffic(8, 2, 4096, 8, 4096, mode="expert", distribution="zipf:3")  # the same draws
    assert traffic.imbalance == pytest.approx(busiest / (tokens * 2 / 8), rel=0.03)  # its ratio excludes self-copies
    assert 3 < z["ep_dispatch_combine"] / u["ep_dispatch_combine"] < busiest / (tokens * 2 / 8)  # + the fixed 2α
    assert skew["throughput"]["ttft_s"] > 3 * uniform["throughput"]["ttft_s"]
    d_u, d_z = (x["throughput"]["expected"]["decode_step"]["ops_s"] for x in (uniform, skew))
    assert d_z["routed_experts"] >= d_u["routed_experts"] and d_z["ep_dispatch_combine"] > d_u["ep_dispatch_combine"]


def test_skewed_routing_load_is_the_simulated_busiest_rank():
    """simulated_busiest_rank_load against a hand count over the same seeded draws (DeepSeek-like E 256, k 8, EP 8,
    2 steps of 8,192 tokens); uniform routing keeps the closed forms (imbalance 1)."""
    import numpy as np

    from moeplan.perf.experts import simulated_busiest_rank_load

    draws = simulate_routing(16384, 256, 8, "zipf:1.2", seed=0, groups=(8, 4)).reshape(2, -1)
    ranks = [[np.unique(step[step // 32 == r]) for r in range(8)] for step in draws]
    touched = np.mean([max(len(x) for x in step) for step in ranks])
    rows = np.mean([np.bincount(step // 32, minlength=8).max() for step in draws])
    load = simulated_busiest_rank_load(256, 8, 8192, 8, "zipf:1.2", (8, 4))
    assert load == (pytest.approx(touched, rel=1e-12), pytest.approx(rows, rel=1e-12), pytest.approx(rows / 8192, rel=1e-12))
    assert load[2] > 1.2
