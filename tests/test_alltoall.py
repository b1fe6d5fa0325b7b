"""All-to-all closed forms against a Monte-Carlo of real top-k routing written here, and DeepSeek-V3 by hand."""

import math
from fractions import Fraction

import numpy as np
import pytest

from moeplan.errors import SpecError
from moeplan.spec.presets import load_preset
from moeplan.traffic.alltoall import (
    all_to_all_traffic,
    combine_bytes_per_copy,
    dispatch_bytes_per_copy,
    expected_destination_ranks,
    expected_destinations,
    spec_all_to_all_traffic,
    unit_touch_probabilities,
)


def test_payload_per_copy():
    assert dispatch_bytes_per_copy(7168, "bf16") == 14336
    assert dispatch_bytes_per_copy(7168, "fp8") == 7168 + 4 * 56 == 7392  # 56 fp32 scales, one per 128 channels
    assert dispatch_bytes_per_copy(7000, "fp8") == 7000 + 4 * 55  # ⌈7000/128⌉ = 55
    assert combine_bytes_per_copy(7168) == 14336


def top_k_by_scores(rng, tokens, experts, k, groups=None):
    """Real top-k routing: the k highest of random scores; with (G, M) groups, the top-M groups by a random
    group score first (experts outside them are masked)."""
    scores = rng.random((tokens, experts))
    if groups:
        count, keep = groups
        group_rank = np.argsort(np.argsort(-rng.random((tokens, count)), axis=1), axis=1)
        scores[np.repeat(group_rank >= keep, experts // count, axis=1)] = -1.0
    return np.argsort(-scores, axis=1)[:, :k]


def monte_carlo_copies(experts_of, num_experts, ep_size, gpus_per_node):
    """Per-token means of copies: (rank mode: all, to self, to other nodes, to remote nodes; expert mode: to
    self, to other nodes). Every simulated token is sent once from each of the N ranks (routing does not
    depend on the source), which averages the source rank out without more routing draws."""
    tokens = len(experts_of)
    rank = experts_of // (num_experts // ep_size)
    hit = np.zeros((tokens, ep_size), dtype=bool)
    hit[np.arange(tokens)[:, None], rank] = True
    node_hit = np.zeros((tokens, ep_size // gpus_per_node), dtype=bool)
    node_hit[np.arange(tokens)[:, None], rank // gpus_per_node] = True
    rank_node = np.arange(ep_size) // gpus_per_node
    per_source = []
    for source in range(ep_size):
        other_nodes = rank_node != rank_node[source]
        per_source.append([
            hit.sum(1).mean(),
            hit[:, source].mean(),
            hit[:, other_nodes].sum(1).mean(),
            node_hit.sum(1).mean() - node_hit[:, rank_node[source]].mean(),
            (rank == source).sum(1).mean(),
            other_nodes[rank].sum(1).mean(),
        ])
    names = ("rank_copies", "rank_self", "rank_inter", "rank_rdma", "expert_self", "expert_inter")
    return dict(zip(names, np.mean(per_source, axis=0)))


CASES = [
    # E, k, H, N, P, groups
    (64, 8, 4096, 8, 8, None),
    (256, 8, 7168, 16, 4, None),
    (160, 6, 5120, 32, 8, None),
    (256, 8, 7168, 64, 8, (8, 4)),  # DeepSeek-V3 layout: a group per node
    (256, 8, 7168, 16, 4, (8, 4)),  # a group spans two ranks, a node two groups
    (96, 6, 2048, 12, 4, (8, 3)),  # groups of 12 experts straddle ranks of 8 and nodes of 32
]


@pytest.mark.parametrize("num_experts, k, hidden, ep_size, per_node, groups", CASES)
def test_closed_forms_match_monte_carlo_of_top_k_routing(num_experts, k, hidden, ep_size, per_node, groups):
    rng = np.random.default_rng(12345)
    tokens = 60_000
    mc = monte_carlo_copies(top_k_by_scores(rng, tokens, num_experts, k, groups), num_experts, ep_size, per_node)
    group_args = groups or (1, 1)
    for dtype in ("bf16", "fp8"):
        dispatch = dispatch_bytes_per_copy(hidden, dtype)
        both = dispatch + 2 * hidden
        traffic = {mode: all_to_all_traffic(num_experts, k, hidden, ep_size, 512, mode, dtype, per_node, *group_args) for mode in ("rank", "expert")}
        simulated = {
            ("rank", "dispatch_bytes_per_rank"): 512 * (mc["rank_copies"] - mc["rank_self"]) * dispatch,
            ("rank", "combine_bytes_per_rank"): 512 * (mc["rank_copies"] - mc["rank_self"]) * 2 * hidden,
            ("rank", "self_bytes_per_rank"): 512 * mc["rank_self"] * both,
            ("rank", "inter_node_bytes_per_rank"): 512 * mc["rank_inter"] * both,
            ("rank", "rdma_bytes_per_rank"): 512 * mc["rank_rdma"] * both,
            ("expert", "dispatch_bytes_per_rank"): 512 * (k - mc["expert_self"]) * dispatch,
            ("expert", "combine_bytes_per_rank"): 512 * (k - mc["expert_self"]) * 2 * hidden,
            ("expert", "self_bytes_per_rank"): 512 * mc["expert_self"] * both,
            ("expert", "inter_node_bytes_per_rank"): 512 * mc["expert_inter"] * both,
        }
        for (mode, field), value in simulated.items():
            assert getattr(traffic[mode], field) == pytest.approx(value, rel=0.01), (mode, dtype, field)


def test_grouped_dynamic_programme_reduces_to_the_plain_formula():
    for experts, k, ranks in [(64, 8, 8), (256, 8, 64), (128, 1, 4), (8, 2, 8)]:
        plain = expected_destination_ranks(experts, k, ranks)
        assert sum(unit_touch_probabilities(experts, k, experts // ranks)) == pytest.approx(plain, rel=1e-12)
        # choosing all groups is no restriction
        assert sum(unit_touch_probabilities(experts, k, experts // ranks, 4, 4)) == pytest.approx(plain, rel=1e-12)


def product(numerators, denominators) -> Fraction:
    return Fraction(math.prod(numerators), math.prod(denominators))


def test_deepseek_v3_ep8_by_hand():
    """DeepSeek-V3: H 7168, 256 experts, top-8, 58 MoE layers; 8 groups of 32 experts, top-4 groups.
    EP=8 on one node: 32 experts per rank, so a rank is a group. T = 4096 tokens per rank."""
    spec = load_preset("deepseek-v3")
    # Plain uniform routing (no groups): 8·(1 − C(224, 8)/C(256, 8)) = 5.2947 ranks per token.
    plain = 8 * (1 - product(range(217, 225), range(249, 257)))
    assert expected_destination_ranks(256, 8, 8) == pytest.approx(float(plain), rel=1e-12)
    assert float(plain) == pytest.approx(5.294652, abs=1e-6)
    # Node-limited: 4 groups = 4 ranks, each missed with P = C(96, 8)/C(128, 8): 3.6290 ranks per token.
    ranks = 4 * (1 - product(range(89, 97), range(121, 129)))
    assert float(ranks) == pytest.approx(3.629011, abs=1e-6)
    t = spec_all_to_all_traffic(spec, 8, 4096, "rank", "bf16")
    assert t.destination_ranks_per_token == pytest.approx(float(ranks), rel=1e-12)
    # sent to the 7 other ranks: 4096 · (7/8)·3.6290 · 14336 B = 186,459,394 B per layer, each exchange
    assert t.dispatch_bytes_per_rank == pytest.approx(4096 * float(ranks) * 7 / 8 * 14336, rel=1e-12)
    assert t.dispatch_bytes_per_rank == pytest.approx(186_459_394, abs=1)
    assert t.combine_bytes_per_rank == t.dispatch_bytes_per_rank
    assert t.self_bytes_per_rank == pytest.approx(4096 * float(ranks) / 8 * 2 * 14336, rel=1e-12)  # 53,274,113 B
    assert t.inter_node_bytes_per_rank == 0
    # two all-to-alls in each of 58 MoE layers: 116 per forward, 372.9 MB per layer → 21.63 GB per forward
    assert t.all_to_alls_per_forward == 116
    assert t.per_forward_bytes_per_rank == pytest.approx(58 * 2 * 186_459_394, abs=100)
    fp8 = spec_all_to_all_traffic(spec, 8, 4096, "rank", "fp8")
    assert fp8.dispatch_bytes_per_rank == pytest.approx(96_143_125, abs=1)  # 7392 B per copy
    assert fp8.combine_bytes_per_rank == t.combine_bytes_per_rank
    # expert mode: 8 copies per token, 1 of them to the own rank on average
    expert = spec_all_to_all_traffic(spec, 8, 4096, "expert", "bf16")
    assert expert.dispatch_bytes_per_rank == 4096 * 7 * 14336 == 411_041_792
    assert spec_all_to_all_traffic(spec, 8, 4096, "expert", "fp8").dispatch_bytes_per_rank == 4096 * 7 * 7392 == 211_943_424


def test_deepseek_v3_ep64_by_hand():
    """EP=64 on 8 nodes of 8: 4 experts per rank, a group = a node = 8 ranks; a token reaches at most 4 nodes."""
    spec = load_preset("deepseek-v3")
    nodes = 4 * (1 - product(range(89, 97), range(121, 129)))  # 3.6290, as ranks at EP=8
    # a rank lies in a chosen group with P = 4/8, then is missed with P = C(124, 8)/C(128, 8) = 120·119·118·117/(128·127·126·125)
    ranks = 64 * Fraction(1, 2) * (1 - product(range(117, 121), range(125, 129)))
    assert float(ranks) == pytest.approx(7.359370, abs=1e-6)
    t = spec_all_to_all_traffic(spec, 64, 4096, "rank", "bf16", gpus_per_node=8)
    assert (t.destination_ranks_per_token, t.destination_nodes_per_token) == pytest.approx((float(ranks), float(nodes)), rel=1e-12)
    assert t.dispatch_bytes_per_rank == pytest.approx(4096 * float(ranks) * 63 / 64 * 14336, rel=1e-12)
    assert t.dispatch_bytes_per_rank == pytest.approx(425_391_844, abs=1)
    # to other nodes, once per destination rank: 4096·(7/8)·7.3594 copies, dispatch + combine in bf16
    assert t.inter_node_bytes_per_rank == pytest.approx(4096 * float(ranks) * 7 / 8 * 28672, rel=1e-12)
    assert t.inter_node_bytes_per_rank == pytest.approx(756_252_166, abs=1)
    # once per remote node (DeepEP internode normal): 4096·(7/8)·3.6290 copies
    assert t.rdma_bytes_per_rank == pytest.approx(4096 * float(nodes) * 7 / 8 * 28672, rel=1e-12)
    assert t.rdma_bytes_per_rank == pytest.approx(372_918_788, abs=1)
    fp8 = spec_all_to_all_traffic(spec, 64, 4096, "rank", "fp8", gpus_per_node=8)
    assert fp8.dispatch_bytes_per_rank == pytest.approx(219_342_669, abs=1)
    expert = spec_all_to_all_traffic(spec, 64, 4096, "expert", "fp8", gpus_per_node=8)
    assert expert.dispatch_bytes_per_rank == 4096 * 8 * 63 / 64 * 7392 == 238_436_352
    assert expert.inter_node_bytes_per_rank == 4096 * 8 * 7 / 8 * (7392 + 14336) == 622_985_216
    assert expert.rdma_bytes_per_rank == expert.inter_node_bytes_per_rank


def test_bad_layouts_are_spec_errors():
    with pytest.raises(SpecError, match="must divide"):
        all_to_all_traffic(256, 8, 7168, 48, 4096)
    with pytest.raises(SpecError, match="multiple of gpus per node"):
        expected_destinations(256, 8, 32, gpus_per_node=12)
    with pytest.raises(SpecError, match="exceeds"):
        unit_touch_probabilities(16, 8, 4, expert_groups=8, topk_groups=2)
    with pytest.raises(SpecError, match="dense"):
        spec_all_to_all_traffic(load_preset("mixtral-8x7b").model_copy(update={"moe": None}), 8, 4096)
