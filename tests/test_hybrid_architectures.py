"""Hybrid and sparse-attention MoE decoders (linear attention, Mamba-2, short convolutions, DSA indexers).

Parameter counts: a config built from each transformers config class's defaults (the full-size model the class
describes) is counted against transformers on the meta device, exactly, by component; the reduced synthetic
configs in tests/data/hf-configs go through tests/test_transformers_crosscheck.py. Cache: per-token KV and
per-sequence state of named configurations by hand arithmetic, and the bytes transformers' own cache tensors hold
after a forward pass of small bf16 models.
"""

import json
from pathlib import Path

import pytest

from moeplan.accounting.flops import ssm_scan_flops_per_token
from moeplan.accounting.kv_cache import kv_cache_bytes, kv_cache_summary, sequence_kv
from moeplan.accounting.params import count_params
from moeplan.errors import SpecError
from moeplan.spec.hf import spec_from_hf_config

CONFIGS = Path(__file__).parent / "data" / "hf-configs"
HYBRID_TYPES = ["qwen3_next", "qwen3_5_moe_text", "qwen3_5_text", "lara_mini", "kimi_linear", "bailing_hybrid", "minimax", "nemotron_h",
                "granitemoehybrid", "lfm2_moe", "deepseek_v32", "glm_moe_dsa"]
STEMS = ["qwen3_next", "qwen3_5_moe", "qwen3_5", "lara_mini", "kimi_linear", "bailing_hybrid", "minimax", "nemotron_h", "nemotron_h-latent",
         "granitemoehybrid", "lfm2_moe", "deepseek_v32", "glm_moe_dsa"]
"""The synthetic configs in tests/data/hf-configs (make_hybrid_configs.py)."""
LFM2_LAYER_TYPES = ["conv", "conv", "full_attention"] * 10 + ["conv", "full_attention"]
"""lfm2_moe's class has no default layer_types (transformers cannot build it without one)."""


def _class_default_config(model_type: str) -> dict:
    """What the config class writes with nothing set (time_step_limit, no parameters, dropped: JSON has no inf)."""
    transformers = pytest.importorskip("transformers")
    extra = {"layer_types": LFM2_LAYER_TYPES} if model_type == "lfm2_moe" else {}
    config = transformers.AutoConfig.for_model(model_type, **extra).to_dict()
    config.pop("time_step_limit", None)
    return config


@pytest.mark.parametrize("model_type", HYBRID_TYPES)
def test_class_defaults_count_exactly(model_type: str):
    pytest.importorskip("torch")
    from test_transformers_crosscheck import _components, _instantiate

    config = _class_default_config(model_type)
    expected = _components(_instantiate(config))
    assert count_params(spec_from_hf_config(config)).by_component == expected
    bare = {"model_type": model_type} | ({"layer_types": LFM2_LAYER_TYPES} if model_type == "lfm2_moe" else {})
    assert count_params(spec_from_hf_config(bare)).by_component == expected, "defaults of keys left out"


def test_qwen3_next_80b_published_counts():
    # Qwen3-Next-80B-A3B: the model card's 80B total and 3B active; transformers' defaults are this model
    counts = count_params(spec_from_hf_config({"model_type": "qwen3_next"}))
    assert counts.total == 79_674_391_296
    assert counts.active == 3_874_929_408  # embedding and lm_head included, 10 routed + 1 shared expert


def test_qwen3_next_state_and_kv_by_hand():
    # 48 layers, 12 gated attention (every 4th): 2 KV heads of 256; 36 gated DeltaNet layers: 32 value heads
    # of 128, 16 key heads of 128, conv kernel 4
    spec = spec_from_hf_config({"model_type": "qwen3_next"})
    summary = kv_cache_summary(spec, "bf16")
    assert summary.attention_layers == 12
    assert summary.kv_cache_bytes_per_token == 12 * 2 * 2 * 256 * 2 == 24_576
    conv = (2 * 16 * 128 + 32 * 128) * 4 * 2  # q, k, v channels × kernel, bf16
    recurrent = 32 * 128 * 128 * 4  # heads × d_k × d_v, fp32
    assert summary.state_bytes_per_sequence == 36 * (conv + recurrent) == 36 * 2_162_688
    assert summary.state_layers == {"linear_attention": 36}
    assert kv_cache_bytes(spec, 4, 32_768, "bf16") == 4 * (32_768 * 24_576 + 36 * 2_162_688)
    assert sequence_kv(spec, "bf16", tp=4).state_bytes == 36 * (conv // 4 + recurrent // 4)
    assert ssm_scan_flops_per_token(spec) == 8 * 36 * 32 * 128 * 128


def test_deepseek_v32_indexer_keys_by_hand():
    # DeepSeek-V3.2: MLA latent (512 + 64) plus one 128-wide indexer key per token in each of 61 layers
    spec = spec_from_hf_config({"model_type": "deepseek_v32"})
    summary = kv_cache_summary(spec, "bf16")
    assert summary.indexer_bytes_per_token == 61 * 128 * 2
    assert summary.kv_cache_bytes_per_token == 61 * (512 + 64 + 128) * 2 == 85_888
    assert kv_cache_summary(spec, "fp8").kv_cache_bytes_per_token == 61 * (512 + 64 + 128)
    assert summary.state_bytes_per_sequence == 0


def test_nemotron_h_state_by_hand():
    # the class default: mamba2, moe, attention, mlp; Mamba-2 with 128 heads of 64, 8 groups, N 128, kernel 4
    spec = spec_from_hf_config({"model_type": "nemotron_h"})
    conv = (128 * 64 + 2 * 8 * 128) * 4 * 2
    ssm = 128 * 64 * 128 * 4
    summary = kv_cache_summary(spec, "bf16")
    assert summary.state_bytes_per_sequence == conv + ssm == 81_920 + 4_194_304
    assert summary.kv_cache_bytes_per_token == 2 * 8 * 128 * 2  # one attention layer, 8 KV heads of 128
    assert spec.moe_layer_count == 1 and [spec.has_mlp(i) for i in range(4)] == [False, True, False, True]


@pytest.mark.parametrize("stem", STEMS)
def test_cache_matches_transformers_tensors(stem: str):
    """A forward pass of the small synthetic model in bf16: the bytes of its cache tensors (K, V, indexer keys;
    conv and recurrent states; MiniMax's lightning state) equal moeplan's prediction, dtypes included."""
    torch = pytest.importorskip("torch")
    from test_transformers_crosscheck import _transformers_config
    from transformers import AutoModelForCausalLM

    config = json.loads((CONFIGS / f"{stem}.json").read_text())
    if (config.get("pad_token_id") or 0) >= 1024:  # Kimi Linear, Ling-2.5: a small vocabulary (the cache does not see it)
        config |= {"vocab_size": 1024, "pad_token_id": 0}
    hf_config = _transformers_config(config)
    if stem == "granitemoehybrid":
        hf_config.time_step_limit = (0.0, float("inf"))  # the file's null (JSON has no inf) stops its scan
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(hf_config, experts_implementation="eager").to(torch.bfloat16).eval()
    batch, context = 2, 5
    with torch.no_grad():
        cache = model(torch.randint(0, 100, (batch, context)), use_cache=True).past_key_values
    tensors = [*getattr(cache, "linear_cache", [])]
    for layer in cache.layers:
        tensors += [getattr(layer, name, None) for name in ("keys", "values", "indexer_keys")]
        for states in ("conv_states", "recurrent_states"):
            tensors += list(getattr(layer, states, {}).values())
    held = sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
    assert held == kv_cache_bytes(spec_from_hf_config(config), batch, context, "bf16")


def test_unknown_layer_type_is_refused_by_name():
    config = json.loads((CONFIGS / "qwen3_next.json").read_text())
    config["layer_types"] = ["sliding_attention"] + config["layer_types"][1:]
    with pytest.raises(SpecError, match="'sliding_attention'"):
        spec_from_hf_config(config)


def test_nemotron_latent_moe_by_hand():
    # latent MoE: 6 experts of 2 · 24 · 26 (non-gated, in the latent width 24) per MoE layer, the projections
    # 2 · 56 · 24 always active beside the shared expert 2 · 56 · 38
    spec = spec_from_hf_config(json.loads((CONFIGS / "nemotron_h-latent.json").read_text()))
    counts = count_params(spec)
    assert counts.per_expert == 2 * 24 * 26
    assert counts.by_component["shared_experts"] == 3 * (2 * 56 * 38 + 2 * 56 * 24)
    with pytest.raises(SpecError, match="mlp_bias"):
        spec_from_hf_config({"model_type": "nemotron_h", "moe_latent_size": 1024, "mlp_bias": True})


def test_glm_dsa_shared_layers_have_no_indexer():
    config = json.loads((CONFIGS / "glm_moe_dsa.json").read_text())
    spec = spec_from_hf_config(config)
    assert spec.attention.indexer.shared_layers == [2, 4]
    per_token = kv_cache_summary(spec, "bf16")
    assert per_token.indexer_bytes_per_token == 3 * 10 * 2
    assert per_token.kv_cache_bytes_per_token == 5 * (18 + 6) * 2 + 3 * 10 * 2


def test_kimi_k3_features_are_refused():
    """Kimi-K3 ships its text model as model_type kimi_linear with modules transformers' KimiLinear lacks."""
    config = json.loads((CONFIGS / "kimi_linear.json").read_text())
    config["linear_attn_config"] = {"use_full_rank_gate": True}
    with pytest.raises(SpecError, match="use_full_rank_gate"):
        spec_from_hf_config({"model_type": "kimi_k3", "text_config": config})
    with pytest.raises(SpecError, match="mla_use_output_gate, routed_expert_hidden_size"):
        spec_from_hf_config(config | {"mla_use_output_gate": True, "routed_expert_hidden_size": 64, "linear_attn_config": {}})


def test_qwen_attn_output_gate_false_drops_the_gate():
    config = json.loads((CONFIGS / "qwen3_next.json").read_text())
    gated = count_params(spec_from_hf_config(config)).by_component["attention"]
    plain = count_params(spec_from_hf_config(config | {"attn_output_gate": False})).by_component["attention"]
    assert gated - plain == 2 * (96 * 4 * 20)  # two attention layers, q_proj H → heads·head_dim less


def test_presets_through_the_cli(cli):
    """The two presets end to end: exact counts, the indexer keys and recurrent state in the KV figures, the
    hybrid layer mix and the sparse-attention row in the report."""
    data = cli("estimate", "qwen3-next-80b-a3b", "--json").json()
    assert data["params"]["total"] == 79_674_391_296
    assert data["params"]["by_component"]["linear_attention"] == 36 * 33_718_464
    kv = data["memory"]["kv_cache"]
    assert kv["state_bytes_per_sequence"] == 36 * 2_162_688 and kv["kv_cache_bytes_per_token"] == 24_576
    assert data["memory"]["kv_cache_bytes"] == 4096 * 24_576 + 36 * 2_162_688  # batch 1, context 4,096
    data = cli("estimate", "deepseek-v3.2", "--json").json()
    assert data["params"]["total"] == 671_877_929_216 and data["params"]["mtp"] == 13_477_385_472
    assert data["memory"]["kv_cache"]["indexer_bytes_per_token"] == 61 * 128 * 2
    report = cli("estimate", "qwen3-next-80b-a3b", "--gpu", "H100", "--num-gpus", "4").stdout
    assert "36 gated DeltaNet, 12 attention layers" in report and "recurrent state per sequence" in report
    assert "indexer 64 heads × 128, top-2048" in cli("estimate", "deepseek-v3.2").stdout


@pytest.mark.parametrize("stem", ["nemotron_h", "granitemoehybrid", "kimi_linear", "bailing_hybrid", "minimax", "lfm2_moe",
                                  "glm_moe_dsa"])
def test_configs_through_the_cli(cli, stem: str):
    """Each hybrid config file estimates (inference with TP, training) and plans, with transformers' count."""
    path = CONFIGS / f"{stem}.json"
    total = count_params(spec_from_hf_config(json.loads(path.read_text()))).total
    for args in ((), ("--tp", "2"), ("--mode", "training")):
        result = cli("estimate", path, "--gpu", "H100", "--context", "1024", "--json", *args)
        assert result.exit_code in (0, 1, 2), result.stderr
        if result.exit_code != 2:  # 2: a TP size the model's heads do not divide (named in the message)
            assert result.json()["params"]["total"] == total
        else:
            assert "must divide" in result.stderr
    assert cli("plan", path, "--gpu", "H100", "--context", "1024", "--json").exit_code in (0, 1)


@pytest.mark.parametrize("stem", STEMS)
def test_tp_parts_add_up_to_parameter_counts(stem: str):
    """The TP/EP parts of every layer (mixers split by heads, their small norms and the indexer replicated) sum to
    the parameter counts (tests/test_memory.py sums the ranks of the presets' layouts)."""
    from moeplan.accounting.shard import model_parts

    spec = spec_from_hf_config(json.loads((CONFIGS / f"{stem}.json").read_text()))
    totals: dict[str, int] = {}
    for part in model_parts(spec):
        totals[part.component] = totals.get(part.component, 0) + part.params
    assert totals == {c: p for c, p in count_params(spec).by_component.items() if p}


PUBLISHED = Path(__file__).parent / "data" / "published"
PRESETS = Path(__file__).parents[1] / "moeplan" / "data" / "configs"


def _published(stem: str) -> dict:
    """A published config: tests/data/published, or a shipped preset."""
    path = PUBLISHED / f"{stem}.json"
    return json.loads((path if path.exists() else PRESETS / f"{stem}.json").read_text())


@pytest.mark.parametrize("stem, total, active_without_embedding", [
    ("nemotron-3-nano-30b-a3b", 31.6e9, 3.2e9),
    ("lfm2-8b-a1b", 8.3e9, 1.5e9),
    ("kimi-linear-48b-a3b", 49.1e9, 3.1e9),
    ("minimax-text-01", 456.1e9, 47.2e9),
    ("nemotron-3-super-120b-a12b", 120.67e9, 12.2e9),
])
def test_published_configs_count_exactly(stem: str, total: float, active_without_embedding: float):
    """Real configs (origins in tests/data/published/README.md and moeplan/data/configs/README.md): exactly transformers' count by component, and
    the model card's totals to their rounding (Kimi Linear's card rounds 49.1B down to its '48B' name)."""
    pytest.importorskip("torch")
    from test_transformers_crosscheck import _components, _instantiate

    config = _published(stem)
    counts = count_params(spec_from_hf_config(config))
    assert counts.by_component == _components(_instantiate(config))
    assert counts.total == pytest.approx(total, abs=0.05e9)
    assert counts.active_without_embedding == pytest.approx(active_without_embedding, abs=0.1e9)


def test_deepseek_v32_attention_flops_by_hand():
    """DSA: at context C a decode query attends min(C, 2048) keys with MLA's 2·128·(128 + 64 + 128) FLOPs per
    key, and the indexer scores all C keys at 2·64·(128 + 1) FLOPs each, in each of 61 layers."""
    from moeplan.accounting.flops import attention_flops_per_token

    spec = spec_from_hf_config({"model_type": "deepseek_v32"})
    per_key, indexer = 2 * 128 * (128 + 64 + 128), 2 * 64 * 129
    assert attention_flops_per_token(spec, 100_000, "decode") == 61 * (2048 * per_key + 100_000 * indexer)
    assert attention_flops_per_token(spec, 1000, "decode") == 61 * 1000 * (per_key + indexer)
    causal = 61 * ((2048 * 2049 / 2 + (4096 - 2048) * 2048) / 4096 * per_key + 4097 / 2 * indexer)
    assert attention_flops_per_token(spec, 4096, "causal") == pytest.approx(causal, rel=1e-12)


@pytest.mark.parametrize("model_type, total, active_without_embedding_and_head", [
    ("glm_moe_dsa", 743.9e9, 39.9e9),  # zai-org/GLM-5: 744B total, 40B active
    ("qwen3_5_moe_text", 34.7e9, 2.4e9),  # Qwen/Qwen3.5-35B-A3B: 35B total, 3B active (with the embeddings)
])
def test_class_defaults_are_the_named_checkpoints(model_type: str, total: float, active_without_embedding_and_head: float):
    """The config classes name these checkpoints; their defaults count to the model cards' totals."""
    counts = count_params(spec_from_hf_config({"model_type": model_type}))
    assert counts.total == pytest.approx(total, abs=0.05e9)
    assert counts.active_without_embedding_and_head == pytest.approx(active_without_embedding_and_head, abs=0.1e9)


def test_minimax_text_01_active_without_embedding_and_head():
    # MiniMax-Text-01's card: 45.9B activated per token, counted without the 200,064 × 6144 embedding and head
    config = json.loads((PUBLISHED / "minimax-text-01.json").read_text())
    assert count_params(spec_from_hf_config(config)).active_without_embedding_and_head == pytest.approx(45.9e9, abs=0.05e9)


def test_granite_hybrid_without_experts_is_dense():
    """Granite-4.0-H-1B style: no experts, the shared MLP is the (gated) dense MLP of every layer."""
    pytest.importorskip("torch")
    from test_transformers_crosscheck import _components, _instantiate

    config = json.loads((CONFIGS / "granitemoehybrid.json").read_text()) | {"num_local_experts": 0}
    expected = _components(_instantiate(config))
    expected["dense_mlp"], expected["shared_experts"] = expected.pop("shared_experts"), 0  # transformers' shared_mlp
    counts = count_params(spec_from_hf_config(config))
    assert counts.by_component == expected and counts.moe_layers == 0


def test_nemotron_3_super_equals_its_safetensors_headers():
    """Latent MoE end to end: the BF16 checkpoint holds 123,611,012,096 weights, 2,942,324,736 of them the MTP
    module that transformers' model leaves out (tests/data/published/README.md): an attention block and a latent
    MoE block (mtp_hybrid_override_pattern '*E'), eh_proj, five norms, no embedding copies."""
    config = json.loads((PUBLISHED / "nemotron-3-super-120b-a12b.json").read_text())
    counts = count_params(spec_from_hf_config(config))
    assert counts.total == 123_611_012_096 - 2_942_324_736
    assert counts.mtp == 2_942_324_736
    attention = 2 * 4096 * 4096 + 2 * 4096 * 2 * 128
    moe = 512 * 2 * 1024 * 2688 + 2 * 4096 * 1024 + 2 * 4096 * 5376 + 512 * 4096
    assert counts.mtp == attention + moe + 2 * 4096 * 4096 + 5 * 4096


def test_qwen3_5_mtp_layer_shares_the_embeddings():
    # one MTP layer: a gated-attention layer with the MoE (as the model's layers), fc 2H → H, three norms
    spec = spec_from_hf_config({"model_type": "qwen3_5_moe_text", "mtp_num_hidden_layers": 1})
    attention_layer = count_params(spec).by_component["attention"] // 10  # 10 of 40 layers are attention
    layer = attention_layer + 256 * 3 * 2048 * 512 + 3 * 2048 * 512 + 2048 + 256 * 2048 + 2 * 2048
    assert count_params(spec).mtp == layer + 2 * 2048 * 2048 + 3 * 2048


def test_lara_mini_sliding_layers_by_hand():
    # the class default: 34 layers of the period-5 pattern (linear, sliding, linear, full, sliding): 14 linear,
    # 7 full and 13 sliding (window 512) attention layers of 4 KV heads of 128
    spec = spec_from_hf_config({"model_type": "lara_mini"})
    summary = kv_cache_summary(spec, "bf16")
    per_layer = 2 * 4 * 128 * 2
    assert summary.attention_layers == 20 and summary.capped_layers == {512: 13}
    assert summary.bytes_per_token_beyond_windows == 7 * per_layer
    assert kv_cache_bytes(spec, 1, 10_000, "bf16") == 7 * per_layer * 10_000 + 13 * per_layer * 512 + summary.state_bytes_per_sequence
    assert summary.state_bytes_per_sequence == 14 * ((2 * 8 * 128 + 16 * 128) * 4 * 2 + 16 * 128 * 128 * 4)


def test_deepseek_v32_decode_reads_only_the_selected_latents():
    """At C = 100,000 a decode step reads the MLA latent of the 2048 selected tokens and all 100,000 indexer keys
    per layer; below 2048 tokens it reads the whole cache."""
    from moeplan.accounting.kv_cache import decode_read_bytes

    spec = spec_from_hf_config({"model_type": "deepseek_v32"})
    assert decode_read_bytes(spec, "bf16", 100_000) == 61 * (2048 * 576 * 2 + 100_000 * 128 * 2)
    assert decode_read_bytes(spec, "bf16", 1000) == kv_cache_bytes(spec, 1, 1000, "bf16")
    assert decode_read_bytes(spec, "bf16", 100_000, layers=range(10, 20), tp=8) == 10 * (2048 * 576 * 2 + 100_000 * 128 * 2)


def test_latent_moe_dispatches_latent_vectors():
    """Nemotron-3-Super's all-to-all carries 1024-wide latent vectors, not 4096-wide hidden states."""
    from moeplan.traffic.alltoall import all_to_all_traffic, spec_all_to_all_traffic

    spec = spec_from_hf_config(json.loads((PUBLISHED / "nemotron-3-super-120b-a12b.json").read_text()))
    traffic = spec_all_to_all_traffic(spec, ep_size=8, tokens_per_rank=4096)
    assert traffic == all_to_all_traffic(512, 22, 1024, 8, 4096, moe_layers=40)
    hidden = all_to_all_traffic(512, 22, 4096, 8, 4096, moe_layers=40)
    assert hidden.dispatch_bytes_per_rank == 4 * traffic.dispatch_bytes_per_rank


def test_minimax_and_lfm2_state_by_hand():
    # MiniMax-Text-01: 10 softmax layers of 8 KV heads of 128; 70 lightning layers holding 64 heads × 128 × 128 in bf16
    minimax = kv_cache_summary(spec_from_hf_config(_published("minimax-text-01")), "bf16")
    assert minimax.kv_cache_bytes_per_token == 10 * 2 * 8 * 128 * 2 == 40_960
    assert minimax.state_bytes_per_sequence == 70 * 64 * 128 * 128 * 2 == 146_800_640
    # LFM2-8B-A1B: 6 attention layers of 8 KV heads of 64; 18 short convolutions of H = 2048 channels × 3 in bf16
    lfm2 = kv_cache_summary(spec_from_hf_config(_published("lfm2-8b-a1b")), "bf16")
    assert lfm2.kv_cache_bytes_per_token == 6 * 2 * 8 * 64 * 2 == 12_288
    assert lfm2.state_bytes_per_sequence == 18 * 2048 * 3 * 2 == 221_184
    assert lfm2.state_layers == {"short_conv": 18}


def test_hybrid_spec_file_round_trip_and_overrides(cli, tmp_path):
    """`moeplan spec` writes the mixer pattern and the mixers' own blocks; the file reads back to the same
    counts, and --set changes a mixer field (32 → 16 DeltaNet value heads)."""
    written = cli("spec", "qwen3-next-80b-a3b")
    assert written.exit_code == 0, written.stderr
    path = tmp_path / "qwen3-next.yaml"
    path.write_text(written.stdout)
    assert cli("estimate", path, "--json").json()["params"]["total"] == 79_674_391_296
    smaller = cli("estimate", "qwen3-next-80b-a3b", "--set", "linear_attention.num_heads=16", "--json").json()
    per_layer = 2048 * (2 * 128 + 2) * 16 + 128 * 4 * 16 + 2 * 16 + 16 * 128 * 2048  # in_proj, conv, dt/A, out_proj
    assert smaller["params"]["by_component"]["linear_attention"] == 36 * (33_718_464 - per_layer)


def test_kimi_layer_lists_out_of_range_are_refused():
    config = _published("kimi-linear-48b-a3b")
    config["linear_attn_config"] = config["linear_attn_config"] | {"full_attn_layers": [4, 28]}
    with pytest.raises(SpecError, match="layer 28, not one of 1..27"):
        spec_from_hf_config(config)
