"""Run one process per rank and supervise them: no step may hang the run.

Workers are started through a forkserver that has imported torch once (spawn where forkserver does not
exist), so start-up costs one torch import rather than one per rank. Every worker reports on a queue;
the parent hands each message on and ends the group with ``RanksFailed`` (one clear line) when a rank
reports an error, exits without finishing, or nothing arrives for ``timeout_s`` seconds.
"""

import multiprocessing
import queue as queue_module
import socket
import time
from collections.abc import Callable

POLL_S = 0.2


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


def _entry(target: Callable, rank: int, world: int, init_method: str, queue, args: tuple) -> None:
    """Run target(rank, world, init_method, emit, *args) and report 'done' or the error on the queue."""
    try:
        target(rank, world, init_method, queue.put, *args)
    except BaseException as error:  # noqa: BLE001 - any failure must reach the parent as one line
        lines = str(error).strip().splitlines()
        queue.put({"kind": "error", "rank": rank, "message": f"{type(error).__name__}: {lines[0] if lines else ''}"})
        raise SystemExit(1) from None
    queue.put({"kind": "done", "rank": rank})


def _exit_reason(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exited with code {code}"


def run_ranks(target: Callable, world: int, args: tuple, timeout_s: float, on_message: Callable[[dict], None]) -> None:
    """Start ``world`` local processes running ``target`` and pass their messages to ``on_message`` until all finish."""
    context = _context()
    queue = context.Queue()
    init_method = f"tcp://127.0.0.1:{free_port()}"
    procs = [context.Process(target=_entry, args=(target, rank, world, init_method, queue, args), daemon=True) for rank in range(world)]
    for proc in procs:
        proc.start()
    done: set[int] = set()
    try:
        last = time.monotonic()
        while len(done) < world:
            try:
                message = queue.get(timeout=POLL_S)
            except queue_module.Empty:
                dead = [(rank, p.exitcode) for rank, p in enumerate(procs) if rank not in done and p.exitcode is not None]
                if dead:
                    message = _next_message(queue, wait_s=1.0)
                    if message is None:
                        rank, code = dead[0]
                        raise RanksFailed(f"rank {rank} {_exit_reason(code)} before finishing (out of memory or killed?)") from None
                elif time.monotonic() - last > timeout_s:
                    raise RanksFailed(f"no rank reported for {timeout_s:g} s: a collective hung or a peer died (raise --timeout if sizes are very large)") from None
                else:
                    continue
            last = time.monotonic()
            if message["kind"] == "error":
                raise RanksFailed(f"rank {message['rank']} failed: {message['message']}")
            if message["kind"] == "done":
                done.add(message["rank"])
            else:
                on_message(message)
    finally:
        for proc in procs:
            proc.join(timeout=5 if len(done) == world else 0)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


def _next_message(queue, wait_s: float) -> dict | None:
    """The next message (after a rank died: usually the error it managed to send), or None."""
    try:
        return queue.get(timeout=wait_s)
    except queue_module.Empty:
        return None
