"""Per-GPU memory under parallel layouts, and fit: layouts, sums over ranks, published sizes, activations by
hand, and max batch / max context against searches written here."""

import pytest
from pydantic import ValidationError

from moeplan.accounting.activations import CUDA_CONTEXT_BYTES, inference_activations
from moeplan.accounting.memory import memory_report
from moeplan.accounting.params import count_params
from moeplan.accounting.weights import weight_memory
from moeplan.errors import SpecError
from moeplan.hardware.catalogue import get_gpu
from moeplan.layout import Layout, check_layout, implied_num_gpus, stage_layers
from moeplan.accounting.shard import model_parts, most_loaded_rank, rank_amounts
from moeplan.spec.presets import load_preset, preset_names
from moeplan.units import GiB

MiB = 2**20


def bf16(spec) -> dict[str, int]:
    """2 B per parameter, per component, computed from the parameter counts (independent of weights.py)."""
    return {c: 2 * p for c, p in count_params(spec).by_component.items()}


# --- layouts -------------------------------------------------------------------------------------------


def test_layout_validation():
    qwen3 = load_preset("qwen3-30b-a3b")  # 32 query heads, 4 KV heads, 128 experts
    check_layout(qwen3, Layout(tp=8, ep=8))  # 4 KV heads on 8 ranks: each held by 2
    with pytest.raises(SpecError, match="query heads"):
        check_layout(qwen3, Layout(tp=3))
    with pytest.raises(SpecError, match="KV heads"):
        check_layout(load_preset("dbrx"), Layout(tp=12))  # 12 divides the 48 query heads but not 8 KV heads, nor 8 it
    with pytest.raises(SpecError, match="routed experts"):
        check_layout(load_preset("mixtral-8x7b"), Layout(tp=16, ep=16))
    with pytest.raises(SpecError, match="exceeds"):
        check_layout(load_preset("mixtral-8x7b"), Layout(pp=33))
    with pytest.raises(ValidationError, match="must divide tp × dp"):
        Layout(tp=2, ep=4)


def test_implied_num_gpus():
    # EP GPUs are carved out of tp × dp: --ep 8 needs tp × dp = 8; --tp 2 --ep 4 needs tp × dp = 4; --tp 3 --ep 2: lcm 6
    assert [implied_num_gpus(g) for g in ({"ep": 8}, {"tp": 2, "ep": 4}, {"tp": 3, "ep": 2}, {"ep": 4, "pp": 2})] == [8, 4, 6, 8]
    assert Layout(tp=8, dp=2, ep=8).expert_replicas == 2
    assert Layout(tp=4).expert_tp == 4 and Layout(tp=4, ep=4).expert_tp == 1


def test_stage_layers_follow_vllm():
    # vLLM get_pp_indices: 61 layers on 4 stages -> 15, 15, 16, 15 (the remainder before the last stage)
    assert [len(r) for r in stage_layers(61, 4)] == [15, 15, 16, 15]
    assert [len(r) for r in stage_layers(32, 3)] == [11, 11, 10]
    assert stage_layers(8, 1) == [range(0, 8)]


# --- weights per GPU -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", preset_names())
def test_parts_add_up_to_parameter_counts(name):
    spec = load_preset(name)
    totals = {}
    for part in model_parts(spec):
        totals[part.component] = totals.get(part.component, 0) + part.params
    assert totals == {c: p for c, p in count_params(spec).by_component.items() if p}


def _sum_over_ranks(spec, amounts, layout):
    total = 0
    for stage in range(layout.pp):
        for tp_rank in range(layout.tp):
            for dp_rank in range(layout.dp):
                total += sum(rank_amounts(spec, amounts, layout, stage, tp_rank, dp_rank).values())
    return total


def _layer_count(spec, predicate):
    return sum(predicate(i) for i in range(spec.num_layers))


def test_sums_mixtral():
    spec = load_preset("mixtral-8x7b")
    c = count_params(spec).by_component
    total = 2 * count_params(spec).total
    replicated = 2 * (c["norms"] + c["router"])  # only norms and the router are whole on every TP rank
    assert _sum_over_ranks(spec, bf16(spec), Layout(tp=8, ep=8)) == total + 7 * replicated
    assert _sum_over_ranks(spec, bf16(spec), Layout(tp=2, pp=4)) == total + 1 * replicated
    assert _sum_over_ranks(spec, bf16(spec), Layout(pp=4)) == total


def test_sums_qwen3_kv_heads_replicated():
    spec = load_preset("qwen3-30b-a3b")  # H 2048, 48 layers, 4 KV heads of 128, per-head q/k norms (2·128)
    c = count_params(spec).by_component
    total = 2 * count_params(spec).total
    replicated = 2 * (c["norms"] + c["router"] + 48 * 2 * 128)
    kv_projections = 2 * 48 * 2 * 2048 * 4 * 128  # each KV head held by 8 / 4 = 2 ranks: one extra copy
    assert _sum_over_ranks(spec, bf16(spec), Layout(tp=8, ep=8)) == total + 7 * replicated + kv_projections


def test_sums_deepseek_v3_mla_with_dp_and_expert_replicas():
    spec = load_preset("deepseek-v3")  # H 7168, q_lora 1536, kv_lora 512, rope 64, 61 layers
    c = count_params(spec).by_component
    mla_down = 61 * (7168 * 1536 + 1536 + 7168 * (512 + 64) + 512)  # q_a, its norm, kv_a_with_mqa, its norm
    replicated = 2 * (c["norms"] + c["router"] + mla_down)
    routed = 2 * c["routed_experts"]
    non_expert = 2 * count_params(spec).total - routed
    layout = Layout(tp=8, ep=8, pp=4, dp=2)  # ep 8 over tp·dp = 16 GPUs per stage: 2 expert replicas
    assert _sum_over_ranks(spec, bf16(spec), layout) == 2 * (non_expert + 7 * replicated) + 2 * routed


def test_sums_gpt_oss_biases():
    spec = load_preset("gpt-oss-120b")  # H 2880, 36 layers, 128 experts with biases, o_proj bias
    c = count_params(spec).by_component
    total = 2 * count_params(spec).total
    replicated = 2 * (c["norms"] + c["router"] + 36 * 2880)  # + o_proj bias
    expert_down_bias = 2 * 36 * 128 * 2880  # replicated over expert TP (etp = tp = 4 without EP)
    assert _sum_over_ranks(spec, bf16(spec), Layout(tp=4, ep=4)) == total + 3 * replicated
    assert _sum_over_ranks(spec, bf16(spec), Layout(tp=4)) == total + 3 * (replicated + expert_down_bias)


def test_sums_jamba_and_tied_embedding_copy():
    jamba = load_preset("jamba-v0.1")  # 28 Mamba layers with dt_rank 256 and d_state 16 norms
    c = count_params(jamba).by_component
    replicated = 2 * (c["norms"] + c["router"] + 28 * (256 + 2 * 16))
    assert _sum_over_ranks(jamba, bf16(jamba), Layout(tp=2, pp=2)) == 2 * count_params(jamba).total + replicated
    tied = load_preset("olmoe-1b-7b").model_copy(update={"tie_word_embeddings": True})
    table = 2 * tied.vocab_size * tied.hidden_size
    assert _sum_over_ranks(tied, bf16(tied), Layout(pp=2)) == 2 * count_params(tied).total + table
    assert _sum_over_ranks(tied, bf16(tied), Layout()) == 2 * count_params(tied).total


def test_sums_quantized_bytes():
    spec = load_preset("deepseek-v3")  # fp8 with 128×128 block scales
    weights = weight_memory(spec)
    amounts = weights.by_component_bytes
    assert _sum_over_ranks(spec, amounts, Layout(pp=4)) == weights.total_bytes
    routed = amounts["routed_experts"]
    assert _sum_over_ranks(spec, amounts, Layout(dp=8, ep=8)) == 8 * (weights.total_bytes - routed) + routed


@pytest.mark.parametrize("layout", [Layout(tp=8, ep=8), Layout(tp=4, pp=3), Layout(tp=8, dp=2, ep=16, pp=2)])
def test_most_loaded_rank_is_the_maximum(layout):
    spec = load_preset("qwen3-30b-a3b")
    amounts = {c: b + 1 for c, b in bf16(spec).items()}  # odd totals, so integer remainders differ by rank
    for stage in range(layout.pp):
        ranks = [sum(rank_amounts(spec, amounts, layout, stage, t, d).values()) for t in range(layout.tp) for d in range(layout.dp)]
        assert sum(most_loaded_rank(spec, amounts, layout, stage)[2].values()) == max(ranks)


def test_deepseek_v2_lite_matches_vllm_load_log():
    # vLLM 0.5.0.post1 loading deepseek-ai/DeepSeek-V2-Lite in bf16 on one GPU (vllm-project/vllm PR #4650):
    # "Loading model weights took 29.3010 GB" — GiB in fact (torch allocator bytes / 2^30), to 4 decimals.
    spec = load_preset("deepseek-v2-lite")
    report = memory_report(spec, weight_memory(spec), get_gpu("h100"), Layout())
    assert report.weights_bytes == report.most_loaded.weights_bytes == 2 * 15_706_484_224
    logged = 29.3010 * GiB
    difference = logged - report.weights_bytes  # 46.5 MiB, 0.16 %
    # Not parameters: the YaRN rotary cos/sin table, which the same log prints as "Cache shape
    # torch.Size([163840, 64])", in fp32: 163840 · 64 · 4 B = 40 MiB. The remaining 6.5 MiB equals the
    # router's size in bf16 (26 MoE layers · 64 experts · 2048 · 2 B); what vLLM 0.5 held there is unconfirmed.
    rotary = 163840 * 64 * 4
    router = 26 * 64 * 2048 * 2
    assert abs(difference - (rotary + router)) <= 0.00005 * GiB  # the log's rounding


# --- activations and fit -------------------------------------------------------------------------------


def test_inference_activations_by_hand():
    spec = load_preset("mixtral-8x7b")  # H 4096, 32 heads, 8 KV heads of 128, E 8, k 2, I 14336, V 32000
    act = inference_activations(spec, Layout(tp=2), range(32), batch=64, prefill_chunk=8192)
    T = 8192
    assert act.hidden_bytes == 2 * T * 4096 * 2
    assert act.workspace_bytes["attention"] == T * (2 * 16 + 2 * 4) * 128 * 2  # QKV out + attention out, per rank
    # Triton fused MoE with etp = tp = 2: I/etp = 7168; caches [T, k, max(2·7168, 4096)] and [T, k, 7168]
    assert act.workspace_bytes["moe"] == T * 2 * (2 * 7168 + 7168) * 2 + T * 8 * 2
    assert act.workspace_bytes["logits"] == 64 * 32000 * 4
    assert act.peak_bytes == act.hidden_bytes + act.workspace_bytes["moe"]
    assert inference_activations(spec, Layout(tp=2), range(32), batch=10000).tokens == 10000


def test_report_breakdown_adds_up_and_usable_fraction():
    spec = load_preset("mixtral-8x7b")
    gpu = get_gpu("h100")
    report = memory_report(spec, bf16(spec), gpu, Layout(tp=2), batch=16, context=32768)
    gpu_mem = report.most_loaded
    assert report.usable_bytes == int(0.9 * gpu.visible_memory_bytes) == int(0.9 * 81_559 * 2**20)  # nvidia-smi total
    assert gpu_mem.kv_cache_bytes == 16 * 32768 * 32 * 2 * 4 * 128 * 2  # 4 KV heads per rank
    assert gpu_mem.cuda_context_bytes == CUDA_CONTEXT_BYTES
    assert report.per_gpu_bytes == gpu_mem.total_bytes == (
        gpu_mem.weights_bytes + gpu_mem.kv_cache_bytes + gpu_mem.activation_bytes + gpu_mem.cuda_context_bytes
        + gpu_mem.allocator_reserve_bytes
    )
    assert report.headroom_bytes == report.usable_bytes - report.per_gpu_bytes
    assert report.kv_cache_bytes_per_token == 131072
    assert report.fits == (report.headroom_bytes >= 0)
    same = memory_report(spec, weight_memory(spec), gpu, Layout(tp=2), batch=16, context=32768)
    assert same.per_gpu_bytes == report.per_gpu_bytes  # a WeightMemory and a dict of the same bytes agree


def test_most_loaded_stage_is_reported():
    spec = load_preset("deepseek-v3")
    report = memory_report(spec, weight_memory(spec), get_gpu("h100"), Layout(tp=8, ep=8, pp=2), batch=8, context=8192)
    assert report.most_loaded == max(report.stages, key=lambda g: g.total_bytes)
    assert [(g.first_layer, g.last_layer) for g in report.stages] == [(0, 30), (31, 60)]
    assert report.stages[0].weights_by_component_bytes["lm_head"] == 0
    assert report.stages[1].weights_by_component_bytes["embedding"] == 0


def _largest(predicate, high):
    """The largest n in [0, high] with predicate(n), predicate being monotone (bisection)."""
    low = 0
    while low < high:
        middle = (low + high + 1) // 2
        if predicate(middle):
            low = middle
        else:
            high = middle - 1
    return low


CASES = [
    ("mixtral-8x7b", "h100", Layout(tp=2), 16, 32768, {}),
    ("gpt-oss-120b", "h100", Layout(), 2, 4096, {}),
    ("gpt-oss-120b", "h100", Layout(), 64, 4096, {}),  # context limit past the 128-token windows
    ("llama-4-scout", "h200", Layout(tp=4), 200, 4096, {}),
    ("jamba-v0.1", "a100-80gb", Layout(tp=2), 8, 65536, {}),
    ("deepseek-v3", "h200", Layout(tp=8, ep=8, pp=2), 32, 8192, {}),
    ("qwen3-30b-a3b", "h200", Layout(tp=8, ep=8), 64, 256, {}),  # max batch above the 8192-token step
    ("qwen3-30b-a3b", "h100", Layout(tp=2, dp=4, ep=8), 64, 256, {}),  # DP gathers tokens into the MoE
    ("mixtral-8x7b", "h100", Layout(tp=8, pp=2), 1, 4096, {"mode": "training", "recompute": "none"}),
    ("mixtral-8x7b", "h100", Layout(tp=8, dp=4, ep=8), 1, 4096, {"mode": "training", "zero": 3}),
]


@pytest.mark.parametrize(("name", "gpu", "layout", "batch", "context", "options"), CASES)
def test_max_batch_and_context_match_a_search(name, gpu, layout, batch, context, options):
    spec = load_preset(name)
    weights, device = weight_memory(spec), get_gpu(gpu)

    def fits(b, c):
        return memory_report(spec, weights, device, layout, b, c, **options).fits

    report = memory_report(spec, weights, device, layout, batch, context, **options)
    assert report.max_batch == _largest(lambda b: b >= 1 and fits(b, context), 10**6)
    searched = _largest(lambda c: c >= 1 and fits(batch, c), 10**8)
    if report.max_context_limit == "memory":
        assert report.max_context == searched
    else:
        assert report.max_context == spec.max_position_embeddings <= searched
