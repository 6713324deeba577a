"""Counters of what the emulator served and injected, mirrored to a JSON file while it runs.

Tests of throttling and retention read the file (``stats_path`` in the state file), so it is rewritten
atomically whenever something changed, at most every ``interval`` seconds, and once more at shutdown.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

COUNTERS = (
    "catalogue_requests",
    "sftp_connections",
    "sftp_sessions",
    "active_sftp_sessions",
    "peak_sftp_sessions",
    "failed_logins",
    "refused_sessions",
    "bytes_served",
    "files_served",
    "files_opened",
    "granules_generated",
    "granules_ordered",
)


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_json_atomically(path: Path, data: Any) -> None:
    """Write JSON to a temporary sibling, then rename, so readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class Stats:
    """Thread-safe counters with a background writer."""

    def __init__(self, path: Path, interval: float = 0.2) -> None:
        self.path = path
        self.interval = interval
        self._lock = threading.Lock()
        self._counters: Counter[str] = Counter({name: 0 for name in COUNTERS})
        self._by_generation: Counter[str] = Counter({"current": 0, "legacy": 0})
        self._opens_by_granule: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._faults_by_granule: defaultdict[str, list[str]] = defaultdict(list)
        self._started_at = utc_now_iso()
        self._dirty = True
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None

    # -- updates ------------------------------------------------------------------------------------------
    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount
            self._dirty = True

    def catalogue_request(self, generation: str) -> int:
        """Count a catalogue request; returns its 1-based sequence number (the key of catalogue faults)."""
        with self._lock:
            self._counters["catalogue_requests"] += 1
            self._by_generation[generation] += 1
            self._dirty = True
            return self._counters["catalogue_requests"]

    def connection_accepted(self) -> int:
        """Count an SFTP connection; returns its 1-based sequence number (the key of connection faults)."""
        with self._lock:
            self._counters["sftp_connections"] += 1
            self._dirty = True
            return self._counters["sftp_connections"]

    def try_admit_session(self, limit: int | None) -> bool:
        """Admit a session unless ``limit`` are already active; keeps the peak of concurrent sessions."""
        with self._lock:
            if limit is not None and self._counters["active_sftp_sessions"] >= limit:
                self._counters["refused_sessions"] += 1
                self._dirty = True
                return False
            self._counters["active_sftp_sessions"] += 1
            active = self._counters["active_sftp_sessions"]
            self._counters["peak_sftp_sessions"] = max(self._counters["peak_sftp_sessions"], active)
            self._dirty = True
            return True

    def session_ended(self) -> None:
        self.add("active_sftp_sessions", -1)

    def file_opened(self, granule_id: str) -> int:
        """Count a read-open of a granule; returns the granule's attempt number (1-based)."""
        with self._lock:
            self._counters["files_opened"] += 1
            self._opens_by_granule[granule_id] += 1
            self._dirty = True
            return self._opens_by_granule[granule_id]

    def fault(self, fault: str, granule_id: str | None = None) -> None:
        with self._lock:
            self._faults[fault] += 1
            if granule_id is not None:
                self._faults_by_granule[granule_id].append(fault)
            self._dirty = True

    # -- reading and writing ------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                **dict(self._counters),
                "catalogue_requests_by_generation": dict(self._by_generation),
                "opens_by_granule": dict(self._opens_by_granule),
                "faults_injected": dict(self._faults),
                "faults_by_granule": {k: list(v) for k, v in self._faults_by_granule.items()},
                "started_at": self._started_at,
                "updated_at": utc_now_iso(),
            }

    def flush(self) -> None:
        with self._lock:
            self._dirty = False
        write_json_atomically(self.path, self.snapshot())

    def start(self) -> None:
        self.flush()
        self._writer = threading.Thread(target=self._write_loop, name="stats-writer", daemon=True)
        self._writer.start()

    def stop(self) -> None:
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout=5)
        self.flush()

    def _write_loop(self) -> None:
        while not self._stop.wait(self.interval):
            if self._dirty:
                try:
                    self.flush()
                except OSError:  # a full disk must not kill the servers; the next change retries
                    time.sleep(self.interval)
