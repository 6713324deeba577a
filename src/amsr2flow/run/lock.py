"""One run per output folder: a lock held for the whole run, naming who holds it.

Snakemake's own lock lives in the working folder (``.snakemake/``), so two runs started from different folders
with the same ``output_dir`` would sweep each other's downloads and write the same files. This lock lives in
the output folder itself.

It is ``filelock.FileLock`` (``fcntl``/``flock`` underneath): the kernel releases it when the process holding
it dies, so a lock left by a killed run is simply taken over by the next one. A small JSON file beside it says
which run holds it (host, process id, working folder, start time) for the message a second run prints.

Cluster file systems: ``flock`` locks work on local disks, on NFSv4 and on Lustre/GPFS mounted with lock
support (``flock`` / ``localflock``). On an NFSv3 mount without a lock daemon, or Lustre mounted
``noflock``, acquiring fails with an error, and the run says so instead of running unprotected; set
``AMSR2FLOW_NO_RUN_LOCK=1`` to run without the lock there, and make sure no second run uses the folder.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import filelock

from .. import atomic

LOCK_NAME = "run.lock"
HOLDER_NAME = "run.lock.json"
DISABLE_ENV = "AMSR2FLOW_NO_RUN_LOCK"


class RunLockError(RuntimeError):
    """Another run holds the output folder, or the file system cannot lock; the message says which and what to do."""


@dataclass
class RunLock:
    state_dir: Path
    _lock: filelock.BaseFileLock | None = None

    @property
    def lock_path(self) -> Path:
        return self.state_dir / LOCK_NAME

    @property
    def holder_path(self) -> Path:
        return self.state_dir / HOLDER_NAME

    def acquire(self, output_dir: Path) -> None:
        """Take the lock (no waiting) and record this run as its holder; raise :class:`RunLockError` if held."""
        if os.environ.get(DISABLE_ENV):
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(self.lock_path), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise RunLockError(
                f"another run is using output_dir {output_dir}: {self.holder()}. Wait for it to end (or stop it), "
                "then run again; two runs in one output folder would remove each other's downloads"
            ) from None
        except OSError as exc:
            raise RunLockError(
                f"cannot lock {self.lock_path} ({exc.strerror or exc}): the file system of output_dir does not "
                f"support file locks; put output_dir on one that does, or set {DISABLE_ENV}=1 and make sure no "
                "second run uses the folder"
            ) from exc
        self._lock = lock
        atomic.write_json(
            self.holder_path,
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "working_folder": os.getcwd(),
                "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )

    def holder(self) -> str:
        try:
            info = json.loads(self.holder_path.read_text(encoding="utf-8"))
            return (
                f"process {info['pid']} on {info['host']}, started {info['started_utc']} from {info['working_folder']}"
            )
        except (OSError, ValueError, KeyError, TypeError):
            return "a run whose details are unknown"

    def held_by(self) -> str | None:
        """Who holds the lock now (``holder()``), or ``None``; asked without taking it, so it never blocks a run."""
        import fcntl

        if not self.lock_path.is_file():
            return None
        try:
            with open(self.lock_path, "a") as fp:
                try:
                    fcntl.flock(fp, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    return self.holder()
                fcntl.flock(fp, fcntl.LOCK_UN)
        except OSError:
            return None
        return None

    def started_utc(self) -> datetime | None:
        """When the current (or last) holder started, from the holder file."""
        try:
            info = json.loads(self.holder_path.read_text(encoding="utf-8"))
            return datetime.fromisoformat(info["started_utc"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
