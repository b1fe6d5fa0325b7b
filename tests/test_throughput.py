"""Roofline throughput, checked by hand arithmetic for named models."""

import pytest

from moeplan.throughput.roofline import COLLECTIVE_LATENCY_S, tp_allreduce_time_s

MIXTRAL_WEIGHTS = 2 * 46_702_792_704          # bf16
MIXTRAL_EXPERTS = 2 * 32 * 8 * 3 * 4096 * 14336  # bf16 routed experts
MIXTRAL_KV_PER_TOKEN = 2 * 8 * 128 * 2 * 32      # K and V, 8 kv heads × 128, bf16, 32 layers


def test_mixtral_decode_step_on_one_h200(cli):
    data = cli("estimate", "mixtral-8x7b", "--gpu", "h200", "--dtype", "bf16", "--batch", "1", "--context", "4096", "--json").json()
    t = data["throughput"]
    # One decode step reads every non-expert weight but the embedding table (one 4096-wide bf16 row of it),
    # 2 of 8 experts per layer, and the 4096-token KV cache.
    table = 2 * 32000 * 4096
    bytes_read = MIXTRAL_WEIGHTS - table + 2 * 4096 - MIXTRAL_EXPERTS + MIXTRAL_EXPERTS * 2 // 8 + 4096 * MIXTRAL_KV_PER_TOKEN
    assert t["decode"]["bytes_read"] == bytes_read == 26_034_585_600
    assert t["decode"]["memory_s"] == pytest.approx(bytes_read / 4.8e12, rel=1e-12)       # H200: 4.8 TB/s
    assert t["decode"]["compute_s"] == pytest.approx(27_644_657_664 / 989.5e12, rel=1e-12)  # FLOPs at C=4096 / dense BF16 peak
    assert t["decode"]["communication_s"] == 0 and t["bound"] == "memory"
    assert t["time_per_output_token_s"] == pytest.approx(bytes_read / 4.8e12, rel=1e-12)  # 5.42 ms
    assert t["decode_tokens_per_s"] == pytest.approx(4.8e12 / bytes_read, rel=1e-12)  # 184.4 tokens/s


def test_tensor_parallel_all_reduces(cli):
    one = cli("estimate", "mixtral-8x7b", "--gpu", "h100", "--tp", "2", "--json").json()["throughput"]["decode"]
    # 32 attention all-reduces + 32 MLP all-reduces (experts TP-split when ep = 1), 1 token of 4096 bf16 values each:
    # ring all-reduce sends 2·(n−1)/n of the message per GPU over 450 GB/s NVLink per direction, plus α = 10 µs.
    per = 2 * (1 / 2) * 4096 * 2 / 450e9 + COLLECTIVE_LATENCY_S
    assert one["communication_s"] == pytest.approx(64 * per, rel=1e-12)
    assert tp_allreduce_time_s(8, 4096, 1, 450e9, 1e-5) == 0


def test_expert_offload_llama_cpp_style(cli):
    data = cli("estimate", "mixtral-8x7b", "--gpu", "rtx-4090", "--dtype", "q4_k_m", "--offload-experts",
               "--host-memory-gb-s", "80", "--json").json()
    o, w = data["throughput"]["offload"], data["weights"]
    experts = w["by_component_bytes"]["routed_experts"]
    assert o["host_bytes"] == experts and o["gpu_bytes"] == w["total_bytes"] - experts
    assert o["cpu_time_s"] == pytest.approx(experts * 2 / 8 / 80e9, rel=1e-12)  # 2 of 8 experts read from RAM
    kv = 4096 * MIXTRAL_KV_PER_TOKEN
    assert o["gpu_time_s"] == pytest.approx((o["gpu_bytes"] + kv) / 1.008e12, rel=1e-12)
    assert o["decode_tokens_per_s"] == pytest.approx(1 / (o["cpu_time_s"] + o["gpu_time_s"]), rel=1e-12)
    assert o["fits_in_host_memory"] is True


def test_prefill_is_compute_bound_for_dense_work(cli):
    t = cli("estimate", "qwen3-30b-a3b", "--gpu", "h100", "--json").json()["throughput"]
    assert t["prefill"]["bound"] == "compute" and t["bound"] == "memory"
    assert t["ttft_s"] == pytest.approx(t["prefill"]["time_s"], rel=1e-12)  # one 4096-token chunk
