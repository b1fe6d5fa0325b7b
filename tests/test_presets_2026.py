"""The presets users asked for: exact counts (transformers agrees: tests/test_transformers_crosscheck.py covers
every preset), published totals, the Hugging Face ids they stand in for, and each through estimate and check."""

import pytest

from moeplan.accounting.params import count_params
from moeplan.accounting.weights import weight_memory
from moeplan.spec.presets import PRESET_ORIGINS, load_preset, preset_for_repo

PRESETS = {
    # name: (total, active, published total in billions, repository)
    "deepseek-r1": (671_026_404_352, 37_552_282_624, 671, "deepseek-ai/DeepSeek-R1"),
    "deepseek-v3.1": (671_026_404_352, 37_552_282_624, 671, "deepseek-ai/DeepSeek-V3.1"),
    "glm-4.5": (352_797_814_784, 33_632_251_904, 355, "zai-org/GLM-4.5"),
    "glm-4.5-air": (106_852_245_504, 13_424_123_904, 106, "zai-org/GLM-4.5-Air"),
    "phi-3.5-moe": (41_873_153_344, 6_640_999_744, 41.9, "microsoft/Phi-3.5-MoE-instruct"),
    "qwen2-57b-a14b": (57_408_658_944, 14_249_270_784, 57, "Qwen/Qwen2-57B-A14B"),
    "granite-3.1-3b-a800m": (3_298_793_472, 882_874_368, 3.3, "ibm-granite/granite-3.1-3b-a800m-instruct"),
    "kimi-k2.5": (1_026_408_209_408, 32_861_477_888, 1000, "moonshotai/Kimi-K2.5"),
}


@pytest.mark.parametrize("name", PRESETS)
def test_counts_and_origin(name):
    total, active, published, repo = PRESETS[name]
    counts = count_params(load_preset(name))
    assert (counts.total, counts.active) == (total, active)
    assert abs(counts.total / 1e9 - published) / published < 0.03  # the model card's rounded figure
    assert preset_for_repo(repo) == name and preset_for_repo(repo.lower()) == name
    assert PRESET_ORIGINS[name].startswith(repo)


def test_every_preset_with_a_repository_stands_in_for_its_id():
    assert preset_for_repo("allenai/OLMoE-1B-7B-0924") == "olmoe-1b-7b"  # origin text "allenai/OLMoE-1B-7B-0924, assembled ..."
    assert preset_for_repo("mistralai/Mixtral-8x7B-v0.1") == "mixtral-8x7b" and preset_for_repo("acme/none") is None
    repos = {name: origin.split()[0].rstrip(",;:") for name, origin in PRESET_ORIGINS.items()}
    for name, repo in repos.items():
        if "/" in repo and list(repos.values()).count(repo) == 1:
            assert preset_for_repo(repo) == name, name


def test_formats_the_checkpoints_ship():
    assert load_preset("deepseek-r1").quantization["weight_block_size"] == [128, 128]
    kimi = load_preset("kimi-k2.5")
    assert kimi.max_position_embeddings == 262144 and kimi.quantization["format"] == "pack-quantized"
    weights = weight_memory(kimi)
    assert weights.formats["routed_experts"] == "int4-ct-g32" and weights.formats["attention"] == "bf16" and not weights.notes
    assert abs(weights.total_bytes / 1e9 - 594) < 1  # the published native-INT4 checkpoint: about 594 GB
    assert load_preset("glm-4.5").mtp_layers == 1 and load_preset("glm-4.5").attention.qk_norm != "none"
    assert load_preset("glm-4.5-air").attention.qk_norm == "none"


@pytest.mark.parametrize("name, gpu, gpus", [("glm-4.5-air", "h200", 2), ("phi-3.5-moe", "l40s", 2), ("granite-3.1-3b-a800m", "l4", 1),
                                              ("qwen2-57b-a14b", "h100", 2), ("deepseek-r1", "b300", 8), ("kimi-k2.5", "gb300", 8)])
def test_through_estimate_and_check(cli, name, gpu, gpus):
    out = cli("estimate", name, "--gpu", gpu, "--num-gpus", gpus, "--json")
    assert out.exit_code == 0, out.stderr
    assert out.json()["params"]["total"] == PRESETS[name][0]
    assert "moeplan check:" in cli("check", name, "--gpu", gpu, "--num-gpus", gpus).stdout
