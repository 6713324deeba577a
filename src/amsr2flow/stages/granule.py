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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tenacity

from .. import atomic
from .. import ledger as ledger_mod
from ..formats import l1b, swath
from ..formats import variables as extra_variables
from ..formats.swath import TOMBSTONE_STATUS, write_tombstone
from ..gportal import remote_layout
from ..gportal.backoff import exponential_backoff
from ..gportal.breaker import CircuitBreaker
from ..gportal.sftp import (
    AuthenticationRefused,
    DiskFull,
    Download,
    FatalTransferError,
    GPortalSFTP,
    GranuleAbsent,
    TransferError,
    TransientTransferError,
)
from ..gportal.source import Link, Source, Timeouts
from ..ledger import update_ledger

log = logging.getLogger(__name__)


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
    remote_layout: str = ""  # the run's remote path template ("" = the catalogue's mapping)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> GranuleTask:
        return cls(str(row["granule_id"]), str(row["day"]), str(row["remote_path"]), int(row["size_bytes"]))


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff_initial_s: float = 5.0
    backoff_max_s: float = 120.0


# -- one attempt -------------------------------------------------------------------------------------------
def _session(source: Source, timeouts: Timeouts, link: Link | None = None) -> GPortalSFTP:
    session = GPortalSFTP(source, timeouts, link)
    try:
        session.connect()
    except AuthenticationRefused as exc:
        raise SporadicAuthRefusal(str(exc)) from exc
    return session


@dataclass(frozen=True)
class FetchResult:
    download: Download
    swath: swath.Swath


def _attempt(
    task: GranuleTask,
    *,
    source: Source,
    timeouts: Timeouts,
    destination: Path,
    keep_download: bool,
    channels: tuple[str, ...],
    geolocation: bool,
    variables: tuple[str, ...] = (),
    link: Link | None = None,
) -> FetchResult:
    """Download to ``destination``, check sizes, and extract (which proves the file readable)."""
    kept = False
    try:
        with _session(source, timeouts, link) as session:
            stat_size = session.remote_size(task.remote_path)
            if stat_size != task.size_bytes:
                raise TransientTransferError(
                    f"{task.remote_path}: SFTP stat says {stat_size} bytes, the catalogue {task.size_bytes}"
                )
            download = session.download(task.remote_path, destination, stat_size)
        try:
            extracted = swath.extract_swath(
                destination,
                channels,
                geolocation,
                extra_variables=variables,
                sha256=download.sha256,
                source_size=download.size_bytes,
            )
        except (swath.SwathError, OSError, KeyError, ValueError) as exc:
            raise CorruptGranule(f"{task.granule_id}: downloaded file is not a readable L1B granule: {exc}") from exc
        kept = keep_download
        return FetchResult(download, extracted)
    finally:
        # The HDF5 is only a means to the swath: it never outlives the job unless another job extracts it.
        if not kept:
            with contextlib.suppress(FileNotFoundError):
                destination.unlink()


#: Scan rows of a full granule with its overlap (real files: 2040-2044); sizes a swath before it exists.
ESTIMATED_ROWS = 2100


def estimated_swath_bytes(channels: tuple[str, ...], geolocation: bool, variables: tuple[str, ...] = ()) -> int:
    """About how large a full-size swath file of these channels is (uint16 per channel, float32 positions,
    float64 scan times, the extra variables)."""
    per_row = sum(2 * l1b.channel_pixels(c) for c in channels) + (2 * 4 * l1b.LOW_FREQ_PIXELS if geolocation else 0)
    per_row += 8 + extra_variables.size_per_scan(variables)
    return ESTIMATED_ROWS * per_row + 4096


# -- what a granule job leaves behind ------------------------------------------------------------------------
@dataclass(frozen=True)
class SwathOutputs:
    """One job does everything: the outputs are the swath (or its tombstone)."""

    npy_path: Path
    scratch_dir: Path
    n_pixels: int
    keep_download = False

    @property
    def folder(self) -> Path:
        return self.npy_path.parent

    def check_space(
        self, task: GranuleTask, channels: tuple[str, ...], geolocation: bool, variables: tuple[str, ...] = ()
    ) -> None:
        atomic.check_free(self.scratch_dir, task.size_bytes, f"the download of {task.granule_id}")
        needed = estimated_swath_bytes(channels, geolocation, variables)
        atomic.check_free(self.folder, needed, f"the swath of {task.granule_id}")

    def download_path(self, task: GranuleTask) -> Path:
        return self.scratch_dir / f"{task.granule_id}.h5"

    def success(self, task: GranuleTask, result: FetchResult) -> None:
        swath.write_swath(result.swath, self.npy_path)

    def permanent(self, task: GranuleTask, reason_class: str, error: str) -> None:
        write_tombstone(
            self.npy_path,
            task.granule_id,
            task.remote_path,
            reason_class=reason_class,
            error=error,
            n_pixels=self.n_pixels,
        )


@dataclass(frozen=True)
class DownloadOutputs:
    """Split transfers: this job (on a host with internet) leaves a checked HDF5 and a download record;
    :func:`extract_download` (on a compute node) turns them into the swath."""

    h5_path: Path
    record_path: Path
    keep_download = True

    @property
    def folder(self) -> Path:
        return self.h5_path.parent

    def check_space(
        self, task: GranuleTask, channels: tuple[str, ...], geolocation: bool, variables: tuple[str, ...] = ()
    ) -> None:
        atomic.check_free(self.folder, task.size_bytes, f"the download of {task.granule_id}")

    def download_path(self, task: GranuleTask) -> Path:
        return self.h5_path

    def success(self, task: GranuleTask, result: FetchResult) -> None:
        record = {"granule_id": task.granule_id, "status": "downloaded", "size_bytes": result.download.size_bytes}
        record["sha256"] = result.download.sha256
        atomic.write_json(self.record_path, record)

    def permanent(self, task: GranuleTask, reason_class: str, error: str) -> None:
        atomic.write_bytes(self.h5_path, b"")  # a declared output must exist; the record says it is empty
        atomic.write_json(
            self.record_path,
            {"granule_id": task.granule_id, "status": TOMBSTONE_STATUS, "reason_class": reason_class, "reason": error},
        )


def extract_download(
    task: GranuleTask,
    *,
    h5_path: Path,
    record_path: Path,
    channels: tuple[str, ...],
    geolocation: bool,
    npy_path: Path,
    variables: tuple[str, ...] = (),
) -> str:
    """Second half of a split granule: the checked download becomes the swath (or the tombstone)."""
    record = json.loads(record_path.read_text(encoding="utf-8"))
    if record["status"] == TOMBSTONE_STATUS:
        write_tombstone(
            npy_path,
            task.granule_id,
            task.remote_path,
            reason_class=record["reason_class"],
            error=record["reason"],
            n_pixels=l1b.channel_pixels(channels[0]),
        )
        return record["reason_class"]
    extracted = swath.extract_swath(
        h5_path,
        channels,
        geolocation,
        extra_variables=variables,
        sha256=record["sha256"],
        source_size=record["size_bytes"],
    )
    try:
        swath.write_swath(extracted, npy_path)
    except OSError as exc:
        if atomic.is_no_space(exc):
            raise atomic.no_space(npy_path.parent, f"the swath of {task.granule_id}", exc) from exc
        raise
    return "archived"


def collect_granule(
    task: GranuleTask,
    *,
    source: Source,
    timeouts: Timeouts,
    policy: RetryPolicy,
    channels: tuple[str, ...],
    geolocation: bool,
    outputs: SwathOutputs | DownloadOutputs,
    ledger_path: Path,
    stop_flag: Path,
    breaker: CircuitBreaker | None = None,
    variables: tuple[str, ...] = (),
    link: Link | None = None,
) -> str:
    """Produce the granule's outputs (swath, or checked download; or tombstone).

    Returns ``"archived"``, ``"absent"`` or ``"invalid"``.

    Raises :class:`GranuleFailed` when transient failures outlive the attempts, :class:`RunStopped` when the
    run was stopped by a fatal error, and :class:`FatalTransferError` for a fatal error of its own.
    """
    attempts = 0
    last_failure: TransientTransferError | None = None

    def attempt() -> FetchResult:
        nonlocal attempts, last_failure
        if stop_flag.is_file():
            raise RunStopped(f"run stopped: {stop_flag.read_text(encoding='utf-8').strip()}")
        try:
            outputs.check_space(task, channels, geolocation, variables)  # before downloading what could not be kept
        except atomic.NoSpace as exc:
            raise DiskFull(str(exc)) from exc
        attempts += 1
        try:
            result = _attempt(
                task,
                source=source,
                timeouts=timeouts,
                destination=outputs.download_path(task),
                keep_download=outputs.keep_download,
                channels=channels,
                geolocation=geolocation,
                variables=variables,
                link=link,
            )
        except TransientTransferError as exc:
            last_failure = exc
            if breaker is not None:
                breaker.record_transient_failure(f"{task.granule_id}: {exc}")
            raise
        if breaker is not None:
            breaker.record_success()
            breaker.record_found()
        return result

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientTransferError),
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=exponential_backoff(policy.backoff_initial_s, policy.backoff_max_s),
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
        if breaker is not None and breaker.record_absent(f"{task.granule_id}: {exc}"):
            # Too many absent in a row: a suspicion about the whole run, not a verdict on this granule.
            update_ledger(
                ledger_path, task, status="failed", reason_class="suspect_absent", error=str(exc), attempts=attempts
            )
            raise RunStopped(f"run stopped: {stop_flag.read_text(encoding='utf-8').strip()}") from exc
        update_ledger(ledger_path, task, status="absent", reason_class="absent", error=str(exc), attempts=attempts)
        outputs.permanent(task, "absent", str(exc))
        return "absent"
    except CorruptGranule as exc:
        log.error("%s: still unreadable after %d downloads: %s", task.granule_id, attempts, exc)
        update_ledger(ledger_path, task, status="invalid", reason_class="invalid", error=str(exc), attempts=attempts)
        outputs.permanent(task, "invalid", str(exc))
        return "invalid"
    except TransientTransferError as exc:
        update_ledger(ledger_path, task, status="failed", reason_class=exc.kind, error=str(exc), attempts=attempts)
        raise GranuleFailed(
            f"{task.granule_id}: {attempts} attempts failed, last: {exc}. The next run retries this granule."
        ) from exc
    except FatalTransferError as exc:
        _record_fatal(exc, task, ledger_path, stop_flag, attempts)
        raise
    except RunStopped as exc:
        # Not this granule's fault: recorded so the report says why it is missing; retried next run.
        update_ledger(ledger_path, task, status="failed", reason_class="stopped", error=str(exc), attempts=attempts)
        raise
    try:
        outputs.success(task, result)
    except OSError as exc:
        if not atomic.is_no_space(exc):
            raise
        full = DiskFull(str(atomic.no_space(outputs.folder, f"the swath of {task.granule_id}", exc)))
        _record_fatal(full, task, ledger_path, stop_flag, attempts)
        raise full from exc
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
    log.info("%s: done in %.1f s after %d attempt(s)", task.granule_id, time.monotonic() - started, attempts)
    return "archived"


def _record_fatal(
    exc: FatalTransferError, task: GranuleTask, ledger_path: Path, stop_flag: Path, attempts: int
) -> None:
    """Ledger row and the run's stop flag for a fatal error; on a full disk even these small writes may fail,
    and the job's own message still says what happened."""
    try:
        update_ledger(ledger_path, task, status="failed", reason_class=exc.kind, error=str(exc), attempts=attempts)
        atomic.write_bytes(stop_flag, (str(exc) + "\n").encode("utf-8"))
    except OSError:
        log.exception("could not record %s", exc)


# -- absent granules, looked for again --------------------------------------------------------------------
@dataclass(frozen=True)
class Recheck:
    checked: tuple[str, ...]
    arrived: tuple[str, ...]
    paths: dict[str, str]  # where each granule that arrived is on the server


def recheck_absent(
    entries: Mapping[str, Mapping[str, Any]],
    *,
    source: Source,
    timeouts: Timeouts,
    template: str | None,
    ledger_path_for: Callable[[str, str], Path],
    swath_path_for: Callable[[str, str], Path],
) -> Recheck:
    """Look (one ``stat`` each, in one session, no download) for granules recorded as absent.

    A granule that is on the server again loses its tombstone, so its granule job runs again; its ledger entry
    says it reappeared. One still absent keeps everything as it is, apart from the time of the look.
    """
    arrived, paths = [], {}
    with _session(source, timeouts) as session:
        for granule_id, entry in sorted(entries.items()):
            path = remote_layout.apply_template(str(entry["remote_path"]), template)
            found = session.exists(path)
            log.info("%s: %s", granule_id, f"back on the server at {path}" if found else "still absent")
            ledger_mod.record_recheck(ledger_path_for(str(entry["day"]), granule_id), found=found, remote_path=path)
            if found:
                arrived.append(granule_id)
                paths[granule_id] = path
                npy = swath_path_for(str(entry["day"]), granule_id)
                for stale in (npy, swath.sidecar_path(npy)):
                    stale.unlink(missing_ok=True)
    return Recheck(tuple(sorted(entries)), tuple(arrived), paths)


def fetch_reappeared(
    recheck: Recheck,
    entries: Mapping[str, Mapping[str, Any]],
    sizes: Mapping[str, int],
    *,
    template: str | None,
    swath_path_for: Callable[[str, str], Path],
    ledger_path_for: Callable[[str, str], Path],
    scratch_dir: Path,
    stop_flag: Path,
    **collect: Any,
) -> list[Path]:
    """Fetch the granules a recheck found again, as swath files (for a sealed year, which has no granule jobs).

    ``collect`` are :func:`collect_granule`'s source, timeouts, policy, channels and geolocation. A granule
    that cannot be fetched now stays "reappeared" in the ledger and is looked for again by the next run.
    """
    fetched = []
    for granule_id in recheck.arrived:
        day = str(entries[granule_id]["day"])
        npy = swath_path_for(day, granule_id)
        task = GranuleTask(granule_id, day, recheck.paths[granule_id], int(sizes[granule_id]), template or "")
        ledger_path = ledger_path_for(day, granule_id)
        try:
            outcome = collect_granule(
                task,
                outputs=SwathOutputs(npy, scratch_dir, l1b.channel_pixels(collect["channels"][0])),
                ledger_path=ledger_path,
                stop_flag=stop_flag,
                **collect,
            )
        except (GranuleFailed, RunStopped, TransferError) as exc:
            log.warning("%s: back on the server but not fetched (%s); looked for again next run", granule_id, exc)
            ledger_mod.record_recheck(ledger_path, found=True, remote_path=task.remote_path)
            continue
        if outcome == "archived":
            fetched.append(npy)
    return fetched
