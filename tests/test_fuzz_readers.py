"""Every reader, every key, every hostile value: each config of tests/data/hf-configs and moeplan/data/configs with one key replaced
(at the top level, or in text_config) is read as a spec with positive counts or refused with SpecError naming
the file, never any other exception. Deterministic and exhaustive, so that every reader is reached on every run."""

import json
import warnings

import pytest

from conftest import ROOT
from moeplan.accounting.params import count_params
from moeplan.errors import SpecError
from moeplan.spec.hf import spec_from_hf_config

CONFIGS = sorted([*(ROOT / "tests" / "data" / "hf-configs").glob("*.json"), *(ROOT / "moeplan" / "data" / "configs").glob("*.json")])
"""The test configs and the presets' published configs: between them every reader."""
HOSTILE = [True, "7", 7.5, -1, 10**18, float("inf"), [], {"a": 1}]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_key_with_every_hostile_value(path):
    base = json.loads(path.read_text())
    nested = "text_config" in base
    keys = sorted(base["text_config"] if nested else base)
    outcomes = {"read": 0, "refused": 0}
    for key in keys:
        for value in HOSTILE:
            config = json.loads(path.read_text())
            (config["text_config"] if nested else config)[key] = value
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    spec = spec_from_hf_config(config, source=str(path))
                except SpecError as error:
                    assert str(error).startswith(str(path)) or "quantization_config" in str(error), error
                    outcomes["refused"] += 1
                    continue
            counts = count_params(spec)
            assert counts.total > 0 and counts.active > 0, (key, value)
            outcomes["read"] += 1
    assert outcomes["refused"] > 0  # the hostile values do reach this reader's checks


QUANTIZATION = [
    {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128], "modules_to_not_convert": ["lm_head"]},
    {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn", "lm_head"]},
    {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False},
    {"quant_method": "awq", "w_bit": 4, "q_group_size": 64},
    {"quant_method": "modelopt", "quantization": {"quant_algo": "NVFP4", "exclude_modules": ["lm_head"]}},
    {"quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["lm_head"],
     "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"type": "float", "num_bits": 8, "strategy": "block",
                                                                      "block_structure": [128, 128]}}}},
]
QUANT_HOSTILE = [None, True, 0, -1, 3, "x", 1.5, [], ["x"], [1, "a"], {}, {"a": [1]}]


def _paths(value, prefix=()):
    """Every key path of a nested dict."""
    for key, item in value.items():
        yield (*prefix, key)
        if isinstance(item, dict):
            yield from _paths(item, (*prefix, key))


@pytest.mark.parametrize("quantization", QUANTIZATION, ids=lambda q: q["quant_method"])
def test_every_quantization_key_with_every_hostile_value(quantization):
    """quantization_config is read where weights are costed: every key replaced is a format or a SpecError."""
    from moeplan.accounting.weights import weight_memory

    base = json.loads((ROOT / "tests" / "data" / "hf-configs" / "mixtral-tied.json").read_text())
    for path in _paths(quantization):
        for value in QUANT_HOSTILE:
            config = json.loads(json.dumps(quantization))
            node = config
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            try:
                spec = spec_from_hf_config({**base, "quantization_config": config}, source="config.json")
                memory = weight_memory(spec)
            except SpecError:
                continue
            assert memory.total_bytes > 0, (path, value)


@pytest.mark.parametrize("preset", ["mixtral-8x7b", "deepseek-v3.2", "jamba-v0.1", "gpt-oss-20b", "qwen3-next-80b-a3b",
                                    "nemotron-3-nano-30b-a3b", "llama-4-scout"])
def test_every_spec_file_field_with_every_hostile_value(preset):
    """moeplan's own spec files (what `moeplan spec` writes), every field at every depth replaced."""
    from moeplan.spec.presets import load_preset, preset_names
    from moeplan.spec.specfile import spec_from_document, spec_to_document

    if preset not in preset_names():
        pytest.skip(f"no preset {preset}")
    document = spec_to_document(load_preset(preset))
    for path in _paths(document):
        for value in [*HOSTILE, 0, 4097, 2**24 + 1, "full"]:
            changed = json.loads(json.dumps(document))
            node = changed
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            try:
                spec = spec_from_document(changed, source="spec.yaml")
            except SpecError as error:
                assert str(error).startswith("spec.yaml: "), error
                continue
            assert count_params(spec).total > 0, (path, value)
