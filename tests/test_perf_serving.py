"""The expected speed through the CLI: continuous batching (--isl/--osl/--concurrency), MTP, formats at their
tensor-core peak, --breakdown, the bound beside the expected figure, and a calibration on the same code path."""

import math

import pytest

from moeplan.calibration import Calibration
from moeplan.perf.constants import DEFAULT, calibrated
from moeplan.perf.roofline import Efficiency
from moeplan.perf.speed import tokens_per_step
from moeplan.profile.calibrate import save_calibration


def _estimate(cli, *args):
    result = cli("estimate", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return result.json()["throughput"]


SERVING = ("llama-3.1-8b", "--gpu", "h100", "--tp", "4", "--isl", "1024", "--osl", "128", "--concurrency", "64")


def test_continuous_batching_steady_state(cli):
    """64 sequences decode 128 tokens while 64 × 1024 prompt tokens arrive: 8 of every 128 steps carry an
    8192-token chunk, so TPOT = (120 · t(decode) + 8 · t(mixed)) / 128."""
    t = _estimate(cli, *SERVING)
    e = t["expected"]
    s = e["serving"]
    assert (s["sequences_per_replica"], s["mixed_steps_per_cycle"], s["prefill_tokens_per_mixed_step"]) == (64, 8, 8192)
    assert e["decode_step"]["decode_sequences"] == 64 and e["decode_step"]["prefill_tokens"] == 0
    assert e["mixed_step"]["prefill_tokens"] == 8192
    tpot = (120 * e["decode_step"]["time_s"] + 8 * e["mixed_step"]["time_s"]) / 128
    assert t["time_per_output_token_s"] == pytest.approx(tpot, rel=1e-12)
    assert t["decode_tokens_per_s"] == pytest.approx(64 / tpot, rel=1e-12)
    assert t["tokens_per_s_per_gpu"] == pytest.approx(64 / tpot / 4, rel=1e-12)
    assert t["tokens_per_s_per_user"] == pytest.approx(1 / tpot, rel=1e-12)
    # TTFT: the prompt's own chunk step (beside the 64 decoding sequences), the M/D/1 wait, and the request overhead
    assert t["ttft_s"] == pytest.approx(e["prefill_step"]["time_s"] + s["prefill_queue_s"] + DEFAULT.request_overhead_s, rel=1e-12)
    assert t["roofline_time_per_output_token_s"] < t["time_per_output_token_s"]


def test_serving_sizes_memory_by_concurrency(cli):
    """Memory is sized for ⌈C/dp⌉ sequences of ISL + OSL tokens each."""
    data = cli("estimate", *SERVING, "--json").json()
    assert (data["memory"]["batch"], data["memory"]["context"]) == (64, 1152)


def test_benchmark_first_wave(cli):
    """--num-prompts N: the first C requests arrive at once and wait for half of their wave (C/N of all requests)."""
    steady = _estimate(cli, *SERVING)
    burst = _estimate(cli, *SERVING, "--num-prompts", "640")
    extra = burst["ttft_s"] - steady["ttft_s"]
    assert extra > 0 and burst["time_per_output_token_s"] == steady["time_per_output_token_s"]


@pytest.mark.parametrize("args", [("--isl", "1024"), ("--isl", "1024", "--osl", "128"), ("--concurrency", "8")])
def test_serving_flags_go_together(cli, args):
    result = cli("estimate", "llama-3.1-8b", *args, "--json")
    assert result.exit_code == 2 and "go together" in result.stderr


def test_mtp_tokens_per_step_and_draft_cost(cli):
    """--mtp 2 --acceptance 0.8: 1 + 0.8 + 0.64 tokens per step; each step verifies 3 tokens per sequence."""
    base = ("deepseek-v3", "--gpu", "h200", "--tp", "8", "--ep", "8", "--batch", "16")
    plain, mtp = _estimate(cli, *base), _estimate(cli, *base, "--mtp", "2", "--acceptance", "0.8")
    assert mtp["expected"]["tokens_per_step"] == pytest.approx(2.44, rel=1e-12) == tokens_per_step(2, 0.8)
    step, ops = mtp["expected"]["decode_step"]["time_s"], mtp["expected"]["decode_step"]["ops_s"]
    once = ops["lm_head"] + ops["embedding"] + ops["host_overhead"]
    draft = 2 * ((step - once) / 61 + ops["lm_head"])  # two passes of one layer-sized MTP module and the lm_head
    assert mtp["time_per_output_token_s"] == pytest.approx((step + draft) / 2.44, rel=1e-12)
    assert mtp["time_per_output_token_s"] < plain["time_per_output_token_s"]  # memory-bound: verifying 3 tokens is nearly free


def test_formats_run_at_their_tensor_peak(cli):
    """nvfp4 experts on a B200 run at its FP4 peak; on an H100 (no FP4 tensor cores) at the BF16 rate, said in the notes."""
    args = ("qwen3-30b-a3b", "--expert-dtype", "nvfp4", "--batch", "4096", "--context", "2048")
    b200, h100 = _estimate(cli, *args, "--gpu", "b200"), _estimate(cli, *args, "--gpu", "h100")
    assert any("nvfp4 on h100-sxm runs at the BF16 rate" in a for a in h100["assumptions"])
    assert not any("BF16 rate" in a for a in b200["assumptions"])
    a100 = _estimate(cli, "qwen3-30b-a3b", "--dtype", "fp8", "--gpu", "a100-80gb")
    assert any("fp8 on a100-80gb runs at the BF16 rate (no FP8 tensor cores)" in a for a in a100["assumptions"])
    # compute-bound routed experts at 4096 tokens: the bound's compute term uses 9 PFLOP/s (B200 FP4) vs 989 TFLOP/s
    assert b200["decode"]["compute_s"] < h100["decode"]["compute_s"] / 3


@pytest.mark.parametrize("gpu", ["b300", "gb300", "mi355x"])
def test_new_gpus_end_to_end(cli, gpu):
    t = _estimate(cli, "gpt-oss-120b", "--gpu", gpu, "--expert-dtype", "nvfp4", "--isl", "1024", "--osl", "1024", "--concurrency", "32")
    assert 0 < t["roofline_time_per_output_token_s"] < t["time_per_output_token_s"] < 1


def test_breakdown(cli):
    result = cli("estimate", "mixtral-8x7b", "--gpu", "h100", "--tp", "2", "--breakdown")
    assert result.exit_code == 0, result.stderr
    assert "Decode step by operation" in result.stdout and "routed_experts" in result.stdout and "tp_all_reduce" in result.stdout
    e = _estimate(cli, "mixtral-8x7b", "--gpu", "h100", "--tp", "2")["expected"]
    assert sum(e["decode_step"]["ops_s"].values()) == pytest.approx(e["decode_step"]["time_s"], rel=1e-12)
    layer = e["breakdown"]["moe layer"]["routed_experts"]
    assert layer * 32 == pytest.approx(e["decode_step"]["ops_s"]["routed_experts"], rel=1e-12)


def test_cuda_graphs_off_costs_launches(cli):
    on, off = _estimate(cli, "mixtral-8x7b", "--gpu", "h100"), _estimate(cli, "mixtral-8x7b", "--gpu", "h100", "--enforce-eager")
    ratio = off["expected"]["decode_step"]["ops_s"]["kernel_launches"] / on["expected"]["decode_step"]["ops_s"]["kernel_launches"]
    assert ratio == pytest.approx(DEFAULT.eager_kernel_s / DEFAULT.kernel_s, rel=1e-12)


def test_calibration_maps_onto_the_constants(cli, tmp_path):
    """A profile calibration replaces the fractions and latencies it measured; the estimate runs the same model."""
    c = calibrated(Efficiency(hbm=0.7, gemm=0.6, link=0.5, collective_latency_s=30e-6, measured_on="h100-sxm"))
    assert (c.hbm_fraction, c.gemm_fraction, c.link_fraction, c.expert_link_fraction) == (0.7, 0.6, 0.5, 0.5)
    assert (c.collective_latency_s, c.expert_dispatch_latency_s, c.measured_on) == (30e-6, 30e-6, "h100-sxm")
    assert calibrated(Efficiency(hbm=0.7)).gemm_fraction == DEFAULT.gemm_fraction  # not measured: kept
    cal = Calibration(created_at="2026-12-01T00:00:00+00:00", gpu_count=1, model="mixtral-8x7b", device_kind="cuda",
                      device_name="NVIDIA H100 80GB HBM3", catalogue_gpu="h100-sxm", hbm_efficiency=0.6)
    path = tmp_path / "cal.json"
    save_calibration(cal, path)
    base, measured = _estimate(cli, "mixtral-8x7b", "--gpu", "h100"), _estimate(cli, "mixtral-8x7b", "--gpu", "h100", "--calibration", path)
    ratio = measured["expected"]["decode_step"]["ops_s"]["routed_experts"] / base["expected"]["decode_step"]["ops_s"]["routed_experts"]
    assert ratio == pytest.approx(DEFAULT.hbm_fraction / 0.6, rel=1e-12)  # memory-bound experts at the measured HBM rate
    assert any("measured on h100-sxm" in a for a in measured["assumptions"])


def test_bound_never_exceeds_expected(cli):
    for args in (("deepseek-v3", "--num-gpus", "16", "--gpu", "h200", "--batch", "64"), ("qwen3-32b", "--tp", "2"),
                 ("gpt-oss-120b", "--tp", "4", "--isl", "8192", "--osl", "1024", "--concurrency", "128")):
        t = _estimate(cli, *args)
        assert t["roofline_time_per_output_token_s"] <= t["time_per_output_token_s"]
        assert t["roofline_ttft_s"] <= t["ttft_s"] and not math.isnan(t["ttft_s"])


def test_disaggregated_pool(cli):
    """--disaggregated: decode steps carry no prompts (TPOT of a decode pool) and prompts are prefilled alone (TTFT of
    a prefill pool); the aggregated figure lies above the decode pool's TPOT."""
    t = _estimate(cli, *SERVING, "--disaggregated")
    e = t["expected"]
    assert e["mixed_step"] is None and e["serving"]["mixed_steps_per_cycle"] == 0
    assert t["time_per_output_token_s"] == pytest.approx(e["decode_step"]["time_s"], rel=1e-12)
    assert e["prefill_step"]["decode_sequences"] == 0 and e["prefill_step"]["prefill_tokens"] == 1024
    assert _estimate(cli, *SERVING)["time_per_output_token_s"] > t["time_per_output_token_s"]


def test_prefill_first_runs_in_waves(cli):
    """--prefill-first (SGLang's scheduler): prompts run in steps of their own before decoding resumes, so the closed
    loop keeps its requests in waves. Each prompt waits for the half of its wave ahead of it (TTFT) and its decode is
    stalled by the half behind it (TPOT): 63/2 prompts of one 1024-token chunk step each, over 128 output tokens."""
    t = _estimate(cli, *SERVING, "--prefill-chunk", "1024", "--prefill-first")
    e = t["expected"]
    wave_s = 63 / 2 * e["prefill_step"]["time_s"]
    assert e["mixed_step"] is None and e["prefill_step"]["decode_sequences"] == 0
    assert t["time_per_output_token_s"] == pytest.approx(e["decode_step"]["time_s"] + wave_s / 128, rel=1e-12)
    assert e["serving"]["prefill_queue_s"] == pytest.approx(wave_s, rel=1e-12)
    assert t["ttft_s"] == pytest.approx(e["prefill_step"]["time_s"] + wave_s + DEFAULT.request_overhead_s, rel=1e-12)
    assert any("--prefill-first" in line for line in t["assumptions"])
    mixed = _estimate(cli, *SERVING, "--prefill-chunk", "1024")
    assert t["time_per_output_token_s"] < mixed["time_per_output_token_s"] and t["ttft_s"] > mixed["ttft_s"]
