"""The archive stage (rules in archives.smk): build a year's archive from its swaths and split it into parts.

Tombstones (granules that could not be archived) are skipped here: the report lists them from the ledger.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np

from .. import atomic
from ..formats import archive
from ..formats.swath import is_tombstone, sidecar_path, tombstone_reason
from ..run.reasons import Reason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class YearArchiveSummary:
    archive: Path
    swaths: int
    tombstones: int
    superseded: tuple[Path, ...]


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


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
    compression: str = archive.DEFAULT_COMPRESSION,
) -> YearArchiveSummary:
    """Write the archive of one year's requested period, then remove superseded partial archives."""
    real = [p for p in swath_paths if not is_tombstone(p)]
    # granules with no scan in the region are not the run's to archive: not counted as "could not be archived"
    tombstones = len(swath_paths) - len(real) - sum(tombstone_reason(p) == Reason.OUTSIDE_REGION for p in swath_paths)
    # compressed members are smaller than the swath files: their sum bounds the archive's size
    atomic.check_free(archive_path.parent, sum(p.stat().st_size for p in real), f"the archive {archive_path.name}")
    try:
        archive.write_archive(
            archive_path,
            real,
            period=(_midnight(first_day), _midnight(day_after_last)),
            config_digest=config_digest,
            notes=_notes(tombstones),
            compression=compression,
        )
    except OSError as exc:
        if atomic.is_no_space(exc):
            raise atomic.no_space(archive_path.parent, f"the archive {archive_path.name}", exc) from exc
        raise
    old = superseded_archives(archive_path, first_day.year)
    for path in old:
        log.info("removing superseded partial-year archive %s", path)
        path.unlink()
    return YearArchiveSummary(archive_path, len(real), tombstones, tuple(old))


class SwathsMissing(RuntimeError):
    """Day records list swaths that are gone (deleted by hand?); their records were removed so that the next
    run's day jobs fetch them again."""


def swaths_of_days(day_records: Sequence[Path], swath_path_for: Callable[[str, str], Path]) -> list[Path]:
    """The swath (or tombstone) of every granule the day jobs recorded, day by day.

    Raises :class:`SwathsMissing` when some are gone, after removing the records of their days: Snakemake
    cannot see that files beside a day record went missing, and the day jobs fetch only what is missing.
    """
    paths, missing = [], {}
    for record_path in day_records:
        record = json.loads(Path(record_path).read_text(encoding="utf-8"))
        day_paths = [swath_path_for(record["day"], granule_id) for granule_id in record["granules"]]
        gone = [p for p in day_paths if not (p.is_file() and sidecar_path(p).is_file())]
        if gone:
            missing[Path(record_path)] = gone
        paths += day_paths
    if missing:
        for record_path in missing:
            record_path.unlink(missing_ok=True)
        count = sum(len(gone) for gone in missing.values())
        first = next(iter(missing.values()))[0]
        raise SwathsMissing(
            f"{count} swath(s) of {len(missing)} day(s) are missing (first: {first}); rerun the same command: "
            "their day jobs fetch them again"
        )
    return paths


def remove_swaths(swath_paths: Sequence[Path]) -> None:
    """Remove archived swaths, their sidecars and the day folders they leave empty (complete years)."""
    folders = set()
    for npy in swath_paths:
        npy.unlink(missing_ok=True)
        sidecar_path(npy).unlink(missing_ok=True)
        folders.add(npy.parent)
    for folder in sorted(folders):
        with contextlib.suppress(OSError):  # not empty: the user keeps something there
            folder.rmdir()


def _notes(not_archived: int) -> list[str]:
    return (
        [f"{not_archived} catalogued granule(s) could not be archived; see the year's report"] if not_archived else []
    )


def add_to_archive(archive_path: Path, swath_paths: Sequence[Path], *, not_archived: int) -> int:
    """Add swaths to an existing archive, in time order, replacing it atomically; returns its swath count.

    The archive's swaths are copied as they are (compressed members, no decompression), so the result has the
    bytes a build from every swath would have; ``not_archived`` is the count of catalogued granules still
    missing (the provenance says it, as a fresh build would).
    """
    with archive.Archive(archive_path) as source:
        period = source.period
        digest = str(source.provenance.get("config_digest", ""))
        compression = archive.compression_of(source.provenance)  # an archive keeps its own compression
    _merge(
        archive_path,
        swath_paths,
        archive_path,
        period=period,
        config_digest=digest,
        notes=_notes(not_archived),
        compression=compression,
    )
    with archive.Archive(archive_path) as merged:
        return len(merged)


def _merge(
    base: Path,
    swath_paths: Sequence[Path],
    archive_path: Path,
    *,
    period: str,
    config_digest: str,
    notes: Sequence[str],
    compression: str = archive.DEFAULT_COMPRESSION,
) -> None:
    """The base archive's swaths and new swath files, in time order, into one archive."""
    from ..formats.swath import read_swath, read_swath_metadata

    with archive.Archive(base) as source, open(base, "rb") as raw_file:
        items: list[tuple[tuple[str, str], int | Path]] = []
        for i in range(len(source)):
            meta = source.metadata(i)
            items.append(((meta.scan_start_utc, meta.granule_id), i))
        for path in swath_paths:
            meta = read_swath_metadata(path)
            items.append(((meta.scan_start_utc, meta.granule_id), path))
        items.sort(key=lambda item: item[0])
        with archive.ArchiveWriter(
            archive_path, period=period, config_digest=config_digest, notes=notes, compression=compression
        ) as writer:
            for _, item in items:
                if isinstance(item, Path):
                    writer.add(read_swath(item))
                    continue
                meta = source.metadata(item)
                members = {}
                for name in archive.meta_array_names(meta):
                    info = source.member_info(item, name)
                    members[name] = (info, archive.read_raw_member(raw_file, info))
                writer.add_compressed(meta, members)


def add_to_sealed_year(
    archive_path: Path, parts_dir: Path, part_size: int, swath_paths: Sequence[Path], *, not_archived: int
) -> int:
    """Add swaths (granules that reappeared) to a sealed year's archive, then rebuild its parts."""
    count = add_to_archive(archive_path, swath_paths, not_archived=not_archived)
    build_parts(archive_path, parts_dir, part_size)
    log.info("added %d granule(s) to %s (%d swaths now), parts rebuilt", len(swath_paths), archive_path.name, count)
    return count


def build_parts(archive_path: Path, parts_dir: Path, part_size: int) -> list[Path]:
    """Split the archive into parts inside a temporary folder, then move the folder into place."""
    parts_dir.parent.mkdir(parents=True, exist_ok=True)
    atomic.check_free(parts_dir.parent, archive_path.stat().st_size, f"the parts of {archive_path.name}")
    staging = atomic.temporary_folder_beside(parts_dir)
    try:
        parts = archive.partition_archive(archive_path, staging, part_size=part_size)
        if parts_dir.exists():
            shutil.rmtree(parts_dir)
        os.replace(staging, parts_dir)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if atomic.is_no_space(exc):
            raise atomic.no_space(parts_dir.parent, f"the parts of {archive_path.name}", exc) from exc
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [parts_dir / p.name for p in parts]


def variables_notice(archive_paths: Sequence[Path], configured: Sequence[str]) -> str | None:
    """One line for the start of a run when the newest archived swath holds other extra variables than the
    configuration asks for (the set changed since): the new set applies to granules extracted from now on,
    nothing is downloaded again. Silent again once swaths with the new set are archived. Reads only indexes."""
    newest: tuple[str, str, str] | None = None  # (scan start, archive name, variables)
    for path in archive_paths:
        try:
            with archive.Archive(path) as existing:
                table = existing.table
                if not len(table):
                    continue
                column = table["variables"] if "variables" in (table.dtype.names or ()) else np.full(len(table), "")
                last = int(np.argmax(table["scan_start_utc"]))
                candidate = (str(table["scan_start_utc"][last]), path.name, str(column[last]))
        except (archive.ArchiveError, OSError, ValueError, KeyError, zipfile.BadZipFile):
            continue  # verified and reported elsewhere; a notice must not stop a run
        newest = max(newest, candidate) if newest else candidate
    if newest is None or newest[2] == ",".join(configured):
        return None
    return (
        f"variables [{', '.join(configured) or 'none'}] apply to granules extracted from now on; the archives "
        f"keep what they hold (the newest swath, in {newest[1]}, has [{newest[2].replace(',', ', ') or 'none'}]) "
        "and no granule is downloaded again for it. To have the new set for past days too, see "
        "docs/configuration.md#changing-what-is-extracted"
    )
