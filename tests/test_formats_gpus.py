"""NVFP4 and MXFP8 by hand, NVFP4 checkpoints' own quantization_config, and the 2026 GPUs (B300, GB300, MI355X,
driver-visible memory, NVL72 domains), through the library and the CLI."""

import pytest

from moeplan.accounting.formats import bits_per_weight, get_format, matrix_bytes
from moeplan.accounting.params import count_params
from moeplan.accounting.weights import formats_from_quantization_config, weight_memory
from moeplan.hardware.catalogue import get_gpu, load_gpu
from moeplan.spec.deployment import Deployment
from moeplan.spec.presets import load_preset
from moeplan.traffic.alltoall import spec_all_to_all_traffic
from moeplan.units import GiB

# ---------------------------------------------------------------- formats


def test_nvfp4_by_hand():
    # DeepSeek-V3 expert gate_proj: out 2048, in 7168. ModelOpt stores weight uint8 [2048, 3584] (two e2m1 per byte),
    # weight_scale float8_e4m3fn [2048, 448] (one per 16 values), weight_scale_2 and input_scale fp32 scalars.
    rows, cols = 2048, 7168
    cost = matrix_bytes(get_format("nvfp4"), rows, cols)
    assert cost.values == rows * cols // 2 == 7_340_032
    assert cost.overhead == rows * cols // 16 + 4 + 4 == 917_512
    assert bits_per_weight(get_format("nvfp4"), rows, cols) == pytest.approx(4.5 + 64 / (rows * cols))
    assert get_format("fp4").name == "nvfp4" and not get_format("nvfp4").is_plain_float
    # a row that is not a whole number of 16-value blocks stores its last scale whole
    assert matrix_bytes(get_format("nvfp4"), 1, 24).overhead == 2 + 8


def test_mxfp8_by_hand():
    # OCP MXFP8: e4m3 values, one e8m0 scale per 32 values along a row
    rows, cols = 4096, 14336
    cost = matrix_bytes(get_format("mxfp8"), rows, cols)
    assert (cost.values, cost.overhead) == (rows * cols, rows * cols // 32)
    assert bits_per_weight(get_format("mxfp8"), rows, cols) == 8.25


MODELOPT_R1 = {
    # config.json of nvidia/DeepSeek-R1-FP4 (ModelOpt 0.23 export): every self_attn listed, layer by layer
    "quant_method": "modelopt",
    "quant_algo": "NVFP4",
    "kv_cache_quant_algo": None,
    "group_size": 16,
    "exclude_modules": ["lm_head", *(f"model.layers.{i}.self_attn*" for i in range(61))],
}

COMPRESSED_TENSORS = {
    # llm-compressor's NVFP4 scheme: W4A4 on every Linear, lm_head and the routers ignored
    "quant_method": "compressed-tensors",
    "format": "nvfp4-pack-quantized",
    "quantization_status": "compressed",
    "config_groups": {
        "group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, "symmetric": True},
            "input_activations": {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16},
        }
    },
    "ignore": ["lm_head", "re:.*mlp.gate$"],
}


def test_modelopt_nvfp4_config_is_the_default_format():
    spec = load_preset("deepseek-v3").model_copy(update={"quantization": MODELOPT_R1})
    memory = weight_memory(spec)
    assert memory.formats["routed_experts"] == memory.formats["shared_experts"] == "nvfp4"
    assert memory.formats["attention"] == memory.formats["lm_head"] == "bf16"  # every layer's self_attn excluded
    assert memory.origin == "quantization_config: ModelOpt NVFP4 (nvfp4)"
    assert not memory.notes
    # hf_quant_config.json nests the same block under "quantization"
    nested = {"quant_method": "modelopt", "producer": {"name": "modelopt"}, "quantization": {k: v for k, v in MODELOPT_R1.items() if k != "quant_method"}}
    assert weight_memory(spec.model_copy(update={"quantization": nested})).total_bytes == memory.total_bytes
    # a 671B model at about 4.5 bits in its experts: between the fp8 original and a pure 4-bit count
    assert 0.25 * 2 * count_params(spec).total < memory.total_bytes < weight_memory(load_preset("deepseek-v3")).total_bytes


def test_modelopt_exclusion_in_some_layers_only_is_noted():
    partial = {**MODELOPT_R1, "exclude_modules": ["lm_head", "model.layers.0.self_attn*"]}
    formats, _, notes = formats_from_quantization_config(partial, num_layers=61)
    assert formats["attention"].name == "nvfp4"
    assert notes == ["quantization_config keeps attention unquantized in 1 layers only; counted as quantized in every layer"]


def test_compressed_tensors_nvfp4_config():
    spec = load_preset("qwen3-30b-a3b").model_copy(update={"quantization": COMPRESSED_TENSORS})
    memory = weight_memory(spec)
    assert {memory.formats[c] for c in ("attention", "routed_experts")} == {"nvfp4"}
    assert memory.formats["lm_head"] == memory.formats["router"] == "bf16"
    assert "compressed-tensors nvfp4-pack-quantized (nvfp4)" in memory.origin
    # bytes by hand: every expert matrix (768 × 2048 and 2048 × 768) at 4.5 bits plus 8 bytes of global scales
    per_expert = 3 * (768 * 2048 // 2 + 768 * 2048 // 16 + 8)
    assert memory.per_expert_bytes == per_expert
    # fp8 block groups read from the same structure
    fp8 = {**COMPRESSED_TENSORS, "config_groups": {"g": {"targets": ["Linear"], "weights": {
        "num_bits": 8, "type": "float", "strategy": "block", "block_structure": [128, 128]}}}}
    assert weight_memory(spec.model_copy(update={"quantization": fp8})).formats["attention"] == "fp8"


INT4_EXPERTS = {
    # llm-compressor W4A16 export of a DeepSeek-V3-architecture model (the form Kimi-K2-Thinking's config.json takes):
    # routed experts int4, group 32, symmetric; attention, shared experts, dense MLPs and lm_head ignored
    "quant_method": "compressed-tensors",
    "format": "pack-quantized",
    "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
        "num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 32}}},
    "ignore": ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*", "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"],
}


def test_compressed_tensors_int4_pack_quantized():
    spec = load_preset("kimi-k2").model_copy(update={"quantization": INT4_EXPERTS})
    memory = weight_memory(spec)
    assert memory.formats["routed_experts"] == "int4-ct-g32"
    assert {memory.formats[c] for c in ("attention", "shared_experts", "dense_mlp", "lm_head")} == {"bf16"}
    assert not memory.notes  # every ignore entry, the regex alternation included, names a component
    # one expert: weight_packed int32 (8 values each), weight_scale bf16 per 32 inputs, weight_shape int64 [2], × 3 matrices
    per_matrix = 2048 * 7168 // 2 + 2048 * 7168 // 32 * 2 + 16
    assert memory.per_expert_bytes == 3 * per_matrix == 3 * 8_257_552


def test_nvfp4_through_the_cli(cli):
    out = cli("estimate", "deepseek-v3", "--dtype", "nvfp4", "--gpu", "b300", "--num-gpus", "8", "--json").json()
    assert out["weights"]["formats"]["routed_experts"] == "nvfp4"
    assert out["weights"]["formats"]["embedding"] == "bf16"
    assert out["throughput"]["decode_tokens_per_s"] > 0


def test_nvfp4_and_mxfp8_through_plan_and_check(cli, tmp_path):
    fewest = {}
    for dtype in ("nvfp4", "mxfp8", "fp8"):
        out = cli("plan", "deepseek-v3", "--gpu", "b300", "--dtype", dtype, "--max-gpus", "16", "--json")
        assert out.exit_code == 0, out.stderr
        fewest[dtype] = out.json()["layouts"][0]["gpus"]
    assert fewest["nvfp4"] < fewest["mxfp8"] <= fewest["fp8"]  # 4.5 bits per expert weight against 8.25 and 8.002
    plan = tmp_path / "plan.yaml"
    plan.write_text("deployments:\n  - name: r1-fp4\n    model: deepseek-v3\n    gpu: b300\n    num_gpus: 2\n"
                    "    dtype: nvfp4\n    assert:\n      fits: true\n  - name: r1-mxfp8\n    model: deepseek-v3\n"
                    "    gpu: b300\n    num_gpus: 2\n    dtype: mxfp8\n    assert:\n      fits: false\n")
    assert cli("check", plan).stdout.count("PASS") >= 2


# ---------------------------------------------------------------- GPUs


def test_new_gpus_and_fp4_peaks():
    b300, gb300, mi355x = get_gpu("b300"), get_gpu("gb300-nvl72"), get_gpu("mi355x")
    assert b300.memory_bytes == 288 * GiB and b300.driver_memory_bytes == 275_040 * 2**20
    assert (b300.bf16_flops_per_s, b300.fp8_flops_per_s, b300.fp4_flops_per_s) == (2.25e15, 4.5e15, 13.5e15)
    assert gb300.fp4_flops_per_s == 1080e15 / 72 and gb300.link_domain_gpus == 72
    assert mi355x.fp8_flops_per_s == pytest.approx(256 * 8192 * 2.4e9, rel=1e-4)  # CUs × FP8 FLOP/clock × clock
    assert mi355x.link_bytes_per_s_per_direction == 7 * 153.6e9 / 2
    for name in ("b200", "gb200", "b300", "gb300", "mi355x", "rtx-5090"):
        assert get_gpu(name).fp4_flops_per_s, name


@pytest.mark.parametrize("name, mib", [("h100-sxm", 81_559), ("h200", 143_771), ("l40s", 46_068), ("b200", 183_359)])
def test_driver_memory_sets_usable_memory(cli, name, mib):
    gpu = get_gpu(name)
    assert gpu.visible_memory_bytes == mib * 2**20 < gpu.memory_bytes
    out = cli("estimate", "olmoe-1b-7b", "--gpu", name, "--json").json()
    assert out["memory"]["gpu_memory_bytes"] == mib * 2**20
    assert out["memory"]["usable_bytes"] == int(0.9 * mib * 2**20)


def test_gpu_detail_shows_the_driver_figure(cli, tmp_path):
    assert "81,559 MiB (usable memory is computed from it)" in cli("gpus", "h100").stdout
    saved = tmp_path / "b300.json"
    saved.write_text(cli("gpus", "b300", "--json").stdout)
    assert "275,040 MiB" in cli("gpus", saved).stdout  # a GPU file written by moeplan loads back with it


def test_memory_override_replaces_the_driver_figure():
    gpu = load_gpu("h100", {"memory_gib": 80})
    assert gpu.driver_memory_bytes is None and gpu.visible_memory_bytes == 80 * GiB


def test_nvl72_domain_is_the_default_node():
    assert Deployment(gpu="gb300").gpus_per_node == Deployment(gpu="gb200").gpus_per_node == 72
    assert Deployment(gpu="h100").gpus_per_node == Deployment(gpu="l40s").gpus_per_node == 8
    assert Deployment(gpu="gb200", gpus_per_node=4).gpus_per_node == 4
    assert "gpus_per_node" not in Deployment(gpu="gb300").model_fields_set
    spec = load_preset("deepseek-v3")
    inside = spec_all_to_all_traffic(spec, 64, 128, "rank", "bf16", Deployment(gpu="gb300").gpus_per_node)
    across = spec_all_to_all_traffic(spec, 64, 128, "rank", "bf16", Deployment(gpu="b300").gpus_per_node)
    assert inside.inter_node_bytes_per_rank == 0 < across.inter_node_bytes_per_rank


def test_gb300_rack_through_the_cli(cli):
    out = cli("estimate", "deepseek-v3", "--gpu", "gb300", "--tp", "1", "--ep", "64", "--dp", "64", "--json").json()
    assert out["deployment"]["gpus_per_node"] == 72
    assert out["all_to_all"]["inter_node_bytes_per_rank"] == 0
    listed = cli("gpus", "--json").json()
    names = {g["name"] for g in (listed if isinstance(listed, list) else listed["gpus"])}
    assert {"b300", "gb300", "mi355x"} <= names


def test_gb300_usable_memory_derives_from_the_b300_driver_figure(cli):
    """GB300 has no published nvidia-smi figure; it is the B300's GPU and HBM3e, so it takes B300's 275,040 MiB
    and its source says so (QA: it was listed at 279 GiB usable-from-datasheet while B300 reported 268.6 GiB)."""
    b300, gb300 = get_gpu("b300"), get_gpu("gb300")
    assert gb300.driver_memory_bytes == b300.driver_memory_bytes == 275_040 * 2**20
    assert "B300's nvidia-smi figure" in gb300.source and "unverified on a GB300" in gb300.source
    out = cli("estimate", "olmoe-1b-7b", "--gpu", "gb300", "--json").json()
    assert out["memory"]["usable_bytes"] == int(0.9 * 275_040 * 2**20)
    assert "275,040 MiB (usable memory is computed from it)" in cli("gpus", "gb300").stdout
