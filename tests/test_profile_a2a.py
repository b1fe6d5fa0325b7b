"""All-to-all: byte accounting against hand counts, the gloo run's exact byte equality, and supervision
of the rank processes (errors, dead peers and hangs end with one clear line, never a hang)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from moeplan.profile import alltoall
from moeplan.profile.a2a_bytes import combine_bytes, dispatch_bytes, send_row_counts, traffic
from moeplan.profile.procs import RanksFailed, run_ranks
from moeplan.profile.routing import routing_sample
from moeplan.traffic.alltoall import dispatch_bytes_per_copy

# 2 ranks, 4 experts (experts 0-1 on rank 0, 2-3 on rank 1), 3 tokens per rank, top-2
SAMPLE = np.array([[[0, 1], [0, 2], [2, 3]], [[1, 3], [3, 2], [0, 1]]])


def test_row_counts_by_hand():
    # rank 0: token 0 → rank 0 only; token 1 → ranks 0 and 1; token 2 → rank 1 only
    # rank 1: token 0 → ranks 0 and 1; token 1 → rank 1 only; token 2 → rank 0 only
    assert send_row_counts(SAMPLE, 4, "rank").tolist() == [[2, 2], [2, 2]]
    # one row per (token, expert): rank 0 sends experts 0,1,0 to rank 0 and 2,2,3 to rank 1
    assert send_row_counts(SAMPLE, 4, "expert").tolist() == [[3, 3], [3, 3]]
    lopsided = np.array([[[0, 1], [0, 1]], [[0, 1], [1, 0]]])  # every token of both ranks wants rank 0
    assert send_row_counts(lopsided, 4, "rank").tolist() == [[2, 0], [2, 0]]


@pytest.mark.parametrize(("hidden", "fp8"), [(7168, 7392), (4096, 4224), (2880, 2972)])
def test_payload_bytes_per_row(hidden, fp8):
    # fp8: one byte per channel plus a 4-byte scale per 128 channels, rounded up (DeepEP: 7168 + 56·4 = 7392)
    assert dispatch_bytes_per_copy(hidden, "fp8") == fp8
    assert dispatch_bytes_per_copy(hidden, "bf16") == 2 * hidden


def test_traffic_summary_by_hand():
    matrix = np.array([[10, 5, 0], [7, 1, 30], [2, 4, 6]])
    t = traffic(matrix)
    assert t.sent_bytes == [15, 38, 12] and t.recv_bytes == [19, 10, 36]
    assert t.remote_sent_bytes == [5, 37, 6] and t.remote_recv_bytes == [9, 9, 30]
    assert (t.bottleneck_rank, t.physical_bytes, t.logical_bytes) == (1, 37, 36)
    bytes_ = dispatch_bytes(SAMPLE, 4, 7168, "rank", "fp8")
    assert bytes_.tolist() == [[2 * 7392, 2 * 7392], [2 * 7392, 2 * 7392]]
    assert combine_bytes(SAMPLE, 4, 7168, "expert").tolist() == [[3 * 14336, 3 * 14336], [3 * 14336, 3 * 14336]]


def _rows_by_loop(sample: np.ndarray, experts: int, mode: str) -> np.ndarray:
    """An independent count: walk every token and its experts."""
    ranks = sample.shape[0]
    per_rank = experts // ranks
    rows = np.zeros((ranks, ranks), dtype=int)
    for source in range(ranks):
        for token in sample[source]:
            destinations = [int(e) // per_rank for e in token]
            for dest in (set(destinations) if mode == "rank" else destinations):
                rows[source, dest] += 1
    return rows


def test_gloo_moe_all_to_all_moves_exactly_the_predicted_bytes():
    """Two gloo ranks, DeepSeek-V3-like routing (256 experts, top-8, H 7168) on a small token count."""
    job = alltoall.A2AJob(
        backend="gloo", cuda_indices=None, warmup=1, iters=2, sizes=(4096, 1000), moe_points=alltoall.moe_points((24,)),
        hidden=7168, num_experts=256, top_k=8, seed=3, timeout_s=60,
    )
    messages = []
    run_ranks(alltoall.a2a_worker, 2, (job,), 60, messages.append)
    uniform = [m for m in messages if m["kind"] == "uniform"]
    assert [(m["size_bytes"], m["per_peer_bytes"]) for m in uniform] == [(4096, 2048), (992, 496)]  # chunks rounded down to 16 B
    assert all(len(m["samples_s"]) == 2 for m in uniform)
    moe = [m for m in messages if m["kind"] == "moe"]
    assert len(moe) == len(job.moe_points) == 12
    for m in moe:
        point = m["point"]
        sample = routing_sample(2, 24, 256, 8, point.distribution, 3 + 24)
        row_bytes = {"bf16": 2 * 7168, "fp8": 7168 + 4 * 56 + (16 if point.mode == "expert" else 0)}[point.dtype]  # DeepEP LL metadata
        rows = _rows_by_loop(sample, 256, point.mode)
        expected = (rows if point.phase == "dispatch" else rows.T) * row_bytes
        assert m["row_bytes"] == row_bytes
        assert np.array_equal(m["sent_matrix"], expected), point
        assert np.array_equal(np.array(m["recv_matrix"]).T, expected), point
        predicted = (dispatch_bytes(sample, 256, 7168, point.mode, point.dtype) if point.phase == "dispatch" else combine_bytes(sample, 256, 7168, point.mode))
        assert np.array_equal(predicted, expected)


def _sleep_then_mark(rank, marks):
    """A rank that outlives the failure: it marks its folder only if nobody ends it first."""
    time.sleep(30)
    Path(marks, f"woke{rank}").touch()


def fail_on_rank_1(rank, world, init_method, emit, marks):
    if rank == 1:
        raise ValueError("boom")
    _sleep_then_mark(rank, marks)


def die_on_rank_1(rank, world, init_method, emit, marks):
    if rank == 1:
        os._exit(7)
    _sleep_then_mark(rank, marks)


def hang(rank, world, init_method, emit, marks):
    emit({"kind": "uniform", "rank": rank})
    _sleep_then_mark(rank, marks)


@pytest.mark.parametrize(
    ("target", "timeout", "message"),
    [(fail_on_rank_1, 30, "rank 1 failed: ValueError: boom"), (die_on_rank_1, 30, "rank 1 exited with code 7"), (hang, 1.0, "no rank reported for 1 s")],
)
def test_failed_dead_or_hung_ranks_end_with_one_line(target, timeout, message, tmp_path):
    """The surviving ranks are ended, not waited for: none of them lives to mark its folder."""
    seen = []
    with pytest.raises(RanksFailed, match=message):
        run_ranks(target, 2, (str(tmp_path),), timeout, seen.append)
    assert list(tmp_path.iterdir()) == []


def test_watchdog_ends_a_hung_step_with_exit_code_3():
    code = "import time\nfrom moeplan.profile.timing import watchdog\nwith watchdog(0.3, 'gemm point'):\n    time.sleep(10)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 3
    assert "gemm point did not finish within 0.3 s" in result.stderr
