"""Where a run stands, from the files it has written: listings, swaths, archives, the ledger, progress marks.

``amsr2flow status`` and the progress line a running workflow prints both use :func:`collect_status`. It reads
only what the run itself writes (not Snakemake's internals), so it answers during a run, after a crash and
after the end, from any machine that sees the output folder.

It is meant to be fast on the full record (~140,000 granules): a year's listing is one CSV, a sealed year's
count is its archive's index, a pending year's finished swaths are found by listing its day folders (names
only, no per-file ``stat``), and the rate comes from *progress marks*: an empty file per finished granule in a
folder per hour (``.state/progress/YYYYMMDDTHH/HHMMSS_<granule_id>.<outcome>``), so the last hour's work is the
names in two folders. The marks are written by the granule jobs (``run.progress.mark_finished``); empty files in fresh
names are safe on NFS, where appends to one shared journal from many nodes are not.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .plan import Layout, RunPlan, YearPlan
from .run.progress import RATE_WINDOW, Finished, prune_marks, recent_marks
from .run.reasons import ACCEPTABLE

#: Ledger statuses of granules that will not be archived without a change on G-Portal's side.
SETTLED_MISSING = tuple(str(r) for r in ACCEPTABLE)
LAST_ERRORS = 5


# -- per-year counts -----------------------------------------------------------------------------------------
@dataclass
class YearStatus:
    year: int
    period: str
    expected_days: int
    listed_days: int
    listed: int
    archived: int
    failed: int
    absent: int
    invalid: int
    pending: int
    archive: str | None
    sealed: bool
    size_bytes: int = 0
    pending_bytes: int = 0

    @property
    def state(self) -> str:
        if self.listed_days < self.expected_days:
            return "listing"
        if self.pending:
            return "collecting"
        if self.failed:
            return "failed granules"
        return "archived" if self.archive else "archiving"


@dataclass
class RunStatus:
    output_dir: str
    checked_utc: str
    running: str | None
    years: list[YearStatus]
    rate_granules_per_hour: float
    rate_mb_per_s: float
    eta_hours: float | None
    last_errors: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None
    #: what the rate is measured over, in words ("the 12 min since the run started", ...)
    rate_over: str = "the last hour"
    #: why there is no ETA when nothing finished to measure a rate by
    eta_unknown: str = "nothing finished in the last hour"

    def totals(self) -> dict[str, int]:
        keys = ("listed", "archived", "failed", "absent", "invalid", "pending")
        return {k: sum(getattr(y, k) for y in self.years) for k in keys}

    def to_json(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k != "years"},
            "years": [asdict(y) | {"state": y.state} for y in self.years],
            "totals": self.totals(),
        }


def _listing_ids(layout: Layout, year_plan: YearPlan) -> tuple[dict[str, tuple[str, int]], int]:
    """granule_id -> (day, size) of what is listed so far, and how many days are listed."""
    import pandas as pd

    first, after = year_plan.first_day, year_plan.day_after_last
    listing = layout.year_listing(year_plan.year, year_plan.period)
    columns = ["granule_id", "day", "size_bytes"]
    if listing.is_file():
        frame = pd.read_csv(listing, usecols=columns, dtype=str, keep_default_na=False)
        days = (after - first).days
    else:
        frames, days = [], 0
        day = first
        while day < after:
            manifest = layout.day_manifest(day)
            if manifest.is_file():
                days += 1
                part = pd.read_csv(manifest, usecols=["granule_id", "size_bytes"], dtype=str, keep_default_na=False)
                frames.append(part.assign(day=day.isoformat()))
            day += timedelta(days=1)
        frame = pd.concat(frames) if frames else pd.DataFrame(columns=columns)
    sizes = pd.to_numeric(frame["size_bytes"], errors="coerce").fillna(0).astype("int64")
    return dict(zip(frame["granule_id"], zip(frame["day"], sizes.tolist(), strict=True), strict=True)), days


def _finished_swaths(layout: Layout, year: int) -> set[str]:
    """Granule ids with a finished swath (its sidecar is written last) under swaths/YYYY: names only."""
    root = layout.root / "swaths" / str(year)
    found: set[str] = set()
    try:
        days = os.listdir(root)
    except OSError:
        return found
    for day in days:
        try:
            names = os.listdir(root / day)
        except OSError:
            continue
        found.update(n[:-5] for n in names if n.endswith(".json"))
    return found


def _archived_ids(path: Path) -> set[str]:
    from .formats.archive import Archive, ArchiveError

    try:
        with Archive(path) as archive:
            return set(archive.table["granule_id"].tolist())
    except (ArchiveError, OSError, ValueError):
        return set()


def year_status(
    layout: Layout,
    year_plan: YearPlan,
    archive_path: Path,
    ledger: Mapping[str, Mapping[str, Any]],
    listed: Mapping[str, tuple[str, int]],
    listed_days: int,
) -> YearStatus:
    year = year_plan.year
    archive_exists = archive_path.is_file()
    done = _archived_ids(archive_path) if archive_exists else set()
    done |= _finished_swaths(layout, year)
    counts = dict.fromkeys(("archived", "failed", "absent", "invalid", "pending"), 0)
    pending_bytes = outside = 0
    for granule_id, (_day, size) in listed.items():
        entry = ledger.get(granule_id)
        status = entry.get("status") if entry else None
        if status == "outside":  # no scan in the region: not the run's to collect
            outside += 1
            continue
        if status in SETTLED_MISSING:
            counts[status] += 1
        elif granule_id in done:
            counts["archived"] += 1
        elif status == "failed":
            counts["failed"] += 1
        else:
            counts["pending"] += 1
            pending_bytes += size
    return YearStatus(
        year=year,
        period=year_plan.period,
        expected_days=len(year_plan.days),
        listed_days=listed_days,
        listed=len(listed) - outside,
        archive=str(archive_path) if archive_exists else None,
        sealed=year_plan.complete and archive_exists,
        size_bytes=sum(size for _, size in listed.values()),
        pending_bytes=pending_bytes,
        **counts,
    )


def _last_errors(ledgers: Iterable[Mapping[str, Mapping[str, Any]]], limit: int = LAST_ERRORS) -> list[dict]:
    # an outcome, not an error: resolved ones, and granules with no scan in the region
    entries = [e for ledger in ledgers for e in ledger.values() if e.get("status") not in ("resolved", "outside", None)]
    entries.sort(key=lambda e: (str(e.get("last_attempt_utc", "")), str(e.get("granule_id", ""))), reverse=True)
    return [
        {
            "granule_id": e.get("granule_id", ""),
            "time_utc": e.get("last_attempt_utc", ""),
            "status": e.get("status", ""),
            "reason_class": e.get("reason_class", ""),
            "error": str(e.get("last_error", ""))[:300],
        }
        for e in entries[:limit]
    ]


def collect_status(cfg: Mapping[str, Any], now: datetime | None = None) -> RunStatus:
    """The status of the run that ``cfg`` (a validated configuration) describes."""
    from .ledger import read_ledger
    from .run.lock import RunLock

    now = now or datetime.now(timezone.utc)
    plan = RunPlan.from_config(cfg)
    layout = plan.layout
    years, ledgers, sizes = [], [], {}
    for year, year_plan in plan.years.items():
        ledger = read_ledger(layout.ledger_dir(year))
        ledgers.append(ledger)
        listed, listed_days = _listing_ids(layout, year_plan)
        sizes.update((gid, size) for gid, (_, size) in listed.items())
        years.append(year_status(layout, year_plan, plan.archive(year), ledger, listed, listed_days))
    lock = RunLock(layout.state_dir())
    running = lock.held_by()
    rate_span = active_span(recent_marks(layout, now), now, lock.started_utc(), running=running is not None)
    marks = rate_span.marks
    rate = len(marks) * 3600 / rate_span.seconds
    mark_bytes = sum(sizes.get(m.granule_id, 0) for m in marks if m.outcome == "archived")
    pending = sum(y.pending for y in years)
    stop = layout.stop_flag()
    return RunStatus(
        output_dir=str(layout.root),
        checked_utc=now.isoformat(timespec="seconds"),
        running=running,
        years=years,
        rate_granules_per_hour=round(rate, 1),
        rate_mb_per_s=round(mark_bytes / rate_span.seconds / 1e6, 3),
        eta_hours=round(pending / rate, 2) if rate and pending else (0.0 if not pending else None),
        last_errors=_last_errors(ledgers),
        stopped=stop.read_text(encoding="utf-8").strip() if stop.is_file() else None,
        rate_over=rate_span.over,
        eta_unknown=rate_span.eta_unknown,
    )


#: The shortest span a rate is measured over: a few granules in the first seconds of a run say little.
MIN_RATE_SPAN_S = 60.0


@dataclass(frozen=True)
class RateSpan:
    """The granules finished within the run's active time of the last hour, and that time."""

    marks: list[Finished]
    seconds: float
    over: str  # the span in words
    eta_unknown: str  # why there is no ETA when ``marks`` is empty


def active_span(marks: list[Finished], now: datetime, started: datetime | None, *, running: bool) -> RateSpan:
    """The rate's span: the run's own active time within the last hour, so neither the quiet before a run
    (earlier runs' marks are left out) nor the quiet after it dilutes its rate.

    It begins at the later of an hour ago and the start of the run (the run lock's record); it ends now while a
    run goes on, else at the last granule the run finished.
    """
    window_start = now - RATE_WINDOW
    young = started is not None and started > window_start
    begin = started if young and started is not None else window_start
    own = [m for m in marks if m.time_utc >= begin.replace(microsecond=0)]
    end = now if running or not own else max(own[-1].time_utc, begin)
    seconds = max((end - begin).total_seconds(), MIN_RATE_SPAN_S)
    minutes = f"{seconds / 60:.0f} min"
    if running:
        over = f"the {minutes} since the run started" if young else "the last hour"
        unknown = "no granule finished yet" if young else "nothing finished in the last hour"
    elif own:
        over = f"the last run's {minutes} of work, up to its last granule at {end:%H:%M} UTC"
        unknown = "nothing finished in the last hour"
    else:
        over, unknown = "the last hour", "nothing finished in the last hour"
    return RateSpan(own, seconds, over, unknown)


# -- what people read -----------------------------------------------------------------------------------------
def format_duration(hours: float | None, unknown: str = "nothing finished in the last hour") -> str:
    if hours is None:
        return f"unknown ({unknown})"
    minutes = round(hours * 60)
    if minutes < 1:
        return "under a minute"
    days, rest = divmod(minutes, 24 * 60)
    h, m = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    parts += [f"{h} h"] if h or days else []
    parts += [f"{m} min"] if not days else []
    return " ".join(parts)


def progress_line(status: RunStatus) -> str:
    """One line for the running workflow's output: counts, rate, ETA."""
    t = status.totals()
    line = (
        f"amsr2flow progress: {t['archived']} of {t['listed']} listed granules archived, {t['pending']} pending, "
        f"{t['failed']} failed, {t['absent'] + t['invalid']} absent/invalid; "
        f"{status.rate_granules_per_hour:.0f} granules/h, {status.rate_mb_per_s:.1f} MB/s"
    )
    if t["pending"]:
        line += f"; ETA {format_duration(status.eta_hours, status.eta_unknown)}"
    return line


def format_status(status: RunStatus) -> str:
    """The table ``amsr2flow status`` prints."""
    lines = [f"amsr2flow status of {status.output_dir} at {status.checked_utc}"]
    lines.append(f"  run: {'in progress, ' + status.running if status.running else 'none running'}")
    if status.stopped:
        lines.append(f"  stopped by: {status.stopped}")
    header = f"  {'year':<6}{'days':>9}{'listed':>9}{'archived':>10}{'failed':>8}{'absent':>8}{'invalid':>9}"
    header += f"{'pending':>9}  state"
    lines += ["", header]
    for y in status.years:
        lines.append(
            f"  {y.year:<6}{f'{y.listed_days}/{y.expected_days}':>9}{y.listed:>9}{y.archived:>10}{y.failed:>8}"
            f"{y.absent:>8}{y.invalid:>9}{y.pending:>9}  {y.state}{' (sealed)' if y.sealed else ''}"
        )
    t = status.totals()
    lines.append(
        f"  {'all':<6}{'':>9}{t['listed']:>9}{t['archived']:>10}{t['failed']:>8}{t['absent']:>8}{t['invalid']:>9}"
        f"{t['pending']:>9}"
    )
    lines += [
        "",
        f"  rate: {status.rate_granules_per_hour:.0f} granules/h, {status.rate_mb_per_s:.2f} MB/s "
        f"over {status.rate_over}",
        f"  ETA for the {t['pending']} pending: {format_duration(status.eta_hours, status.eta_unknown)}"
        if t["pending"]
        else "  nothing pending",
    ]
    unlisted = sum(y.expected_days - y.listed_days for y in status.years)
    if unlisted:
        lines.append(f"  {unlisted} day(s) not listed yet: their granules are not counted (the ETA grows)")
    if status.last_errors:
        lines += ["", "  last errors:"]
        lines += [
            f"    {e['time_utc']} {e['granule_id']}: {e['reason_class']}: {e['error'][:140]}"
            for e in status.last_errors
        ]
    if t["failed"] and not status.running:
        lines += ["", "  failed granules are retried by rerunning the same command"]
    return "\n".join(lines)


def status_json(status: RunStatus) -> str:
    return json.dumps(status.to_json(), indent=2, sort_keys=True)


class ProgressReporter(threading.Thread):
    """Prints :func:`progress_line` every ``interval_s`` seconds while a workflow runs (in its main process).

    A daemon thread: it ends with the process. A failure to read the folder skips one line, never the run.
    """

    def __init__(self, cfg: Mapping[str, Any], interval_s: float, write: Callable[[str], None] | None = None) -> None:
        super().__init__(name="amsr2flow-progress", daemon=True)
        self.cfg = cfg
        self.interval_s = interval_s
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.stopped = threading.Event()

    def run(self) -> None:
        layout = Layout.from_config(self.cfg)
        while not self.stopped.wait(self.interval_s):
            try:
                now = datetime.now(timezone.utc)
                self.write(progress_line(collect_status(self.cfg, now)))
                prune_marks(layout, now)
            except Exception as exc:  # progress is advice: the run goes on whatever happens here
                self.write(f"amsr2flow progress: not available this time ({exc})")

    def stop(self) -> None:
        self.stopped.set()


#: Snakemake's scheduler says these before every job it starts; over a year's ~10,600 jobs they are the noise.
SCHEDULER_CHATTER = re.compile(r"^(Select jobs to execute\.\.\.|Execute \d+ jobs\.\.\.)$")


def quiet_scheduler_chatter() -> None:
    """Drop the scheduler's per-job lines from the console (``--quiet rules progress`` keeps them).

    A filter on the console handlers of Snakemake's logger (the standard ``logging`` hook; Snakemake has no
    option for these two lines). Records still reach logger plugins and the run's log file under .snakemake/.
    """
    import logging

    def chatter(record: logging.LogRecord) -> bool:
        return not SCHEDULER_CHATTER.match(record.getMessage())

    for handler in logging.getLogger("snakemake.logging").handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) in (sys.stderr, sys.stdout):
            handler.addFilter(chatter)


def show_the_plan_in_dry_runs(output_settings: Any) -> None:
    """Let a dry run (``snakemake -n``) print its plan although the profiles set ``quiet: [rules, progress]``.

    Snakemake files the "Job stats" table under ``progress`` and ends a dry run quiet about both before it says
    anything, so the profiles' setting, meant for the ~10,600 per-job lines of a real run, hid the plan. In a
    dry run this lifts ``progress`` from Snakemake's output settings (``workflow.output_settings``; its console
    filters read the same set), so it prints what ``snakemake -n --quiet rules`` prints: the job counts per
    rule, why they run, and that the catalogue checkpoint adds the day jobs. A real run keeps the setting.
    """
    quiet = getattr(output_settings, "quiet", None)
    if not getattr(output_settings, "dryrun", False) or not isinstance(quiet, set):
        return
    from snakemake.settings.enums import Quietness

    quiet.discard(Quietness.PROGRESS)
