"""Run one process per rank and supervise them: no step may hang the run or outlive it.

Workers are started through a forkserver that has imported torch once (spawn where forkserver does not
exist), so start-up costs one torch import rather than one per rank. Every worker reports on a queue;
the parent hands each message on and ends the group with ``RanksFailed`` (one clear line) when a rank
reports an error, exits without finishing, or nothing arrives for ``timeout_s`` seconds.

Ending the group: SIGTERM, ``TERM_GRACE_S`` to exit, then SIGKILL (a rank stuck in the driver or stopped
ignores SIGTERM), so the parent always returns. Each rank ends itself when its parent dies
(``PR_SET_PDEATHSIG`` on Linux, and a thread in each rank also watches the parent: under the forkserver the OS parent is the
forkserver, which outlives the run). A rank's stdout and stderr (gloo/TCPStore C++ messages) go to a log file, named in
the failure line, never to the user's terminal. When several ranks fail, ranks that died are named first:
the others' errors ("Connection reset by peer") are usually the consequence.
"""

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import queue as queue_module
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

POLL_S = 0.2
TERM_GRACE_S = 5.0
"""Seconds a rank has to exit after SIGTERM before it is killed."""
DEATH_GRACE_S = 1.0
"""After a rank reports an error, how long to look for a rank that died (the likely first cause)."""
PR_SET_PDEATHSIG = 1


class RanksFailed(Exception):
    """A rank failed, died or stopped making progress; the message says which and how."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for the rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _context():
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["torch", "torch.distributed"])
        return context
    return multiprocessing.get_context("spawn")


def die_with_parent() -> None:
    """End this rank the moment the process that started it is gone, however it went.

    A forkserver child's OS parent is the forkserver, which outlives the run (each child holds its "alive"
    pipe open), so a thread also waits on multiprocessing's parent sentinel, which closes when the starting
    process exits; PR_SET_PDEATHSIG (Linux) covers a spawned child whose parent is killed.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    parent = multiprocessing.parent_process()
    if parent is not None:

        def watch() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _redirect_output(log: Path) -> None:
    """Send this process's fds 1 and 2 (Python and C++ alike) to ``log``."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _entry(target: Callable, rank: int, world: int, init_method: str, queue, args: tuple, log: str) -> None:
    """Run target(rank, world, init_method, emit, *args) and report 'done' or the error on the queue."""
    die_with_parent()
    _redirect_output(Path(log))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent ends the ranks
    try:
        target(rank, world, init_method, queue.put, *args)
    except BaseException as error:  # noqa: BLE001 - any failure must reach the parent as one line
        lines = str(error).strip().splitlines()
        queue.put({"kind": "error", "rank": rank, "message": f"{type(error).__name__}: {lines[0] if lines else ''}"})
        raise SystemExit(1) from None
    queue.put({"kind": "done", "rank": rank})


def _exit_reason(code: int) -> str:
    return f"killed by signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() else f"exited with code {code}"


def stop_processes(procs: list, grace_s: float | None = None) -> None:
    """SIGTERM every live process, wait up to ``grace_s`` in all, then SIGKILL what is left and reap it."""
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + (TERM_GRACE_S if grace_s is None else grace_s)
    for proc in procs:
        proc.join(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()


def _failure(procs: list, queue, done: set[int], reported: dict[int, str]) -> str:
    """One line naming the ranks that died (first) and the ranks that reported errors (read from the queue meanwhile)."""
    deadline = time.monotonic() + DEATH_GRACE_S
    while True:
        while (message := _next_message(queue, wait_s=POLL_S / 4)) is not None:
            if message["kind"] == "error":
                reported[message["rank"]] = message["message"]
        dead = {rank: p.exitcode for rank, p in enumerate(procs) if rank not in done and rank not in reported and p.exitcode is not None}
        if dead or time.monotonic() > deadline:
            break
    parts = [f"rank {rank} {_exit_reason(code)} before finishing (out of memory or killed?)" for rank, code in sorted(dead.items())]
    errors = [f"rank {rank} failed: {message}" for rank, message in sorted(reported.items())]
    if parts and errors:
        return "; ".join(parts) + "; then " + "; ".join(errors)
    return "; ".join(parts + errors)


def run_ranks(target: Callable, world: int, args: tuple, timeout_s: float, on_message: Callable[[dict], None]) -> None:
    """Start ``world`` local processes running ``target`` and pass their messages to ``on_message`` until all finish."""
    context = _context()
    queue = context.Queue()
    init_method = f"tcp://127.0.0.1:{free_port()}"
    logs = Path(tempfile.mkdtemp(prefix="moeplan-ranks-"))
    procs = [
        context.Process(target=_entry, args=(target, rank, world, init_method, queue, args, str(logs / f"rank{rank}.log")), daemon=True)
        for rank in range(world)
    ]
    done: set[int] = set()
    failed = True
    try:
        for proc in procs:
            proc.start()
        last = time.monotonic()
        while len(done) < world:
            try:
                message = queue.get(timeout=POLL_S)
            except queue_module.Empty:
                dead = [rank for rank, p in enumerate(procs) if rank not in done and p.exitcode is not None]
                if dead:
                    message = _next_message(queue, wait_s=DEATH_GRACE_S) or {"kind": "died"}
                elif time.monotonic() - last > timeout_s:
                    raise RanksFailed(f"no rank reported for {timeout_s:g} s: a collective hung or a peer died (raise --timeout if sizes are very large); rank logs in {logs}") from None
                else:
                    continue
            last = time.monotonic()
            if message["kind"] in ("error", "died"):
                reported = {message["rank"]: message["message"]} if message["kind"] == "error" else {}
                raise RanksFailed(f"{_failure(procs, queue, done, reported)}; rank logs in {logs}")
            if message["kind"] == "done":
                done.add(message["rank"])
            else:
                on_message(message)
        failed = False
    finally:
        for proc in procs:
            if proc.pid is not None and len(done) == world:
                proc.join(timeout=TERM_GRACE_S)
        stop_processes([p for p in procs if p.pid is not None])
        if not failed:
            shutil.rmtree(logs, ignore_errors=True)


def _next_message(queue, wait_s: float) -> dict | None:
    """The next message (after a rank died: usually the error it managed to send), or None."""
    try:
        return queue.get(timeout=wait_s)
    except queue_module.Empty:
        return None
