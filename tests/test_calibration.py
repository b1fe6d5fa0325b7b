"""`moeplan estimate/check --calibration`: measured efficiencies replace the catalogue peaks."""

import pytest

from moeplan.profile.calibration import Calibration, GemmPoint, save_calibration


def _calibration(tmp_path, **fields):
    cal = Calibration(created_at="2026-11-23T00:00:00+00:00", device_name="NVIDIA H100 80GB HBM3", catalogue_gpu="h100-sxm",
                      gpu_count=8, model="mixtral-8x7b", **fields)
    path = tmp_path / "calib.json"
    save_calibration(cal, path)
    return path


def test_estimate_uses_measured_efficiencies(cli, tmp_path):
    gemm = [GemmPoint(rows_per_expert=16, flops_per_s=1e14, weight_bytes_per_s=2e12, kernel_path="grouped_mm", efficiency=0.1,
                      roofline_fraction=0.6),
            GemmPoint(rows_per_expert=4096, flops_per_s=6.9e14, weight_bytes_per_s=1e12, kernel_path="grouped_mm", efficiency=0.7,
                      roofline_fraction=0.7)]
    path = _calibration(tmp_path, hbm_efficiency=0.8, gemm=gemm, alltoall_efficiency=0.5, alltoall_alpha_s=25e-6)
    args = ("estimate", "mixtral-8x7b", "--gpu", "h100", "--tp", "2", "--json")
    base, measured = cli(*args).json(), cli(*args, "--calibration", path).json()
    b, m = base["throughput"]["decode"], measured["throughput"]["decode"]
    assert m["memory_s"] == pytest.approx(b["memory_s"] / 0.8, rel=1e-12)
    assert m["compute_s"] == pytest.approx(b["compute_s"] / 0.7, rel=1e-12)  # the largest-load GEMM point
    per = 2 * (1 / 2) * 4096 * 2 / (450e9 * 0.5) + 25e-6  # 64 all-reduces at β = 50% of NVLink, α = 25 µs
    assert m["communication_s"] == pytest.approx(64 * per, rel=1e-12)
    assert measured["calibration"] == str(path)
    assert any("measured on h100-sxm" in a for a in measured["throughput"]["assumptions"])


def test_calibration_from_another_gpu_is_flagged(cli, tmp_path):
    path = _calibration(tmp_path, hbm_efficiency=0.9)
    data = cli("estimate", "mixtral-8x7b", "--gpu", "h200", "--calibration", path, "--json").json()
    assert any("not on h200" in a for a in data["throughput"]["assumptions"])


def test_bad_calibration_file_exits_2(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": 1}')
    result = cli("estimate", "mixtral-8x7b", "--calibration", bad)
    assert result.exit_code == 2 and "not a moeplan calibration" in result.stderr
    assert cli("estimate", "mixtral-8x7b", "--calibration", tmp_path / "none.json").exit_code == 2
