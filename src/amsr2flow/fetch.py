"""The granule stage: download, check, extract into a swath, delete the HDF5, record any failure.

Each failure is handled as what it is (see ``transfer``): transient ones are retried with exponential backoff
and jitter within the job; a granule that is permanently unavailable gets a *tombstone* swath (0 scans, its
sidecar says why) so that its year can still be archived; a fatal one (credentials, host key, full disk) writes
the run's stop flag so that every other granule job stops at once instead of repeating the same refusal.
Every granule that does not end as a swath has a row in the failure ledger, which the report reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import tenacity

from . import atomic, l1b, swath
from .breaker import CircuitBreaker, ServerLooksDown
from .config import Source
from .transfer import (
    AuthenticationRefused,
    FatalTransferError,
    GPortalSFTP,
    GranuleAbsent,
    Timeouts,
    TransientTransferError,
)

log = logging.getLogger(__name__)

TOMBSTONE_STATUS = "missing"


class CorruptGranule(TransientTransferError):
    """The download has the right size but is not a readable L1B granule; fetched again, then given up."""

    kind = "corrupt"


class SporadicAuthRefusal(TransientTransferError):
    """A login refused although the run's preflight login with the same credentials succeeded.

    Wrong credentials are caught by the preflight before any job starts; a refusal afterwards is what
    overloaded servers do now and then, so it is retried (and counted by the circuit breaker).
    """

    kind = "auth"


class RunStopped(RuntimeError):
    """Another job hit a fatal error; this one does not try."""


class GranuleFailed(RuntimeError):
    """Transient failures outlived this run's attempts; the next run retries the granule."""


@dataclass(frozen=True)
class GranuleTask:
    granule_id: str
    day: str
    remote_path: str
    size_bytes: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> GranuleTask:
        return cls(str(row["granule_id"]), str(row["day"]), str(row["remote_path"]), int(row["size_bytes"]))


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff_initial_s: float = 5.0
    backoff_max_s: float = 120.0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- ledger ----------------------------------------------------------------------------------------------
def update_ledger(path: Path, task: GranuleTask, *, status: str, reason_class: str, error: str, attempts: int) -> None:
    """Record this run's outcome for a granule; earlier runs' rows are kept as history."""
    entry: dict[str, Any] = {}
    if path.is_file():
        with contextlib.suppress(ValueError, OSError):
            entry = json.loads(path.read_text(encoding="utf-8"))
    runs = list(entry.get("runs", []))
    runs.append(
        {"time_utc": _now(), "status": status, "reason_class": reason_class, "error": error, "attempts": attempts}
    )
    entry.update(
        granule_id=task.granule_id,
        day=task.day,
        remote_path=task.remote_path,
        status=status,
        reason_class=reason_class,
        last_error=error,
        attempts=sum(r["attempts"] for r in runs),
        last_attempt_utc=runs[-1]["time_utc"],
        retryable=status == "failed",
        runs=runs,
    )
    atomic.write_json(path, entry)


def write_tombstone(npy_path: Path, task: GranuleTask, *, reason_class: str, error: str, n_pixels: int) -> None:
    """A 0-scan swath whose sidecar says why the granule is not archived."""
    sidecar = swath.sidecar_path(npy_path)
    atomic.write_json(
        sidecar,
        {
            "granule_id": task.granule_id,
            "status": TOMBSTONE_STATUS,
            "reason_class": reason_class,
            "reason": error,
            "orbit_type": l1b.orbit_type_from_name(task.granule_id),
            "remote_path": task.remote_path,
        },
    )
    with atomic.atomic_open(npy_path) as fh:
        np.save(fh, np.zeros((0, n_pixels), dtype=np.uint16), allow_pickle=False)


def is_tombstone(npy_path: str | Path) -> bool:
    try:
        return json.loads(swath.sidecar_path(npy_path).read_text(encoding="utf-8")).get("status") == TOMBSTONE_STATUS
    except (OSError, ValueError):
        return False


# -- one attempt -------------------------------------------------------------------------------------------
def _session(source: Source, timeouts: Timeouts) -> GPortalSFTP:
    session = GPortalSFTP(source, timeouts)
    try:
        session.connect()
    except AuthenticationRefused as exc:
        raise SporadicAuthRefusal(str(exc)) from exc
    return session


def _attempt(
    task: GranuleTask,
    *,
    source: Source,
    timeouts: Timeouts,
    scratch_dir: Path,
    channels: tuple[str, ...],
    geolocation: bool,
) -> swath.Swath:
    h5_path = scratch_dir / f"{task.granule_id}.h5"
    try:
        with _session(source, timeouts) as session:
            stat_size = session.remote_size(task.remote_path)
            if stat_size != task.size_bytes:
                raise TransientTransferError(
                    f"{task.remote_path}: SFTP stat says {stat_size} bytes, the catalogue {task.size_bytes}"
                )
            download = session.download(task.remote_path, h5_path, stat_size)
        try:
            return swath.extract_swath(
                h5_path, channels, geolocation, sha256=download.sha256, source_size=download.size_bytes
            )
        except (swath.SwathError, OSError, KeyError, ValueError) as exc:
            raise CorruptGranule(f"{task.granule_id}: downloaded file is not a readable L1B granule: {exc}") from exc
    finally:
        # The HDF5 is only a means to the swath: it never outlives the job.
        with contextlib.suppress(FileNotFoundError):
            h5_path.unlink()


def collect_granule(
    task: GranuleTask,
    *,
    source: Source,
    timeouts: Timeouts,
    policy: RetryPolicy,
    scratch_dir: Path,
    channels: tuple[str, ...],
    geolocation: bool,
    npy_path: Path,
    ledger_path: Path,
    stop_flag: Path,
    breaker: CircuitBreaker | None = None,
) -> str:
    """Produce the granule's swath (or tombstone). Returns ``"archived"``, ``"absent"`` or ``"invalid"``.

    Raises :class:`GranuleFailed` when transient failures outlive the attempts, :class:`RunStopped` when the
    run was stopped by a fatal error, and :class:`FatalTransferError` for a fatal error of its own.
    """
    if stop_flag.is_file():
        raise RunStopped(f"run stopped by an earlier fatal error: {stop_flag.read_text(encoding='utf-8').strip()}")
    n_pixels = l1b.channel_pixels(channels[0])
    attempts = 0
    last_failure: TransientTransferError | None = None

    def attempt() -> swath.Swath:
        nonlocal attempts, last_failure
        if stop_flag.is_file():
            raise RunStopped(f"run stopped: {stop_flag.read_text(encoding='utf-8').strip()}")
        attempts += 1
        try:
            result = _attempt(
                task,
                source=source,
                timeouts=timeouts,
                scratch_dir=scratch_dir,
                channels=channels,
                geolocation=geolocation,
            )
        except TransientTransferError as exc:
            last_failure = exc
            if breaker is not None:
                breaker.record_transient_failure(f"{task.granule_id}: {exc}")
            raise
        if breaker is not None:
            breaker.record_success()
        return result

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientTransferError),
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=tenacity.wait_exponential_jitter(initial=policy.backoff_initial_s, max=policy.backoff_max_s),
        before_sleep=lambda rs: log.warning(
            "%s: attempt %d failed (%s); retrying", task.granule_id, rs.attempt_number, rs.outcome.exception()
        ),
        reraise=True,
    )
    started = time.monotonic()
    try:
        result = retrying(attempt)
    except GranuleAbsent as exc:
        log.error("%s: %s", task.granule_id, exc)
        update_ledger(ledger_path, task, status="absent", reason_class="absent", error=str(exc), attempts=attempts)
        write_tombstone(npy_path, task, reason_class="absent", error=str(exc), n_pixels=n_pixels)
        return "absent"
    except CorruptGranule as exc:
        log.error("%s: still unreadable after %d downloads: %s", task.granule_id, attempts, exc)
        update_ledger(ledger_path, task, status="invalid", reason_class="invalid", error=str(exc), attempts=attempts)
        write_tombstone(npy_path, task, reason_class="invalid", error=str(exc), n_pixels=n_pixels)
        return "invalid"
    except TransientTransferError as exc:
        update_ledger(ledger_path, task, status="failed", reason_class=exc.kind, error=str(exc), attempts=attempts)
        raise GranuleFailed(
            f"{task.granule_id}: {attempts} attempts failed, last: {exc}. The next run retries this granule."
        ) from exc
    except FatalTransferError as exc:
        update_ledger(ledger_path, task, status="failed", reason_class=exc.kind, error=str(exc), attempts=attempts)
        atomic.write_bytes(stop_flag, (str(exc) + "\n").encode("utf-8"))
        raise
    except (RunStopped, ServerLooksDown) as exc:
        # Not this granule's fault: recorded so the report says why it is missing; retried next run.
        update_ledger(ledger_path, task, status="failed", reason_class="stopped", error=str(exc), attempts=attempts)
        raise RunStopped(str(exc)) from exc
    swath.write_swath(result, npy_path)
    if last_failure is not None or ledger_path.is_file():
        # Archived after failures (in this run or an earlier one): kept as history, so retries are visible.
        update_ledger(
            ledger_path,
            task,
            status="resolved",
            reason_class=last_failure.kind if last_failure else "",
            error=str(last_failure) if last_failure else "",
            attempts=attempts,
        )
    log.info(
        "%s: archived as swath in %.1f s after %d attempt(s)", task.granule_id, time.monotonic() - started, attempts
    )
    return "archived"
