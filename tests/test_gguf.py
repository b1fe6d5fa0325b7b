"""GGUF files written with gguf's own writer: the spec from the header, each tensor's real type and bytes, split
files, and the same model through estimate, plan and check."""

import sys

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter

from moeplan.accounting.params import count_params
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
