"""`moeplan profile` on the machines users have (issue 11 items 2, 3, 5–9 and the table widths): bad input
before torch, output paths checked first, orderly SIGTERM, sticky CUDA errors, refused NVML queries,
CUDA_VISIBLE_DEVICES, exclusive compute mode."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import redirect_stdout

import pytest

from conftest import ROOT
from moeplan.profile.nvml import RecordedBox, RecordedNvml
from moeplan.profile.runner import select_targets
from moeplan.profile.topology import CudaDevice, snapshot

RECORDED = ROOT / "moeplan" / "profile" / "recorded"
HGX, VGPU = RECORDED / "hgx-h100-8.json", RECORDED / "vgpu-refused-2.json"
FAST = ["--device", "cpu", "--iters", "1", "--warmup", "0"]


def _no_torch(tmp_path, *args):
    """Run `moeplan profile ARGS` where importing torch fails: input errors must come before torch is needed."""
    blocker = tmp_path / "blocked" / "torch"
    blocker.mkdir(parents=True, exist_ok=True)
    (blocker / "__init__.py").write_text("raise ImportError('imported torch')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker.parent}{os.pathsep}{ROOT}"}
    return subprocess.run([sys.executable, "-m", "moeplan", "profile", *map(str, args)], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "text"), [
    (["--gpus", "a-b"], "--gpus 'a-b': expected 'all'"),
    (["--gpus", "0-99999999999"], "GPU index 99999999999 is above 1023"),
    (["--gpus", "0-5000"], "GPU index 5000 is above 1023"),
    (["--model", "no-such-model"], "no-such-model"),
    (["--model", "mixtral-8x7b", "--ep", "3"], "expert parallelism 3 does not divide the 8 experts"),
])
def test_input_errors_exit_2_before_torch(tmp_path, args, text):
    """Item 6: `--gpus a-b` exited 3 (no CUDA) after the torch import; a huge range built a 10^11-element set."""
    result = _no_torch(tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert text in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("option", ["--save", "--out"])
def test_unwritable_output_is_refused_before_measuring(tmp_path, option):
    """Item 3: the path is checked first (exit 2, one line, no torch needed)."""
    result = _no_torch(tmp_path, *FAST, "--only", "hbm", option, tmp_path / "missing" / "f.json")
    assert result.returncode == 2 and f"{option} " in result.stderr and "does not exist" in result.stderr
    result = _no_torch(tmp_path, *FAST, "--only", "hbm", option, tmp_path)
    assert result.returncode == 2 and "is a directory" in result.stderr
    recorded = tmp_path / "recorded.json"
    recorded.write_bytes(HGX.read_bytes())
    result = _no_torch(tmp_path, *FAST, "--only", "hbm", "--nvml-file", recorded, option, recorded)
    assert result.returncode == 2 and "is one of the inputs" in result.stderr, result.stderr
    assert recorded.read_bytes() == HGX.read_bytes()


def test_write_error_after_the_run_prints_the_report_first(cli, tmp_path, monkeypatch):
    """Item 3: the report is on stdout before --save is written; a write error is one line, exit 2."""
    from moeplan.profile import calibrate

    def refuse(calibration, path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(calibrate, "save_calibration", refuse)
    result = cli("profile", *FAST, "--only", "hbm", "--json", "--save", tmp_path / "calib.json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["sections"][0]["status"] == "ran"
    assert result.stderr.strip() == f"error: --save {tmp_path / 'calib.json'}: cannot write: Permission denied"


def test_sticky_cuda_error_stops_the_run(cli, monkeypatch):
    """Item 5: an illegal address was recorded as a skipped point and poisoned every later point."""
    from moeplan.profile import gemm

    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nCUDA kernel errors might be asynchronously reported")

    monkeypatch.setattr(gemm, "time_samples", failing)
    result = cli("profile", *FAST, "--only", "gemm,a2a", "--procs", "2", "--json")
    assert result.exit_code == 3 and "illegal memory access" in result.stderr
    report = result.json()
    status = {s["section"]: s for s in report["sections"]}
    assert status["gemm"]["status"] == "failed" and "the CUDA context is unusable" in status["gemm"]["reason"]
    assert status["a2a"] == {**status["a2a"], "status": "skipped", "reason": "not run: the CUDA context was lost in gemm"}
    assert len(calls) == 1 and not [m for m in report["measurements"] if m["section"] == "gemm"]


def test_sigterm_is_an_orderly_stop_that_keeps_the_jsonl(tmp_path):
    """Item 2: SIGTERM (scancel, Kubernetes, timeout) used to kill the parent at once and leave the ranks running."""
    out = tmp_path / "run.jsonl"
    command = [sys.executable, "-m", "moeplan", "profile", "--device", "cpu", "--only", "hbm,a2a", "--procs", "2", "--iters", "40", "--warmup", "0", "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def a2a_started() -> bool:
        lines = [json.loads(line) for line in out.read_text().splitlines() if line.endswith("}")] if out.exists() else []
        return any(line["type"] == "measurement" and line["section"] == "a2a" for line in lines)

    for _ in range(2400):
        if a2a_started():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr and len(stderr.strip().splitlines()) == 1
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    sections = {line["section"]: line for line in lines if line["type"] == "section"}
    assert sections["hbm"]["status"] == "ran" and sections["a2a"] == {**sections["a2a"], "status": "failed", "reason": "stopped by SIGTERM"}
    assert "hbm" in stdout and "Sections" in stdout  # what finished is printed


def test_refused_nvml_queries_leave_fields_empty_and_never_end_the_run():
    """Item 7: a vGPU guest refuses clocks, PCIe link, P2P and the NVLink remote type; every field is optional."""
    topo = snapshot(RecordedNvml.from_file(VGPU), [0, 1], None, {})
    g0, g1 = topo.gpus
    assert g0.clocks is None and g0.pcie is None and "clocks" in g0.refused and "pcie" in g0.refused
    assert g1.memory is None and g1.refused == ["memory", "compute_mode"]
    refused = [f for f in topo.flags if f.code == "refused"]
    assert [f.gpus for f in refused] == [[0], [1]]
    # remote device type refused (unknown), but P2P status says NVLink: the pair counts as NVLinked
    assert [p.link for p in topo.pairs] == ["NV4", "NV4"]
    assert topo.pairs[0].path == "?"  # common ancestor refused


def test_recorded_box_round_trips_refusals(tmp_path):
    box = RecordedBox.model_validate_json(VGPU.read_text())
    from moeplan.profile.nvml import record

    assert record(RecordedNvml(box), box.description) == box


def test_gpus_all_means_what_cuda_can_see():
    """Item 8: CUDA_VISIBLE_DEVICES=2,3 on an 8-GPU box: CUDA sees 2 GPUs, NVML 8; match them by UUID."""
    nvml = RecordedNvml.from_file(HGX)
    cuda = [CudaDevice(index=k, uuid=nvml.uuid(n).removeprefix("GPU-"), name="NVIDIA H100 80GB HBM3", sm_count=132, capability="9.0") for k, n in enumerate((3, 2))]
    assert select_targets("all", nvml, cuda) == ([(0, 3), (1, 2)], [3, 2])
    assert select_targets("2", nvml, cuda) == ([(1, 2)], [2])
    with pytest.raises(Exception, match="GPU 5 .* is not visible to CUDA"):
        select_targets("5", nvml, cuda)


def test_exclusive_compute_mode_runs_the_all_to_all_first(cli, tmp_path):
    """Item 9: in EXCLUSIVE_PROCESS mode the parent's contexts would lock the ranks out; a2a runs first."""
    box = json.loads(HGX.read_text())
    box["devices"][0]["compute_mode"] = 3
    path = tmp_path / "exclusive.json"
    path.write_text(json.dumps(box))
    result = cli("profile", *FAST, "--nvml-file", path, "--gpus", "0,1", "--only", "topo,hbm,a2a", "--procs", "2", "--json")
    assert result.exit_code == 0, result.stderr
    report = result.json()
    assert [s["section"] for s in report["sections"]] == ["topo", "a2a", "hbm"]
    assert any("exclusive compute mode: the all-to-all ran first" in n for n in report["notes"])
    assert any(f["code"] == "exclusive" for f in report["topology"]["flags"])


def test_hbm_alone_takes_no_topology_snapshot(cli):
    """Item 7: the snapshot ran even for --only hbm."""
    report = cli("profile", *FAST, "--nvml-file", HGX, "--only", "hbm", "--json").json()
    assert report["topology"] is None


@pytest.fixture(scope="module")
def cpu_report():
    from typer.testing import CliRunner

    from moeplan.cli.app import app
    from moeplan.profile.results import ProfileReport

    result = CliRunner().invoke(app, ["profile", *FAST, "--only", "hbm,gemm,a2a", "--procs", "2", "--json"])
    assert result.exit_code == 0, result.stderr
    return ProfileReport.model_validate_json(result.stdout)


@pytest.mark.parametrize("width", [80, 100, 120])
def test_tables_never_cut_numbers(cpu_report, monkeypatch, width):
    """Issue 14: at 80–120 columns numbers were cut (`6.62…`); tables now split into parts instead."""
    from moeplan.profile.render import render_report

    monkeypatch.setenv("COLUMNS", str(width))
    parsed = cpu_report
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        render_report(parsed)
    text = buffer.getvalue()
    assert "…" not in text
    assert all(len(line) <= width for line in text.splitlines() if not line.startswith(("note:", "  -", "  !", "Units", "model", "moeplan", "  α")))
    from moeplan.profile.render import _gbs, _time

    for m in parsed.measurements:
        if m.stats:
            assert _time(m.stats.median_s) in text
        if "busbw_bytes_per_s" in m.rates:
            assert _gbs(m.rates["busbw_bytes_per_s"]) in text
