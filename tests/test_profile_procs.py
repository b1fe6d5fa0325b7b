"""Rank supervision (issue 11 items 1, 2, 4): a rank that ignores SIGTERM or is stopped is killed, ranks die
with their parent, dead ranks are named before the errors they caused, and no C++ chatter reaches the terminal."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from moeplan.profile import procs
from moeplan.profile.procs import RanksFailed, run_ranks


def stubborn(rank, world, init_method, emit):
    """Rank 1 ignores SIGTERM (as one stuck in the driver would); rank 0 fails."""
    if rank == 1:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        emit({"kind": "pid", "pid": os.getpid()})
        time.sleep(60)
    time.sleep(0.5)
    raise ValueError("boom")


def stopped(rank, world, init_method, emit):
    """Rank 1 stops itself (SIGSTOP: SIGTERM stays pending); nothing reports, so the timeout ends the group."""
    if rank == 1:
        emit({"kind": "pid", "pid": os.getpid()})
        time.sleep(1.0)  # the queue's feeder thread sends the message
        os.kill(os.getpid(), signal.SIGSTOP)
    time.sleep(60)


def killed_then_reset(rank, world, init_method, emit):
    """Rank 1 is killed; rank 2 then sees its connection reset (the wrong rank to blame)."""
    if rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    if rank == 2:
        time.sleep(0.4)
        raise ConnectionResetError("Connection reset by peer")
    time.sleep(60)


def chatty(rank, world, init_method, emit):
    """Writes to fd 2 the way gloo's C++ does, then fails."""
    os.write(2, b"[E socket.cpp:1011] [c10d] The client socket has failed to connect\n  frame #0: c10::Error\n")
    raise RuntimeError("connect failed")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:  # a zombie (exited, not reaped by its parent yet) is gone as well
            return stat.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.parametrize(("target", "timeout", "message"), [
    (stubborn, 30, "rank 0 failed: ValueError: boom"),
    (stopped, 3.0, "no rank reported for 3 s"),
])
def test_a_rank_that_ignores_sigterm_is_killed(monkeypatch, target, timeout, message):
    monkeypatch.setattr(procs, "TERM_GRACE_S", 0.5)
    seen = []
    with pytest.raises(RanksFailed, match=message):
        run_ranks(target, 2, (), timeout, seen.append)
    (pid,) = [m["pid"] for m in seen]
    assert _gone(pid)


def test_dead_rank_is_named_before_the_error_it_caused():
    with pytest.raises(RanksFailed) as failure:
        run_ranks(killed_then_reset, 3, (), 30, lambda message: None)
    text = str(failure.value)
    assert text.startswith("rank 1 killed by signal SIGKILL before finishing")
    assert "then rank 2 failed: ConnectionResetError: Connection reset by peer" in text


def test_rank_output_goes_to_a_log_not_the_terminal(capfd):
    with pytest.raises(RanksFailed, match="rank logs in ") as failure:
        run_ranks(chatty, 2, (), 30, lambda message: None)
    captured = capfd.readouterr()
    assert "socket.cpp" not in captured.err and "frame #0" not in captured.err
    logs = str(failure.value).rsplit("rank logs in ", 1)[1]
    assert "frame #0: c10::Error" in open(os.path.join(logs, "rank0.log")).read()


def test_ranks_die_with_their_parent(tmp_path):
    """The parent is SIGKILLed mid-run (no handler can run): the kernel kills the ranks (PR_SET_PDEATHSIG)."""
    pids = tmp_path / "pids"
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from moeplan.profile.procs import run_ranks
        from test_profile_procs import report_pid_and_sleep
        run_ranks(report_pid_and_sleep, 2, ({str(pids)!r},), 60, lambda m: None)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script])
    for _ in range(600):
        if pids.exists() and len(pids.read_text().split()) == 2:
            break
        time.sleep(0.1)
    ranks = [int(p) for p in pids.read_text().split()]
    parent.kill()
    parent.wait()
    for _ in range(200):
        if all(_gone(pid) for pid in ranks):
            break
        time.sleep(0.1)
    assert all(_gone(pid) for pid in ranks)


def report_pid_and_sleep(rank, world, init_method, emit, path):
    with open(path, "a") as out:
        out.write(f"{os.getpid()}\n")
    time.sleep(60)
