"""`moeplan estimate`, `presets` and `spec` end to end through the CLI, including bad input."""

import json

import pytest

from conftest import CONFIGS


def test_estimate_json_has_exact_counts(cli):
    result = cli("estimate", "mixtral-8x7b", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["schema"] == 1
    # Mixtral-8x7B: 32 layers × (q, o 4096² each; k, v 4096·1024 each; 8 experts × 3·4096·14336; router 8·4096; 2 norms)
    per_layer = 4096 * (2 * 4096 + 2 * 1024) + 8 * 3 * 4096 * 14336 + 8 * 4096 + 2 * 4096
    total = 32 * per_layer + 2 * 32000 * 4096 + 4096
    assert data["params"]["total"] == total == 46_702_792_704
    active = total - 32 * 6 * 3 * 4096 * 14336
    assert data["params"]["active"] == active
    assert data["params"]["active_without_embedding"] == active - 32000 * 4096
    assert data["params"]["by_component"]["routed_experts"] == 32 * 8 * 3 * 4096 * 14336
    assert data["spec"]["moe"]["top_k"] == 2


def test_estimate_rich_report(cli):
    result = cli("estimate", "deepseek-v3")
    assert result.exit_code == 0, result.stderr
    assert "MLA" in result.stdout and "multi-token prediction" in result.stdout
    assert "\x1b[" not in result.stdout


def test_estimate_from_config_file_and_directory(cli, tmp_path):
    assert cli("estimate", CONFIGS / "qwen3-30b-a3b.json", "--json").json()["params"]["total"] == 30_532_122_624
    (tmp_path / "config.json").write_text((CONFIGS / "olmoe-1b-7b.json").read_text())
    data = cli("estimate", tmp_path, "--json").json()
    assert data["params"]["total"] == cli("estimate", "olmoe-1b-7b", "--json").json()["params"]["total"]


def test_overrides_what_if(cli):
    base = cli("estimate", "mixtral-8x7b", "--json").json()["params"]
    more = cli("estimate", "mixtral-8x7b", "--set", "num_experts=16", "--set", "top_k=4", "--json").json()
    assert more["spec"]["moe"]["num_experts"] == 16 and more["spec"]["moe"]["top_k"] == 4
    expert_layer = 3 * 4096 * 14336 * 32
    assert more["params"]["total"] - base["total"] == 8 * expert_layer + 8 * 4096 * 32  # experts + router rows
    assert more["params"]["active"] - base["active"] == 2 * expert_layer + 8 * 4096 * 32
    flags = cli("estimate", "mixtral-8x7b", "--experts", "16", "--top-k", "4", "--json").json()
    assert flags["params"] == more["params"]


def test_spec_from_flags_alone(cli):
    args = ["--layers", "24", "--hidden", "2048", "--heads", "16", "--vocab", "32000", "--experts", "64",
            "--top-k", "6", "--expert-intermediate", "1408"]
    data = cli("estimate", *args, "--json").json()
    layer = 4 * 2048 * 2048 + 64 * 3 * 2048 * 1408 + 64 * 2048 + 2 * 2048
    assert data["params"]["total"] == 24 * layer + 2 * 32000 * 2048 + 2048


def test_spec_roundtrip(cli, tmp_path):
    for name in ("deepseek-v3", "gpt-oss-120b", "jamba-v0.1", "llama-4-maverick", "grok-1"):
        text = cli("spec", name).stdout
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        again = cli("estimate", path, "--json").json()
        assert again["params"] == cli("estimate", name, "--json").json()["params"], name
    as_json = tmp_path / "m.json"
    as_json.write_text(cli("spec", "mixtral-8x7b", "--format", "json").stdout)
    assert cli("estimate", as_json, "--json").json()["params"]["total"] == 46_702_792_704


def test_spec_schema(cli):
    schema = json.loads(cli("schema", "spec").stdout)
    assert schema["properties"]["moeplan_spec"]["const"] == 1
    assert "num_layers" in schema["required"]


def test_presets_list(cli):
    data = cli("presets", "--json").json()
    names = {row["name"]: row for row in data["presets"]}
    assert {p.stem for p in CONFIGS.glob("*.json")} | {"switch-c", "gshard-600b", "grok-1"} == set(names)
    assert names["deepseek-v3"]["experts"] == 256 and names["deepseek-v3"]["top_k"] == 8
    # Switch-C: 1571B in the paper (Table 9) — 30 layers × 2048 experts × 2·2080·6144 alone is 1570.3B
    assert abs(names["switch-c"]["total_params"] / 1571e9 - 1) < 0.001
    assert "xai-org/grok-1" in names["grok-1"]["source"]


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("moeplan ")


@pytest.mark.parametrize(
    "args, message",
    [
        (["estimate", "mixtral-8x8b"], "did you mean mixtral-8x7b"),
        (["estimate", "./nope/config.json"], "no such file"),
        (["estimate", "mixtral-8x7b", "--set", "top_k=9"], "top_k (9) is larger than num_experts (8)"),
        (["estimate", "mixtral-8x7b", "--set", "hidden=0"], "hidden_size"),
        (["estimate", "mixtral-8x7b", "--set", "layers=-2"], "num_layers"),
        (["estimate", "mixtral-8x7b", "--set", "nonsense=1"], "unknown spec field 'nonsense'"),
        (["estimate", "mixtral-8x7b", "--set", "novalue"], "key=value"),
        (["estimate", "--layers", "4"], "give at least --hidden, --vocab, --heads"),
        (["spec", "mixtral-8x7b", "--format", "toml"], "yaml or json"),
    ],
)
def test_bad_input_exits_2_with_one_line(cli, args, message):
    result = cli(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_files(cli, tmp_path):
    malformed = tmp_path / "bad.json"
    malformed.write_text('{"model_type": "mixtral", "hidden_size": 4096,')
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"model_type": "mixtral", "hidden_size": 4096}))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"model_type": "mystery", "foo": 1}))
    negative = tmp_path / "neg.json"
    config = json.loads((CONFIGS / "mixtral-8x7b.json").read_text())
    negative.write_text(json.dumps({**config, "num_local_experts": 0}))
    for path, message in [(malformed, "malformed JSON"), (missing, "required key 'num_attention_heads' is missing"),
                          (unknown, "unknown model_type 'mystery'; moeplan cannot place the keys foo"), (negative, "num_local_experts: Input should be greater than 0")]:
        result = cli("estimate", path)
        assert result.exit_code == 2, (path, result.stderr)
        assert message in result.stderr, result.stderr
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    assert "no config.json" in cli("estimate", empty_dir).stderr


def test_unknown_model_type_with_expert_keys_is_refused(cli, tmp_path):
    """A Mixtral fork under its own model_type is not counted as a dense Llama: exit 2, the expert keys named."""
    config = json.loads((CONFIGS / "mixtral-8x7b.json").read_text())
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, "model_type": "my_mixtral_fork"}))
    result = cli("estimate", path, "--json")
    assert result.exit_code == 2 and result.stdout == ""
    assert "unknown model_type 'my_mixtral_fork'" in result.stderr and "num_local_experts" in result.stderr
    assert "spec file" in result.stderr and result.stderr.count("\n") == 1


def test_json_has_every_documented_key(cli):
    data = cli("estimate", "deepseek-v3", "--gpu", "h200", "--ep", "8", "--dp", "8", "--gpus-per-node", "4", "--json").json()
    for path in ("memory.weights_bytes", "memory.kv_cache_bytes_per_token", "memory.per_gpu_bytes", "memory.fits",
                 "memory.max_batch", "memory.max_context", "flops.forward_per_token", "all_to_all.dispatch_bytes_per_rank",
                 "all_to_all.combine_bytes_per_rank", "all_to_all.inter_node_bytes_per_rank", "throughput.decode_tokens_per_s",
                 "throughput.prefill_tokens_per_s", "throughput.bound", "params.by_component", "spec"):
        node = data
        for part in path.split("."):
            node = node[part]
        assert node is not None, path
    assert data["all_to_all"]["inter_node_bytes_per_rank"] > 0  # 8 ranks over 2 nodes of 4
    assert data["throughput"]["bound"] in ("memory", "compute", "communication")


@pytest.mark.parametrize("args, message", [
    (["--batch", "0"], "--batch: must be positive"),
    (["--context", "12q"], "--context: must be a positive whole number"),
    (["--kv-dtype", "int3"], "--kv-dtype"),
    (["--dtype", "int3"], "unknown weight format 'int3'"),
    (["--gpu", "h900"], "did you mean h800"),
    (["--tp", "3"], "tp=3 must divide the 32 query heads"),
    (["--tp", "4", "--dp", "4", "--num-gpus", "8"], "invalid deployment --tp 4 --dp 4 --num-gpus 8"),
    (["--zero", "5"], "--zero"),
    (["--gpu-util", "1.5"], "--gpu-util"),
    (["--gpu-memory-gib", "-1"], "--gpu-memory-gib"),
    (["--routing", "pareto"], "routing"),
])
def test_bad_deployment_flags_exit_2(cli, args, message):
    result = cli("estimate", "mixtral-8x7b", *args)
    assert result.exit_code == 2, (args, result.stderr, result.exception)
    assert message in result.stderr and "Traceback" not in result.stderr


def test_context_suffixes_and_training_mode(cli):
    data = cli("estimate", "mixtral-8x7b", "--context", "32K", "--batch", "2", "--json").json()
    assert data["deployment"]["context"] == 32768
    assert data["memory"]["kv_cache_bytes"] == 2 * 32768 * 131072  # 2 sequences × 32k tokens × 131,072 B
    training = cli("estimate", "mixtral-8x7b", "--mode", "training", "--num-gpus", "8", "--json").json()
    assert training["memory"]["gpu_util"] == 1.0 and training["memory"]["most_loaded"]["optimizer_bytes"] > 0


def test_counts_read_as_words(cli, monkeypatch):
    """'1 token' not '1 tokens'; the trained-context limit without nested parentheses, with thousands separators."""
    from moeplan.units import counted

    assert (counted(1, "layout"), counted(8192, "token")) == ("1 layout", "8,192 tokens")
    monkeypatch.setenv("COLUMNS", "100")
    result = cli("estimate", "qwen3-30b-a3b", "--gpu", "h200")
    text = " ".join(" ".join(line.strip(" │╭╮╰╯─") for line in result.stdout.splitlines()).split())
    assert "1 token: memory" in text and "1 tokens" not in text
    assert "40,960 at batch 1 (model: max_position_embeddings 40,960, memory allows" in text and "(model (" not in text
    data = cli("estimate", "qwen3-30b-a3b", "--gpu", "h200", "--json").json()
    assert data["memory"]["max_context_limit"].startswith("model: max_position_embeddings 40,960, memory allows ")
