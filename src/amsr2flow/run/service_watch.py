"""A run against the local G-Portal stops at once when the local G-Portal stops.

The local G-Portal removes its state file when it stops. Without a watch, every day job then started failed on
reading that file (one traceback per job and attempt, for minutes on a long run), and the jobs already running
retried their transfers until the circuit breaker opened. Here the workflow's main process looks at the file
every second; when it is gone it writes the run's stop flag (running jobs try no further granule), says so once,
and asks Snakemake to start no new job (its graceful stop: SIGTERM), so the run ends with its interim report.

A local G-Portal killed outright (SIGKILL) leaves its file behind; its refused connections then open the circuit
breaker like any G-Portal that is down.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from .. import atomic

WATCH_INTERVAL_S = 1.0


def why(state_file: Path) -> str:
    """The stop flag's text: what running jobs say as they stop, and their granules' ledger rows."""
    return f"the local G-Portal stopped during the run (its state file {state_file} is gone)"


def gone_message(state_file: Path) -> str:
    """What the run says once, on the console."""
    return (
        f"{why(state_file)}; no new job starts. Start it again (`amsr2flow emulator --state {state_file}`, or "
        "`make demo`) and rerun the same command: the run continues where it stopped."
    )


def stop_scheduling() -> None:
    """Snakemake's graceful stop (SIGTERM to its own process): no new job starts; running ones finish."""
    os.kill(os.getpid(), signal.SIGTERM)


class LocalServiceWatch(threading.Thread):
    """Watches the local G-Portal's state file from the workflow's main process (a daemon thread)."""

    def __init__(
        self,
        state_file: Path,
        stop_flag: Path,
        *,
        interval_s: float = WATCH_INTERVAL_S,
        on_gone: Callable[[], None] = stop_scheduling,
        write: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(name="amsr2flow-local-gportal-watch", daemon=True)
        self.state_file = state_file
        self.stop_flag = stop_flag
        self.interval_s = interval_s
        self.on_gone = on_gone
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            if self.check():
                return

    def check(self) -> bool:
        """One look: when the state file is gone, the stop flag, the message and ``on_gone``; True then."""
        if self.state_file.is_file():
            return False
        if not self.stop_flag.is_file():  # a stop for another reason came first: it stays the flag's
            atomic.write_bytes(self.stop_flag, (why(self.state_file) + "\n").encode("utf-8"))
        self.write(f"amsr2flow: {gone_message(self.state_file)}")
        self.on_gone()
        return True

    def stop(self) -> None:
        self.stopped.set()
