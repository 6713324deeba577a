"""The year stage: build a year's archive from its swaths and split it into parts.

Tombstones (granules that could not be archived) are skipped here: the report lists them from the ledger.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from ..formats import archive
from ..formats.swath import is_tombstone
from ..layout import Layout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class YearArchiveSummary:
    archive: Path
    swaths: int
    tombstones: int
    superseded: tuple[Path, ...]


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def archive_path_for(layout: Layout, first_day: date, day_after_last: date, geolocation: bool) -> Path:
    """Where the archive of a year's requested period lives (the legacy name carries the period)."""
    return layout.archives_dir() / archive.archive_name(_midnight(first_day), _midnight(day_after_last), geolocation)


def superseded_archives(new_archive: Path, year: int) -> list[Path]:
    """Other archives of the same year in the folder: earlier partial-year versions this one replaces."""
    stem_prefix = new_archive.name.split(f"_{year}", 1)[0]
    out = []
    for candidate in new_archive.parent.glob(f"{stem_prefix}_{year}????_??????_to_*.npz"):
        if candidate.name != new_archive.name and "_part_" not in candidate.name:
            out.append(candidate)
    return sorted(out)


def build_year_archive(
    swath_paths: Sequence[Path],
    archive_path: Path,
    *,
    first_day: date,
    day_after_last: date,
    config_digest: str,
) -> YearArchiveSummary:
    """Write the archive of one year's requested period, then remove superseded partial archives."""
    real = [p for p in swath_paths if not is_tombstone(p)]
    notes = []
    tombstones = len(swath_paths) - len(real)
    if tombstones:
        notes.append(f"{tombstones} catalogued granule(s) could not be archived; see the year's report")
    archive.write_archive(
        archive_path,
        real,
        period=(_midnight(first_day), _midnight(day_after_last)),
        config_digest=config_digest,
        notes=notes,
    )
    old = superseded_archives(archive_path, first_day.year)
    for path in old:
        log.info("removing superseded partial-year archive %s", path)
        path.unlink()
    return YearArchiveSummary(archive_path, len(real), tombstones, tuple(old))


def build_parts(archive_path: Path, parts_dir: Path, part_size: int) -> list[Path]:
    """Split the archive into parts inside a temporary folder, then move the folder into place."""
    parts_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{parts_dir.name}.tmp-", dir=parts_dir.parent))
    try:
        parts = archive.partition_archive(archive_path, staging, part_size=part_size)
        if parts_dir.exists():
            shutil.rmtree(parts_dir)
        os.replace(staging, parts_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [parts_dir / p.name for p in parts]
