"""Profile arithmetic: statistics, the α–β fit, roofline predictions and verdicts, calibration, JSONL
streaming, point plans, the three GEMM kernel paths and the fp8 payload."""

import json
import math

import numpy as np
import pytest

from moeplan.errors import SpecError
from moeplan.hardware.catalogue import get_gpu
from moeplan.calibration import load_calibration
from moeplan.profile.calibrate import calibration_from_report, save_calibration
from moeplan.profile.context import CPU_SWEEPS, RunContext, Target
from moeplan.profile.nvml import PcieLink
from moeplan.profile.output import Recorder
from moeplan.profile.predict import Predictor, catalogue_gpu_for, ffn_activation_bytes, judge, pcie_nccl_bytes_per_s
from moeplan.profile.results import Environment, Measurement, ModelShape, ProfileReport
from moeplan.profile.routing import balanced_loads, expert_loads
from moeplan.profile.stats import alltoall_busbw, fit_alpha_beta, summarize

H100 = get_gpu("h100-sxm")


def test_summary_statistics():
    stats = summarize([float(x) for x in range(10, 0, -1)])
    # numpy's linear interpolation: position 0.9 → 1.9, 4.5 → 5.5, 8.1 → 9.1
    assert (stats.p10_s, stats.median_s, stats.p90_s) == pytest.approx((1.9, 5.5, 9.1))
    assert stats.samples_s[0] == 10.0  # raw samples kept in order


def test_busbw_matches_a_published_nccl_tests_line():
    # NVIDIA/nccl#2169, alltoall_perf on 4×H100 at 500 MB: algbw 446 GB/s, busbw 335 GB/s (= 446·3/4 = 334.5)
    assert alltoall_busbw(446e9, 4) == pytest.approx(334.5e9)


def test_alpha_beta_fit_recovers_the_model():
    sizes = [2.0**i for i in range(10, 31)]
    alpha, beta = 25e-6, 340e9
    times = [alpha + s * 7 / 8 / beta for s in sizes]
    fit = fit_alpha_beta(sizes, times, 8)
    assert fit.alpha_s == pytest.approx(alpha, rel=1e-9) and fit.beta_bytes_per_s == pytest.approx(beta, rel=1e-9)
    assert fit.max_relative_residual < 1e-9 and fit.points == 21
    assert fit_alpha_beta([1024.0], [1e-5], 8) is None
    assert fit_alpha_beta([1024.0, 2048.0], [2e-5, 1e-5], 8) is None  # time falls with size: no bandwidth term


@pytest.mark.parametrize(("ratio", "verdict"), [(1.0, "ok"), (1.149, "ok"), (1 / 1.149, "ok"), (1.2, "warn"), (1 / 1.49, "warn"), (1.6, "fail"), (0.6, "fail")])
def test_verdict_bands(ratio, verdict):
    assert judge(ratio * 1e-3, 1e-3) == (pytest.approx(ratio), verdict)
    assert judge(1e-3, None) == (None, "n/a")


def test_roofline_predictions_on_h100_figures():
    predictor = Predictor(H100)
    # device-local copy of 1 GiB: read + write at 3.35 TB/s
    assert predictor.hbm_copy(2**30).time_s == pytest.approx(2 * 2**30 / 3.35e12)
    # Mixtral expert FFN at 16 rows per expert on 8 experts: F = 6·H·I·128, weights 8·3·H·I·2 B → memory-bound
    flops, weights = 6 * 4096 * 14336 * 128, 8 * 3 * 4096 * 14336 * 2
    traffic = weights + ffn_activation_bytes(128, 4096, 14336, True, 2)
    gemm = predictor.gemm(flops, traffic, measured_dram_bytes_per_s=3.0e12)
    assert gemm.time_s == pytest.approx(traffic / 3.35e12) and "memory-bound" in gemm.basis
    assert gemm.achievable_per_s == pytest.approx(flops / (traffic / 3.0e12))
    big = predictor.gemm(6 * 4096 * 14336 * 65536, weights)  # 8192 rows per expert → compute-bound
    # the catalogue's dense BF16 peak is the datasheet's 1979 TFLOP/s (2:4 sparse) halved
    assert big.time_s == pytest.approx(6 * 4096 * 14336 * 65536 / 989.5e12) and "compute-bound" in big.basis
    # PCIe Gen5 x16: 32 GT/s · 16 · 128/130 / 8 = 63.0 GB/s per direction; NCCL's model of the link: 48 GB/s
    pcie = predictor.pcie(2**30, PcieLink(max_gen=5, max_width=16, cur_gen=5, cur_width=16))
    assert pcie.spec_ceiling_per_s == pytest.approx(63.015e9, rel=1e-4) and pcie.achievable_per_s == pytest.approx(48e9)
    assert predictor.peer(2**28, nvlink=True).time_s == pytest.approx(2**28 / 450e9)
    assert predictor.alltoall(7 * 2**20, nvlink=False).spec_ceiling_per_s == pytest.approx(63.015e9, rel=1e-4)
    assert Predictor(None, "CPU run").hbm_copy(1).unavailable == "CPU run"


def test_nccl_pcie_model_and_activation_bytes():
    assert [pcie_nccl_bytes_per_s(gen, 16) / 1e9 for gen in (3, 4, 5)] == pytest.approx([12, 24, 48])
    # per row: X (H) + gate_up out (2I) + its read (2I) + act out (I) + act read (I) + y (H) = 2H + 6I elements
    assert ffn_activation_bytes(3, 10, 7, True, 2) == 3 * 2 * (2 * 10 + 6 * 7)
    assert ffn_activation_bytes(3, 10, 7, False, 2) == 3 * 2 * (2 * 10 + 4 * 7)


def test_device_names_map_to_catalogue_entries():
    assert catalogue_gpu_for("NVIDIA H100 80GB HBM3")[0].name == "h100-sxm"
    assert catalogue_gpu_for("NVIDIA A100-SXM4-80GB")[0].name == "a100-80gb"
    gpu, reason = catalogue_gpu_for("NVIDIA RTX 9000 Ada")
    assert gpu is None and "--gpu NAME" in reason


def test_expert_loads():
    assert balanced_loads(10, 4).tolist() == [3, 3, 2, 2]
    # 4 ranks × 64 tokens × top-2 over 8 experts: the busiest rank's 2 experts; total rows over all ranks is 4·64·2
    loads = expert_loads(64, 4, 8, 2, "multinomial", seed=1)
    assert loads.shape == (2,) and loads.sum() >= 64 * 2 * 1  # the busiest rank gets at least the mean T·k
    assert expert_loads(5, 2, 8, 2, "balanced", seed=1).tolist() == [3, 3, 2, 2]


def _report(measurements) -> ProfileReport:
    return ProfileReport(
        created_at="t", device="cuda", options={}, measurements=measurements,
        environment=Environment(python="3", platform="p", hostname="h", torch="t", cuda="12", nccl="2", cpu_count=1, env={}),
        shape=ModelShape(model="m", hidden_size=1, expert_intermediate_size=1, num_experts=8, top_k=2, gated=True, ep=1),
    )


def _measured(section, name, median, params, rates, ratio=None):
    flops, nbytes = (rates["flops_per_s"] * median, rates["weight_bytes_per_s"] * median) if section == "gemm" else (None, None)
    return Measurement(section=section, name=name, device="cuda:0", params=params, stats=summarize([median]), rates=rates, ratio=ratio,
                       flops=flops, bytes=nbytes)


def test_calibration_efficiencies_by_hand(tmp_path):
    report = _report([
        _measured("hbm", "copy", 1e-3, {"size_bytes": 2**28}, {"dram_bytes_per_s": 2.9e12}),
        _measured("hbm", "copy", 1e-3, {"size_bytes": 2**30}, {"dram_bytes_per_s": 3.0e12}),
        _measured("gemm", "ffn", 2e-3, {"pattern": "balanced", "rows_per_expert": 16.0, "kernel_path": "loop"}, {"flops_per_s": 1e14, "weight_bytes_per_s": 2e12}, ratio=2.0),
        _measured("gemm", "ffn", 1e-3, {"pattern": "balanced", "rows_per_expert": 16.0, "kernel_path": "grouped_mm"}, {"flops_per_s": 2e14, "weight_bytes_per_s": 2.5e12}, ratio=1.25),
        _measured("gemm", "ffn", 1e-4, {"pattern": "skewed", "rows_per_expert": 16.0, "kernel_path": "grouped_mm"}, {"flops_per_s": 9e14, "weight_bytes_per_s": 9e12}, ratio=1.0),
        _measured("h2d", "h2d", 1e-3, {"size_bytes": 2**30, "memory": "pinned", "gpus": 1}, {"per_direction_bytes_per_s": 55e9}),
        _measured("h2d", "d2h", 1e-3, {"size_bytes": 2**30, "memory": "pinned", "gpus": 1}, {"per_direction_bytes_per_s": 50e9}),
        _measured("p2p", "write", 1e-3, {"via": "p2p", "link": "NV18"}, {"per_direction_bytes_per_s": 380e9}),
        _measured("a2a", "uniform", 1e-3, {"ranks": 8, "size_bytes": 2**30, "link": "nvlink"}, {"busbw_bytes_per_s": 340e9}),
    ])
    report.alltoall_fit = fit_alpha_beta([2.0**20, 2.0**30], [20e-6 + 2**20 * 7 / 8 / 340e9, 20e-6 + 2**30 * 7 / 8 / 340e9], 8)
    calibration = calibration_from_report(report, "NVIDIA H100 80GB HBM3", 8, H100)
    assert calibration.hbm_efficiency == pytest.approx(3.0 / 3.35)  # the largest size
    (point,) = calibration.gemm  # balanced only, fastest path
    assert (point.kernel_path, point.bound, point.roofline_fraction) == ("grouped_mm", "memory", pytest.approx(0.8))
    assert point.efficiency == pytest.approx(2.5e12 / 3.35e12)  # memory-bound: weight bytes / HBM, not FLOP/s / peak
    assert calibration.gemm_compute_efficiency is None and calibration.gemm_memory_efficiency == point.efficiency
    assert calibration.pcie_efficiency == pytest.approx(50e9 / H100.pcie_bytes_per_s_per_direction)
    assert calibration.nvlink_efficiency == pytest.approx(380 / 450)
    assert calibration.alltoall_efficiency == pytest.approx(340 / 450)
    assert any("no GEMM point passed the ridge" in n for n in calibration.notes)
    path = tmp_path / "calib.json"
    save_calibration(calibration, path)
    assert json.loads(path.read_text())["schema"] == 2
    efficiency, name = load_calibration(path, "h100")
    assert (efficiency.hbm, efficiency.gemm, efficiency.link) == (calibration.hbm_efficiency, 1.0, calibration.alltoall_efficiency)
    path.write_text(json.dumps({"schema": 9, "kind": "moeplan-calibration"}))
    with pytest.raises(SpecError, match="schema 9"):
        load_calibration(path, "h100")


def test_gemm_compute_efficiency_only_from_compute_bound_points():
    """Issue 11 item 12: 16 rows per expert streams weights (memory-bound), 4096 passes the ridge on an H100."""
    report = _report([
        _measured("gemm", "ffn", 1e-3, {"pattern": "balanced", "rows_per_expert": 16.0, "kernel_path": "grouped_mm"}, {"flops_per_s": 1e14, "weight_bytes_per_s": 2.8e12}),
        _measured("gemm", "ffn", 1e-3, {"pattern": "balanced", "rows_per_expert": 4096.0, "kernel_path": "grouped_mm"}, {"flops_per_s": 6.5e14, "weight_bytes_per_s": 0.3e12}),
    ])
    calibration = calibration_from_report(report, "NVIDIA H100 80GB HBM3", 1, H100)
    assert [p.bound for p in calibration.gemm] == ["memory", "compute"]
    assert calibration.gemm_compute_efficiency == pytest.approx(6.5e14 / H100.bf16_flops_per_s)
    assert calibration.gemm_memory_efficiency == pytest.approx(2.8e12 / H100.hbm_bytes_per_s)


def test_out_of_range_ratios_are_dropped_with_a_note():
    report = _report([_measured("hbm", "copy", 1e-3, {"size_bytes": 2**28}, {"dram_bytes_per_s": 5e12})])  # L2-resident: above HBM
    calibration = calibration_from_report(report, "NVIDIA H100 80GB HBM3", 1, H100)
    assert calibration.hbm_efficiency is None and calibration.hbm_dram_bytes_per_s == 5e12
    assert calibration.notes == ["hbm: 1.49 of the catalogue figure is outside (0, 1.2]; not used"]


def test_jsonl_lines_are_flushed_as_they_happen(tmp_path):
    out = tmp_path / "run.jsonl"
    recorder = Recorder(_report([]), out)
    recorder.emit(_measured("hbm", "copy", 1e-3, {"size_bytes": 1}, {}))
    lines = [json.loads(line) for line in out.read_text().splitlines()]  # before close(): an interrupted run keeps these
    assert [(line["schema"], line["type"]) for line in lines] == [(1, "run"), (1, "measurement")]
    recorder.close()
    Recorder(_report([]), out).close()  # appended, not overwritten
    assert len(out.read_text().splitlines()) == 3


def _ctx(targets) -> RunContext:
    shape = ModelShape(model="mixtral-8x7b", hidden_size=4096, expert_intermediate_size=14336, num_experts=8, top_k=2, gated=True, ep=2)
    return RunContext(device_type="cuda", targets=targets, shape=shape, sweeps=CPU_SWEEPS, predictor=Predictor(None, "x"), seed=0, timeout_s=1)


def test_copy_point_plans():
    from moeplan.profile.host_copy import expert_weight_bytes, host_copy_points
    from moeplan.profile.peer import peer_points

    targets = [Target(f"cuda:{i}", None, i) for i in range(3)]
    ctx = _ctx(targets)
    assert expert_weight_bytes(ctx) == 3 * 4096 * 14336 * 2  # one bf16 Mixtral expert: 352,321,536 B
    points = host_copy_points(ctx)
    # first GPU: the expert size alone (CPU sweeps have no sizes) × pinned h2d/d2h/bidir + pageable h2d/d2h;
    # the other two alone: h2d, d2h; all three at once: h2d, d2h, bidir
    assert len(points) == 5 + 2 * 2 + 3
    assert [len(p[0]) for p in points[-3:]] == [3, 3, 3]
    assert len(peer_points(ctx)) == 3 * 2 + 3  # ordered pairs × write + unordered pairs × bidir
    assert host_copy_points(_ctx(targets[:1]))[-1][0] == targets[:1]


def test_gemm_kernel_paths_agree_and_fp8_payload_round_trips():
    import torch

    from moeplan.profile.alltoall import fp8_payload
    from moeplan.profile.gemm import KERNEL_PATHS, ExpertWeights, ffn_call, grouped_mm_unavailable

    device = torch.device("cpu")
    assert grouped_mm_unavailable(device) is None
    g = torch.Generator().manual_seed(0)
    hidden, inter, loads = 64, 48, np.array([3, 0, 5, 2])
    weights = ExpertWeights(torch.randn(4, 2 * inter, hidden, generator=g).bfloat16(), torch.randn(4, hidden, inter, generator=g).bfloat16(), hidden, inter, True)
    x = torch.randn(10, hidden, generator=g).bfloat16()
    out = {path: ffn_call(path, weights, x, loads)() for path in KERNEL_PATHS}
    padded = torch.cat([out["bmm_padded"][e, : loads[e]] for e in range(4)])
    reference = torch.cat([  # expert e's rows through silu(gate)·up then down, in float
        (torch.nn.functional.silu(x[s:s + n].float() @ weights.w1[e, :inter].float().T) * (x[s:s + n].float() @ weights.w1[e, inter:].float().T)) @ weights.w2[e].float().T
        for e, (s, n) in enumerate(zip(np.cumsum(loads) - loads, loads))
    ])
    for result in (out["grouped_mm"], out["loop"], padded):
        assert torch.allclose(result.float(), reference, rtol=0.05, atol=0.05 * reference.abs().max().item())

    rows = torch.randn(5, 300, generator=g).bfloat16()
    payload = fp8_payload(rows)
    assert payload.dtype == torch.uint8 and tuple(payload.shape) == (5, 300 + 4 * math.ceil(300 / 128))
    values = payload[:, :300].contiguous().view(torch.float8_e4m3fn).float()
    scales = payload[:, 300:].contiguous().view(torch.float32)  # [5, 3]
    restored = values * scales.repeat_interleave(128, dim=1)[:, :300]
    assert torch.allclose(restored, rows.float(), rtol=0.07, atol=1e-3)
