"""SIGTERM and SIGINT as an orderly stop: ``scancel``, Kubernetes and ``timeout`` send SIGTERM.

Inside ``stop_on_signals()`` the signal raises ``Stopped`` in the main thread; the runner records the section
that was cut short, the rank group is ended (SIGTERM, then SIGKILL), the JSONL keeps every finished line, the
report of what finished is printed, and the process exits with 128 + the signal number (143 for SIGTERM).
"""

import signal
import threading
from contextlib import contextmanager

from moeplan.errors import MoeplanError

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(MoeplanError):
    """The run was stopped by a signal; exit code 128 + its number."""

    def __init__(self, name: str):
        self.signal = name
        self.exit_code = 128 + signal.Signals[name].value
        super().__init__(f"stopped by {name}: the sections after the one it cut short did not run; finished measurements are above and in --out")


@contextmanager
def stop_on_signals():
    """Turn SIGTERM/SIGINT into ``Stopped`` while the block runs (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Stopped(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
