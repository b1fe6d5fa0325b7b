"""GGUF files written with gguf's own writer: the spec from the header, each tensor's real type and bytes, split
files, and the same model through estimate, plan and check."""

import sys

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter

from moeplan.accounting.params import count_params
from moeplan.accounting.weights import WeightPolicy, weight_memory
from moeplan.errors import SpecError
from moeplan.spec.resolve import resolve_spec

Q = GGMLQuantizationType
H, HEADS, KV, HD, E, K, FF, V, L = 256, 4, 2, 64, 4, 2, 256, 300, 2


def nbytes(kind: GGMLQuantizationType, elements: int) -> int:
    block, size = GGML_QUANT_SIZES[kind]
    return elements // block * size


def tensors() -> dict[str, tuple[list[int], GGMLQuantizationType]]:
    """name → (numpy-order shape, type): a 2-layer Qwen3-MoE as llama.cpp names it, in a Q4_K_M-like mix."""
    table = {"token_embd.weight": ([V, H], Q.Q8_0), "output.weight": ([V, H], Q.Q6_K), "output_norm.weight": ([H], Q.F32)}
    for i in range(L):
        table |= {
            f"blk.{i}.attn_norm.weight": ([H], Q.F32), f"blk.{i}.ffn_norm.weight": ([H], Q.F32),
            f"blk.{i}.attn_q.weight": ([HEADS * HD, H], Q.Q4_K), f"blk.{i}.attn_k.weight": ([KV * HD, H], Q.Q4_K),
            f"blk.{i}.attn_v.weight": ([KV * HD, H], Q.Q6_K),  # the _M mix keeps attn_v at Q6_K
            f"blk.{i}.attn_output.weight": ([H, HEADS * HD], Q.Q4_K),
            f"blk.{i}.attn_q_norm.weight": ([HD], Q.F32), f"blk.{i}.attn_k_norm.weight": ([HD], Q.F32),
            f"blk.{i}.ffn_gate_inp.weight": ([E, H], Q.F32),
            f"blk.{i}.ffn_gate_exps.weight": ([E, FF, H], Q.Q4_K), f"blk.{i}.ffn_up_exps.weight": ([E, FF, H], Q.Q4_K),
            f"blk.{i}.ffn_down_exps.weight": ([E, H, FF], Q.Q6_K if i == 0 else Q.Q4_K),
        }
    return table


def write(path, names=None, metadata=True, split=None):
    writer = GGUFWriter(str(path), "qwen3moe")
    if metadata:
        writer.add_name("tiny-qwen3-moe")
        writer.add_block_count(L)
        writer.add_embedding_length(H)
        writer.add_feed_forward_length(FF)
        writer.add_head_count(HEADS)
        writer.add_head_count_kv(KV)
        writer.add_key_length(HD)
        writer.add_value_length(HD)
        writer.add_context_length(32768)
        writer.add_expert_count(E)
        writer.add_expert_used_count(K)
        writer.add_expert_feed_forward_length(FF)
        writer.add_layer_norm_rms_eps(1e-6)
        writer.add_token_list([f"t{i}".encode() for i in range(V)])
    if split:
        writer.add_uint16("split.no", split[0])
        writer.add_uint16("split.count", split[1])
    for name, (shape, kind) in tensors().items():
        if names is not None and name not in names:
            continue
        elements = int(np.prod(shape))
        if kind == Q.F32:
            writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
        else:
            row = nbytes(kind, shape[-1])
            writer.add_tensor(name, np.zeros([*shape[:-1], row], dtype=np.uint8), raw_dtype=kind)
        assert elements
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def expected_bytes(select=lambda name: True) -> int:
    return sum(nbytes(kind, int(np.prod(shape))) for name, (shape, kind) in tensors().items() if select(name))


def test_spec_and_exact_bytes_from_the_header(tmp_path):
    resolved = resolve_spec(str(write(tmp_path / "tiny-Q4_K_M.gguf")))
    spec, weights = resolved.spec, resolved.weights
    assert (spec.name, spec.architecture, spec.num_layers, spec.hidden_size, spec.vocab_size) == ("tiny-qwen3-moe", "qwen3_moe", L, H, V)
    assert (spec.moe.num_experts, spec.moe.top_k, spec.moe.expert_intermediate_size) == (E, K, FF)
    assert (spec.attention.num_heads, spec.attention.num_kv_heads, spec.head_dim, spec.max_position_embeddings) == (HEADS, KV, HD, 32768)
    # every stored tensor counted at its own type: the whole file's tensor bytes
    assert weights.total_bytes == expected_bytes()
    assert weights.by_component_bytes["routed_experts"] == expected_bytes(lambda n: "_exps" in n)
    assert weights.by_component_bytes["attention"] == expected_bytes(lambda n: ".attn_" in n and "attn_norm" not in n)
    assert weights.layer_component_bytes[0]["routed_experts"] > weights.layer_component_bytes[1]["routed_experts"]  # Q6_K down in layer 0
    assert weights.formats["routed_experts"] == "q4_k" and weights.formats["embedding"] == "q8_0" and weights.formats["lm_head"] == "q6_k"
    assert any(note.startswith("attention: q4_k") and "q6_k" in note for note in weights.notes)
    # the header's spec counts exactly the weights the file stores
    assert sum(count for *_, count in [(t.name, t.elements) for t in resolved.tensors]) == count_params(spec).total
    assert not any("stores" in note for note in weights.notes)


def test_split_gguf_reads_every_part(tmp_path):
    names = list(tensors())
    write(tmp_path / "tiny-00001-of-00002.gguf", names[: len(names) // 2], split=(0, 2))
    with pytest.raises(SpecError, match="missing tiny-00002-of-00002.gguf"):
        resolve_spec(str(tmp_path / "tiny-00001-of-00002.gguf"))  # the second part is not there yet
    write(tmp_path / "tiny-00002-of-00002.gguf", names[len(names) // 2 :], metadata=False, split=(1, 2))
    resolved = resolve_spec(str(tmp_path / "tiny-00001-of-00002.gguf"))
    assert resolved.weights.total_bytes == expected_bytes() and resolved.spec.num_layers == L


def test_gguf_through_estimate_plan_and_check(cli, tmp_path):
    path = write(tmp_path / "tiny.gguf")
    out = cli("estimate", path, "--gpu", "l4", "--json")
    assert out.exit_code == 0, out.stderr
    report = out.json()
    assert report["weights"]["total_bytes"] == expected_bytes() and report["weights"]["origin"].startswith("GGUF tiny.gguf")
    assert report["memory"]["weights_bytes"] == expected_bytes()
    assert "tiny-qwen3-moe" in cli("estimate", path, "--gpu", "l4").stdout
    # a dtype flag asks for another format: computed from the spec instead
    assert cli("estimate", path, "--dtype", "bf16", "--json").json()["weights"]["total_bytes"] == 2 * count_params(resolve_spec(str(path)).spec).total
    plan = cli("plan", path, "--gpu", "l4", "--json")
    assert plan.exit_code == 0, plan.stderr
    assert "moeplan check: PASS" in cli("check", path, "--gpu", "l4").stdout


def test_header_walk_agrees_with_ggufs_reader(tmp_path):
    # moeplan walks the header itself (GGUFReader builds a numpy view per vocabulary entry: seconds for 129k
    # tokens); the package's own reader must see the same tensors
    from gguf import GGUFReader

    from moeplan.spec.gguf import read_header

    path = write(tmp_path / "tiny.gguf")
    header, reader = read_header(path), GGUFReader(path, "r")
    assert {n: (k, e, b, s) for n, k, e, b, s in header.tensors} == {
        t.name: (t.tensor_type.name.lower(), int(t.n_elements), int(t.n_bytes), [int(x) for x in reversed(t.shape)]) for t in reader.tensors}
    assert header.metadata["qwen3moe.expert_count"] == reader.fields["qwen3moe.expert_count"].contents() == E
    assert header.metadata["tokenizer.ggml.tokens"] == V  # a long array is kept as its length


def test_truncated_header_is_exit_2(cli, tmp_path):
    whole = write(tmp_path / "tiny.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(whole[:200])
    result = cli("estimate", tmp_path / "cut.gguf")
    assert result.exit_code == 2 and "GGUF header ends early" in result.stderr


def test_bad_gguf_is_exit_2(cli, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(20))
    result = cli("estimate", bad)
    assert result.exit_code == 2 and "bad.gguf" in result.stderr and result.stderr.count("\n") == 1


def test_tensor_data_is_not_interpreted(tmp_path):
    # the reader maps the file and parses the header; data bytes of any value give the same answer
    path = write(tmp_path / "tiny.gguf")
    whole = bytearray(path.read_bytes())
    start = len(whole) - expected_bytes()
    whole[start:] = b"\xff" * (len(whole) - start)
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(bytes(whole))
    assert resolve_spec(str(garbage)).weights == resolve_spec(str(path)).weights.model_copy(
        update={"origin": "GGUF garbage.gguf: each tensor's stored type and bytes"})
    assert "gguf" in sys.modules


# ---------------------------------------------------------------- files converted from transformers models

HF_TO_GGUF = [  # transformers parameter name → llama.cpp tensor name (convert_hf_to_gguf.py's mapping, in short)
    (r"^model\.embed_tokens\.weight$", "token_embd.weight"),
    (r"^lm_head\.weight$", "output.weight"),
    (r"^model\.norm\.weight$", "output_norm.weight"),
    (r"\.input_layernorm\.weight$", "attn_norm.weight"),
    (r"\.post_attention_layernorm\.weight$", "post_attention_norm.weight"),
    (r"\.self_attn\.([qkv])_proj\.(weight|bias)$", r"attn_\1.\2"),
    (r"\.self_attn\.o_proj\.(weight|bias)$", r"attn_output.\1"),
    (r"\.self_attn\.([qk])_norm\.weight$", r"attn_\1_norm.weight"),
    (r"\.self_attn\.q_a_proj\.weight$", "attn_q_a.weight"),
    (r"\.self_attn\.q_a_layernorm\.weight$", "attn_q_a_norm.weight"),
    (r"\.self_attn\.q_b_proj\.weight$", "attn_q_b.weight"),
    (r"\.self_attn\.kv_a_proj_with_mqa\.weight$", "attn_kv_a_mqa.weight"),
    (r"\.self_attn\.kv_a_layernorm\.weight$", "attn_kv_a_norm.weight"),
    (r"\.self_attn\.kv_b_proj\.weight$", "attn_kv_b.weight"),
    (r"\.self_attn\.sinks$", "attn_sinks.weight"),
    (r"\.mlp\.(gate|router)\.weight$", "ffn_gate_inp.weight"),
    (r"\.mlp\.router\.bias$", "ffn_gate_inp.bias"),
    (r"\.mlp\.gate\.e_score_correction_bias$", "exp_probs_b.bias"),
    (r"\.mlp\.experts\.gate_up_proj$", "ffn_gate_up_exps.weight"),
    (r"\.mlp\.experts\.gate_up_proj_bias$", "ffn_gate_up_exps.bias"),
    (r"\.mlp\.experts\.down_proj$", "ffn_down_exps.weight"),
    (r"\.mlp\.experts\.down_proj_bias$", "ffn_down_exps.bias"),
    (r"\.mlp\.shared_experts\.(gate|up|down)_proj\.weight$", r"ffn_\1_shexp.weight"),
    (r"\.mlp\.(gate|up|down)_proj\.weight$", r"ffn_\1.weight"),
]


def _gguf_name(name: str) -> str:
    import re

    for pattern, target in HF_TO_GGUF:
        if re.search(pattern, name):
            layer = re.search(r"\.layers\.(\d+)\.", name)
            tail = re.sub(r".*" + pattern, target, name) if "\\" in target else target
            return f"blk.{layer.group(1)}.{tail}" if layer else tail
    raise AssertionError(f"no llama.cpp name for {name}")


def convert(tmp_path, config_name: str, arch: str, metadata: dict, extra_blocks: int = 0):
    """A GGUF file (F32 zeros) holding exactly the parameters transformers instantiates for a test config, with the
    metadata keys llama.cpp's converter writes; ``extra_blocks`` nextn blocks appended, as llama.cpp stores them."""
    import json
    from pathlib import Path

    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = json.loads((Path(__file__).parent / "data" / "hf-configs" / f"{config_name}.json").read_text())
    hf = {k: v for k, v in config.items() if k != "model_type"}
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(config["model_type"], **hf))
    writer = GGUFWriter(str(tmp_path / f"{config_name}.gguf"), arch)
    for key, value in metadata.items():
        (writer.add_float32 if isinstance(value, float) else writer.add_uint32)(f"{arch}.{key}", value)
    total = 0
    for name, parameter in model.named_parameters():
        writer.add_tensor_info(_gguf_name(name), list(parameter.shape), np.dtype(np.float32), 4 * parameter.numel())
        total += parameter.numel()
    for name, buffer in model.named_buffers():  # llama.cpp also stores DeepSeek/GLM's selection bias (a buffer)
        if name.endswith("e_score_correction_bias"):
            writer.add_tensor_info(_gguf_name(name), list(buffer.shape), np.dtype(np.float32), 4 * buffer.numel())
    for i in range(extra_blocks):
        layer = config["num_hidden_layers"] + i
        writer.add_tensor_info(f"blk.{layer}.nextn.eh_proj.weight", [config["hidden_size"], 2 * config["hidden_size"]],
                               np.dtype(np.float32), 8 * config["hidden_size"] ** 2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    path = tmp_path / f"{config_name}.gguf"
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size + 4 * total + 8 * config["hidden_size"] ** 2 * extra_blocks + 1024 * 1024)
    return path, total, config


def test_glm4_moe_gguf_counts_what_transformers_instantiates(tmp_path):
    path, total, config = convert(tmp_path, "glm4_moe", "glm4moe", {
        "block_count": 4 + 1, "nextn_predict_layers": 1, "embedding_length": 112, "feed_forward_length": 200,
        "attention.head_count": 8, "attention.head_count_kv": 2, "attention.key_length": 14, "context_length": 131072,
        "expert_count": 8, "expert_used_count": 3, "expert_shared_count": 1, "leading_dense_block_count": 1,
        "expert_feed_forward_length": 48, "vocab_size": 1061}, extra_blocks=1)
    resolved = resolve_spec(str(path))
    assert resolved.spec.architecture == "glm4_moe" and resolved.spec.num_layers == 4 and resolved.spec.mtp_layers == 1
    assert count_params(resolved.spec).total == total  # transformers' count, from the header's metadata
    assert resolved.weights.total_bytes == 4 * (total + 3 * 8) and resolved.weights.mtp_bytes == 8 * 112 ** 2
    assert not any("stores" in note for note in resolved.weights.notes)
    assert resolved.weights.by_component_bytes["router"] == 4 * 3 * (8 * 112 + 8)  # 3 MoE layers: gate + correction bias


def test_gpt_oss_gguf_counts_what_transformers_instantiates(tmp_path):
    path, total, config = convert(tmp_path, "gpt_oss", "gpt-oss", {
        "block_count": 4, "embedding_length": 90, "feed_forward_length": 66, "attention.head_count": 6,
        "attention.head_count_kv": 2, "attention.key_length": 14, "attention.value_length": 14, "context_length": 131072,
        "expert_count": 8, "expert_used_count": 2, "expert_feed_forward_length": 66, "attention.sliding_window": 32,
        "vocab_size": 1117})
    resolved = resolve_spec(str(path))
    assert resolved.spec.architecture == "gpt_oss" and resolved.spec.attention.layer_pattern == ["sliding", "full"]
    assert count_params(resolved.spec).total == total
    assert resolved.weights.total_bytes == 4 * total and not any("stores" in n for n in resolved.weights.notes)
    # active bytes: one formula (weights.active_weight_bytes) for the file's tensors and for the spec in fp32
    computed = weight_memory(resolved.spec, WeightPolicy(dtype="fp32"))
    assert resolved.weights.per_expert_bytes == computed.per_expert_bytes
    assert resolved.weights.active_bytes == computed.active_bytes == 4 * count_params(resolved.spec).active


def test_deepseek_v3_gguf_counts_what_transformers_instantiates(tmp_path):
    path, total, _ = convert(tmp_path, "deepseek_v3", "deepseek2", {
        "block_count": 5, "embedding_length": 136, "feed_forward_length": 248, "attention.head_count": 6,
        "attention.head_count_kv": 6, "attention.key_length": 32, "attention.value_length": 26, "rope.dimension_count": 10,
        "attention.q_lora_rank": 52, "attention.kv_lora_rank": 36, "context_length": 4096, "expert_count": 16,
        "expert_used_count": 4, "expert_shared_count": 1, "leading_dense_block_count": 2, "expert_feed_forward_length": 28,
        "expert_group_count": 4, "expert_group_used_count": 2, "expert_gating_func": 2, "vocab_size": 1093})
    resolved = resolve_spec(str(path))
    spec = resolved.spec
    assert (spec.architecture, spec.attention.kind, spec.attention.q_lora_rank, spec.moe.num_expert_groups) == ("deepseek_v3", "mla", 52, 4)
    assert count_params(spec).total == total
    assert resolved.weights.total_bytes == 4 * (total + 3 * 16) and not any("stores" in n for n in resolved.weights.notes)


def test_overrides_drop_the_files_bytes(tmp_path):
    path = write(tmp_path / "tiny.gguf")
    resolved = resolve_spec(str(path), {"moe.top_k": 1})
    assert resolved.spec.moe.top_k == 1 and resolved.weights is None and resolved.tensors is None
    assert resolved.notes == ["spec overrides given: weights are computed from the changed spec, not the file's tensors"]
