"""`moeplan check -- <engine command>`, `plan --engine`, `estimate --engine`: parsing, each engine's start-up
semantics against published start-up logs, exit codes, JSON and the print → parse round trip."""

import json
import subprocess
import sys

import pytest

from moeplan.engines.command import parse_command
from moeplan.engines.llamacpp import CACHE_TYPE_BYTES
from moeplan.units import GiB

LLAMA_31_8B = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
               "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
               "max_position_embeddings": 131072, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
"""meta-llama/Llama-3.1-8B-Instruct config.json (the fields moeplan reads)."""


@pytest.fixture
def llama(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_31_8B))
    return str(tmp_path)


def engine(cli, *argv, flags=()):
    result = cli("check", *flags, "--json", "--", *argv)
    assert result.exit_code in (0, 1), result.stdout + result.stderr
    return result.exit_code, result.json()


def test_vllm_flags_both_forms_and_ignored():
    cmd = parse_command("vllm serve deepseek-ai/DeepSeek-V3 -tp 8 --max-model-len=32768 --gpu-memory-utilization 0.85 "
                        "--kv-cache-dtype fp8_e4m3 --enable-expert-parallel --port 8000 --trust-remote-code --max-num-seqs=64")
    assert (cmd.model, cmd.tp, cmd.max_model_len, cmd.memory_fraction, cmd.kv_dtype, cmd.expert_parallel, cmd.max_num_seqs) == \
        ("deepseek-ai/DeepSeek-V3", 8, 32768, 0.85, "fp8", True, 64)
    assert cmd.ignored == ["--port 8000", "--trust-remote-code"]
    assert parse_command("vllm serve m --json --gpu h200").ignored == ["--json", "--gpu h200"]
    assert parse_command(["VLLM_USE_V1=1", "python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "m", "-pp", "2"]).pp == 2


def test_other_entry_points():
    sgl = parse_command("python -m sglang.launch_server --model-path deepseek-ai/DeepSeek-V3 --tp 8 --dp 8 "
                        "--enable-dp-attention --mem-fraction-static 0.8 --context-length 65536 --moe-a2a-backend deepep")
    assert (sgl.engine, sgl.tp, sgl.dp, sgl.dp_attention, sgl.memory_fraction, sgl.moe_a2a_backend) == \
        ("sglang", 8, 8, True, 0.8, "deepep")
    assert parse_command("sglang serve --model-path m --tp-size 2").tp == 2
    trt = parse_command("trtllm-serve Qwen/Qwen3-30B-A3B --tp_size 4 --ep_size 4 --kv_cache_free_gpu_memory_fraction 0.8")
    assert (trt.engine, trt.tp, trt.ep_size, trt.memory_fraction) == ("trtllm", 4, 4, 0.8)
    cpp = parse_command("llama-server -m model.gguf -ngl 99 --n-cpu-moe 10 -c 16384 -ctk q8_0 -ctv q8_0 --jinja")
    assert (cpp.engine, cpp.gpu_layers, cpp.n_cpu_moe, cpp.max_model_len, cpp.cache_type_k, cpp.ignored) == \
        ("llamacpp", 99, 10, 16384, "q8_0", ["--jinja"])


@pytest.mark.parametrize("argv, message", [
    (["vllm", "serve", "mixtral-8x7b", "-tp", "abc"], "-tp: 'abc' is not a whole number"),
    (["vllm", "serve", "mixtral-8x7b", "--gpu-memory-utilization=1.5"], "--gpu-memory-utilization: '1.5' must be a fraction"),
    (["vllm", "serve", "mixtral-8x7b", "--kv-cache-dtype", "fp9"], "--kv-cache-dtype: 'fp9' is not one of"),
    (["vllm", "serve", "mixtral-8x7b", "--max-model-len"], "--max-model-len: needs a value"),
    (["vllm", "serve", "mixtral-8x7b", "--speculative-config", "{bad"], "--speculative-config: not valid JSON"),
    (["python", "-m", "sglang.launch_server", "--model-path", "mixtral-8x7b", "--tp", "4", "--ep-size", "3"], "--ep-size: 3 must divide --tp 4"),
    (["vllm", "serve"], "no model given"),
    (["vllm", "serve", "mixtral-8x7b", "-tp", "1000000"], "-tp: must be at most"),
    (["trtllm-serve", "mixtral-8x7b", "--max_seq_len", "99999999999999"], "--max_seq_len: must be at most"),
    (["ollama", "run", "x"], "starts no engine"),
    (["vllm", "serve", "./no/such/model.json"], "no such file"),
])
def test_malformed_commands_exit_2_naming_the_flag(cli, argv, message):
    result = cli("check", "--", *argv)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_moeplan_flags_after_the_separator_are_pointed_out(cli):
    result = cli("check", "--", "vllm", "serve", "mixtral-8x7b", "-tp", "2", "--json")
    assert result.exit_code == 0 and "--json: moeplan's own flags go before `--`" in result.stdout


def test_engine_flags_conflict_with_moeplan_layout_flags(cli):
    result = cli("check", "--tp", "2", "--", "vllm", "serve", "mixtral-8x7b")
    assert result.exit_code == 2 and "--tp: with `check -- <engine command>`" in result.stderr
    result = cli("check", "--gpu-util", "0.8", "--", "vllm", "serve", "mixtral-8x7b")
    assert result.exit_code == 2 and "--gpu-util: with `check -- <engine command>` the command sets this" in result.stderr
    result = cli("check", "--engine", "sglang", "--", "vllm", "serve", "mixtral-8x7b")
    assert result.exit_code == 2 and "the command starts vllm" in result.stderr
    assert cli("check", "--engine", "vllm==x", "--", "vllm", "serve", "mixtral-8x7b").exit_code == 2
    assert cli("check", "--engine", "vllm", "mixtral-8x7b").exit_code == 2


def test_vllm_llama_8b_matches_published_startup(cli, llama):
    """llm-d-planner, docs/accuracy/vllm-v0.19.0-accuracy-report.md: Llama-3.1-8B-Instruct, TP 1, H100, util 0.95,
    max_model_len 8192: weights 14.99 GiB, available KV 58.11 GiB = 476,016 tokens (952,032 with fp8 KV)."""
    argv = ["vllm", "serve", llama, "--max-model-len", "8192", "--gpu-memory-utilization", "0.95"]
    code, data = engine(cli, *argv)
    s = data["startup"]
    assert code == 0 and s["starts"] and data["engine"] == "vllm"
    assert abs(s["weights_per_gpu_bytes"] / GiB - 14.99) / 14.99 < 0.01
    assert abs(s["kv_pool_bytes"] / GiB - 58.11) / 58.11 < 0.03
    assert abs(s["kv_tokens"] - 476_016) / 476_016 < 0.05 and s["block_size"] == 16
    assert s["kv_tokens"] == s["kv_blocks"] * 16
    assert s["max_concurrency"] == pytest.approx(s["kv_tokens"] / 8192, rel=1e-9)
    _, fp8 = engine(cli, *argv, "--kv-cache-dtype", "fp8")
    assert abs(fp8["startup"]["kv_tokens"] - 952_032) / 952_032 < 0.05
    assert fp8["startup"]["kv_pool_bytes"] == s["kv_pool_bytes"]
    budget = {line["name"]: line["bytes"] for line in s["budget"]}
    assert budget["Available KV cache memory"] == budget["gpu_memory_utilization × total"] - budget["weights (Model loading took)"] \
        - budget["peak activation (profiling run)"] - budget["non-torch memory"]
    assert budget["gpu_memory_utilization × total"] == int(0.95 * round(79.19 * GiB))


def test_vllm_windowed_layers_and_long_context(cli):
    """gpt-oss: half its layers keep a 128-token window, so vLLM's "GPU KV cache size" (concurrency ×
    max_model_len) is about twice blocks × block size."""
    code, data = engine(cli, "vllm", "serve", "openai/gpt-oss-120b", "--max-model-len", "32768", flags=("--gpu", "h200"))
    s = data["startup"]
    assert code == 0 and 1.9 * s["kv_blocks"] * 16 < s["kv_tokens"] < 2 * s["kv_blocks"] * 16
    assert s["kv_tokens"] == pytest.approx(s["max_concurrency"] * 32768, abs=1)
    code, data = engine(cli, "vllm", "serve", "openai/gpt-oss-120b", "--max-model-len", "262144", flags=("--gpu", "h200"))
    assert code == 1 and "greater than the model's max_position_embeddings 131,072" in data["startup"]["failure"]
    code, _ = engine(cli, "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1", "vllm", "serve", "openai/gpt-oss-120b", "--max-model-len",
                     "262144", flags=("--gpu", "h200"))
    assert code == 0


def test_vllm_tp2_pays_nccl_buffers_and_splits_kv_heads(cli, llama):
    _, one = engine(cli, "vllm", "serve", llama, "--max-model-len", "8192")
    _, two = engine(cli, "vllm", "serve", llama, "--max-model-len", "8192", "-tp", "2")
    lines = lambda d: {line["name"]: line["bytes"] for line in d["startup"]["budget"]}  # noqa: E731
    assert lines(one)["non-torch memory"] == round(0.27 * GiB) and lines(two)["non-torch memory"] == round(2.10 * GiB)
    assert two["startup"]["kv_bytes_per_token"] * 2 == one["startup"]["kv_bytes_per_token"]


def test_deepseek_v3_tp8_on_h100_does_not_start_but_on_h200_does(cli):
    argv = ["vllm", "serve", "deepseek-ai/DeepSeek-V3", "-tp", "8", "--max-model-len", "32768"]
    code, data = engine(cli, *argv)
    assert code == 1 and not data["startup"]["starts"] and not data["passed"]
    assert data["startup"]["failure"].startswith("model loading") and data["startup"]["shortfall_bytes"] > 0
    human = cli("check", "--", *argv)
    assert human.exit_code == 1 and "will not start" in human.stdout and "short by" in human.stdout
    code, data = engine(cli, *argv, flags=("--gpu", "h200"))
    assert code == 0 and data["model"] == "deepseek-v3" and data["startup"]["block_size"] == 64
    assert data["time_per_output_token_s"] > 0 and data["ttft_s"] > 0


def test_mla_cache_replicated_over_tp_partitioned_under_dp_attention(cli):
    base = ["python", "-m", "sglang.launch_server", "--model-path", "deepseek-ai/DeepSeek-V3", "--tp", "8",
            "--context-length", "32768", "--mem-fraction-static", "0.85"]
    _, tp = engine(cli, *base, flags=("--gpu", "h200"))
    _, dpa = engine(cli, *base, "--dp", "8", "--enable-dp-attention", flags=("--gpu", "h200"))
    assert tp["startup"]["kv_bytes_per_token"] == dpa["startup"]["kv_bytes_per_token"] == 61 * 576 * 2
    assert (tp["startup"]["replicas"], dpa["startup"]["replicas"]) == (1, 8)
    assert dpa["layout"]["tp"] == 1 and dpa["layout"]["dp"] == 8
    total = lambda d: d["startup"]["kv_tokens"] * d["startup"]["replicas"]  # noqa: E731
    assert total(dpa) > 5 * total(tp)  # partitioned, less the attention weights every DP rank now holds whole
    assert dpa["startup"]["weights_per_gpu_bytes"] > tp["startup"]["weights_per_gpu_bytes"]


def test_sglang_pool_is_fraction_of_free_memory_minus_weights(cli):
    code, data = engine(cli, "python", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen3-30B-A3B",
                        "--mem-fraction-static", "0.88", "--context-length", "32768")
    s = data["startup"]
    lines = {line["name"]: line["bytes"] for line in s["budget"]}
    rest = lines["mem_fraction_static × free memory"] - lines["weights"]
    assert code == 0 and s["kv_bytes_per_token"] == 48 * 2 * 4 * 128 * 2
    assert s["kv_tokens"] == rest // s["kv_bytes_per_token"]


def test_sglang_k_size_line(cli):
    """kvcache-ai/ktransformers#1971: Qwen3-30B-A3B, `#tokens: 122420, K size: 5.60 GB, V size: 5.60 GB`."""
    _, data = engine(cli, "sglang", "serve", "--model-path", "Qwen/Qwen3-30B-A3B", "--max-total-tokens", "122420",
                     "--context-length", "32768")
    assert data["startup"]["kv_tokens"] == 122420
    assert "#tokens: 122,420, K size: 5.60 GB, V size: 5.60 GB" in data["startup"]["notes"][0]


def test_sglang_runs_prompts_first_unless_mixed_chunk(cli):
    """SGLang's scheduler runs waiting prompts in batches of their own unless --enable-mixed-chunk is given."""
    argv = ["sglang", "serve", "--model-path", "Qwen/Qwen3-30B-A3B", "--context-length", "8192"]
    _, first = engine(cli, *argv)
    _, mixed = engine(cli, *argv, "--enable-mixed-chunk")
    assert first["deployment"]["prefill_first"] is True and mixed["deployment"]["prefill_first"] is False
    assert mixed["command"]["mixed_chunk"] is True and "--enable-mixed-chunk" not in mixed["command"]["ignored"]


def test_sglang_refuses_a_context_beyond_the_model(cli):
    argv = ["--model-path", "Qwen/Qwen3-30B-A3B", "--context-length", "131072"]
    code, data = engine(cli, "python", "-m", "sglang.launch_server", *argv)
    assert code == 1 and "longer than the model's max_position_embeddings 40,960" in data["startup"]["failure"]
    code, _ = engine(cli, "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1", "python", "-m", "sglang.launch_server", *argv)
    assert code == 0


def test_sglang_not_enough_memory(cli):
    code, data = engine(cli, "python", "-m", "sglang.launch_server", "--model-path", "mixtral-8x7b", "--tp", "2",
                        "--mem-fraction-static", "0.5")
    assert code == 1 and data["startup"]["failure"].startswith("Not enough memory")


def test_trtllm_pool_is_fraction_of_free_after_loading(cli):
    code, data = engine(cli, "trtllm-serve", "Qwen/Qwen3-30B-A3B", "--tp_size", "2", "--ep_size", "2", "--max_seq_len", "32768")
    s = data["startup"]
    lines = {line["name"]: line["bytes"] for line in s["budget"]}
    free = lines["total"] - lines["weights"] - lines["non-torch memory"] - lines["peak activation (warm-up)"]
    assert code == 0 and s["kv_pool_bytes"] == int(0.9 * free) and s["block_size"] == 32
    assert data["layout"]["ep"] == 2 and data["layout"]["etp"] == 1


def test_llamacpp_cache_types_and_context(cli):
    argv = ["llama-server", "-m", "qwen3-30b-a3b", "-c", "32768"]
    _, f16 = engine(cli, *argv)
    _, q8 = engine(cli, *argv, "-ctk", "q8_0", "-ctv", "q8_0")
    assert f16["startup"]["kv_pool_bytes"] == 32768 * 48 * 2 * 4 * 128 * 2
    assert q8["startup"]["kv_pool_bytes"] == pytest.approx(f16["startup"]["kv_pool_bytes"] * CACHE_TYPE_BYTES["q8_0"] / 2, rel=1e-6)
    _, cpu_moe = engine(cli, *argv, "--n-cpu-moe", "48")
    assert cpu_moe["startup"]["weights_per_gpu_bytes"] < 0.2 * f16["startup"]["weights_per_gpu_bytes"]
    _, slots = engine(cli, *argv, "-np", "4", flags=("--dtype", "q4_k_m"))
    assert (slots["startup"]["max_model_len"], slots["startup"]["max_concurrency"]) == (8192, 4.0)
    assert slots["deployment"]["dtype"] == "q4_k_m"
    assert slots["startup"]["weights_per_gpu_bytes"] < 0.35 * f16["startup"]["weights_per_gpu_bytes"]
    code, big = engine(cli, "llama-server", "-m", "deepseek-v3", "-ngl", "99")
    assert code == 1 and big["startup"]["failure"].startswith("cudaMalloc failed")
    assert big["startup"]["max_model_len"] == 163840  # -c 0, the default: the model's trained context
    code, fitted = engine(cli, "llama-server", "-m", "deepseek-v3")
    assert code == 0 and any("auto-fit" in note for note in fitted["startup"]["notes"])


def test_vllm_version_before_0_17_reserves_more_activation(cli, llama):
    argv = ["vllm", "serve", llama, "--max-model-len", "8192"]
    _, new = engine(cli, *argv, flags=("--engine", "vllm==0.19"))
    _, old = engine(cli, *argv, flags=("--engine", "vllm==0.16"))
    act = lambda d: {line["name"]: line["bytes"] for line in d["startup"]["budget"]}["peak activation (profiling run)"]  # noqa: E731
    assert old["engine"] == "vllm==0.16"
    assert act(old) - act(new) == pytest.approx((10.2 - 3.7) * 1024 * 128256 * 4, abs=2)  # both the sampler phase
    assert 0.55 < 1 - act(new) / act(old) < 0.65  # "vLLM cut its activation estimate ~60% between 0.16 and 0.17"
    assert cli("check", "--engine", "vllm==0.6", "--", *argv).exit_code == 2


def _activation(cli, *argv, version="vllm==0.19"):
    _, data = engine(cli, "vllm", "serve", *argv, "--max-model-len", "8192", flags=("--engine", version))
    return {line["name"]: line["bytes"] for line in data["startup"]["budget"]}["peak activation (profiling run)"]


def test_vllm_profile_peak_is_the_sampler_phase_and_the_kept_moe_workspace(cli, llama):
    """The forward's transients are freed before the sampler warm-up: Llama-3.1-8B's peak is the same at TP 1,
    2 and 4 (llm-d-planner's v0.19 report: 1.89 GiB at each). The MoE experts' workspace stays allocated:
    Qwen3-30B-A3B's peak is the Triton experts' workspace [8192, 8, max(768, 2048)] + [8192, 8, max(1536, 2048)]
    plus the sampler phase (the step's hidden states [8192 + 1024, 2048] and 3.7 fp32 [1024, 151936] copies);
    before v0.11 the workspace was allocated per call, so only the sampler phase (10.2 copies) remains."""
    assert _activation(cli, llama) == _activation(cli, llama, "-tp", "2") == _activation(cli, llama, "-tp", "4")
    sampler = (8192 + 1024) * 2048 * 2
    assert _activation(cli, "Qwen/Qwen3-30B-A3B") == 8192 * 8 * (2048 + 2048) * 2 + sampler + round(3.7 * 1024 * 151936 * 4)
    assert _activation(cli, "Qwen/Qwen3-30B-A3B", version="vllm==0.10") == sampler + round(10.2 * 1024 * 151936 * 4)
    # MXFP4 experts (OpenAI's Triton kernels) keep the MoE output [M, H] and the activation output [M·k, I]
    gpt_oss = _activation(cli, "openai/gpt-oss-20b")
    assert gpt_oss == 8192 * (2880 + 4 * 2880) * 2 + (8192 + 1024) * 2880 * 2 + round(3.7 * 1024 * 201088 * 4)


def test_gpt_oss_120b_single_h100_verdicts(cli):
    """vllm-project/vllm#23278 (v0.10.1, defaults): fails; #27508 (v0.11, util 0.95, 1024 batched tokens): fails;
    #33155 (v0.14.1): "Model loading took 64.38 GiB"."""
    code, data = engine(cli, "vllm", "serve", "openai/gpt-oss-120b", flags=("--engine", "vllm==0.10"))
    assert code == 1 and not data["startup"]["starts"]
    code, data = engine(cli, "vllm", "serve", "openai/gpt-oss-120b", "--gpu-memory-utilization", "0.95",
                        "--max-num-batched-tokens", "1024", flags=("--engine", "vllm==0.11"))
    assert code == 1 and data["startup"]["failure"].startswith("KV cache: one request of max_model_len 131,072")
    assert abs(data["startup"]["weights_per_gpu_bytes"] / GiB - 64.38) / 64.38 < 0.01


def test_assertions_decide_the_exit_code(cli, llama):
    argv = ["--", "vllm", "serve", llama, "--max-model-len", "8192"]
    ok = cli("check", "--assert", "min_kv_tokens=100000", "--assert", "min_concurrency=10", *argv)
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    bad = cli("check", "--json", "--assert", "min_kv_tokens=10000000", *argv)
    assert bad.exit_code == 1 and [a["passed"] for a in bad.json()["assertions"]] == [False]
    assert cli("check", "--assert", "nonsense=1", *argv).exit_code == 2
    assert cli("check", "--assert", "max_tpot_ms=fast", *argv).exit_code == 2


LAYOUTS = [
    ("vllm", "mixtral-8x7b", ["--tp", "2"]),
    ("vllm", "deepseek-v3", ["--tp", "8", "--pp", "2", "--kv-dtype", "fp8", "--gpu-util", "0.92", "--context", "65536"]),
    ("vllm", "qwen3-30b-a3b", ["--tp", "2", "--dp", "2", "--ep", "4", "--etp", "1"]),
    ("sglang", "deepseek-v3", ["--tp", "1", "--dp", "16", "--ep", "16", "--etp", "1", "--gpu", "h200", "--context", "32768"]),
    ("sglang", "qwen3-235b-a22b", ["--tp", "8", "--ep", "4", "--etp", "2", "--kv-dtype", "fp8"]),
    ("trtllm", "qwen3-30b-a3b", ["--tp", "4", "--ep", "2", "--etp", "2", "--gpu-util", "0.8"]),
]


@pytest.mark.parametrize("engine_name, model, flags", LAYOUTS)
def test_printed_command_reads_back_as_the_same_deployment(cli, engine_name, model, flags):
    printed = cli("estimate", model, *flags, "--engine", engine_name, "--json")
    assert printed.exit_code == 0, printed.stdout + printed.stderr
    estimate = printed.json()
    gpu = next((flags[i + 1] for i, f in enumerate(flags) if f == "--gpu"), "h100-sxm")
    code, back = engine(cli, estimate["launch_command"], flags=("--gpu", gpu))
    layout = lambda d: (d["tp"], d["ep"], d["pp"], d["dp"], d["etp"] if d["etp"] is not None else (d["tp"] if d["ep"] == 1 else 1))  # noqa: E731
    assert layout(back["layout"]) == layout(estimate["layout"])
    for key in ("context", "kv_dtype"):
        assert back["deployment"][key] == estimate["deployment"][key]
    if estimate["deployment"]["gpu_util"] is not None:
        assert back["deployment"]["gpu_util"] == estimate["deployment"]["gpu_util"]


def test_plan_prints_a_command_per_ranked_layout(cli):
    result = cli("plan", "mixtral-8x7b", "--gpu", "h100-sxm", "--max-gpus", "8", "--engine", "vllm", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    data = result.json()
    assert data["engine"] == "vllm" and len(data["launch_commands"]) == len(data["plan"]["layouts"]) > 0
    first, row = data["launch_commands"][0], data["plan"]["layouts"][0]
    _, back = engine(cli, first["command"])
    assert (back["layout"]["tp"], back["layout"]["pp"], back["layout"]["dp"]) == (row["tp"], row["pp"], row["dp"])
    text = cli("plan", "mixtral-8x7b", "--gpu", "h100-sxm", "--max-gpus", "8", "--engine", "sglang", "--top", "3")
    assert text.exit_code == 0 and "Launch commands (sglang):" in text.stdout and "sglang.launch_server" in text.stdout


def test_trtllm_cannot_print_data_parallel_layouts(cli):
    result = cli("estimate", "mixtral-8x7b", "--tp", "2", "--dp", "2", "--engine", "trtllm")
    assert result.exit_code == 2 and "run 2 servers of `trtllm-serve mistralai/Mixtral-8x7B-v0.1 --tp_size 2" in result.stderr
    result = cli("estimate", "mixtral-8x7b", "--tp", "1", "--dp", "2", "--ep", "2", "--engine", "trtllm")
    assert result.exit_code == 2 and "extra_llm_api_options" in result.stderr


def test_estimate_without_engine_does_not_import_engines():
    code = ("import sys; sys.argv = ['moeplan', 'estimate', 'mixtral-8x7b', '--json'];"
            "from moeplan.cli.app import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert not [m for m in sys.modules if m.startswith('moeplan.engines')], 'engines imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_engine_report_schema(cli):
    result = cli("schema", "engine")
    assert result.exit_code == 0 and "EngineStartup" in json.loads(result.stdout)["$defs"]
