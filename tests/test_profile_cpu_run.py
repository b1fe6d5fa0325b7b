"""The CI run of the harness: `moeplan profile --device cpu --procs 4 --only hbm,gemm,h2d,a2a --model mixtral-8x7b`
(gloo across 4 local processes), its JSON report, JSONL stream, calibration file and rich report."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from moeplan.cli.app import app
from moeplan.calibration import Calibration
from moeplan.profile.routing import routing_sample

H, I, E, K = 4096, 14336, 8, 2  # Mixtral-8x7B
COMMAND = ["profile", "--device", "cpu", "--procs", "4", "--only", "hbm,gemm,h2d,a2a", "--model", "mixtral-8x7b"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("profile")
    result = CliRunner().invoke(app, [*COMMAND, "--json", "--out", str(folder / "run.jsonl"), "--save", str(folder / "calib.json")])
    assert result.exit_code == 0, result.stderr
    return {"report": json.loads(result.stdout), "folder": folder}


def test_says_what_it_skipped(run):
    report = run["report"]
    assert report["schema"] == 1 and report["device"] == "cpu"
    status = {s["section"]: (s["status"], s["reason"]) for s in report["sections"]}
    assert status == {"hbm": ("ran", None), "gemm": ("ran", None), "h2d": ("skipped", "host↔device copies need a CUDA device"), "a2a": ("ran", None)}
    assert any("sweeps scaled down" in note for note in report["notes"])
    assert report["shape"] == {"model": "mixtral-8x7b", "hidden_size": H, "expert_intermediate_size": I, "num_experts": E, "top_k": K, "gated": True, "ep": 4, "shared_expert_units": 0}


def test_every_point_keeps_raw_samples_and_their_summary(run):
    for m in run["report"]["measurements"]:
        stats = m["stats"]
        samples = sorted(stats["samples_s"])
        assert len(samples) == 7  # CPU default
        assert stats["median_s"] == pytest.approx(samples[3])
        assert samples[0] <= stats["p10_s"] <= stats["median_s"] <= stats["p90_s"] <= samples[-1]
        assert m["verdict"] == "n/a" and m["prediction"]["unavailable"].startswith("CPU run")


def test_hbm_copy_rates(run):
    hbm = [m for m in run["report"]["measurements"] if m["section"] == "hbm"]
    assert [m["params"]["size_bytes"] for m in hbm] == [16 * 2**20, 64 * 2**20]
    for m in hbm:
        copy = m["params"]["size_bytes"] / m["stats"]["median_s"]
        assert m["rates"]["copy_bytes_per_s"] == pytest.approx(copy)
        assert m["rates"]["dram_bytes_per_s"] == pytest.approx(2 * copy)  # read + write


def test_gemm_points_count_flops_on_actual_rows(run):
    gemm = [m for m in run["report"]["measurements"] if m["section"] == "gemm"]
    assert len(gemm) == 3 * 3 * 3  # T in 1, 16, 128 × balanced/multinomial/skewed × three kernel paths
    assert {m["params"]["kernel_path"] for m in gemm} == {"grouped_mm", "bmm_padded", "loop"}
    h, i = H // 32, I // 32
    for m in gemm:
        p = m["params"]
        assert (p["hidden"], p["intermediate"], p["experts_local"]) == (h, i, E // 4)
        assert m["flops"] == 6 * h * i * p["rows"]  # gate, up and down: 2·rows·3·H·I
        assert m["bytes"] == p["experts_active"] * 3 * h * i * 2
        if p["pattern"] == "balanced":
            assert p["rows"] == p["tokens_per_rank"] * K  # T·k rows reach one GPU on average
        assert m["rates"]["flops_per_s"] == pytest.approx(m["flops"] / m["stats"]["median_s"])


def test_uniform_sweep_uses_nccl_tests_conventions_and_is_fitted(run):
    report = run["report"]
    uniform = [m for m in report["measurements"] if m["name"] == "uniform"]
    assert [m["params"]["size_bytes"] for m in uniform] == [1024 * 4**i for i in range(7)]
    for m in uniform:
        algbw = m["params"]["size_bytes"] / m["stats"]["median_s"]
        assert m["rates"]["algbw_bytes_per_s"] == pytest.approx(algbw)
        assert m["rates"]["busbw_bytes_per_s"] == pytest.approx(algbw * 3 / 4)
        assert m["params"]["count"] == m["params"]["size_bytes"] // 4
    fit = report["alltoall_fit"]
    assert fit["points"] == 4 and fit["alpha_s"] >= 0 and fit["beta_bytes_per_s"] > 0  # the tail: the larger half of the 7 sizes


def test_moe_all_to_all_over_4_ranks_moves_exactly_the_predicted_bytes(run):
    moe = [m for m in run["report"]["measurements"] if m["section"] == "a2a" and m["name"] != "uniform"]
    assert len(moe) == 2 * 2 * 3  # uniform and zipf routing × rank and expert modes × bf16/fp8 dispatch and combine
    for m in moe:
        p = m["params"]
        assert p["bytes_match"] is True
        assert m["traffic"] == m["predicted_traffic"]
        # independent count: rows from the routing sample, by loops; experts 2r and 2r+1 live on rank r
        sample = routing_sample(4, 64, E, K, p["routing"], 64)
        rows = np.zeros((4, 4), dtype=int)
        for source in range(4):
            for token in sample[source]:
                for dest in ({e // 2 for e in token} if p["mode"] == "rank" else [e // 2 for e in token]):
                    rows[source, dest] += 1
        row_bytes = 2 * H if p["dtype"] == "bf16" else H + 4 * (H // 128) + (16 if p["mode"] == "expert" else 0)  # DeepEP LL metadata
        expected = rows * row_bytes if m["name"] == "dispatch" else rows.T * row_bytes
        assert np.array_equal(m["traffic"]["bytes_matrix"], expected)
        remote = np.maximum(expected.sum(1) - np.diag(expected), expected.sum(0) - np.diag(expected))
        assert m["bytes"] == m["traffic"]["physical_bytes"] == remote.max()
        assert m["rates"]["logical_bytes_per_s"] == pytest.approx(expected.sum(0).max() / m["stats"]["median_s"])


def test_jsonl_has_one_line_per_measurement_in_order(run):
    lines = [json.loads(line) for line in (run["folder"] / "run.jsonl").read_text().splitlines()]
    assert all(line["schema"] == 1 for line in lines)
    assert lines[0]["type"] == "run" and lines[0]["shape"]["model"] == "mixtral-8x7b"
    measurements = [line for line in lines if line["type"] == "measurement"]
    report = run["report"]
    assert len(measurements) == len(report["measurements"])
    assert measurements[0]["stats"]["samples_s"] == report["measurements"][0]["stats"]["samples_s"]
    assert [line["section"] for line in lines if line["type"] == "section"] == ["hbm", "gemm", "h2d", "a2a"]
    assert [line["type"] for line in lines].count("fit") == 1


def test_calibration_file(run):
    calibration = Calibration.model_validate_json((run["folder"] / "calib.json").read_text())
    report = run["report"]
    largest = max((m for m in report["measurements"] if m["section"] == "hbm"), key=lambda m: m["params"]["size_bytes"])
    assert calibration.hbm_dram_bytes_per_s == pytest.approx(largest["rates"]["dram_bytes_per_s"])
    assert calibration.hbm_efficiency is None and calibration.catalogue_gpu is None  # no catalogue entry for a CPU
    assert [p.rows_per_expert for p in calibration.gemm] == [1.0, 16.0, 128.0]  # balanced: T·k / 2 local experts
    assert calibration.alltoall_alpha_s == max(0.0, report["alltoall_fit"]["alpha_s"]) and calibration.alltoall_ranks == 4
    assert (calibration.device_kind, calibration.alltoall_link, calibration.alltoall_efficiency) == ("cpu", "gloo", None)


def test_cpu_calibration_never_reaches_a_gpu_estimate(run, cli):
    """Issue 11 item 11 end to end: the file this CPU run saved is refused by estimate for an H100."""
    result = cli("estimate", "mixtral-8x7b", "--gpu", "h100", "--num-gpus", "4", "--calibration", run["folder"] / "calib.json")
    assert result.exit_code == 2 and "measured on the host CPU" in result.stderr


def test_rich_report_without_a_terminal(cli):
    result = cli(*COMMAND[:-4], "--only", "hbm,h2d,p2p", "--iters", "2", "--warmup", "0")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "\x1b[" not in out
    assert "DRAM GB/s (2x)" in out and "host↔device copies need a CUDA device" in out and "peer copies need CUDA GPUs" in out
    assert "no prediction: CPU run" in out
