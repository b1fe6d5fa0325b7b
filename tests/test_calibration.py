"""`moeplan estimate/check --calibration`: measured efficiencies replace the catalogue peaks, and a calibration that
cannot make an estimate better (another device kind, an efficiency outside (0, 1.2]) is refused with exit 2."""

import json

import pytest

from moeplan.calibration import COLLECTIVE_LATENCY_S, Calibration, GemmPoint, load_calibration
from moeplan.profile.calibrate import save_calibration

H100 = dict(device_kind="cuda", device_name="NVIDIA H100 80GB HBM3", catalogue_gpu="h100-sxm")
CPU = dict(device_kind="cpu", device_name="cpu", catalogue_gpu=None)


def _calibration(tmp_path, where=H100, name="calib.json", **fields):
    cal = Calibration(created_at="2026-11-23T00:00:00+00:00", gpu_count=8, model="mixtral-8x7b", **where, **fields)
    path = tmp_path / name
    save_calibration(cal, path)
    return path


def _gemm(rows, efficiency, bound):
    return GemmPoint(rows_per_expert=rows, flops_per_s=1e14, weight_bytes_per_s=1e12, kernel_path="grouped_mm", bound=bound,
                     efficiency=efficiency, roofline_fraction=0.6)


def test_estimate_reads_the_calibration(cli, tmp_path):
    """The efficiencies load_calibration hands to the speed model (moeplan/perf maps them onto its constants)."""
    path = _calibration(tmp_path, hbm_efficiency=0.8, gemm=[_gemm(16, 0.9, "memory"), _gemm(4096, 0.7, "compute")],
                        gemm_compute_efficiency=0.7, gemm_memory_efficiency=0.9, pcie_efficiency=0.85, alltoall_link="nvlink",
                        alltoall_efficiency=0.5, alltoall_alpha_s=25e-6)
    efficiency, name = load_calibration(path, "h100")
    assert (efficiency.hbm, efficiency.gemm, efficiency.link, efficiency.pcie) == (0.8, 0.7, 0.5, 0.85)
    assert (efficiency.collective_latency_s, efficiency.measured_on, name) == (25e-6, "h100-sxm", str(path))
    measured = cli("estimate", "mixtral-8x7b", "--gpu", "h100", "--tp", "2", "--json", "--calibration", path)
    assert measured.exit_code == 0, measured.stderr
    assert measured.json()["calibration"] == str(path)


def test_memory_bound_points_never_set_the_compute_efficiency(tmp_path):
    """Issue 11 item 12: only memory-bound GEMM points (EP=1 never passing the ridge) leave compute at the default."""
    path = _calibration(tmp_path, gemm=[_gemm(16, 0.5, "memory")], gemm_memory_efficiency=0.5)
    efficiency, _ = load_calibration(path, "h100-sxm")
    assert (efficiency.gemm, efficiency.hbm) == (1.0, 0.5)  # no hbm section: the memory-bound GEMMs set the HBM efficiency


def test_cpu_calibration_is_refused_for_a_gpu_estimate(cli, tmp_path):
    """Issue 11 item 11: a gloo α of milliseconds turned Mixtral on 4×H100 from 341.8 into 16.2 tokens/s."""
    path = _calibration(tmp_path, CPU, alltoall_link="gloo", alltoall_alpha_s=3e-3, alltoall_beta_bytes_per_s=2e9)
    result = cli("estimate", "mixtral-8x7b", "--gpu", "h100", "--num-gpus", "4", "--calibration", path)
    assert result.exit_code == 2 and result.stdout == ""
    assert "measured on the host CPU" in result.stderr and "--gpu h100-sxm" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_calibration_from_another_gpu_is_refused(cli, tmp_path):
    path = _calibration(tmp_path, hbm_efficiency=0.9)
    result = cli("estimate", "mixtral-8x7b", "--gpu", "h200", "--calibration", path, "--json")
    assert result.exit_code == 2 and "measured on h100-sxm, not on --gpu h200" in result.stderr


def test_check_refuses_a_cpu_calibration(cli, tmp_path):
    path = _calibration(tmp_path, CPU)
    plan = tmp_path / "plan.yaml"
    plan.write_text("deployments:\n  - name: a\n    model: mixtral-8x7b\n    gpu: h100\n    num_gpus: 2\n    assert: {fits: true}\n")
    assert cli("check", plan).exit_code == 0
    result = cli("check", plan, "--calibration", path)
    assert result.exit_code == 2 and "measured on the host CPU" in result.stderr


@pytest.mark.parametrize(("field", "value", "message"), [
    ("hbm_efficiency", 1.5, "must lie in (0, 1.2], got 1.5"),
    ("alltoall_efficiency", 0.0, "must lie in (0, 1.2], got 0"),
    ("gemm_compute_efficiency", -0.3, "must lie in (0, 1.2], got -0.3"),
])
def test_efficiency_outside_its_range_exits_2(cli, tmp_path, field, value, message):
    path = _calibration(tmp_path)
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    result = cli("estimate", "mixtral-8x7b", "--calibration", path)
    assert result.exit_code == 2 and field in result.stderr and message in result.stderr


def test_negative_alpha_is_clamped_to_zero(tmp_path):
    path = _calibration(tmp_path, alltoall_link="nvlink", alltoall_alpha_s=-4e-6, alltoall_efficiency=1.0)
    assert json.loads(path.read_text())["alltoall_alpha_s"] == 0.0
    assert load_calibration(path, "h100")[0].collective_latency_s == 0.0


def test_network_alltoall_is_not_an_nvlink_efficiency(tmp_path):
    """Issue 11 item 10: a β measured across nodes (0.11 of NVLink) must not slow intra-node collectives."""
    path = _calibration(tmp_path, alltoall_link="network", alltoall_alpha_s=80e-6, alltoall_efficiency=0.11, nvlink_efficiency=0.9)
    efficiency, _ = load_calibration(path, "h100")
    assert (efficiency.link, efficiency.collective_latency_s) == (0.9, COLLECTIVE_LATENCY_S)  # peer NVLink copies; the default α


def test_bad_calibration_file_exits_2(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": 2, "kind": "moeplan-calibration"}')
    result = cli("estimate", "mixtral-8x7b", "--calibration", bad)
    assert result.exit_code == 2 and "not a moeplan calibration" in result.stderr
    bad.write_text('{"schema": 1, "kind": "moeplan-calibration"}')
    assert "re-run moeplan profile --save" in cli("estimate", "mixtral-8x7b", "--calibration", bad).stderr
    bad.write_text("[1]")
    assert cli("estimate", "mixtral-8x7b", "--calibration", bad).exit_code == 2
    for command in ("estimate", "plan"):  # the error names the flag the file came from
        missing = cli(command, "mixtral-8x7b", "--calibration", tmp_path / "none.json")
        assert missing.exit_code == 2 and missing.stderr.startswith(f"error: --calibration {tmp_path / 'none.json'}: ")
        assert cli(command, "mixtral-8x7b", "--calibration", bad).stderr.startswith(f"error: --calibration {bad}: ")


def test_calibration_module_is_pure():
    import subprocess
    import sys

    code = "import sys, moeplan.calibration\nassert not {'torch', 'numpy', 'pynvml'} & set(sys.modules), set(sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).returncode == 0
