"""Issue 13's examples, one by one: bad input is refused in one line with exit 2 (3 for the environment), a bug
is exit 4 (never 1), and nothing is silently accepted with wrong numbers."""

import json
import os
import struct
import subprocess
import sys

import pytest

from conftest import ROOT

HF = ROOT / "tests" / "data" / "hf-configs"


def refused(result, *words: str) -> str:
    """Exit 2 with one 'error:' line holding every word; the line."""
    assert result.exit_code == 2, (result.exit_code, result.stdout[-300:], result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def config(tmp_path, base: str, name: str = "config.json", **changes) -> str:
    data = json.loads((HF / base).read_text())
    data.update(changes)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def plan(tmp_path, body: str, name: str = "plan.yaml") -> str:
    path = tmp_path / name
    path.write_text(body)
    return str(path)


def moeplan(*args: str, env: dict | None = None, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """The installed entry point in a subprocess (streams, pipes and exit at interpreter shutdown are real)."""
    return subprocess.run([sys.executable, "-c", "from moeplan.cli.app import main; main()", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=120, env={**os.environ, **(env or {})})


# --- the boundary ------------------------------------------------------------------------------------------

def test_a_bug_is_exit_4_in_one_line_and_debug_shows_the_traceback(cli, monkeypatch):
    import moeplan.report.estimate as estimate

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(estimate, "count_params", broken)
    result = cli("estimate", "mixtral-8x7b")
    assert result.exit_code == 4 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("error: internal error: ZeroDivisionError: division by zero - please report "
                                     "(run with --debug for the traceback)")
    monkeypatch.setattr(sys, "argv", ["moeplan", "estimate", "mixtral-8x7b", "--debug"])
    assert "Traceback" in cli("estimate", "mixtral-8x7b").stderr


def test_a_native_panic_is_exit_4_too(cli, monkeypatch):
    import moeplan.report.estimate as estimate

    class PanicException(BaseException):  # what pyo3 (pydantic-core) raises when Rust panics
        pass

    def panics(*args, **kwargs):
        raise PanicException("PyObject pointer is null")

    monkeypatch.setattr(estimate, "count_params", panics)
    result = cli("estimate", "mixtral-8x7b")
    assert result.exit_code == 4 and "internal error: PanicException" in result.stderr


def test_usage_errors_are_one_line_too(cli):
    refused(cli("estimate", "mixtral-8x7b", "--gpuu", "h100"), "No such option: --gpuu", "--gpu", "moeplan estimate -h")
    refused(cli("estimate", "mixtral-8x7b", "--num-gpus", "two"), "Invalid value for '--num-gpus'")
    refused(cli("bogus"), "No such command 'bogus'")


@pytest.mark.parametrize("args, words", [
    (["--bogus"], ["No such option: --bogus", "moeplan -h"]),
    (["estimat"], ["No such command 'estimat'", "Did you mean 'estimate'"]),
    (["--version=3"], ["'--version' does not take a value", "moeplan -h"]),
    (["estimate", "--brief=3"], ["'--brief' does not take a value", "moeplan estimate -h"]),
])
def test_root_usage_errors_are_one_line(args, words):
    """Typer's boxed message for an option of `moeplan` itself is one error line too (the installed entry point)."""
    result = moeplan(*args)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert all(word in result.stderr for word in words), result.stderr


def test_exit_codes_are_in_the_top_level_help(cli):
    text = " ".join(cli("--help").stdout.split())
    assert "4 internal error" in text and "1 a capacity check failed" in text and "--debug" in text


def test_streams_broken_pipe_full_disk_and_ascii():
    head = subprocess.run(f"{sys.executable} -c 'from moeplan.cli.app import main; main()' gpus --json | head -c 10",
                          shell=True, capture_output=True, text=True, timeout=120, executable="/bin/bash")
    assert head.stderr == "" and len(head.stdout) == 10
    piped = subprocess.run(f"set -o pipefail; {sys.executable} -c 'from moeplan.cli.app import main; main()' gpus --json | true",
                           shell=True, capture_output=True, text=True, timeout=120, executable="/bin/bash")
    assert piped.returncode == 0 and piped.stderr == ""
    for words in ("estimate mixtral-8x7b", "gpus", "check -- vllm serve mistralai/Mixtral-8x7B-v0.1 -tp 2"):
        rich_ = subprocess.run(f"set -o pipefail; {sys.executable} -c 'from moeplan.cli.app import main; main()' {words} | true",
                               shell=True, capture_output=True, text=True, timeout=120, executable="/bin/bash")
        assert (rich_.returncode, rich_.stderr) == (0, ""), words  # rich's own handler exited 1
    with open("/dev/full", "w") as full:
        result = moeplan("estimate", "mixtral-8x7b", "--json", stdout=full)
    assert result.returncode == 3 and result.stderr.strip() == "error: cannot write the output: No space left on device"
    ascii_ = moeplan("estimate", "mixtral-8x7b", env={"PYTHONIOENCODING": "ascii"})
    assert ascii_.returncode == 0 and ascii_.stderr == "" and "\\u" in ascii_.stdout  # ≥, × escaped, not a crash


# --- files ----------------------------------------------------------------------------------------------

def test_fifo_device_pipe_long_name_and_deep_nesting(cli, tmp_path):
    fifo = tmp_path / "plan.yaml"
    os.mkfifo(fifo)
    refused(cli("check", fifo), "nothing to read")
    refused(cli("estimate", fifo), "nothing to read")
    refused(cli("estimate", "/dev/zero"), "not a regular file")
    refused(cli("estimate", "a" * 300), "File name too long")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    refused(cli("estimate", deep), "nested too deeply")
    nested = {"quant_method": "fp8"}
    for _ in range(100):
        nested = {"x": nested}
    refused(cli("estimate", config(tmp_path, "mixtral-tied.json", "q.json", quantization_config=nested)), "nested deeper than 64")
    source = config(tmp_path, "mixtral-tied.json")
    piped = subprocess.run(f"{sys.executable} -c 'from moeplan.cli.app import main; main()' estimate <(cat {source}) --json",
                           shell=True, capture_output=True, text=True, timeout=120, executable="/bin/bash")
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["spec"]["num_layers"] == json.loads((HF / "mixtral-tied.json").read_text())["num_hidden_layers"]


def test_large_yaml_is_refused_and_yaml_is_read_by_libyaml(cli, tmp_path):
    import yaml

    from moeplan import inputs

    assert issubclass(inputs._loader(), yaml.CSafeLoader)
    big = plan(tmp_path, "deployments:\n" + "  - {name: x, model: mixtral-8x7b, assert: {fits: true}}\n" * 90_000)
    refused(cli("check", big), "larger than 4 MiB")


def test_yaml_alias_bomb_is_refused_and_merge_keys_work(cli, tmp_path):
    bomb = ["quantization:", "  a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    bomb += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    spec = cli("spec", "mixtral-8x7b").stdout
    path = plan(tmp_path, spec + "\n".join(bomb) + "\n", "bomb.yaml")
    refused(cli("estimate", path, "--json"), "aliases expand to more than 1,000,000 values")
    merged = plan(tmp_path, "defaults: &d\n  gpu: h100\ndeployments:\n  - <<: *d\n    name: a\n    model: mixtral-8x7b\n"
                            "    gpu: h200\n    assert: {fits: true}\n", "merge.yaml")
    result = cli("check", merged, "--json")
    assert result.exit_code == 0 and result.json()["deployments"][0]["gpu"] == "h200"


def test_output_paths_are_checked_first_and_never_an_input(cli, tmp_path):
    good = plan(tmp_path, "deployments:\n  - name: a\n    model: mixtral-8x7b\n    assert: {fits: true}\n")
    refused(cli("check", good, "--junit", tmp_path / "missing" / "x.xml"), "--junit", "does not exist")
    refused(cli("check", good, "--junit", good), "is one of the inputs")
    spec = plan(tmp_path, cli("spec", "mixtral-8x7b").stdout, "model.yaml")
    for command in ("estimate", "plan"):  # refused before any work: nothing on stdout, the input untouched
        result = cli(command, "mixtral-8x7b", "--plot", tmp_path / "missing" / "x.png")
        refused(result, "--plot", "folder", "does not exist")
        assert result.stdout == ""
        before = (tmp_path / "model.yaml").read_bytes()
        refused(cli(command, spec, "--plot", spec), "--plot", "is one of the inputs")
        assert (tmp_path / "model.yaml").read_bytes() == before


# --- plan files -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("headroom, words", [
    ('"ten%"', ["line 5", "deployment 'a'", "key assert.min_headroom", "percentage"]),
    ("infGB", ["line 5", "byte size", "'infGB'"]),
    ("-50GB", ["line 5", "byte size", "'-50GB'"]),
])
def test_bad_headroom(cli, tmp_path, headroom, words):
    path = plan(tmp_path, f"deployments:\n  - name: a\n    model: mixtral-8x7b\n    assert:\n      min_headroom: {headroom}\n")
    refused(cli("check", path), path, *words)


def test_plan_file_rules(cli, tmp_path):
    no_assert = plan(tmp_path, "deployments:\n  - name: a\n    model: mixtral-8x7b\n", "none.yaml")
    refused(cli("check", no_assert), "line 2", "deployment 'a'", "no assertions")
    twice = plan(tmp_path, "deployments:\n  - {name: a, model: mixtral-8x7b, assert: {fits: true}}\n"
                           "  - {name: a, model: mixtral-8x7b, assert: {fits: true}}\n", "twice.yaml")
    refused(cli("check", twice), "line 3", "a second deployment named 'a'", "line 2")
    duplicate_key = plan(tmp_path, "deployments:\n  - name: a\n    model: mixtral-8x7b\n    gpu: l40s\n    gpu: h200\n"
                                   "    assert: {fits: true}\n", "dup.yaml")
    refused(cli("check", duplicate_key), "line 5", "duplicate key 'gpu' (first given on line 4)")
    runtime = plan(tmp_path, "deployments:\n  - {name: a, model: mixtral-8x7b, assert: {fits: true}}\n"
                             "  - name: b\n    model: mixtral-8x7b\n    gpu: nosuchgpu\n    assert: {fits: true}\n", "gpu.yaml")
    refused(cli("check", runtime), runtime, "line 3", "deployment 'b'", "unknown GPU 'nosuchgpu'")
    context = plan(tmp_path, "deployments:\n  - name: a\n    model: mixtral-8x7b\n    context: -5\n    assert: {fits: true}\n", "ctx.yaml")
    line = refused(cli("check", context), "line 4", "key context", "-5")
    assert "--context" not in line  # the plan-file key, not a flag the user never typed
    words = plan(tmp_path, "deployments:\n  - name: a\n    model: mixtral-8x7b\n    context: abc\n    assert: {fits: true}\n", "abc.yaml")
    line = refused(cli("check", words), "line 4", "deployment 'a'", "key context", "'abc'")
    assert "--context" not in line
    defaults = plan(tmp_path, "defaults:\n  gpu: h100\n  bogus: 1\ndeployments:\n  - name: a\n    model: mixtral-8x7b\n"
                              "    assert: {fits: true}\n", "defaults.yaml")
    refused(cli("check", defaults), "line 3", "key defaults.bogus")
    upper = plan(tmp_path, "deployments:\n  - name: a\n    model: mixtral-8x7b\n    gpu: h200\n    assert: {fits: true}\n", "plan.YAML")
    assert cli("check", upper).exit_code == 0


# --- flags ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--gpu-util", "1e-300"], ["--gpu-util", "0.01"]),
    (["--capacity-factor", "inf"], ["--capacity-factor", "finite"]),
    (["--gpu-hbm-tb-s", "inf"], ["--gpu-hbm-tb-s", "finite"]),
    (["--gpu-bf16-tflops", "inf"], ["--gpu-bf16-tflops", "finite"]),
    (["--nic-gb-s", "1e300"], ["--nic-gb-s", "between"]),
    (["--layers", "1000000"], ["num_layers", "512"]),
    (["--num-gpus", "1000000000"], ["--num-gpus", "131,072"]),
    (["--dp", "1000000000000000000"], ["--dp", "131,072"]),
    (["--experts", "1000000000"], ["num_experts", "65,536"]),
    (["--routing", "zipf:1.2", "--tokens-per-rank", "100000000"], ["--tokens-per-rank"]),
    (["--set", "moe.layer_period=0"], ["layer_period"]),
    (["--set", "moe.num_experts=true"], ["moe.num_experts", "true"]),
])
def test_bad_flags(cli, args, words):
    line = refused(cli("estimate", "mixtral-8x7b", *args), *words)
    assert "range()" not in line and "block_cols" not in line


def test_simulation_and_dense_layer_bounds(cli):
    refused(cli("estimate", "deepseek-v3", "--routing", "zipf:1.2", "--tokens-per-rank", "1000000", "--ep", "64", "--dp", "64",
                "--tp", "1"), "routing simulation", "too large")
    refused(cli("estimate", "deepseek-v3", "--set", "first_dense_layers=100"), "first_dense_layers (100)", "num_layers (61)")


def test_a_model_beyond_64_bit_figures_is_refused(cli):
    refused(cli("estimate", "--layers", "512", "--hidden", "16777216", "--heads", "4096", "--vocab", "16777216", "--experts",
                "65536", "--top-k", "8", "--expert-intermediate", "16777216"), "parameters", "at most 1e+15")


def test_plan_bounds_and_top(cli):
    refused(cli("plan", "mixtral-8x7b", "--max-gpus", "100000000000000000000"), "--max-gpus", "8192", "moeplan plan -h")
    data = cli("plan", "mixtral-8x7b", "--max-gpus", "64", "--top", "3", "--json").json()
    assert len(data["layouts"]) == 3 < data["feasible"]
    refused(cli("plan", "mixtral-8x7b", "--gpu-hour-price", "inf"), "--gpu-hour-price")


def test_context_beyond_the_model_needs_the_allow_flag(cli, tmp_path):
    path = config(tmp_path, "mixtral-tied.json", max_position_embeddings=4096)
    refused(cli("estimate", path, "--context", "8192"), "max_position_embeddings 4,096", "--allow-long-context")
    assert cli("estimate", path, "--context", "8192", "--allow-long-context", "--json").exit_code == 0
    assert cli("plan", path, "--context", "8192").exit_code == 2


# --- configs ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("base, changes, words", [
    ("llama4_text.json", {"no_rope_layer_interval": 0, "no_rope_layers": None}, ["no_rope_layer_interval", "at least 1"]),
    ("llama4_text.json", {"interleave_moe_layer_step": -1, "moe_layers": None}, ["interleave_moe_layer_step"]),
    ("llama4_text.json", {"moe_layers": [9999]}, ["moe_layers", "9,999"]),
    ("deepseek_v3.json", {"first_k_dense_replace": 100}, ["first_k_dense_replace (100) is more than num_hidden_layers"]),
    ("mixtral-tied.json", {"num_hidden_layers": True}, ["num_hidden_layers", "true"]),
    ("mixtral-tied.json", {"num_hidden_layers": 1e18}, ["num_hidden_layers"]),
    ("mixtral-tied.json", {"num_experts_per_tok": "2"}, ["num_experts_per_tok"]),
    ("gemma4_text-moe.json", {"num_hidden_layers": []}, ["num_hidden_layers must be a whole number, not []"]),
    ("deepseek_v3.json", {"kv_lora_rank": 36.0}, ["kv_lora_rank must be a whole number, not 36.0"]),
    ("lara_mini.json", {"layer_types": -1}, ["layer_types must be a list, not -1"]),
    ("qwen2-tied.json", {"tie_word_embeddings": "false"}, ["tie_word_embeddings", "true or false"]),
    ("mixtral-tied.json", {"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": -5}}, ["group_size", "-5"]),
    ("mixtral-tied.json", {"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 0}}, ["group_size", "0"]),
    ("mixtral-tied.json", {"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": True}}, ["group_size"]),
])
def test_bad_configs(cli, tmp_path, base, changes, words):
    refused(cli("estimate", config(tmp_path, base, **changes)), *words)


def test_jamba_hidden_size_infinity(cli, tmp_path):
    path = tmp_path / "config.json"
    path.write_text((HF / "jamba-auto-dt-rank.json").read_text().replace('"hidden_size": 72', '"hidden_size": Infinity'))
    refused(cli("estimate", path), "hidden_size must be a finite number")


def test_unconverted_module_that_is_not_a_name(cli, tmp_path):
    path = config(tmp_path, "mixtral-tied.json", quantization_config={"quant_method": "gptq", "bits": 4, "group_size": 128,
                                                                       "modules_to_not_convert": [1]})
    refused(cli("estimate", path), "must be a list of module names, not [1]")


# --- safetensors ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry, data_bytes, words", [
    ({"dtype": "F16", "shape": ["a"], "data_offsets": [0, 2]}, 2, ["shape"]),
    ({"dtype": "F16", "shape": [-4, 2], "data_offsets": [0, 16]}, 16, ["shape", "-4"]),
    ({"dtype": "F16", "shape": [4, 2], "data_offsets": [16, 0]}, 16, ["data_offsets"]),
    ({"dtype": "F16", "shape": [4, 2], "data_offsets": [0, 4]}, 16, ["span 4 bytes", "needs 16"]),
    ({"dtype": "F16", "shape": [1000, 1000], "data_offsets": [0, 2_000_000]}, 100, ["truncated", "2,000,000"]),
])
def test_bad_safetensors(cli, tmp_path, entry, data_bytes, words):
    (tmp_path / "config.json").write_text((HF / "mixtral-tied.json").read_text())
    header = json.dumps({"w": entry}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(data_bytes))
    refused(cli("estimate", tmp_path), "model.safetensors", *words)


def test_overlapping_tensors(cli, tmp_path):
    (tmp_path / "config.json").write_text((HF / "mixtral-tied.json").read_text())
    header = json.dumps({"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]},
                         "b": {"dtype": "F16", "shape": [4], "data_offsets": [4, 12]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(12))
    refused(cli("estimate", tmp_path), "overlap")


# --- calibration ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("document", [[], {"kind": "moeplan-calibration", "schema": 2, "hbm_efficiency": float("nan")}])
def test_bad_calibration(cli, tmp_path, document):
    path = tmp_path / "calib.json"
    path.write_text(json.dumps(document))
    refused(cli("estimate", "mixtral-8x7b", "--calibration", path), str(path))


def test_torchrun_variables_that_are_not_numbers(cli, monkeypatch):
    monkeypatch.setenv("RANK", "abc")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    result = cli("profile", "--device", "cpu")
    assert result.exit_code == 3 and "RANK='abc' is not a whole number" in result.stderr, result.stderr
