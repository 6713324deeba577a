"""A circuit breaker shared by all granule jobs of a run (processes, possibly on several hosts).

The legacy system stopped after 10 consecutive failures within its one process. Here the count lives in a
small file beside the results, updated under an exclusive ``fcntl`` lock, so consecutive transient failures are
counted across parallel jobs: after ``threshold`` of them in a row the breaker opens, the run's stop flag is
written, and no job starts another transfer until the next run. The sessions of one day job share it from
threads, which also take a lock of the process: on NFS ``flock`` is emulated with POSIX locks, which a
process holds for all its threads at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import atomic

_THREADS = threading.Lock()  # one breaker per run, shared by the sessions of a job


@dataclass(frozen=True)
class CircuitBreaker:
    state_file: Path
    stop_flag: Path
    threshold: int
    #: catalogued granules absent on SFTP in a row (since the start or the last one found) that stop the run
    absent_threshold: int = 10

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        with _THREADS, open(self.state_file.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                try:
                    state = json.loads(self.state_file.read_text(encoding="utf-8"))
                except (FileNotFoundError, ValueError):
                    state = {"consecutive_failures": 0}
                yield state
                atomic.write_json(self.state_file, state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def record_success(self) -> None:
        with self._locked() as state:
            state["consecutive_failures"] = 0

    def record_found(self) -> None:
        """A catalogued granule was on the server: the path mapping works."""
        with self._locked() as state:
            state["absent_in_a_row"] = 0
            state["found"] = int(state.get("found", 0)) + 1

    def record_absent(self, error: str) -> bool:
        """Count a catalogued granule absent on SFTP; True when absences stop the run (now or earlier).

        Absent granules one by one are what G-Portal has; many in a row, or every one since the run started, are
        what a wrong path mapping or a service that changed its tree looks like. Then the run stops with a stop
        flag, before tombstones are written for granules that are probably there.
        """
        with self._locked() as state:
            state["absent_in_a_row"] = int(state.get("absent_in_a_row", 0)) + 1
            count, found = state["absent_in_a_row"], int(state.get("found", 0))
            if count >= self.absent_threshold and not self.stop_flag.is_file():
                since = "since the run started" if not found else f"in a row after {found} found"
                atomic.write_bytes(
                    self.stop_flag,
                    (
                        f"{count} catalogued granules {since} are absent on the SFTP server (last: {error}). The path "
                        "mapping or the service looks wrong: run `amsr2flow doctor --configfile ...` and check "
                        "remote_path_template; if G-Portal wants older files ordered first (the 2.5-year rule), "
                        "order them on the G-Portal web site and rerun. Nothing already archived was touched.\n"
                    ).encode(),
                )
            return count >= self.absent_threshold

    def record_transient_failure(self, error: str) -> int:
        """Count one failure; open the breaker (write the stop flag) when the threshold is reached."""
        with self._locked() as state:
            state["consecutive_failures"] = int(state.get("consecutive_failures", 0)) + 1
            state["last_error"] = error
            count = state["consecutive_failures"]
            if count >= self.threshold and not self.stop_flag.is_file():
                atomic.write_bytes(
                    self.stop_flag,
                    (
                        f"G-Portal looks down: {count} consecutive transient failures across jobs "
                        f"(last: {error}). No new transfers were started; rerun later to continue.\n"
                    ).encode(),
                )
        return count
