"""Speed: the bound and the expected step, checked by hand arithmetic for named models."""

import pytest

from moeplan.namespace import SCALAR
from moeplan.perf.constants import PerfConstants
from moeplan.perf.step import all_reduce_s

MIXTRAL_WEIGHTS = 2 * 46_702_792_704          # bf16
MIXTRAL_EXPERTS = 2 * 32 * 8 * 3 * 4096 * 14336  # bf16 routed experts
MIXTRAL_KV_PER_TOKEN = 2 * 8 * 128 * 2 * 32      # K and V, 8 kv heads × 128, bf16, 32 layers


def test_mixtral_decode_step_on_one_h200(cli):
    data = cli("estimate", "mixtral-8x7b", "--gpu", "h200", "--dtype", "bf16", "--batch", "1", "--context", "4096", "--json").json()
    t = data["throughput"]
    # The bound of one decode step reads every weight matrix but the embedding table (one 4096-wide bf16 row of it)
    # and the norms, 2 of 8 experts per layer, the 4096-token KV cache, and writes the new token's K and V.
    table = 2 * 32000 * 4096
    weights = MIXTRAL_WEIGHTS - table - 532_480  # 532,480 B of norm weights
    bytes_read = weights + 2 * 4096 - MIXTRAL_EXPERTS + MIXTRAL_EXPERTS * 2 // 8 + 4096 * MIXTRAL_KV_PER_TOKEN + MIXTRAL_KV_PER_TOKEN
    assert t["decode"]["bytes_read"] == bytes_read == 26_034_184_192
    assert t["decode"]["memory_s"] == pytest.approx(bytes_read / 4.8e12, rel=1e-12)       # H200: 4.8 TB/s
    assert t["decode"]["compute_s"] == pytest.approx(27_644_657_664 / 989.5e12, rel=1e-12)  # FLOPs at C=4096 / dense BF16 peak
    assert t["decode"]["communication_s"] == 0 and t["bound"] == "memory"
    assert t["roofline_time_per_output_token_s"] == pytest.approx(bytes_read / 4.8e12, rel=1e-12)  # 5.42 ms
    assert t["roofline_decode_tokens_per_s"] == pytest.approx(4.8e12 / bytes_read, rel=1e-12)  # 184.4 tokens/s
    assert t["time_per_output_token_s"] > t["roofline_time_per_output_token_s"]  # the bound: no step is faster


def test_tensor_parallel_all_reduces(cli):
    t = cli("estimate", "mixtral-8x7b", "--gpu", "h100", "--tp", "2", "--json").json()["throughput"]
    # 32 attention all-reduces + 32 MLP all-reduces (experts TP-split when ep = 1), 1 token of 4096 bf16 values each:
    # ring all-reduce sends 2·(n−1)/n of the message per GPU. Bound: at 450 GB/s NVLink per direction, no latency;
    # expected: α + α_hop·(n − 1) + bytes / (link fraction · 450 GB/s), the α–β fit on NCCL 2.29.
    message = 4096 * 2
    assert t["decode"]["communication_s"] == pytest.approx(64 * message / 450e9, rel=1e-12)
    c = PerfConstants()
    per = c.collective_latency_s + c.collective_hop_latency_s + message / (c.link_fraction * 450e9)
    assert t["expected"]["decode_step"]["ops_s"]["tp_all_reduce"] == pytest.approx(64 * per, rel=1e-12)
    assert all_reduce_s(SCALAR, message, 1, 450e9, 50e9, 8, c) == 0


def test_expert_offload_llama_cpp_style(cli):
    data = cli("estimate", "mixtral-8x7b", "--gpu", "rtx-4090", "--dtype", "q4_k_m", "--offload-experts",
               "--host-memory-gb-s", "80", "--json").json()
    o, w = data["throughput"]["offload"], data["weights"]
    experts, embedding = w["by_component_bytes"]["routed_experts"], w["by_component_bytes"]["embedding"]
    assert o["host_bytes"] == experts + embedding and o["gpu_bytes"] == w["total_bytes"] - experts - embedding  # llama.cpp: input layer on CPU
    assert o["cpu_time_s"] == pytest.approx(experts * 2 / 8 / 80e9, rel=1e-12)  # 2 of 8 experts read from RAM; the embedding is a lookup
    kv = 4096 * MIXTRAL_KV_PER_TOKEN
    assert o["gpu_bound_s"] == pytest.approx((o["gpu_bytes"] + kv) / 1.008e12, rel=1e-12)
    step = data["throughput"]["expected"]["decode_step"]  # the GPU share's expected step, less the experts the CPU runs
    assert o["gpu_time_s"] == pytest.approx(step["time_s"] - step["ops_s"]["routed_experts"], rel=1e-12)
    assert o["decode_tokens_per_s"] == pytest.approx(1 / (o["cpu_time_s"] + o["gpu_time_s"]), rel=1e-12)
    assert o["fits_in_host_memory"] is True


def test_prefill_is_compute_bound_for_dense_work(cli):
    t = cli("estimate", "qwen3-30b-a3b", "--gpu", "h100", "--json").json()["throughput"]
    assert t["prefill"]["bound"] == "compute" and t["bound"] == "memory"
    # one 4096-token chunk: the per-op bound is at least the step's max(memory, compute) + communication
    assert t["roofline_ttft_s"] >= t["prefill"]["time_s"] and t["ttft_s"] > t["roofline_ttft_s"]
