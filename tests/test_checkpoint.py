"""Stored parameter counts from safetensors headers, beside the config-derived count."""

import json

import numpy as np
from safetensors.numpy import save_file

from conftest import CONFIGS


def _tiny_mixtral(tmp_path):
    config = json.loads((CONFIGS / "mixtral-8x7b.json").read_text())
    config |= {"hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2, "num_key_value_heads": 1,
               "num_hidden_layers": 2, "vocab_size": 10, "num_local_experts": 4, "num_experts_per_tok": 2}
    (tmp_path / "config.json").write_text(json.dumps(config))
    h, i, e, v, kv = 8, 16, 4, 10, 4
    tensors = {"model.embed_tokens.weight": np.zeros((v, h), np.float16), "lm_head.weight": np.zeros((v, h), np.float16),
               "model.norm.weight": np.zeros(h, np.float32)}
    for layer in range(2):
        p = f"model.layers.{layer}."
        tensors |= {p + "self_attn.q_proj.weight": np.zeros((h, h), np.float16), p + "self_attn.k_proj.weight": np.zeros((kv, h), np.float16),
                    p + "self_attn.v_proj.weight": np.zeros((kv, h), np.float16), p + "self_attn.o_proj.weight": np.zeros((h, h), np.float16),
                    p + "input_layernorm.weight": np.zeros(h, np.float32), p + "post_attention_layernorm.weight": np.zeros(h, np.float32),
                    p + "block_sparse_moe.gate.weight": np.zeros((e, h), np.float16)}
        for expert in range(e):
            for name, shape in (("w1", (i, h)), ("w2", (h, i)), ("w3", (i, h))):
                tensors[f"{p}block_sparse_moe.experts.{expert}.{name}.weight"] = np.zeros(shape, np.float16)
    names = sorted(tensors)
    save_file({n: tensors[n] for n in names[: len(names) // 2]}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({n: tensors[n] for n in names[len(names) // 2 :]}, str(tmp_path / "model-00002-of-00002.safetensors"))
    return tensors


def test_checkpoint_counts_match_config(cli, tmp_path):
    tensors = _tiny_mixtral(tmp_path)
    data = cli("estimate", tmp_path, "--json").json()
    stored = sum(t.size for t in tensors.values())
    assert data["checkpoint"]["elements"] == stored == data["params"]["total"]
    assert data["checkpoint"]["files"] == 2
    assert data["checkpoint"]["by_dtype"]["F32"]["bytes"] == 4 * sum(t.size for t in tensors.values() if t.dtype == np.float32)
    assert "difference +0" in " ".join(data["notes"])


def test_checkpoint_difference_is_shown(cli, tmp_path):
    tensors = _tiny_mixtral(tmp_path)
    save_file({"model.layers.2.extra.weight": np.zeros((3, 5), np.float16)}, str(tmp_path / "extra.safetensors"))
    data = cli("estimate", tmp_path, "--json").json()
    assert data["checkpoint"]["elements"] - data["params"]["total"] == 15
    assert data["checkpoint"]["mtp_elements"] == 15  # a layer index beyond num_hidden_layers
    table = cli("estimate", tmp_path).stdout
    assert "+15" in table
    assert sum(t.size for t in tensors.values()) == data["params"]["total"]


def test_corrupt_safetensors_is_a_clear_error(cli, tmp_path):
    _tiny_mixtral(tmp_path)
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    result = cli("estimate", tmp_path)
    assert result.exit_code == 2 and "unreadable safetensors header" in result.stderr
