"""Every MoE decoder of moeplan/spec/readers/moe_decoders.py end to end through the CLI: its synthetic config
(tests/data/hf-configs, counted against transformers in test_transformers_crosscheck.py) estimates with exit 0,
the JSON carrying the same count as the library and no warning; the MiniMax-M2 preset checks on real GPUs."""

import json
from pathlib import Path

import pytest

from moeplan.accounting.params import count_params
from moeplan.errors import SpecError
from moeplan.spec.hf import spec_from_hf_config
from moeplan.spec.readers.moe_decoders import READERS

CONFIGS = Path(__file__).parent / "data" / "hf-configs"
SYNTHETIC = sorted(path for path in CONFIGS.glob("*.json") if json.loads(path.read_text())["model_type"] in READERS)


def test_every_reader_has_a_synthetic_config_or_a_container_test():
    from_files = {json.loads(path.read_text())["model_type"] for path in SYNTHETIC}
    multimodal_text = {"qwen3_vl_moe_text", "glm4v_moe_text", "qwen3_omni_moe_text", "minimax_m3_vl_text", "mistral4"}
    assert READERS.keys() - from_files == multimodal_text  # checked through their containers in test_crosscheck_moe_decoders


@pytest.mark.parametrize("path", SYNTHETIC, ids=lambda path: path.stem)
def test_estimate_reads_each_family(cli, path: Path):
    result = cli("estimate", path, "--context", "512", "--json")
    assert result.exit_code == 0, result.stderr
    report = result.json()
    assert report["warnings"] == []
    assert report["params"]["total"] == count_params(spec_from_hf_config(json.loads(path.read_text()))).total
    assert report["memory"]["kv_cache_bytes_per_token"] > 0


@pytest.mark.parametrize("path", SYNTHETIC, ids=lambda path: path.stem)
def test_spec_file_round_trip(cli, tmp_path, path: Path):
    """`moeplan spec` writes each family's features into a spec file that estimates to the same count."""
    written = cli("spec", path)
    assert written.exit_code == 0, written.stderr
    spec_file = tmp_path / "model.yaml"
    spec_file.write_text(written.stdout)
    again = cli("estimate", spec_file, "--context", "512", "--json")
    assert again.exit_code == 0, again.stderr
    assert again.json()["params"] == cli("estimate", path, "--context", "512", "--json").json()["params"]


def test_minimax_m2_preset_checks_on_h200s(cli):
    """228.7B parameters in FP8 blocks (about 230 GB of weights) fit two H200s but not one."""
    assert cli("check", "minimax-m2", "--gpu", "h200", "--num-gpus", "2").exit_code == 0
    assert cli("check", "minimax-m2", "--gpu", "h200").exit_code == 1


WRONG_VALUES = ["x", -1, 0, 10**12, [1, "a"], {"a": 1}]


@pytest.mark.parametrize("path", SYNTHETIC, ids=lambda path: path.stem)
def test_a_wrong_value_under_any_key_is_bad_input(path: Path):
    """Every key of each family's config, set to a wrong value, reads or fails as bad input (SpecError): never another
    exception (the CLI's exit 4), a hang or a per-layer list built for 10^12 layers."""
    config = json.loads(path.read_text())
    for key in sorted(config.keys() - {"model_type"}):
        for value in WRONG_VALUES:
            try:
                count_params(spec_from_hf_config({**config, key: value}))
            except SpecError:
                pass


@pytest.mark.parametrize("family", ["hy_v3", "axk1", "kimi_linear", "deepseek_v32"])
def test_a_misspelled_mlp_layer_type_is_bad_input(cli, tmp_path, family: str):
    """mlp_layer_types is read by one helper for the MoE, hybrid and sparse-attention readers: a kind other than
    'dense' or 'sparse' is exit 2 naming the key and the value as written, never a layer silently counted dense."""
    config = json.loads((CONFIGS / f"{family}.json").read_text())
    config["mlp_layer_types"] = ["dense"] + ["sparce"] * (len(config["mlp_layer_types"]) - 1)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = cli("estimate", path)
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "mlp_layer_types" in result.stderr and '"sparce"' in result.stderr, result.stderr


def test_an_mlp_layer_types_list_shorter_than_the_layers_is_bad_input(cli, tmp_path):
    """A layer that mlp_layer_types leaves out has no kind (transformers fails on it): exit 2, not a dense layer."""
    config = json.loads((CONFIGS / "hy_v3.json").read_text())
    config["mlp_layer_types"] = config["mlp_layer_types"][:-1]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = cli("estimate", path)
    assert result.exit_code == 2
    assert "mlp_layer_types lists" in result.stderr and "num_hidden_layers" in result.stderr, result.stderr
