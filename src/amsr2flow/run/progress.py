"""Progress marks: an empty file per finished granule, in a folder per hour
(``.state/progress/YYYYMMDDTHH/HHMMSS_<granule_id>.<outcome>``), written by the day jobs and read by
``amsr2flow status`` and the progress line for the rate (the last hour's work is the names in two folders).
Empty files in fresh names are safe on NFS, where appends to one shared journal from many nodes are not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..plan import Layout

PROGRESS_DIR = "progress"
HOUR_FORMAT = "%Y%m%dT%H"
#: Granule outcomes a progress mark can record (the granule job's final word on the granule).
FINISHED_OUTCOMES = ("archived", "absent", "invalid", "outside_region")
RATE_WINDOW = timedelta(hours=1)


def progress_root(layout: Layout) -> Path:
    return layout.state_dir() / PROGRESS_DIR


def mark_finished(layout: Layout, granule_id: str, outcome: str, now: datetime | None = None) -> None:
    """Note that a granule job ended with ``outcome`` now (best effort: a full disk must not fail the job)."""
    now = now or datetime.now(timezone.utc)
    folder = progress_root(layout) / now.strftime(HOUR_FORMAT)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # O_EXCL on a fresh name: atomic on every file system, and nothing is ever half-written (it is empty).
        fd = os.open(folder / f"{now:%H%M%S}_{granule_id}.{outcome}", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o666)
        os.close(fd)
    except OSError:
        pass


@dataclass(frozen=True)
class Finished:
    granule_id: str
    outcome: str
    time_utc: datetime


def recent_marks(layout: Layout, now: datetime, window: timedelta = RATE_WINDOW) -> list[Finished]:
    """The granules finished within ``window`` before ``now`` (read from folder and file names only)."""
    root = progress_root(layout)
    since = now - window
    out: list[Finished] = []
    hour = since.replace(minute=0, second=0, microsecond=0)
    while hour <= now:
        folder = root / hour.strftime(HOUR_FORMAT)
        try:
            names = os.listdir(folder)
        except OSError:
            names = []
        for name in names:
            stem, _, outcome = name.rpartition(".")
            clock, _, granule_id = stem.partition("_")
            if len(clock) != 6 or not clock.isdigit() or not granule_id:
                continue
            when = hour.replace(minute=int(clock[2:4]), second=int(clock[4:6]))
            if since <= when <= now:
                out.append(Finished(granule_id, outcome, when))
        hour += timedelta(hours=1)
    return sorted(out, key=lambda f: (f.time_utc, f.granule_id))


def prune_marks(layout: Layout, now: datetime, keep: timedelta = timedelta(hours=3)) -> None:
    """Remove hour folders older than ``keep`` (called by the running workflow, never by ``status``)."""
    root = progress_root(layout)
    if not root.is_dir():
        return
    oldest = (now - keep).strftime(HOUR_FORMAT)
    for folder in root.iterdir():
        if folder.is_dir() and folder.name < oldest:
            for item in folder.iterdir():
                item.unlink(missing_ok=True)
            folder.rmdir()
