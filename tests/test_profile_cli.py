"""`moeplan profile` options, exit codes (2 bad input, 3 missing environment) and the no-torch import rule."""

import subprocess
import sys

import pytest

from conftest import ROOT
from moeplan.errors import EnvError, SpecError
from moeplan.profile.gpus import parse_gpus
from moeplan.profile.options import parse_only

HGX = ROOT / "moeplan" / "profile" / "recorded" / "hgx-h100-8.json"


@pytest.mark.parametrize(
    ("text", "count", "expected"),
    [("0-7", 8, list(range(8))), ("0,2,4", 8, [0, 2, 4]), ("1,4-6", 8, [1, 4, 5, 6]), ("all", 2, [0, 1]), (" 3 , 1 ", 4, [1, 3]), ("2-2", 3, [2])],
)
def test_gpu_selector(text, count, expected):
    assert parse_gpus(text, count) == expected


@pytest.mark.parametrize(
    ("text", "count", "message"),
    [
        ("0-x", 8, "expected 'all'"),
        ("", 8, "expected 'all'"),
        ("0,,1", 8, "expected 'all'"),
        ("-1", 8, "expected 'all'"),
        ("5-3", 8, "runs backwards"),
        ("0-8", 8, "GPU 8 does not exist (this machine has GPUs 0-7)"),
        ("1", 1, "GPU 1 does not exist (this machine has GPU 0)"),
        ("all", 0, "no GPU is present"),
    ],
)
def test_gpu_selector_errors(text, count, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_gpus(text, count)


def test_only_keeps_report_order_and_rejects_unknown_sections():
    assert parse_only("a2a,hbm") == ["hbm", "a2a"]
    assert parse_only(None) == ["topo", "hbm", "gemm", "h2d", "p2p", "a2a"]
    with pytest.raises(SpecError, match="unknown section gpu"):
        parse_only("hbm,gpu")


def _one_line_error(result, code: int, text: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert text in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--gpus", "0-x"], "--gpus '0-x': expected 'all'"),
        (["--gpus", "0-9"], "GPU 8, 9 does not exist (this machine has GPUs 0-7)"),
        (["--only", "topo,nvlink"], "unknown section nvlink"),
        (["--model", "no-such-model"], "no-such-model"),
    ],
)
def test_bad_input_exits_2_with_one_line(cli, args, text):
    _one_line_error(cli("profile", "--device", "cpu", "--nvml-file", HGX, "--only", "topo", *args), 2, text)


def test_cpu_run_rejects_gpu_selection_and_uneven_expert_parallelism(cli):
    _one_line_error(cli("profile", "--device", "cpu", "--gpus", "0"), 2, "--gpus selects CUDA devices")
    # Mixtral has 8 experts: 3 ranks cannot hold them evenly
    _one_line_error(cli("profile", "--device", "cpu", "--procs", "3", "--only", "gemm"), 2, "expert parallelism 3 does not divide the 8 experts")
    _one_line_error(cli("profile", "--device", "cuda", "--nvml-file", HGX), 2, "use it with --device cpu")


def test_cuda_without_a_gpu_exits_3_naming_the_fix(cli):
    # this machine's torch is a CPU build: torch.cuda.is_available() is False
    _one_line_error(cli("profile", "--only", "hbm"), 3, "pip install torch --index-url https://download.pytorch.org/whl/cu128")


def test_missing_torch_exits_3_with_the_install_command(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    _one_line_error(cli("profile", "--device", "cpu", "--only", "hbm"), 3, "pip install 'moeplan[profile]'")


def test_missing_nccl_and_nvml_are_environment_errors():
    import torch

    from moeplan.profile.env import require_backend
    from moeplan.profile.nvml import PynvmlApi

    with pytest.raises(EnvError, match="no NCCL backend.*pip install torch --index-url"):
        require_backend(torch, "nccl")  # the CPU wheel has no NCCL
    require_backend(torch, "gloo")
    with pytest.raises(EnvError, match="nvidia-smi"):
        PynvmlApi()  # nvidia-ml-py is installed but there is no driver library here


def test_nvml_record_needs_nvml(cli, tmp_path):
    _one_line_error(cli("profile", "--device", "cpu", "--only", "hbm", "--nvml-record", tmp_path / "box.json"), 3, "--nvml-record needs NVML")


def test_profile_cli_and_torch_free_modules_import_without_torch(tmp_path):
    blocker = tmp_path / "torch"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('imported torch')\n")
    (tmp_path / "pynvml.py").write_text("raise ImportError('imported pynvml')\n")
    modules = ["moeplan.cli.profile", "moeplan.profile.runner", "moeplan.profile.command", "moeplan.profile.calibrate", "moeplan.calibration", "moeplan.profile.a2a_bytes"]
    code = f"import sys, importlib\nfor m in {modules!r}: importlib.import_module(m)\nassert 'torch' not in sys.modules and 'pynvml' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(tmp_path), "PATH": ""}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
