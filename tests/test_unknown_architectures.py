"""Never a silently wrong count: configs of architectures moeplan does not read are refused unless every
key that can change a count is understood; a warning that comes with a figure is part of the result; a
checkpoint that stores another count than the config reads as is reported as a warning."""

import json
import struct
from pathlib import Path

import pytest

from moeplan.errors import SpecError
from moeplan.spec.count_check import stored_count_difference, stored_count_warning
from moeplan.spec.checkpoint import CheckpointSummary, DtypeTotal
from moeplan.spec.hf import spec_from_hf_config
from moeplan.spec.readers.unknown import unplaced_keys

LLAMA = json.loads((Path(__file__).parent / "data" / "hf-configs" / "llama.json").read_text()) | {"max_position_embeddings": 32768}
"""The synthetic Llama config, trained (it says) for a context longer than estimate's default one."""
LLAMA_TOTAL = 1153 * 100 * 2 + 3 * (100 * (100 + 2 * 50) + 100 * 100 + (100 + 2 * 50) + 100 + 3 * 100 * 172 + 2 * 172 + 100 + 2 * 100) + 100
"""tests/data/hf-configs/llama.json by hand: embedding and lm_head, then per layer q/k/v/o with biases (5 KV heads
of 10), gated MLP with biases and two norms, then the final norm."""


def _fork(**changes) -> dict:
    return {**LLAMA, "model_type": "my_llama_fork", **changes}


@pytest.mark.parametrize(
    "extra",
    [
        {"num_local_experts": 8, "num_experts_per_tok": 2},  # experts
        {"n_shared_experts": 1},  # shared experts
        {"layer_types": ["sliding_attention", "full_attention", "full_attention"], "sliding_window": 128},  # layer types
        {"mlp_only_layers": [1]},  # per-layer pattern
        {"index_n_heads": 64, "index_topk": 2048},  # a sparse-attention indexer
        {"mamba_d_state": 16},  # state-space layers
        {"some_new_projection_rank": 512},  # anything never seen
    ],
)
def test_unknown_keys_are_refused_by_name(extra):
    with pytest.raises(SpecError) as error:
        spec_from_hf_config(_fork(**extra), source="config.json")
    message = str(error.value)
    assert "unknown model_type 'my_llama_fork'" in message
    assert f"cannot place the keys {', '.join(sorted(extra))} " in message
    assert "spec file" in message and "--set" in message and "report the architecture" in message


def test_keys_that_change_no_count_are_ignored():
    """Token ids, generation settings, numerics, rotary tables and empty MoE keys change no count."""
    config = _fork(rope_scaling={"type": "yarn", "factor": 4.0}, bos_token_id=1, temperature=0.7, top_k=50,
                   num_experts=0, sliding_window=None, use_sliding_window=False, layer_types=["full_attention"] * 3,
                   quantization_config={"quant_method": "fp8"})
    assert unplaced_keys(config) == []
    with pytest.warns(UserWarning, match="read as a dense Llama-style decoder"):
        assert spec_from_hf_config(config).moe is None


def test_a_dense_model_type_with_expert_keys_is_refused():
    """model_type 'llama' over an MoE checkpoint with its own code: LlamaForCausalLM would build a dense model."""
    config = {**LLAMA, "num_local_experts": 8, "num_experts_per_tok": 2, "auto_map": {"AutoModelForCausalLM": "x.Moe"}}
    with pytest.raises(SpecError, match="'llama' is a dense architecture, but the config describes experts "
                                        r"\(num_experts_per_tok, num_local_experts\)"):
        spec_from_hf_config(config)
    assert spec_from_hf_config({**LLAMA, "num_local_experts": None}).moe is None  # an empty key describes nothing


def test_a_known_but_unread_model_type_is_refused_with_its_reason():
    with pytest.raises(SpecError, match="'switch_transformers' is not read by moeplan: an encoder-decoder"):
        spec_from_hf_config({**LLAMA, "model_type": "switch_transformers"})


def test_generic_reading_counts_exactly():
    from moeplan.accounting.params import count_params

    with pytest.warns(UserWarning):
        assert count_params(spec_from_hf_config(_fork())).total == LLAMA_TOTAL


def test_warning_is_part_of_json_rich_and_check_output(cli, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_fork()))
    result = cli("estimate", path, "--json")
    assert result.exit_code == 0
    (warning,) = result.json()["warnings"]
    assert "unknown model_type 'my_llama_fork' read as a dense Llama-style decoder" in warning
    assert result.stderr.startswith("warning: ")
    shown = cli("estimate", path)
    assert shown.stdout.lstrip().startswith("warning:") and "my_llama_fork" in shown.stdout.split("\n")[0]
    checked = cli("check", path, "--json")
    assert checked.exit_code == 0 and "my_llama_fork" in checked.json()["deployments"][0]["report"]["warnings"][0]
    table = cli("check", path)
    assert table.stdout.lstrip().startswith("warning:") and "my_llama_fork" in table.stdout
    markdown = cli("check", path, "--markdown")
    assert "> **warning** (" in markdown.stdout and "my_llama_fork" in markdown.stdout


def test_known_models_have_no_warnings(cli):
    assert cli("estimate", "mixtral-8x7b", "--json").json()["warnings"] == []


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A safetensors file whose tensor data is zeros (a sparse file: moeplan reads headers and checks the size)."""
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = {"BF16": 2, "F32": 4, "U8": 1}[dtype]
        count = 1
        for dim in shape:
            count *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size * count]}
        offset += size * count
    raw = json.dumps(header).encode()
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)


def _model_dir(tmp_path: Path, config: dict, stored: int, dtype: str = "BF16") -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config))
    _write_safetensors(directory / "model.safetensors", {"everything": (dtype, [stored])})
    return directory


@pytest.mark.parametrize("stored, warns", [(LLAMA_TOTAL, False), (int(LLAMA_TOTAL * 1.004), False),
                                           (int(LLAMA_TOTAL * 1.006), True), (LLAMA_TOTAL * 10, True)])
def test_checkpoint_difference_above_half_a_percent_is_a_warning(cli, tmp_path, stored, warns):
    directory = _model_dir(tmp_path, LLAMA, stored)
    warnings = cli("estimate", directory, "--json").json()["warnings"]
    assert bool(warnings) == warns
    if warns:
        assert f"stores {stored:,} parameters but the config reads as {LLAMA_TOTAL:,}" in warnings[0]
        assert cli("estimate", directory).stdout.lstrip().startswith("warning: the checkpoint stores")


def test_packed_checkpoints_are_not_compared():
    """MXFP4/NVFP4/GPTQ tensors are stored as integers: their element count is no parameter count."""
    packed = CheckpointSummary(files=1, tensors=2, elements=60, bytes=60, mtp_elements=0,
                               by_dtype={"BF16": DtypeTotal(elements=10, bytes=20), "U8": DtypeTotal(elements=50, bytes=50)})
    assert stored_count_difference(packed, 100) is None and stored_count_warning(packed, 100) is None
    plain = packed.model_copy(update={"by_dtype": {"BF16": DtypeTotal(elements=60, bytes=120)}})
    assert stored_count_difference(plain, 100) == -0.4
    assert "(-40.00%)" in stored_count_warning(plain, 100)


def _index_dir(tmp_path: Path, config: dict, total_size) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config))
    index = {"metadata": {"total_size": total_size}, "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    return directory


@pytest.mark.parametrize("stored, warns", [(LLAMA_TOTAL, False), (int(LLAMA_TOTAL * 0.996), False),
                                           (int(LLAMA_TOTAL * 0.99), True), (LLAMA_TOTAL * 19, True)])
def test_safetensors_index_without_shards_cross_checks_the_count(cli, tmp_path, stored, warns):
    """config.json and the index, the weights not downloaded: total_size / 2 bytes (bf16) is the stored count."""
    directory = _index_dir(tmp_path, LLAMA | {"torch_dtype": "bfloat16"}, 2 * stored)
    warnings = cli("estimate", directory, "--json").json()["warnings"]
    assert bool(warnings) == warns
    if warns:
        assert f"the safetensors index (model.safetensors.index.json) implies {stored:,} parameters" in warnings[0]


def test_index_of_a_quantized_or_undeclared_dtype_is_not_compared(cli, tmp_path):
    quantized = LLAMA | {"torch_dtype": "bfloat16", "quantization_config": {"quant_method": "fp8"}}
    assert cli("estimate", _index_dir(tmp_path, quantized, 10 * LLAMA_TOTAL), "--json").json()["warnings"] == []
    (tmp_path / "model").rename(tmp_path / "first")
    assert cli("estimate", _index_dir(tmp_path, LLAMA, 10 * LLAMA_TOTAL), "--json").json()["warnings"] == []


def test_unreadable_index_is_bad_input(cli, tmp_path):
    result = cli("estimate", _index_dir(tmp_path, LLAMA | {"torch_dtype": "bfloat16"}, "lots"))
    assert result.exit_code == 2 and "metadata.total_size must be a positive whole number" in result.stderr
