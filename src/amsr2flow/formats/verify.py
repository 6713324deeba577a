"""Verify archives: structure, every swath readable, shapes, physical ranges, index, duplicates, time order, and
the facts each swath shares with other sources (``formats.facts``): its orbit type against its granule id and its
own latitudes, its scan start against the name's minute and, given the catalogue's records, its orbit
direction, times, size and id against them.

``verify_archive(path)`` returns a ``VerifyReport`` whose ``summary()`` is the legacy ``testOutput.py``-style
text (valid / damaged / success rate); ``amsr2flow verify`` (``amsr2flow.cli.verify``) prints it.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import facts, l1b, variables
from .archive import (
    ARCHIVE_FORMAT,
    INDEX_MEMBER,
    PERIOD_MEMBER,
    PROVENANCE_MEMBER,
    SWATH_PREFIX,
    ArchiveError,
    LegacyPickleRefused,
    NotAnArchiveError,
    member_name,
    parse_period,
    parse_utc,
)
from .reader import open_archive
from .swath import (
    LATITUDE,
    LONGITUDE,
    SCAN_TIME_UTC,
    TEMPERATURE,
    SwathMetadata,
    meta_array_names,
    position_range,
    valid_range,
)

PHYSICAL_MAX_K = 350.0  # instrument limit quoted by the legacy README (physical range 0-350 K)
#: A half orbit is ~1984 scans plus 2 x 30 overlap rows (real files: 2040-2044; legacy: 2000-2060).
MAX_PLAUSIBLE_SCANS = 2200
DEFAULT_MIN_SCANS = 1  # short granules exist (data gaps); fewer than SHORT_SWATH_SCANS only warns
SHORT_SWATH_SCANS = 1900
MAX_LISTED_PROBLEMS = 20


@dataclass
class VerifyReport:
    """Outcome of verifying one archive: per-swath damage and archive-level problems."""

    path: Path
    format: str = "?"
    swaths: int = 0
    damaged: dict[str, list[str]] = field(default_factory=dict)  # granule id -> problems
    archive_problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    catalogue: str = ""  # what the swaths were compared with ("" = no catalogue records at hand)
    disagreements: list[facts.Disagreement] = field(default_factory=list)
    repair_target: Path | None = None  # what the fix line names: the results folder the archive is in, if known

    @property
    def valid(self) -> int:
        return self.swaths - len(self.damaged)

    @property
    def success_rate(self) -> float:
        return 100.0 * self.valid / self.swaths if self.swaths else (0.0 if self.archive_problems else 100.0)

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.archive_problems

    def problems(self) -> list[str]:
        return self.archive_problems + [f"{gid}: {p}" for gid, ps in self.damaged.items() for p in ps]

    def add(self, granule_id: str, problem: str) -> None:
        self.damaged.setdefault(granule_id, []).append(problem)

    def summary(self) -> str:
        lines = [
            f"{self.path}",
            f"Found {self.swaths} swaths in archive ({self.format})",
            f"Valid swaths: {self.valid}, Damaged swaths: {len(self.damaged)}",
            f"Success rate: {self.success_rate:.1f}%",
            f"Compared with {self.catalogue}" if self.catalogue else "Not compared with the catalogue (no manifests)",
            "Archive is in GOOD condition" if self.ok else "Archive is DAMAGED",
        ]
        problems = self.problems()
        lines += [f"  problem: {p}" for p in problems[:MAX_LISTED_PROBLEMS]]
        if len(problems) > MAX_LISTED_PROBLEMS:
            lines.append(f"  ... and {len(problems) - MAX_LISTED_PROBLEMS} more problems")
        repairable = sum(contradicts_granule_id(d) for d in self.disagreements)
        if repairable:
            lines.append(
                f"  fix: {repairable} swath(s) store an orbit type their granule id contradicts; "
                f"`amsr2flow repair {self.repair_target or self.path}` sets it from the granule id (archives, parts "
                "and kept swaths of a folder), without downloading"
            )
        lines += [f"  warning: {w}" for w in self.warnings[:MAX_LISTED_PROBLEMS]]
        return "\n".join(lines)


# -- per-swath checks -----------------------------------------------------------------------------------------
def expected_pixels(meta: SwathMetadata, array: str) -> int:
    if array in (LATITUDE, LONGITUDE):
        return l1b.LOW_FREQ_PIXELS  # 89A positions at every second column
    return l1b.channel_pixels(meta.channels[0] if array == TEMPERATURE else array)


def check_array(meta: SwathMetadata, name: str, array: np.ndarray, min_scans: int, max_scans: int) -> list[str]:
    """Problems with one array of a swath (dtype, shape, value range)."""
    if name == SCAN_TIME_UTC:
        return check_scan_times(meta, array)
    if name in variables.EXTRA_VARIABLES:
        return check_extra_variable(meta, name, array)
    problems = []
    is_position = name in (LATITUDE, LONGITUDE)
    expected_dtype = np.float32 if is_position else np.uint16
    if array.dtype != expected_dtype:
        problems.append(f"{name} has dtype {array.dtype}, expected {np.dtype(expected_dtype)}")
    if array.ndim != 2:
        return [*problems, f"{name} has shape {array.shape}, expected (scans, pixels)"]
    rows, pixels = array.shape
    if pixels != expected_pixels(meta, name):
        problems.append(f"{name} has {pixels} columns, expected {expected_pixels(meta, name)}")
    if rows != meta.shape[0]:
        problems.append(f"{name} has {rows} scans, the index says {meta.shape[0]}")
    if not min_scans <= rows <= max_scans:
        problems.append(f"{name} has {rows} scans, outside the plausible {min_scans}..{max_scans}")
    if is_position:
        limit = 90.0 if name == LATITUDE else 180.0
        valid = array[np.isfinite(array) & (array > l1b.GEO_ABNORMAL_MAX)]
        if valid.size and (valid.min() < -limit or valid.max() > limit):
            problems.append(f"{name} outside [-{limit:g}, {limit:g}] ({valid.min():g}..{valid.max():g})")
        recorded = meta.lat_range if name == LATITUDE else meta.lon_range
        if recorded is None or not _same_range(recorded, position_range(array)):
            problems.append(f"{name} range {position_range(array)} differs from the index ({recorded})")
        return problems
    scale = meta.scale_factors[meta.channels.index(name) if name in meta.channels else 0]
    if not (math.isfinite(scale) and scale > 0):
        problems.append(f"{name} scale factor {scale} is not a positive number")
        return problems
    low, high = valid_range(array)
    if high == 0 and not lost_channel(meta, name):
        problems.append(f"{name} has no valid pixel")
    elif high * scale > PHYSICAL_MAX_K:
        problems.append(f"{name} reaches {high * scale:.2f} K, above the physical {PHYSICAL_MAX_K:g} K")
    if name == TEMPERATURE and (low, high) != meta.temp_range:
        problems.append(f"temp_range {meta.temp_range} differs from the data ({low}, {high})")
    return problems


def lost_channel(meta: SwathMetadata, name: str) -> bool:
    """A channel the sensor no longer measured when the swath was taken (AMSR-E's 89 GHz A horn from November
    2004): no valid pixel is then what the granule holds, not damage."""
    from ..mission import MISSIONS

    channel = meta.channels[0] if name == TEMPERATURE else name
    platform = meta.granule_id.split("_", 1)[0]
    mission = next((m for m in MISSIONS.values() if m.name_prefix == platform), None)
    if mission is None or not meta.scan_start_utc:
        return False
    return channel in mission.lost_channels_on(parse_utc(meta.scan_start_utc).date())


def check_scan_times(meta: SwathMetadata, array: np.ndarray) -> list[str]:
    """Per-scan UTC times: float64, one per scan, never decreasing where known."""
    problems = []
    if array.dtype != np.float64:
        problems.append(f"{SCAN_TIME_UTC} has dtype {array.dtype}, expected float64")
    if array.shape != (meta.shape[0],):
        return [*problems, f"{SCAN_TIME_UTC} has shape {array.shape}, expected ({meta.shape[0]},)"]
    known = array[np.isfinite(array)]
    if known.size and (np.diff(known) < 0).any():
        problems.append(f"{SCAN_TIME_UTC} goes backwards")
    if meta.shape[0] and not known.size:
        problems.append(f"{SCAN_TIME_UTC} has no valid time")
    return problems


#: Physical bounds of the variables that have them (degrees, percent), checked on their valid values.
VARIABLE_BOUNDS: dict[str, tuple[float, float]] = {
    "earth_incidence": (0.0, 90.0),
    "earth_azimuth": (-180.0, 360.0),
    "sun_elevation": (-90.0, 90.0),
    "sun_azimuth": (-180.0, 360.0),
    "land_fraction": (0.0, 100.0),
    "land_fraction_89": (0.0, 100.0),
}


def check_extra_variable(meta: SwathMetadata, name: str, array: np.ndarray) -> list[str]:
    """An extra variable: its stored dtype, one row per scan of its row shape, values within physical bounds."""
    variable = variables.EXTRA_VARIABLES[name]
    problems = []
    if array.dtype != np.dtype(variable.dtype):
        problems.append(f"{name} has dtype {array.dtype}, expected {np.dtype(variable.dtype)}")
    wanted = (meta.shape[0], *variable.row_shape)
    if array.shape != wanted:
        return [*problems, f"{name} has shape {array.shape}, expected {wanted}"]
    if name in VARIABLE_BOUNDS:
        low, high = VARIABLE_BOUNDS[name]
        valid = array[array != variable.fill] * (variable.scale_factor or 1.0)
        if valid.size and (valid.min() < low or valid.max() > high):
            problems.append(f"{name} outside [{low:g}, {high:g}] ({valid.min():g}..{valid.max():g})")
    return problems


def _same_range(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


def swath_disagreements(
    meta: SwathMetadata,
    record: facts.CatalogueRecord | None,
    latitude_direction: str | None,
    time_tolerance_s: float = facts.TIME_TOLERANCE_S,
) -> list[facts.Disagreement]:
    """A stored swath against its granule id, its own latitudes and (when given) its catalogue record. A swath
    cropped to a region begins and ends where the region does: its times do not speak for the granule's."""
    return facts.stored_disagreements(
        meta.granule_id,
        orbit_type=meta.orbit_type,
        scan_start_utc="" if meta.region else meta.scan_start_utc,
        scan_end_utc="" if meta.region else meta.scan_end_utc,
        source_size=meta.source_size,
        catalogue=record,
        latitude_direction=latitude_direction,
        time_tolerance_s=time_tolerance_s,
    )


def contradicts_granule_id(disagreement: facts.Disagreement) -> bool:
    """An orbit type stored against what the granule id says (what `amsr2flow repair` sets right)."""
    values = dict(disagreement.values)
    name = values.get(facts.FILE_NAME)
    return disagreement.fact == facts.ORBIT_DIRECTION and bool(name) and values.get(facts.STORED) != name


def check_metadata(meta: SwathMetadata) -> list[str]:
    problems = []
    if meta.orbit_type not in ("A", "D", "U"):
        problems.append(f"orbit type {meta.orbit_type!r} is not A, D or U")
    if meta.overlap_scans >= 0 and 2 * meta.overlap_scans >= meta.shape[0]:
        problems.append(f"{meta.shape[0]} scans cannot hold 2 x {meta.overlap_scans} overlap scans")
    if meta.scan_start_utc and meta.scan_end_utc and meta.scan_end_utc < meta.scan_start_utc:
        problems.append(f"scan end {meta.scan_end_utc} is before scan start {meta.scan_start_utc}")
    for label, stamp in (("scan start", meta.scan_start_utc), ("scan end", meta.scan_end_utc)):
        if stamp:
            try:
                parse_utc(stamp)
            except ValueError:
                problems.append(f"{label} {stamp!r} is not an ISO time")
    return problems


# -- the archive ----------------------------------------------------------------------------------------------
def _check_structure(archive: Any, report: VerifyReport) -> None:
    """Archive-level checks of a new-format archive: members vs index, provenance, period."""
    provenance = archive.provenance
    if provenance.get("format") != ARCHIVE_FORMAT:
        report.archive_problems.append(f"provenance format is {provenance.get('format')!r}")
    if archive.period:
        try:
            parse_period(archive.period)
        except ValueError as exc:
            report.archive_problems.append(f"period: {exc}")
    expected = {INDEX_MEMBER, PERIOD_MEMBER, PROVENANCE_MEMBER}
    for i in range(len(archive)):
        meta = archive.metadata(i)
        expected |= {member_name(meta.granule_id, a) for a in meta_array_names(meta)}
    present = {info.filename for info in archive.zip_infos()}
    for name in sorted(present - expected):
        kind = "member of no indexed swath" if name.startswith(SWATH_PREFIX) else "unexpected member"
        report.archive_problems.append(f"{name}: {kind}")


def _check_order_and_duplicates(
    metas: Sequence[SwathMetadata], period: tuple[datetime, datetime] | None, report: VerifyReport
) -> None:
    seen: set[str] = set()
    previous = ""
    for meta in metas:
        if meta.granule_id in seen:
            report.add(meta.granule_id, "duplicate granule id in the index")
        seen.add(meta.granule_id)
        if meta.scan_start_utc:
            if previous and meta.scan_start_utc < previous:
                report.add(meta.granule_id, f"starts at {meta.scan_start_utc}, before the previous swath")
            previous = meta.scan_start_utc
    if period is not None:
        start, end = period
        outside = [m.granule_id for m in metas if m.scan_start_utc and not start <= parse_utc(m.scan_start_utc) <= end]
        if outside:
            report.warnings.append(f"{len(outside)} swaths start outside the period (first: {outside[0]})")


def _period_or_none(period: str) -> tuple[datetime, datetime] | None:
    try:
        return parse_period(period) if period else None
    except ValueError:
        return None  # reported by _check_structure


def verify_archive(
    path: str | os.PathLike[str],
    *,
    allow_legacy_pickle: bool = False,
    min_scans: int = DEFAULT_MIN_SCANS,
    max_scans: int = MAX_PLAUSIBLE_SCANS,
    catalogue: Mapping[str, facts.CatalogueRecord] | None = None,
    catalogue_source: str = "",
    time_tolerance_s: float = facts.TIME_TOLERANCE_S,
) -> VerifyReport:
    """Check everything the format promises; raises ``LegacyPickleRefused`` for an untrusted legacy file.

    A file that is not an archive at all, or whose index cannot be read, is reported as damaged. ``catalogue``
    (granule id -> record, e.g. from the run's manifests; ``catalogue_source`` says where from) adds the
    comparison of every swath with what the catalogue said of it.
    """
    report = VerifyReport(Path(path), catalogue=catalogue_source if catalogue is not None else "")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        archive = open_archive(path, allow_legacy_pickle=allow_legacy_pickle)
    except LegacyPickleRefused:
        raise
    except (NotAnArchiveError, ArchiveError, zipfile.BadZipFile, ValueError, KeyError, OSError) as exc:
        report.archive_problems.append(str(exc))
        return report
    with archive:
        report.format = str(archive.provenance.get("format", "?"))
        report.swaths = len(archive)
        try:
            metas = [archive.metadata(i) for i in range(len(archive))]
        except (KeyError, ValueError, IndexError) as exc:
            report.archive_problems.append(f"index is malformed ({exc})")
            return report
        if report.format == ARCHIVE_FORMAT or archive.zip_infos():
            _check_structure(archive, report)
        _check_order_and_duplicates(metas, _period_or_none(archive.period), report)
        first_with_content: dict[tuple[int, int], str] = {}
        unlisted: list[str] = []
        for i, meta in enumerate(metas):
            for problem in check_metadata(meta):
                report.add(meta.granule_id, problem)
            latitude_direction = None
            for name in meta_array_names(meta):
                try:
                    array = archive.read_array(i, name)
                except (ArchiveError, KeyError, zipfile.BadZipFile, zlib.error, ValueError, OSError) as exc:
                    report.add(meta.granule_id, f"{name} unreadable ({exc})")
                    continue
                for problem in check_array(meta, name, array, min_scans, max_scans):
                    report.add(meta.granule_id, problem)
                if name == LATITUDE and array.ndim == 2 and not meta.region:
                    # a crop near a pole may hold only the turn, where the latitudes say nothing of the direction
                    latitude_direction = facts.direction_of_latitudes(array, meta.overlap_scans)
                if name == TEMPERATURE:
                    content = (zlib.crc32(np.ascontiguousarray(array).data), array.size)
                    if content in first_with_content:
                        report.add(meta.granule_id, f"same temperature as {first_with_content[content]}")
                    first_with_content.setdefault(content, meta.granule_id)
            record = catalogue.get(meta.granule_id) if catalogue is not None else None
            if catalogue is not None and record is None:
                unlisted.append(meta.granule_id)
            for disagreement in swath_disagreements(meta, record, latitude_direction, time_tolerance_s):
                report.disagreements.append(disagreement)
                report.add(meta.granule_id, disagreement.message)
            if 0 < meta.shape[0] < SHORT_SWATH_SCANS and not meta.region:  # a crop is as short as its region
                report.warnings.append(f"{meta.granule_id}: short swath ({meta.shape[0]} scans)")
        if unlisted:
            report.warnings.append(
                f"{len(unlisted)} swath(s) have no record among the catalogue's (first: {unlisted[0]})"
            )
        lost = sorted({c for m in metas for c in m.channels if lost_channel(m, c)})
        if lost:
            report.warnings.append(
                f"{', '.join(lost)}: no valid pixel in swaths taken after the sensor lost them (AMSR-E's 89 GHz A "
                "horn failed in November 2004); not counted as damage"
            )
    if len(report.warnings) > MAX_LISTED_PROBLEMS:
        short = sum("short swath" in w for w in report.warnings)
        report.warnings = [w for w in report.warnings if "short swath" not in w]
        report.warnings.append(f"{short} short swaths (< {SHORT_SWATH_SCANS} scans)")
    return report
