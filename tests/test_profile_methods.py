"""Reference-tool methods on CPU (issue 11): nccl-tests data check and --min-busbw, the α–β fit on the tail
of the sweep, DeepEP low-latency metadata, intra/inter-node bytes, and the torchrun path across 2 nodes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT
from moeplan.profile import alltoall
from moeplan.profile.a2a_bytes import dispatch_bytes, dispatch_row_bytes, node_split
from moeplan.profile.procs import free_port
from moeplan.profile.stats import fit_alpha_beta, sweep_tail

FAST = ["--device", "cpu", "--iters", "2", "--warmup", "0", "--procs", "2", "--only", "a2a"]


def test_data_check_counts_every_wrong_byte():
    world, per_peer = 3, 40
    received = alltoall.uniform_input_for(1, world, per_peer, torch.device("cpu"))
    assert alltoall.count_wrong(received, 1, world, per_peer) == 0
    sent = [alltoall.uniform_input(source, world, per_peer, torch.device("cpu")) for source in range(world)]
    assert torch.equal(received, torch.cat([s[per_peer : 2 * per_peer] for s in sent]))  # chunk 1 of every source
    received[5:9] += 1
    assert alltoall.count_wrong(received, 1, world, per_peer) == 4
    assert alltoall.count_wrong(received, 0, world, per_peer) > 0  # rank 0 expects other chunks


def test_gloo_run_reports_zero_wrong_and_min_busbw_fails_with_exit_1(cli):
    ok = cli("profile", *FAST, "--json")
    assert ok.exit_code == 0, ok.stderr
    uniform = [m for m in ok.json()["measurements"] if m["name"] == "uniform" and m["stats"]]
    assert uniform and all(m["params"]["wrong"] == 0 for m in uniform)
    assert all(m["params"]["intra_node_bytes"] == m["params"]["count"] and m["params"]["inter_node_bytes"] == 0 for m in uniform)
    slow = cli("profile", *FAST, "--json", "--min-busbw", "1000000")
    assert slow.exit_code == 1 and "below --min-busbw 1e+06" in slow.stderr
    assert json.loads(slow.stdout)["sections"]  # the report is printed before the verdict


def test_alpha_beta_fit_uses_the_tail_and_never_a_negative_alpha():
    sizes = [2.0**i for i in range(10, 21)]
    assert sweep_tail(sizes) == list(range(5, 11))
    assert sweep_tail(sizes[:5]) == [1, 2, 3, 4] and sweep_tail(sizes[:3]) == [0, 1, 2]
    times = [20e-6 + s / 2 / 10e9 for s in sizes]
    tail = sweep_tail(sizes)
    fit = fit_alpha_beta([sizes[i] for i in tail], [times[i] for i in tail], 2)
    assert fit.alpha_s == pytest.approx(20e-6) and fit.beta_bytes_per_s == pytest.approx(10e9)
    concave = [1e-6 + s / 2 / 10e9 - 5e-6 * (s == sizes[-1]) for s in sizes[-3:]]  # a dip at the largest size
    assert fit_alpha_beta(sizes[-3:], concave, 2).alpha_s >= 0


def test_low_latency_fp8_rows_carry_16_bytes_of_metadata():
    """DeepEP test_low_latency.py: FP8 dispatch is H + H/128·4 + 16 B per (token, expert) selection."""
    assert dispatch_row_bytes(7168, "expert", "fp8") == 7168 + 7168 // 128 * 4 + 16
    assert dispatch_row_bytes(7168, "rank", "fp8") == 7168 + 7168 // 128 * 4  # normal mode: no per-message metadata
    assert dispatch_row_bytes(7168, "expert", "bf16") == 2 * 7168
    sample = np.array([[[0, 1]], [[2, 3]]])  # 2 ranks, 1 token each, top-2 over 4 experts
    assert dispatch_bytes(sample, 4, 128, "expert", "fp8").tolist() == [[2 * 148, 0], [0, 2 * 148]]


def test_node_split_of_the_busiest_sender():
    matrix = np.array([[0, 5, 7, 9], [1, 0, 1, 1], [2, 2, 0, 2], [3, 3, 3, 0]])  # 4 ranks, 2 per node
    assert node_split(matrix, 2) == (5, 16)  # rank 0: 5 B to rank 1 on its node, 7 + 9 B to the other node
    assert node_split(matrix, 4) == (21, 0)


def test_torchrun_two_nodes_on_localhost(tmp_path):
    """Item 10: two torchrun agents (--nnodes 2) on this host, one rank each: node count, link and inter-node bytes."""
    port = free_port()
    out = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    common = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--master-addr", "127.0.0.1",
              "--master-port", str(port), "-m", "moeplan", "profile", "--device", "cpu", "--only", "a2a", "--iters", "1", "--warmup", "0", "--json",
              "--save", str(tmp_path / "calib.json")]
    agents = [subprocess.Popen([*common[:3], "--node-rank", str(node), *common[3:]], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for node in (0, 1)]
    outputs = [agent.communicate(timeout=240) for agent in agents]
    assert [agent.returncode for agent in agents] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    out.write_text(outputs[0][0])
    report = json.loads(outputs[0][0])
    uniform = [m for m in report["measurements"] if m["name"] == "uniform" and m["stats"]]
    assert all(m["params"]["nodes"] == 2 and m["params"]["link"] == "gloo" for m in uniform)
    assert all(m["params"]["inter_node_bytes"] == m["params"]["count"] and m["params"]["intra_node_bytes"] == 0 for m in uniform)
    moe = [m for m in report["measurements"] if m["name"] in ("dispatch", "combine")]
    assert moe and all(m["params"]["intra_node_bytes"] == 0 and m["params"]["inter_node_bytes"] > 0 for m in moe)
    assert outputs[1][0] == ""  # only rank 0 reports
    calibration = json.loads((tmp_path / "calib.json").read_text())
    assert (calibration["nodes"], calibration["alltoall_link"], calibration["alltoall_ranks"]) == (2, "gloo", 2)


def test_fp8_quantization_round_trips_within_e4m3_precision():
    """The fp8 paths' inputs (their GEMMs need sm90+; the quantization runs anywhere)."""
    from moeplan.profile.gemm import quantize_blocks, quantize_rows

    x = torch.randn(3, 256, 384, generator=torch.Generator().manual_seed(0))
    q, scale = quantize_rows(x)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (3, 256)
    assert torch.allclose(q.float() * scale.unsqueeze(-1), x, rtol=0.07, atol=1e-3)
    q, scale = quantize_blocks(x, 128, 128)
    assert scale.shape == (3, 2, 3)
    assert torch.allclose((q.float().reshape(3, 2, 128, 3, 128) * scale[:, :, None, :, None]).reshape(x.shape), x, rtol=0.07, atol=0.02)


def test_fresh_routing_keeps_the_rows_and_the_shared_experts():
    from moeplan.profile.gemm import fresh_loads, gemm_points, with_shared

    loads = with_shared(np.array([5, 0, 3, 8]), tokens=4, units=1)
    assert loads.tolist() == [5, 0, 3, 8, 4]
    draws = fresh_loads(loads, 4, "skewed", 8, seed=1)
    assert len(draws) == 8 and all(d.sum() == 20 and d[4] == 4 and d[1] == 0 for d in draws)
    assert len({tuple(d) for d in draws}) > 1
    assert fresh_loads(loads, 4, "balanced", 8, seed=1) == [loads]

    class Ctx:
        class sweeps:
            gemm_tokens = (1, 64)

    points = gemm_points(Ctx, ["grouped_mm", "fp8_w8a8"])
    assert {p for _, p, k in points if k == "fp8_w8a8"} == {"balanced"} and len(points) == 2 * 3 + 2


def test_deepseek_fuses_its_shared_expert():
    from moeplan.profile.runner import model_shape

    assert model_shape("deepseek-v3", 8, 8).shared_expert_units == 1  # one shared expert of I = 2048
    assert model_shape("mixtral-8x7b", None, 2).shared_expert_units == 0
