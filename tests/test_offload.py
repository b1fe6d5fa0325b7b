"""llama.cpp offload on one GPU (-ngl, --n-cpu-moe, -ot, --offload-experts): placement, fit in VRAM and host RAM,
and the offload decode rate as the headline, against hand arithmetic, through estimate, check and plan."""

import pytest

from moeplan.accounting.weights import weight_memory
from moeplan.spec.presets import load_preset

MODEL, GPU = "qwen3-30b-a3b", "rtx-4090"  # 61 GB of bf16 weights, 48 MoE layers of 128 experts, on a 24 GB card


@pytest.fixture(scope="module")
def weights():
    return weight_memory(load_preset(MODEL))


def est(cli, *flags):
    out = cli("estimate", MODEL, "--gpu", GPU, *flags, "--json")
    assert out.exit_code in (0, 1), out.stderr
    return out.json()


def test_all_experts_on_the_cpu_by_hand(cli, weights):
    report = est(cli, "--offload-experts", "--host-memory-gb-s", "80", "--batch", "1")
    o, w = report["throughput"]["offload"], weights.by_component_bytes
    experts, embedding = w["routed_experts"], w["embedding"]
    assert o["host_bytes"] == experts + embedding  # llama.cpp keeps the input embedding in host RAM too
    assert o["gpu_bytes"] == weights.total_bytes - experts - embedding
    assert report["memory"]["most_loaded"]["weights_bytes"] == o["gpu_bytes"] and report["memory"]["fits"] and o["fits_in_host_memory"]
    assert report["memory"]["weights_bytes"] == weights.total_bytes  # the whole model, VRAM and host RAM
    # one token touches 8 of 128 experts per layer; the embedding row lookup is not a stream
    touched = 8 / 128
    gpu_s = (o["gpu_bytes"] + report["memory"]["most_loaded"]["kv_cache_bytes"]) / 1.008e12
    cpu_s = experts * touched / 80e9
    assert o["gpu_time_s"] == pytest.approx(gpu_s, rel=1e-9) and o["cpu_time_s"] == pytest.approx(cpu_s, rel=1e-9)
    assert report["throughput"]["decode_tokens_per_s"] == o["decode_tokens_per_s"] == pytest.approx(1 / (gpu_s + cpu_s), rel=1e-9)
    assert report["throughput"]["time_per_output_token_s"] == pytest.approx(gpu_s + cpu_s, rel=1e-9)


def test_without_offload_it_does_not_fit(cli):
    assert est(cli)["memory"]["fits"] is False
    assert cli("estimate", MODEL, "--gpu", GPU, "--offload-experts").exit_code == 0


def test_n_cpu_moe_moves_the_first_layers_experts(cli, weights):
    per_layer = [layer["routed_experts"] for layer in weights.layer_component_bytes]
    o = est(cli, "--n-cpu-moe", "20")["throughput"]["offload"]
    assert o["host_by_component_bytes"]["routed_experts"] == sum(per_layer[:20])
    assert o["rules"] == ["--n-cpu-moe 20"] and "blk.0.ffn_up_exps.weight" in o["host_tensors"]
    every = est(cli, "--n-cpu-moe", "99")["throughput"]["offload"]
    assert every["host_bytes"] == est(cli, "--offload-experts")["throughput"]["offload"]["host_bytes"]


def test_gpu_layers_keep_the_first_blocks_on_the_cpu(cli, weights):
    o = est(cli, "--gpu-layers", "40")["throughput"]["offload"]
    blocks = sum(sum(layer.values()) for layer in weights.layer_component_bytes[:8])  # 48 − 40 blocks on the CPU
    output = weights.by_component_bytes["lm_head"] + weights.by_component_bytes["norms"] - sum(
        layer["norms"] for layer in weights.layer_component_bytes)
    assert o["host_bytes"] == blocks + weights.by_component_bytes["embedding"] + output  # -ngl 40 ≤ 48: output stays too
    assert o["gpu_layers"] == 40
    assert est(cli, "--gpu-layers", "49")["throughput"]["offload"]["host_bytes"] == weights.by_component_bytes["embedding"]


def test_override_tensor_regex(cli, weights):
    o = est(cli, "--override-tensor", r"blk\.[0-9]\.ffn_down_exps=CPU")["throughput"]["offload"]
    down = sum(layer["routed_experts"] for layer in weights.layer_component_bytes[:10]) // 3  # gate, up, down: equal shapes
    assert abs(o["host_by_component_bytes"]["routed_experts"] - down) <= 10
    assert o["rules"] == [r'-ot "blk\.[0-9]\.ffn_down_exps=CPU"']
    # the first pattern wins: a GPU override before a CPU one keeps those tensors in VRAM
    kept = est(cli, "--override-tensor", r"blk\.0\.=CUDA0,exps=CPU")["throughput"]["offload"]
    assert "blk.0.ffn_up_exps.weight" not in kept["host_tensors"] and "blk.1.ffn_up_exps.weight" in kept["host_tensors"]


def test_host_ram_must_hold_its_share(cli):
    report = est(cli, "--offload-experts", "--host-memory-gib", "16")
    assert report["throughput"]["offload"]["fits_in_host_memory"] is False and report["memory"]["fits"] is False
    assert any("host RAM" in a for a in report["memory"]["assumptions"])
    text = cli("estimate", MODEL, "--gpu", GPU, "--offload-experts", "--host-memory-gib", "16").stdout
    assert "DOES NOT FIT" in text and "of offloaded weights of 16.00 GiB (does NOT fit" in text


def test_offload_from_a_gguf_uses_its_tensor_names(cli, tmp_path):
    from test_gguf import expected_bytes, write

    path = write(tmp_path / "tiny.gguf")
    o = cli("estimate", path, "--gpu", "l4", "--override-tensor", "ffn_down_exps=CPU", "--json").json()["throughput"]["offload"]
    assert o["host_bytes"] == expected_bytes(lambda n: "ffn_down_exps" in n or n == "token_embd.weight")
    assert o["host_tensors"] == ["token_embd.weight", "blk.0.ffn_down_exps.weight", "blk.1.ffn_down_exps.weight"]


def test_check_plan_file_and_plan(cli, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"deployments:\n  - name: laptop\n    model: {MODEL}\n    gpu: {GPU}\n    n_cpu_moe: 48\n"
                    "    assert:\n      fits: true\n")
    assert "PASS" in cli("check", plan).stdout
    tight = tmp_path / "tight.yaml"
    tight.write_text(plan.read_text().replace("n_cpu_moe: 48", "n_cpu_moe: 48\n    host_memory_gib: 16"))
    assert cli("check", tight).exit_code == 1
    refused = cli("plan", MODEL, "--gpu", GPU, "--n-cpu-moe", "10")
    assert refused.exit_code == 2 and "plan searches GPU layouts" in refused.stderr


@pytest.mark.parametrize("flags, message", [
    (["--override-tensor", "exps"], "expected PATTERN=BUFFER"),
    (["--override-tensor", "([=CPU"], "not a regular expression"),
    (["--offload-experts", "--tp", "2"], "modelled on one GPU"),
])
def test_bad_offload_is_exit_2(cli, flags, message):
    result = cli("estimate", MODEL, "--gpu", GPU, *flags)
    assert result.exit_code == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_rendered_report_shows_the_offload(cli):
    rate = est(cli, "--offload-experts")["throughput"]["decode_tokens_per_s"]
    text = cli("estimate", MODEL, "--gpu", GPU, "--offload-experts").stdout
    assert "offload" in text and f"{rate:,.1f}" in text


def test_fewest_n_cpu_moe_that_fits_vram(cli):
    suggested = est(cli, "--n-cpu-moe", "1")["throughput"]["offload"]["fewest_n_cpu_moe"]
    assert 20 < suggested < 48  # 56 GiB of bf16 weights, 1.2 GiB of experts per layer, a 21.6 GiB budget
    assert est(cli, "--n-cpu-moe", str(suggested))["memory"]["fits"] is True  # the smallest that fits: one fewer does not
    assert est(cli, "--n-cpu-moe", str(suggested - 1))["memory"]["fits"] is False
    text = cli("estimate", MODEL, "--gpu", GPU, "--n-cpu-moe", "1").stdout
    assert f"VRAM holds the GPU share from --n-cpu-moe {suggested}" in text
    # a model whose non-expert weights alone exceed the card: no --n-cpu-moe helps
    big = cli("estimate", "llama-4-maverick", "--gpu", GPU, "--offload-experts", "--json").json()["throughput"]["offload"]
    assert big["fits_in_vram"] is False and big["fewest_n_cpu_moe"] is None


def test_cpu_blocks_keep_their_kv_cache_in_host_ram(cli):
    full = est(cli, "--offload-experts")
    partial = est(cli, "--offload-experts", "--gpu-layers", "40", "--context", "4096")
    o = partial["throughput"]["offload"]
    per_layer = 2 * 4 * 128 * 2 * 4096  # K and V, 4 KV heads of 128, bf16, 4,096 tokens
    assert o["host_kv_cache_bytes"] == 8 * per_layer  # blocks 0-7 on the CPU
    assert partial["memory"]["most_loaded"]["kv_cache_bytes"] == 40 * per_layer
    kv_full = full["memory"]["most_loaded"]["kv_cache_bytes"]
    assert kv_full == 48 * per_layer
    assert o["cpu_time_s"] > full["throughput"]["offload"]["cpu_time_s"]  # the host blocks' weights and KV read on the CPU
