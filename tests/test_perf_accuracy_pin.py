"""A regression pin: the expected TPOT and TTFT of seven measured H100 serving runs (rows of the team's
measured-serving-h100.csv, InferenceX via aiconfigurator) as benchmarks/accuracy.py states them. The accuracy
figures live in that benchmark; this only shows when a change moves the predictions."""

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("accuracy", Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy.py")
accuracy = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(accuracy)


def _row(model, tp, batch, isl, osl, gemm="", moe="", adp="", moe_tp="1", moe_ep="1", concurrency=None, backend="trtllm"):
    return {"model_path": model, "mode": "agg", "backend": backend, "system": "h100_sxm", "gemm_quant_mode": gemm, "moe_quant_mode": moe,
            "batch_size": str(batch), "attention_dp_size": adp, "tp_size": str(tp), "pp_size": "1", "moe_tp_size": moe_tp,
            "moe_ep_size": moe_ep, "isl": str(isl), "osl": str(osl), "silicon_data_source": f"silicon_concurrency={concurrency or batch}"}


# (row, expected TPOT ms, expected TTFT ms); measured: TPOT 13.77 / 10.16 / 22.18 / 16.54 / 175.57 / 9.51 / 20.62 ms,
# TTFT 173 / 692 / 188 / 841 / 1628 / 111 / 738 ms
PINS = [
    (_row("Qwen/Qwen3-235B-A22B-FP8", 4, 4, 1024, 128, "fp8_block", "fp8_block", moe_ep="4"), 12.904019096205824, 196.6203815048408),
    (_row("meta-llama/Llama-3.1-8B-Instruct", 4, 64, 1024, 128), 9.456923976055815, 201.19547540207395),
    (_row("Qwen/Qwen3-32B", 2, 16, 1024, 128, backend="vllm"), 21.68397378313417, 268.4148039845203),
    (_row("Qwen/Qwen3-32B", 2, 16, 1024, 128, backend="sglang"), 18.12598304503412, 632.1007997073011),
    (_row("Qwen/Qwen3-32B", 1, 64, 4096, 128, "fp8", "fp8"), 93.49885572642815, 8969.341910877136),  # KV-bound
    (_row("openai/gpt-oss-120b", 4, 64, 1024, 8192, "nvfp4", "nvfp4", "1", "4", backend="vllm"), 8.930479928639318, 191.90383263166459),
    (_row("meta-llama/Llama-3.1-70B", 2, 4, 8192, 1024, "fp8", "fp8", "1", "2", backend="vllm"), 19.912255294105243, 903.7280422799705),
]


@pytest.mark.parametrize(("row", "tpot_ms", "ttft_ms"), PINS, ids=[p[0]["model_path"] for p in PINS])
def test_pinned_predictions(row, tpot_ms, ttft_ms):
    assert accuracy.predict(row) == pytest.approx((tpot_ms, ttft_ms), rel=1e-9)


def test_rows_moeplan_cannot_express_say_why():
    with pytest.raises(accuracy.NotExpressible, match="disaggregated"):
        accuracy.deployment_of({**PINS[0][0], "mode": "disagg"})
    with pytest.raises(accuracy.NotExpressible, match="moe_tp × moe_ep"):
        accuracy.deployment_of({**PINS[0][0], "moe_ep_size": "0"})


def test_trtllm_kv_pool_is_a_share_of_free_memory():
    """TensorRT-LLM's KV pool is 0.9 of what the weights and warm-up leave free: the --gpu-util that gives moeplan
    the same pool is 0.9 + 0.1 · fixed / total (40 of 80 GB fixed: 0.95)."""
    gpu = type("GPU", (), {"weights_bytes": 30e9, "activation_bytes": 8e9, "cuda_context_bytes": 1e9, "allocator_reserve_bytes": 1e9})
    memory = type("Memory", (), {"most_loaded": gpu, "usable_bytes": 72e9, "gpu_util": 0.9})
    assert accuracy.trtllm_gpu_util(memory) == pytest.approx(0.95, rel=1e-12)
