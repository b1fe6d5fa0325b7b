"""`--quantization` in a vLLM / SGLang command: only FP8 is applied to an unquantized checkpoint as it loads; other
methods need a checkpoint quantized that way, and one that names the checkpoint's own keeps its formats (QA pass:
`vllm serve mistralai/Mixtral-8x7B-v0.1 --quantization awq` "started" with AWQ weights of a bf16 checkpoint)."""

import pytest

from moeplan.units import GiB


def _check(cli, *command):
    result = cli("check", "--gpu", "h200", "--json", "--", *command)
    return result.exit_code, result.json()


@pytest.mark.parametrize("flags", [("--quantization", "awq"), ("-q", "gptq_marlin"), ("--quantization=modelopt_fp4",)])
def test_checkpoint_only_methods_refused_for_a_bf16_checkpoint(cli, flags):
    code, report = _check(cli, "vllm", "serve", "mistralai/Mixtral-8x7B-v0.1", *flags)
    assert code == 1 and not report["startup"]["starts"] and report["startup"]["shortfall_bytes"] == 0
    written = " ".join(flags).replace("=", " ")
    assert report["startup"]["failure"].startswith(f"{written}: the checkpoint is not quantized"), report["startup"]


def test_online_fp8_of_a_bf16_checkpoint_starts_with_fp8_weights(cli):
    code, report = _check(cli, "vllm", "serve", "mistralai/Mixtral-8x7B-v0.1", "--quantization", "fp8")
    bf16 = _check(cli, "vllm", "serve", "mistralai/Mixtral-8x7B-v0.1")[1]["startup"]["weights_per_gpu_bytes"]
    assert code == 0 and report["startup"]["starts"]
    assert report["startup"]["weights_per_gpu_bytes"] < 0.52 * bf16  # 8-bit experts and attention, bf16 embeddings


def test_another_method_than_the_checkpoints_is_refused(cli):
    code, report = _check(cli, "vllm", "serve", "deepseek-ai/DeepSeek-V3", "-tp", "8", "--quantization", "awq")
    assert code == 1 and "does not match the checkpoint's quantization_config (fp8)" in report["startup"]["failure"]
    code, report = _check(cli, "python", "-m", "sglang.launch_server", "--model-path", "deepseek-ai/DeepSeek-V3",
                          "--tp", "8", "--quantization", "gptq")
    assert code == 1 and "does not match" in report["startup"]["failure"]


def test_naming_the_checkpoints_own_method_keeps_its_formats(cli):
    """gpt-oss-120b's MXFP4 covers the experts only: --quantization mxfp4 turned attention into MXFP4 as well."""
    own = _check(cli, "vllm", "serve", "openai/gpt-oss-120b")[1]["startup"]["weights_per_gpu_bytes"]
    code, named = _check(cli, "vllm", "serve", "openai/gpt-oss-120b", "--quantization", "mxfp4")
    assert code == 0 and named["startup"]["weights_per_gpu_bytes"] == own
    assert round(own / GiB, 2) == 64.55  # published "Model loading took 64.38 GiB" (docs/engines.md)
