"""Facts about a granule that several sources know, and their comparison.

A granule's facts reach the product from independent witnesses:

- the **catalogue** record (a manifest row): granule id, begin and end time, orbit direction, size;
- the **file name**: granule id, start minute, orbit direction (the legacy system's derivation);
- the **file's contents**: its global attributes (``GranuleID``, ``OrbitDirection``,
  ``ObservationStartDateTime``/``EndDateTime``), its scan times, and its latitudes (an ascending half orbit
  goes north, a descending one south);
- what was **stored**: a swath's metadata or an archive's index row.

Wherever two of them are at hand they are compared (in the day job, ``amsr2flow verify``, the year report,
``amsr2flow doctor --download``). A disagreement names the fact and every source's value; it is recorded, never
settled by silently choosing one side. Witnesses that do not know a fact (no attribute, positions that cannot
tell, a catalogue without the field) are left out of its comparison.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import l1b

# the facts
ORBIT_DIRECTION = "orbit direction"
BEGIN_TIME = "begin time"
END_TIME = "end time"
START_MINUTE = "start minute"
GRANULE_ID = "granule id"
SIZE = "size"

# the witnesses, in the order a disagreement names them
CATALOGUE = "catalogue"
FILE_NAME = "file name"
FILE_ATTRIBUTE = "file attribute"
LATITUDES = "latitudes"
SCAN_TIMES = "scan times"
STORED = "stored swath"
SOURCES = (CATALOGUE, FILE_NAME, FILE_ATTRIBUTE, LATITUDES, SCAN_TIMES, STORED)

#: Default tolerance of time comparisons: the catalogue's precision (milliseconds, cut or rounded).
TIME_TOLERANCE_S = 0.001
#: Least northward or southward travel (degrees) over a swath for its latitudes to tell its direction.
MIN_LATITUDE_TRAVEL_DEG = 1.0


@dataclass(frozen=True)
class Disagreement:
    """One fact on which the sources of one granule disagree, with every source's value."""

    granule_id: str
    fact: str
    values: tuple[tuple[str, str], ...]  # (source, value) in SOURCES order

    @property
    def message(self) -> str:
        said = "; ".join(f"{source} {value}" for source, value in self.values)
        return f"{self.fact} disagrees: {said}"

    def to_json(self) -> dict[str, Any]:
        return {"granule_id": self.granule_id, "fact": self.fact, "values": dict(self.values)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Disagreement:
        values = {str(k): str(v) for k, v in dict(data["values"]).items()}
        return cls(str(data["granule_id"]), str(data["fact"]), ordered(values))


def ordered(values: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """(source, value) pairs in the order disagreements name sources (catalogue first, what was stored last)."""
    rank = {source: i for i, source in enumerate(SOURCES)}
    return tuple(sorted(values.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def compare(granule_id: str, fact: str, witnesses: Mapping[str, str | None]) -> Disagreement | None:
    """A disagreement when the sources that know ``fact`` (a value other than None or "") differ."""
    known = {source: str(value) for source, value in witnesses.items() if value}
    if len(set(known.values())) <= 1:
        return None
    return Disagreement(granule_id, fact, ordered(known))


def compare_times(
    granule_id: str, fact: str, witnesses: Mapping[str, str | None], tolerance_s: float = TIME_TOLERANCE_S
) -> Disagreement | None:
    """A disagreement when the sources' ISO times (or values that are not times) differ by more than
    ``tolerance_s``."""
    known = {source: str(value) for source, value in witnesses.items() if value}
    seconds = {source: _seconds(value) for source, value in known.items()}
    numbers = [s for s in seconds.values() if s is not None]
    unreadable = len(numbers) < len(seconds)
    if len(known) < 2 or (not unreadable and max(numbers) - min(numbers) <= tolerance_s):
        return None
    return Disagreement(granule_id, fact, ordered(known))


def _seconds(stamp: str) -> float | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# -- what each witness says ------------------------------------------------------------------------------------
def direction_from_name(granule_id: str) -> str | None:
    """``A``/``D`` from the file name (the legacy derivation); None when the name does not say."""
    direction = l1b.orbit_type_from_name(granule_id)
    return direction if direction in ("A", "D") else None


def direction_from_catalogue(value: Any) -> str | None:
    """The manifest's ``orbit_direction`` (first letter of the catalogue's ``orbitDirection``); None if unknown."""
    text = str(value or "").strip()[:1].upper()
    return text if text in ("A", "D") else None


def direction_of_latitudes(latitude: np.ndarray, overlap_scans: int = 0) -> str | None:
    """Where a swath goes: ``A`` when its centre column's latitude rises over its non-overlap scans, ``D`` when it
    falls; None when the positions cannot tell (fills, fewer than two valid scans, less than
    MIN_LATITUDE_TRAVEL_DEG of travel).

    A half orbit runs from one turning point of the orbit to the other, so its latitude is monotonic: the first
    and last valid scans suffice.
    """
    if latitude.ndim != 2 or latitude.shape[0] < 2 or latitude.shape[1] == 0:
        return None
    overlap = max(overlap_scans, 0)
    rows = latitude[overlap : latitude.shape[0] - overlap] if 2 * overlap < latitude.shape[0] else latitude
    centre = np.asarray(rows[:, rows.shape[1] // 2], dtype=np.float64)
    valid = centre[np.isfinite(centre) & (centre > l1b.GEO_ABNORMAL_MAX) & (np.abs(centre) <= 90.0)]
    if valid.size < 2:
        return None
    travel = float(valid[-1] - valid[0])
    if abs(travel) < MIN_LATITUDE_TRAVEL_DEG:
        return None
    return "A" if travel > 0 else "D"


def start_minute_of_name(granule_id: str) -> datetime | None:
    try:
        return l1b.parse_granule_name(granule_id).start_minute_utc
    except ValueError:
        return None


# -- the comparisons the product makes ------------------------------------------------------------------------
@dataclass(frozen=True)
class CatalogueRecord:
    """What the catalogue said of a granule (a manifest or listing row); "" or -1 where it said nothing."""

    granule_id: str
    orbit_direction: str = ""
    begin_utc: str = ""
    end_utc: str = ""
    size_bytes: int = -1

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CatalogueRecord:
        size = str(row.get("size_bytes", "") or "").strip()
        return cls(
            granule_id=str(row["granule_id"]),
            orbit_direction=str(row.get("orbit_direction", "") or ""),
            begin_utc=str(row.get("begin_utc", "") or ""),
            end_utc=str(row.get("end_utc", "") or ""),
            size_bytes=int(float(size)) if size else -1,
        )


def read_catalogue_records(paths: Iterable[str | os.PathLike[str]]) -> dict[str, CatalogueRecord]:
    """The catalogue's records in day manifests (or year listings), by granule id (csv module: no pandas)."""
    records: dict[str, CatalogueRecord] = {}
    for path in paths:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("granule_id"):
                    records[row["granule_id"]] = CatalogueRecord.from_row(row)
    return records


def manifest_paths(manifests_dir: Path, granule_ids: Iterable[str]) -> list[Path]:
    """The day manifests (``<dir>/YYYY/YYYY-MM-DD.csv``) that may list these granules: each one's start day by
    its name, and the day before (a granule whose name counts the overlap may begin just before midnight)."""
    days: set[date] = set()
    for granule_id in granule_ids:
        minute = start_minute_of_name(str(granule_id))
        if minute is not None:
            days |= {minute.date(), (minute - timedelta(minutes=1)).date()}
    paths = (manifests_dir / f"{day:%Y}" / f"{day.isoformat()}.csv" for day in sorted(days))
    return [path for path in paths if path.is_file()]


@dataclass(frozen=True)
class FileFacts:
    """What a granule's own contents say besides its arrays: global attributes and the latitudes' direction
    ("" where the file does not say)."""

    granule_id: str = ""
    orbit_direction: str = ""
    observation_start_utc: str = ""
    observation_end_utc: str = ""
    latitude_direction: str = ""


def stored_disagreements(
    granule_id: str,
    *,
    orbit_type: str,
    scan_start_utc: str = "",
    scan_end_utc: str = "",
    source_size: int = -1,
    catalogue: CatalogueRecord | None = None,
    latitude_direction: str | None = None,
    time_tolerance_s: float = TIME_TOLERANCE_S,
) -> list[Disagreement]:
    """What a stored swath (its metadata or index row) says against its granule id, its own latitudes and, when
    given, its catalogue record."""
    found = [
        compare(
            granule_id,
            ORBIT_DIRECTION,
            {
                CATALOGUE: direction_from_catalogue(catalogue.orbit_direction) if catalogue else None,
                FILE_NAME: direction_from_name(granule_id),
                LATITUDES: latitude_direction,
                # what was stored counts as said, "U" included, as soon as another source knows the direction
                STORED: orbit_type,
            },
        ),
        _start_minute(granule_id, scan_start_utc),
    ]
    if catalogue is not None:
        found += [
            compare(granule_id, GRANULE_ID, {CATALOGUE: catalogue.granule_id, STORED: granule_id}),
            compare_times(
                granule_id, BEGIN_TIME, {CATALOGUE: catalogue.begin_utc, STORED: scan_start_utc}, time_tolerance_s
            ),
            compare_times(granule_id, END_TIME, {CATALOGUE: catalogue.end_utc, STORED: scan_end_utc}, time_tolerance_s),
            compare(
                granule_id,
                SIZE,
                {
                    CATALOGUE: str(catalogue.size_bytes) if catalogue.size_bytes >= 0 else None,
                    STORED: str(source_size) if source_size >= 0 else None,
                },
            ),
        ]
    return [d for d in found if d is not None]


def _start_minute(granule_id: str, scan_start_utc: str) -> Disagreement | None:
    """The name's minute is the observation start cut to the minute. Whether G-Portal's names count the overlap
    scans (45 s before the first non-overlap scan) is not confirmed, so a minute either way is accepted."""
    minute = start_minute_of_name(granule_id)
    start = _seconds(scan_start_utc) if scan_start_utc else None
    if minute is None or start is None:
        return None
    stored = datetime.fromtimestamp(math.floor(start / 60) * 60, tz=timezone.utc)
    if abs(stored - minute) <= timedelta(minutes=1):
        return None
    return Disagreement(
        granule_id,
        START_MINUTE,
        ordered({FILE_NAME: f"{minute:%Y-%m-%dT%H:%M}", STORED: scan_start_utc}),
    )


def granule_disagreements(
    *,
    catalogue: CatalogueRecord,
    remote_file_name: str,
    granule_id: str,
    orbit_type: str,
    scan_start_utc: str,
    scan_end_utc: str,
    source_size: int,
    file_facts: FileFacts,
    time_tolerance_s: float = TIME_TOLERANCE_S,
) -> list[Disagreement]:
    """Everything a day job knows of a granule it just extracted: catalogue = file name = file contents = the
    swath it is about to store."""
    name_id = remote_file_name.rsplit("/", 1)[-1].split(".h5", 1)[0]
    found = [
        compare(
            catalogue.granule_id,
            GRANULE_ID,
            {
                CATALOGUE: catalogue.granule_id,
                FILE_NAME: name_id,
                FILE_ATTRIBUTE: file_facts.granule_id,
                STORED: granule_id,
            },
        ),
        compare(
            catalogue.granule_id,
            ORBIT_DIRECTION,
            {
                CATALOGUE: direction_from_catalogue(catalogue.orbit_direction),
                FILE_NAME: direction_from_name(name_id),
                FILE_ATTRIBUTE: file_facts.orbit_direction,
                LATITUDES: file_facts.latitude_direction,
                STORED: orbit_type,
            },
        ),
        compare_times(
            catalogue.granule_id,
            BEGIN_TIME,
            {
                CATALOGUE: catalogue.begin_utc,
                FILE_ATTRIBUTE: file_facts.observation_start_utc,
                SCAN_TIMES: scan_start_utc,
            },
            time_tolerance_s,
        ),
        compare_times(
            catalogue.granule_id,
            END_TIME,
            {CATALOGUE: catalogue.end_utc, FILE_ATTRIBUTE: file_facts.observation_end_utc, SCAN_TIMES: scan_end_utc},
            time_tolerance_s,
        ),
        compare(
            catalogue.granule_id,
            SIZE,
            {CATALOGUE: str(catalogue.size_bytes) if catalogue.size_bytes >= 0 else None, STORED: str(source_size)},
        ),
        _start_minute(name_id, scan_start_utc),
    ]
    return [d for d in found if d is not None]


def merge(disagreements: Iterable[Disagreement]) -> list[Disagreement]:
    """One disagreement per granule and fact, with the values of every source that reported on it."""
    merged: dict[tuple[str, str], dict[str, str]] = {}
    for d in disagreements:
        merged.setdefault((d.granule_id, d.fact), {}).update(dict(d.values))
    return [Disagreement(gid, fact, ordered(values)) for (gid, fact), values in sorted(merged.items())]
