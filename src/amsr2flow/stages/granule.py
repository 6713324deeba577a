"""The granule stage: download, check, extract into a swath, delete the HDF5, record any failure.

Each failure is handled as what it is (see ``transfer``): transient ones are retried with exponential backoff
and jitter within the job; a granule that is permanently unavailable gets a *tombstone* swath (0 scans, its
sidecar says why) so that its year can still be archived; a fatal one (credentials, host key, full disk) writes
the run's stop flag so that every other granule job stops at once instead of repeating the same refusal.
Every granule that does not end as a swath has a row in the failure ledger, which the report reads.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tenacity

from .. import atomic, joblog
from .. import ledger as ledger_mod
from ..formats import facts, swath
from ..formats.swath import TOMBSTONE_STATUS, ExtractionSpec, write_tombstone
from ..gportal import remote_layout
from ..gportal.backoff import exponential_backoff
from ..gportal.sftp import (
    AuthenticationRefused,
    Connection,
    DiskFull,
    Download,
    FatalTransferError,
    GPortalSFTP,
    GranuleAbsent,
    TransferError,
    TransientTransferError,
)
from ..ledger import update_ledger
from ..plan import Layout
from ..run import progress
from ..run.breaker import CircuitBreaker
from ..run.reasons import Reason

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
    template: str = ""  # the run's remote path template that made remote_path ("" = the catalogue's mapping)
    catalogue: facts.CatalogueRecord | None = None  # what the catalogue said of it (compared with the file)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff_initial_s: float = 5.0
    backoff_max_s: float = 120.0


@dataclass(frozen=True)
class DayJob:
    """What every granule of a job shares: where its outputs go (``layout``), what to extract, how to reach
    G-Portal, how hard to try. Built once by the script (:meth:`from_config`); tests build the same value."""

    layout: Layout
    spec: ExtractionSpec
    connection: Connection
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: CircuitBreaker | None = None
    time_tolerance_s: float = facts.TIME_TOLERANCE_S
    template: str | None = None  # where granules are on SFTP (None: where the catalogue's file names map)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], channels: Sequence[str], geolocation: bool) -> DayJob:
        """The job of a validated configuration. ``channels`` and ``geolocation`` are the rule's parameters (its
        rerun triggers); the extra variables come from the configuration: a new set must not re-download the
        granules already extracted (it applies to granules extracted from now on; each swath records its own)."""
        from .. import config as settings
        from ..region import region_from_setting
        from ..run.connection import connection_from
        from ..run.preflight import run_template

        layout = Layout.from_config(cfg)
        transfer = cfg["transfer"]
        return cls(
            layout=layout,
            spec=ExtractionSpec(
                tuple(channels),
                bool(geolocation),
                settings.extra_variables(cfg),
                region=region_from_setting(cfg.get("region")),
                margin_scans=cfg["region_margin_scans"],
            ),
            connection=connection_from(cfg),
            policy=RetryPolicy(transfer["attempts"], transfer["backoff_initial_s"], transfer["backoff_max_s"]),
            breaker=CircuitBreaker(
                layout.breaker_state(),
                layout.stop_flag(),
                transfer["circuit_breaker_failures"],
                absent_threshold=transfer["absent_breaker_granules"],
            ),
            time_tolerance_s=cfg["catalogue"]["time_tolerance_s"],
            # the configured template, else the one the run's preflight found and recorded
            template=run_template(layout.template_choice_file(), cfg.get("remote_path_template")),
        )

    @property
    def stop_flag(self) -> Path:
        return self.layout.stop_flag()

    def swath_path(self, task: GranuleTask) -> Path:
        return self.layout.swath(task.day, task.granule_id)

    def ledger_path(self, task: GranuleTask) -> Path:
        return self.layout.ledger_entry(task.day, task.granule_id)

    def download_paths(self, task: GranuleTask) -> tuple[Path, Path]:
        """Split transfers: the checked HDF5 and its record, waiting in the scratch folder for extraction."""
        h5 = self.layout.checked_download(task.day[:4], task.day, task.granule_id)
        return h5, h5.with_suffix(".download.json")

    def outputs(self, task: GranuleTask, *, download_only: bool = False) -> SwathOutputs | DownloadOutputs:
        if download_only:
            h5, record = self.download_paths(task)
            return DownloadOutputs(h5_path=h5, record_path=record, region_key=self.spec.region_key)
        return SwathOutputs(self.swath_path(task), self.layout.scratch, self.spec)


# -- one attempt -------------------------------------------------------------------------------------------
def _session(connection: Connection) -> GPortalSFTP:
    session = connection.session()
    try:
        session.connect()
    except AuthenticationRefused as exc:
        raise SporadicAuthRefusal(str(exc)) from exc
    return session


class SharedSession:
    """One SFTP session for the granules a job collects over it: opened when first needed, dropped after a failure.

    Opening a session costs about 11 round trips (TCP, SSH key exchange, login, SFTP), 2-3 s to Tokyo: per
    granule that was as much as its transfer. A session that failed is not trusted again; the retry opens a
    new one, as a new job would. Use as a context manager; ``opened`` counts the sessions opened.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._current: GPortalSFTP | None = None
        self.opened = 0
        self.next_remote_path: str | None = None  # the granule after the current one (its read starts early)
        self.healthy = True  # the last attempt succeeded: reads are started ahead only then

    def get(self) -> GPortalSFTP:
        if self._current is None:
            self.opened += 1
            self._current = _session(self.connection)
        return self._current

    def discard(self) -> None:
        if self._current is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail in any way
                self._current.close()
            self._current = None

    def __enter__(self) -> SharedSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.discard()


@dataclass(frozen=True)
class FetchResult:
    download: Download
    extraction: swath.Extraction

    @property
    def swath(self) -> swath.Swath:
        return self.extraction.swath

    def disagreements(self, task: GranuleTask, time_tolerance_s: float) -> list[facts.Disagreement]:
        """The catalogue against the file's name and contents and the swath about to be stored."""
        record = task.catalogue or facts.CatalogueRecord(task.granule_id, size_bytes=task.size_bytes)
        return self.extraction.disagreements(record, task.remote_path, time_tolerance_s)


def _attempt(
    task: GranuleTask, *, shared: SharedSession, destination: Path, keep_download: bool, spec: ExtractionSpec
) -> FetchResult:
    """Download to ``destination``, check sizes, and extract (which proves the file readable)."""
    kept = False
    try:
        try:
            session = shared.get()
            stat_size = session.remote_size(task.remote_path)
            if stat_size != task.size_bytes:
                raise TransientTransferError(
                    f"{task.remote_path}: SFTP stat says {stat_size} bytes, the catalogue {task.size_bytes}"
                )
            then = shared.next_remote_path if shared.healthy else None  # one request at a time after a failure
            download = session.download(task.remote_path, destination, stat_size, then=then)
        except GranuleAbsent:
            raise  # an answer, not a failure: the session is sound
        except BaseException:
            shared.discard()
            shared.healthy = False
            raise
        shared.healthy = True
        try:
            extracted = spec.extract(destination, sha256=download.sha256, source_size=download.size_bytes)
        except (swath.SwathError, OSError, KeyError, ValueError) as exc:
            raise CorruptGranule(f"{task.granule_id}: downloaded file is not a readable L1B granule: {exc}") from exc
        kept = keep_download
        return FetchResult(download, extracted)
    finally:
        # The HDF5 is only a means to the swath: it never outlives the job unless another job extracts it.
        if not kept:
            with contextlib.suppress(FileNotFoundError):
                destination.unlink()


# -- what a granule job leaves behind ------------------------------------------------------------------------
@dataclass(frozen=True)
class SwathOutputs:
    """One job does everything: the outputs are the swath (or its tombstone)."""

    npy_path: Path
    scratch_dir: Path
    spec: ExtractionSpec
    keep_download = False

    @property
    def folder(self) -> Path:
        return self.npy_path.parent

    def check_space(self, task: GranuleTask, *, granules: int = 1) -> None:
        """Raise NoSpace unless ``granules`` granules like ``task`` (download and swath) fit."""
        atomic.check_free(self.scratch_dir, granules * task.size_bytes, f"the download of {task.granule_id}")
        needed = granules * self.spec.estimated_bytes()
        atomic.check_free(self.folder, needed, f"the swath of {task.granule_id}")

    def download_path(self, task: GranuleTask) -> Path:
        return self.scratch_dir / f"{task.granule_id}.h5"

    def success(self, task: GranuleTask, result: FetchResult) -> None:
        swath.write_swath(result.swath, self.npy_path)

    def permanent(self, task: GranuleTask, reason_class: str, error: str) -> None:
        _tombstone(self.npy_path, self.spec, task, reason_class, error)


@dataclass(frozen=True)
class DownloadOutputs:
    """Split transfers: this job (on a host with internet) leaves a checked HDF5 and a download record;
    :func:`extract_download` (on a compute node) turns them into the swath."""

    h5_path: Path
    record_path: Path
    region_key: str = ""  # a granule with no scan in the region is recorded as such for this region only
    keep_download = True

    @property
    def folder(self) -> Path:
        return self.h5_path.parent

    def check_space(self, task: GranuleTask, *, granules: int = 1) -> None:
        atomic.check_free(self.folder, granules * task.size_bytes, f"the download of {task.granule_id}")

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
            {
                "granule_id": task.granule_id,
                "status": TOMBSTONE_STATUS,
                "reason_class": reason_class,
                "reason": error,
                **({"region_key": self.region_key} if reason_class == Reason.OUTSIDE_REGION else {}),
            },
        )


def extract_download(task: GranuleTask, job: DayJob) -> str:
    """Second half of a split granule: the checked download becomes the swath (or the tombstone)."""
    h5_path, record_path = job.download_paths(task)
    npy_path = job.swath_path(task)
    record = json.loads(record_path.read_text(encoding="utf-8"))
    if record["status"] == TOMBSTONE_STATUS:
        _tombstone_at(npy_path, job)(task, record["reason_class"], record["reason"])
        return record["reason_class"]
    try:
        extracted = job.spec.extract(h5_path, sha256=record["sha256"], source_size=record["size_bytes"]).swath
    except swath.OutsideRegion as exc:
        log.info("%s", exc)
        return _outside_region(task, _tombstone_at(npy_path, job), job.ledger_path(task), str(exc), 1)
    try:
        swath.write_swath(extracted, npy_path)
    except OSError as exc:
        if atomic.is_no_space(exc):
            raise atomic.no_space(npy_path.parent, f"the swath of {task.granule_id}", exc) from exc
        raise
    return "archived"


def _tombstone(npy_path: Path, spec: ExtractionSpec, task: GranuleTask, reason_class: str, error: str) -> None:
    """The granule's tombstone; one for having no scan in the region names that region (its verdict alone)."""
    outside = reason_class == Reason.OUTSIDE_REGION
    write_tombstone(
        npy_path,
        task.granule_id,
        task.remote_path,
        reason_class=reason_class,
        error=error,
        n_pixels=spec.pixels,
        region=spec.region_description if outside else "",
        region_key=spec.region_key if outside else "",
    )


def _tombstone_at(npy_path: Path, job: DayJob) -> Callable[[GranuleTask, str, str], None]:
    return lambda task, reason_class, error: _tombstone(npy_path, job.spec, task, reason_class, error)


def collect_granule(
    task: GranuleTask,
    job: DayJob,
    *,
    outputs: SwathOutputs | DownloadOutputs,
    shared: SharedSession | None = None,
    in_flight: int = 1,
) -> str:
    """Produce the granule's outputs (swath, or checked download; or tombstone).

    Returns ``"archived"``, ``"absent"``, ``"invalid"`` or ``"outside_region"`` (no scan in the region).
    ``shared`` is the SFTP session it is collected over (see :func:`collect_day`); without it the granule opens
    and closes its own. ``in_flight``: how many granules the job downloads at once (its sessions); each attempt
    first checks that as many fit. The granule's facts are compared across the catalogue, its file name and
    contents (:mod:`formats.facts`): a disagreement is logged and kept in its ledger entry (status
    ``disagrees``, every source's value), which the year report lists.

    Raises :class:`GranuleFailed` when transient failures outlive the attempts, :class:`RunStopped` when the
    run was stopped by a fatal error, and :class:`FatalTransferError` for a fatal error of its own.
    """
    if shared is None:
        with SharedSession(job.connection) as own:
            return collect_granule(task, job, outputs=outputs, shared=own, in_flight=in_flight)
    ledger_path, stop_flag, breaker, policy = job.ledger_path(task), job.stop_flag, job.breaker, job.policy
    attempts = 0
    last_failure: TransientTransferError | None = None

    def attempt() -> FetchResult:
        nonlocal attempts, last_failure
        if stop_flag.is_file():
            raise RunStopped(f"run stopped: {stop_flag.read_text(encoding='utf-8').strip()}")
        try:
            outputs.check_space(task, granules=in_flight)  # before downloading what could not be kept
        except atomic.NoSpace as exc:
            raise DiskFull(str(exc)) from exc
        attempts += 1
        try:
            result = _attempt(
                task,
                shared=shared,
                destination=outputs.download_path(task),
                keep_download=outputs.keep_download,
                spec=job.spec,
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
                ledger_path,
                task,
                status="failed",
                reason_class=Reason.SUSPECT_ABSENT,
                error=str(exc),
                attempts=attempts,
            )
            raise RunStopped(f"run stopped: {stop_flag.read_text(encoding='utf-8').strip()}") from exc
        update_ledger(ledger_path, task, status="absent", reason_class=Reason.ABSENT, error=str(exc), attempts=attempts)
        outputs.permanent(task, Reason.ABSENT, str(exc))
        return "absent"
    except swath.OutsideRegion as exc:
        log.info("%s", exc)
        return _outside_region(task, outputs.permanent, ledger_path, str(exc), attempts)
    except CorruptGranule as exc:
        log.error("%s: still unreadable after %d downloads: %s", task.granule_id, attempts, exc)
        update_ledger(
            ledger_path, task, status="invalid", reason_class=Reason.INVALID, error=str(exc), attempts=attempts
        )
        outputs.permanent(task, Reason.INVALID, str(exc))
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
        update_ledger(
            ledger_path, task, status="failed", reason_class=Reason.STOPPED, error=str(exc), attempts=attempts
        )
        raise
    try:
        outputs.success(task, result)
    except OSError as exc:
        if not atomic.is_no_space(exc):
            raise
        full = DiskFull(str(atomic.no_space(outputs.folder, f"the swath of {task.granule_id}", exc)))
        _record_fatal(full, task, ledger_path, stop_flag, attempts)
        raise full from exc
    disagreements = result.disagreements(task, job.time_tolerance_s)
    for disagreement in disagreements:
        log.error("%s: %s", task.granule_id, disagreement.message)
    if disagreements:
        # Archived (the arrays are what the file holds), but its sources contradict each other: recorded with
        # every value, never settled by choosing one; the year report lists it and the run exits 3.
        update_ledger(
            ledger_path,
            task,
            status="disagrees",
            reason_class=Reason.DISAGREEMENT,
            error="; ".join(d.message for d in disagreements),
            attempts=attempts,
            disagreements=[d.to_json() for d in disagreements],
        )
    elif last_failure is not None or ledger_path.is_file():
        # Archived after failures (in this run or an earlier one): kept as history, so retries are visible.
        update_ledger(
            ledger_path,
            task,
            status="resolved",
            reason_class=last_failure.kind if last_failure else "",
            error=str(last_failure) if last_failure else "",
            attempts=attempts,
            disagreements=[],
        )
    log.info("%s: done in %.1f s after %d attempt(s)", task.granule_id, time.monotonic() - started, attempts)
    return "archived"


def _outside_region(
    task: GranuleTask, tombstone: Callable[[GranuleTask, str, str], None], ledger_path: Path, why: str, attempts: int
) -> str:
    """A granule the region's footprint test kept but none of whose scans touch the region: a tombstone of its
    own reason (not missing, never fetched again for this region) and its ledger entry."""
    update_ledger(ledger_path, task, status="outside", reason_class=Reason.OUTSIDE_REGION, error=why, attempts=attempts)
    tombstone(task, Reason.OUTSIDE_REGION, why)
    return str(Reason.OUTSIDE_REGION)


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


# -- a day's granules in one job ---------------------------------------------------------------------------
# One job per day, not per granule: a job's process start, imports and SFTP sessions are paid once for the
# day's ~29 granules (docs/design.md, item 2). The job has its share of the run's session cap (run.sessions):
# one session, or several when fewer day jobs than the cap are to run. Every granule still becomes its own
# swath (or tombstone) and ledger entry, and a granule already done by an earlier, killed job is not fetched
# again.


@dataclass(frozen=True)
class DayResult:
    outcomes: dict[str, str]  # granule_id -> "archived", "absent", "invalid" (or "downloaded", split transfers)
    failed: dict[str, str]  # granule_id -> why it is not done
    reused: int  # granules an earlier job had already finished
    sessions_opened: int
    stopped: str = ""  # why the run stopped (a fatal error, a breaker), when it did

    def record(self, day: str) -> dict[str, Any]:
        """The day record (the day job's output): each granule's outcome, no timestamps (same run, same bytes)."""
        return {"day": day, "granules": dict(sorted(self.outcomes.items()))}

    def failure_message(self, day: str) -> str:
        why = self.stopped or f"first: {next(iter(self.failed.values()))}"
        return (
            f"{day}: {len(self.failed)} of {len(self.failed) + len(self.outcomes)} granules not done ({why}); "
            f"the next run retries them, and keeps the {len(self.outcomes)} done"
        )


def read_day_tasks(manifest_path: Path, day: str, template: str | None) -> list[GranuleTask]:
    """A day's granules in time order, from its manifest (the csv module: a day job needs no pandas)."""
    with open(manifest_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [
        GranuleTask(
            granule_id=row["granule_id"],
            day=day,
            remote_path=remote_layout.apply_template(row["remote_path"], template),
            size_bytes=int(row["size_bytes"]),
            template=template or "",
            catalogue=facts.CatalogueRecord.from_row(row),
        )
        for row in rows
    ]


def finished_outcome(npy_path: Path, spec: ExtractionSpec) -> str | None:
    """The outcome an earlier job left for a granule, or None when its swath must be made (again).

    A swath counts when both files exist (its sidecar is written last) and it holds the configured channels
    and positions; a tombstone counts as it is (absent granules are looked for by the recheck job). The extra
    variables do not count: a new set applies to granules extracted from now on (docs/configuration.md).
    """
    try:
        side = json.loads(swath.sidecar_path(npy_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not npy_path.is_file():
        return None
    if side.get("status") == TOMBSTONE_STATUS:
        reason = str(side.get("reason_class") or "absent")
        if reason == Reason.OUTSIDE_REGION and side.get("region_key", "") != spec.region_key:
            return None  # no scan in another region: this one may have some
        return reason
    try:
        meta = swath.SwathMetadata.from_json_dict(side)
    except (swath.SwathError, KeyError, TypeError, ValueError):
        return None
    return "archived" if spec.holds(meta) else None


def collect_day(tasks: list[GranuleTask], job: DayJob, *, download_only: bool = False, sessions: int = 1) -> DayResult:
    """Collect a day's granules over up to ``sessions`` SFTP sessions (:func:`collect_granule` each).

    Each session is a worker that takes the next granule in time order, and with it the one after (whose read
    starts ahead, see :class:`DayClaims`), so a worker's granules stay in time order and a read started ahead
    is never of a granule another worker takes. One session: the granules one after another, in this thread.

    Granules an earlier, killed job finished are kept as they are. A granule whose transient failures outlive
    its attempts does not stop the day: the others are still collected, and the day is incomplete. After a
    fatal error the run's stop flag is set, so each remaining granule is recorded as stopped at once, without a
    connection, by whichever worker takes it. ``download_only``: split transfers' first half (checked
    downloads, extracted by :func:`extract_day` elsewhere).
    """
    done = {task.granule_id: _done_before(task, job, download_only) for task in tasks}
    todo = [task for task in tasks if done[task.granule_id] is None]
    tally = DayTally({gid: str(outcome) for gid, outcome in done.items() if outcome is not None})
    workers = max(1, min(sessions, len(todo)))
    claims = DayClaims(todo, workers)
    if workers > 1:
        log.info("%d granules to collect over %d sessions", len(todo), workers)
        _run_workers(workers, lambda: _collect_claims(claims, job, tally, download_only=download_only), claims)
    else:
        _collect_claims(claims, job, tally, download_only=download_only)
    reused = len(tasks) - len(todo)
    if reused:
        log.info("%d of %d granules were done by an earlier job", reused, len(tasks))
    return DayResult(dict(tally.outcomes), dict(tally.failed), reused, tally.sessions_opened, tally.stopped)


class DayClaims:
    """A day's granules still to collect, in time order, handed out to ``workers`` session workers.

    A worker takes its next granule (:meth:`next`) and, while it works on it, the one after
    (:meth:`after`): the one whose read its session starts ahead, and so the one it takes next. The one after
    is claimed only while more granules wait than the other workers still take one each: at the end of the
    day a granule goes to the first worker free for it, not to one busy with another (read-ahead saves a
    round trip per granule; a worker's queue of two would cost the day up to a whole granule).
    """

    def __init__(self, tasks: Sequence[GranuleTask], workers: int) -> None:
        self._waiting = list(reversed(tasks))
        self.workers = workers
        self._lock = threading.Lock()
        self.aborted = threading.Event()  # a worker failed unexpectedly: the others take nothing more

    def next(self) -> GranuleTask | None:
        with self._lock:
            return self._waiting.pop() if self._waiting and not self.aborted.is_set() else None

    def after(self) -> GranuleTask | None:
        with self._lock:
            if len(self._waiting) < self.workers or self.aborted.is_set():
                return None
            return self._waiting.pop()


@dataclass
class DayTally:
    """What the workers of a day job found, each granule written by the one worker that collected it."""

    outcomes: dict[str, str]
    failed: dict[str, str] = field(default_factory=dict)
    stopped: str = ""
    sessions_opened: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def done(self, task: GranuleTask, outcome: str) -> None:
        with self._lock:
            self.outcomes[task.granule_id] = outcome

    def fail(self, task: GranuleTask, exc: Exception) -> None:
        with self._lock:
            self.failed[task.granule_id] = str(exc)
            if not self.stopped and not isinstance(exc, GranuleFailed):
                self.stopped = str(exc)

    def count_sessions(self, opened: int) -> None:
        with self._lock:
            self.sessions_opened += opened


def _collect_claims(claims: DayClaims, job: DayJob, tally: DayTally, *, download_only: bool) -> None:
    """One worker: granules from ``claims`` over one session until none is left."""
    workers = claims.workers
    with SharedSession(job.connection) as shared:
        try:
            task = claims.next()
            while task is not None and not claims.aborted.is_set():
                # While this granule is written and extracted, the next one's bytes are already on their way;
                # not after a failure (a struggling server gets one request at a time) nor when the disk holds
                # no more (each worker: this granule and the next).
                following = claims.after()
                outputs = job.outputs(task, download_only=download_only)
                ahead = following is not None and _has_room(outputs, task, granules=2 * workers)
                shared.next_remote_path = following.remote_path if following is not None and ahead else None
                joblog.log_reached(log, task.granule_id)  # the interim report reads it: the granule was reached
                try:
                    outcome = collect_granule(task, job, outputs=outputs, shared=shared, in_flight=workers)
                except (GranuleFailed, RunStopped, FatalTransferError) as exc:
                    log.error("%s: %s", task.granule_id, exc)
                    tally.fail(task, exc)
                else:
                    tally.done(task, outcome)
                    if not download_only:  # split transfers mark the granule once it is extracted
                        progress.mark_finished(job.layout, task.granule_id, outcome)
                task = following if following is not None else claims.next()
        finally:
            tally.count_sessions(shared.opened)


def _run_workers(count: int, work: Callable[[], None], claims: DayClaims) -> None:
    """``work`` in ``count`` threads; the first unexpected error ends the claims and is raised here once the
    workers are done (each finishes the granule it holds: its files are written whole or not at all)."""
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            work()
        except BaseException as exc:  # raised again in the job's own thread
            errors.append(exc)
            claims.aborted.set()

    threads = [threading.Thread(target=worker, name=f"session-{n + 1}", daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _done_before(task: GranuleTask, job: DayJob, download_only: bool) -> str | None:
    """The outcome an earlier job left for ``task`` (its swath or tombstone; with split transfers, also its
    checked download), or None."""
    outcome = finished_outcome(job.swath_path(task), job.spec)
    if outcome is None and download_only:
        outcome = downloaded_outcome(*job.download_paths(task), region_key=job.spec.region_key)
    return outcome


def _has_room(outputs: SwathOutputs | DownloadOutputs, task: GranuleTask, *, granules: int = 2) -> bool:
    """Whether ``granules`` granules like ``task`` fit: the bytes read ahead must be bytes that can be kept."""
    try:
        outputs.check_space(task, granules=granules)
    except atomic.NoSpace:
        return False
    return True


def extract_day(tasks: list[GranuleTask], job: DayJob) -> DayResult:
    """Split transfers, on a compute node: turn the day's checked downloads into swaths, deleting each HDF5
    once its swath exists. Granules whose swath an earlier job finished are kept as they are."""
    outcomes: dict[str, str] = {}
    reused = 0
    for task in tasks:
        done = finished_outcome(job.swath_path(task), job.spec)
        if done is None:
            done = extract_download(task, job)
            progress.mark_finished(job.layout, task.granule_id, done)
        else:
            reused += 1
        outcomes[task.granule_id] = done
        for leftover in job.download_paths(task):
            leftover.unlink(missing_ok=True)
    return DayResult(outcomes, {}, reused, 0)


def downloaded_outcome(h5_path: Path, record_path: Path, region_key: str = "") -> str | None:
    """Split transfers: the outcome of a download an earlier job finished (None: download it); a granule with no
    scan in another region is downloaded again."""
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not h5_path.is_file():
        return None
    status = str(record.get("status"))
    if status != TOMBSTONE_STATUS:
        return status
    reason = str(record.get("reason_class"))
    return None if reason == Reason.OUTSIDE_REGION and record.get("region_key", "") != region_key else reason


# -- absent granules, looked for again --------------------------------------------------------------------
@dataclass(frozen=True)
class Recheck:
    checked: tuple[str, ...]
    arrived: tuple[str, ...]
    paths: dict[str, str]  # where each granule that arrived is on the server


def recheck_absent(entries: Mapping[str, Mapping[str, Any]], job: DayJob) -> Recheck:
    """Look (one ``stat`` each, in one session, no download) for granules recorded as absent.

    A granule that is on the server again loses its tombstone and its day's record, so its day job runs again
    (and fetches that granule alone); its ledger entry says it reappeared. One still absent keeps everything as
    it is, apart from the time of the look.
    """
    arrived, paths = [], {}
    with _session(job.connection) as session:
        for granule_id, entry in sorted(entries.items()):
            day = str(entry["day"])
            remote_path = remote_layout.apply_template(str(entry["remote_path"]), job.template)
            found = session.exists(remote_path)
            log.info("%s: %s", granule_id, f"back on the server at {remote_path}" if found else "still absent")
            ledger_mod.record_recheck(job.layout.ledger_entry(day, granule_id), found=found, remote_path=remote_path)
            if found:
                arrived.append(granule_id)
                paths[granule_id] = remote_path
                npy = job.layout.swath(day, granule_id)
                for stale in (npy, swath.sidecar_path(npy), job.layout.day_record(day)):
                    stale.unlink(missing_ok=True)
    return Recheck(tuple(sorted(entries)), tuple(arrived), paths)


def fetch_reappeared(
    recheck: Recheck,
    entries: Mapping[str, Mapping[str, Any]],
    catalogue: Mapping[str, facts.CatalogueRecord],
    job: DayJob,
) -> list[Path]:
    """Fetch the granules a recheck found again, as swath files (for a sealed year, which has no granule jobs).

    A granule that cannot be fetched now stays "reappeared" in the ledger and is looked for again by the next run.
    """
    fetched = []
    with SharedSession(job.connection) as shared:  # one session for all of them
        for granule_id in recheck.arrived:
            day = str(entries[granule_id]["day"])
            record = catalogue[granule_id]
            path = recheck.paths[granule_id]
            task = GranuleTask(granule_id, day, path, record.size_bytes, job.template or "", record)
            try:
                outcome = collect_granule(task, job, outputs=job.outputs(task), shared=shared)
            except (GranuleFailed, RunStopped, TransferError) as exc:
                log.warning("%s: back on the server but not fetched (%s); looked for again next run", granule_id, exc)
                ledger_mod.record_recheck(job.ledger_path(task), found=True, remote_path=task.remote_path)
                continue
            if outcome == "archived":
                fetched.append(job.swath_path(task))
    return fetched
