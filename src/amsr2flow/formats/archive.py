"""The archive format: a pickle-free NPZ of swaths, written by streaming and read lazily.

An archive is a zip file of ``.npy`` members, so ``np.load(path, allow_pickle=False)`` opens it:

- ``swaths/<granule_id>/temperature.npy`` (uint16, first configured channel), ``swaths/<granule_id>/<channel>.npy``
  for further channels, ``swaths/<granule_id>/latitude.npy`` / ``longitude.npy`` (float32) with coordinates,
  ``scan_time.npy`` (float64 UTC seconds per scan) and one member per extra variable (``formats.variables``).
  One member per array: one swath is read without touching the others.
- ``index.npy``: a structured array, one row per swath in time order (``INDEX_COLUMNS`` below), enough to
  rebuild every swath's metadata exactly. Strings are fixed-width unicode; nothing is an object.
- ``period.npy``: 0-d unicode array, ``"2016-01-01T00:00:00 to 2017-01-01T00:00:00"`` as in the legacy files.
- ``provenance.npy``: 0-d unicode array holding JSON (format, software version, config digest, channels,
  JAXA acknowledgement, notes).

Design choices:

- Written with ``zipfile`` one member at a time (``ArchiveWriter``), so peak memory is one swath plus the
  index rows, whatever the number of swaths.
- Deterministic bytes: fixed member timestamps (1980-01-01), fixed permissions and creator system, members
  in time order then the three table members, no zip comment, fixed compression level. The same swaths give
  the same bytes (for the same zlib build: another zlib may compress differently, still readable).
- Compression: plain DEFLATE (np.load must read the members, so no shuffle/delta filter is possible) at
  **level 3**. On 16-bit brightness temperatures the lazy matching of levels 4-9 finds nothing better:
  level 3 (the most thorough of zlib's fast, non-lazy strategy) gave slightly *smaller* members than
  level 6 (the legacy ``np.savez_compressed`` level) at well over its speed, while level 1 was ~0.3 %
  larger than level 6 on synthetic granules. See ``benchmarks/bench_archive.py``.
- Atomic: written to a temporary file next to the target and renamed into place on success only.
- Partitioning an archive copies each member's compressed bytes (no decompress/recompress) through a small
  helper that uses ``zipfile``'s write bookkeeping (see ``_append_raw_member``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, overload

import numpy as np

from .. import JAXA_ACKNOWLEDGEMENT, __version__, atomic
from . import l1b, npy, variables
from .swath import (
    LATITUDE,
    LONGITUDE,
    SCAN_TIME_UTC,
    TEMPERATURE,
    UNKNOWN_TIME,
    Swath,
    SwathError,
    SwathMetadata,
    meta_array_names,
    read_swath,
    read_swath_metadata,
)

ARCHIVE_FORMAT = "amsr2flow.archive"
ARCHIVE_FORMAT_VERSION = 1
DEFAULT_COMPRESSLEVEL = 3
#: Member compressions np.load reads (through zipfile): name -> (zip method, level). DEFLATE 3 is the default:
#: it reads ~6 times faster than the others; bzip2 and LZMA trade that for space (docs/performance.md).
#: zipfile ignores a level for LZMA (its preset 6); bzip2 is written at level 9.
MEMBER_COMPRESSIONS: dict[str, tuple[int, int]] = {
    "deflate": (zipfile.ZIP_DEFLATED, DEFAULT_COMPRESSLEVEL),
    "bzip2": (zipfile.ZIP_BZIP2, 9),
    "lzma": (zipfile.ZIP_LZMA, 6),
}
DEFAULT_COMPRESSION = "deflate"
DEFAULT_PART_SIZE = 500
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # earliest DOS timestamp: no wall clock in the bytes
INDEX_MEMBER = "index.npy"
PERIOD_MEMBER = "period.npy"
PROVENANCE_MEMBER = "provenance.npy"
SWATH_PREFIX = "swaths/"
LEGACY_MEMBER = "swath_array.npy"

TEMP_ONLY_TAG = "AMSR2_temp_only"  # the legacy name
WITH_COORDS_TAG = "AMSR2_temp_with_coords"  # archives that also hold latitude/longitude
#: First field of archive names per sensor (mission.Mission.archive_prefix): AMSR-E years get their own names.
ARCHIVE_PREFIXES = ("AMSR2", "AMSRE")
NAME_TIME_FORMAT = "%Y%m%d_%H%M%S"
PERIOD_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
ARCHIVE_NAME_RE = re.compile(
    r"^(?P<tag>(?:AMSR2|AMSRE)_temp_only|(?:AMSR2|AMSRE)_temp_with_coords)_(?P<start>\d{8}_\d{6})_to_(?P<end>\d{8}_\d{6})"
    r"(?:_part_(?P<part>\d+)of(?P<total>\d+))?\.npz$"
)


# -- errors ---------------------------------------------------------------------------------------------------
class ArchiveError(Exception):
    """An archive cannot be written or read as asked."""


class NotAnArchiveError(ArchiveError):
    """The file is neither an amsr2flow archive nor a legacy AMSR2 NPZ."""


class LegacyPickleRefused(ArchiveError):
    """A legacy pickled archive was opened without saying the file is trusted."""


class ArchiveOrderError(ArchiveError):
    """Swaths were given out of time order, or twice."""


# -- names and periods ----------------------------------------------------------------------------------------
def archive_name(start: datetime, end: datetime, geolocation: bool = False, sensor: str = "AMSR2") -> str:
    """``AMSR2_temp_only_YYYYMMDD_HHMMSS_to_YYYYMMDD_HHMMSS.npz`` (``AMSR2_temp_with_coords_`` with positions;
    ``AMSRE_...`` for AMSR-E years)."""
    if sensor not in ARCHIVE_PREFIXES:
        raise ArchiveError(f"unknown archive prefix {sensor!r}; one of {', '.join(ARCHIVE_PREFIXES)}")
    tag = (WITH_COORDS_TAG if geolocation else TEMP_ONLY_TAG).replace("AMSR2", sensor, 1)
    return f"{tag}_{start:{NAME_TIME_FORMAT}}_to_{end:{NAME_TIME_FORMAT}}.npz"


def sensor_of_archive(name: str) -> str:
    """``AMSR-E`` for AMSR-E archives and parts (``AMSRE_...``), else ``AMSR-2``: the sensor reports and grids name."""
    return "AMSR-E" if Path(name).name.startswith("AMSRE_") else "AMSR-2"


def part_name(start: datetime, end: datetime, part: int, total: int, geolocation: bool = False) -> str:
    """The legacy part name: ``..._to_YYYYMMDD_HHMMSS_part_XofY.npz`` (parts numbered from 1)."""
    return archive_name(start, end, geolocation)[: -len(".npz")] + f"_part_{part}of{total}.npz"


def part_name_for(archive: str | os.PathLike[str], part: int, total: int) -> str:
    """Part name derived from an existing archive's name, as the legacy splitter did."""
    return f"{Path(archive).stem}_part_{part}of{total}.npz"


def period_string(start: datetime, end: datetime) -> str:
    """The legacy ``period``: ``"2016-01-01T00:00:00 to 2017-01-01T00:00:00"`` (UTC, seconds)."""
    return f"{start:{PERIOD_TIME_FORMAT}} to {end:{PERIOD_TIME_FORMAT}}"


def parse_period(period: str) -> tuple[datetime, datetime]:
    """Inverse of ``period_string``; raises ``ValueError`` on anything else."""
    start, sep, end = period.partition(" to ")
    if not sep:
        raise ValueError(f"period {period!r} is not 'START to END'")
    return tuple(  # type: ignore[return-value]
        datetime.fromisoformat(t.strip().replace("Z", "")[:19]).replace(tzinfo=timezone.utc) for t in (start, end)
    )


def parse_utc(value: str | datetime) -> datetime:
    """A datetime or ISO string as an aware UTC datetime (naive values are taken as UTC)."""
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    return stamp.replace(tzinfo=timezone.utc) if stamp.tzinfo is None else stamp.astimezone(timezone.utc)


def member_name(granule_id: str, array: str) -> str:
    return f"{SWATH_PREFIX}{granule_id}/{array}.npy"


# -- the index ------------------------------------------------------------------------------------------------
#: Fixed columns of ``index.npy`` (strings get the width of their longest value); ``scale_factor_<channel>``
#: columns follow ``scale_factor`` for the channels after the first.
INDEX_COLUMNS: tuple[tuple[str, str], ...] = (
    ("granule_id", "U"),
    ("orbit_type", "U"),
    ("channels", "U"),  # comma-separated; the first is stored as `temperature`
    ("scan_start_utc", "U"),  # ISO 8601 "2020-01-01T00:47:12.345Z"; "" when unknown
    ("scan_end_utc", "U"),
    ("n_scans", "<i4"),
    ("n_pixels", "<i4"),
    ("temp_min", "<i4"),
    ("temp_max", "<i4"),
    ("scale_factor", "<f8"),
    ("has_geolocation", "?"),
    ("lat_min", "<f8"),  # NaN without geolocation
    ("lat_max", "<f8"),
    ("lon_min", "<f8"),
    ("lon_max", "<f8"),
    ("overlap_scans", "<i4"),  # -1 unknown
    ("source_size", "<i8"),  # -1 unknown
    ("source_sha256", "U"),
    ("product_version", "U"),
)


#: dtype and dimensions of each array that is not a brightness temperature (those are uint16, 2-d).
ARRAY_KINDS: dict[str, tuple[Any, int]] = {
    LATITUDE: (np.float32, 2),
    LONGITUDE: (np.float32, 2),
    SCAN_TIME_UTC: (np.float64, 1),
    **{v.name: (np.dtype(v.dtype), 1 + len(v.row_shape)) for v in variables.EXTRA_VARIABLES.values()},
}

#: Columns added after format version 1's first archives: written always, read with a default when absent.
#: ``variables``: the extra variables of the swath, comma-separated ("" none); swaths of one archive may differ.
#: ``first_scan``, ``region``, ``region_key``: the source granule's row of the swath's first row, the region it
#: was cropped to in words, and what identifies the crop (the region's fingerprint and the margin);
#: ``granule_scans``: the source granule's scans without overlap (so that a crop's share of them is known).
OPTIONAL_INDEX_COLUMNS: tuple[tuple[str, str, Any], ...] = (
    ("has_scan_times", "?", False),
    ("variables", "U", ""),
    ("first_scan", "<i8", 0),
    ("region", "U", ""),
    ("region_key", "U", ""),
    ("granule_scans", "<i8", -1),
)


def _scale_column(channel: str) -> str:
    return f"scale_factor_{channel}"


def metadata_row(meta: SwathMetadata) -> dict[str, Any]:
    nan = float("nan")
    lat = meta.lat_range or (nan, nan)
    lon = meta.lon_range or (nan, nan)
    row: dict[str, Any] = {
        "granule_id": meta.granule_id,
        "orbit_type": meta.orbit_type,
        "channels": ",".join(meta.channels),
        "scan_start_utc": meta.scan_start_utc,
        "scan_end_utc": meta.scan_end_utc,
        "n_scans": meta.shape[0],
        "n_pixels": meta.shape[1],
        "temp_min": meta.temp_range[0],
        "temp_max": meta.temp_range[1],
        "scale_factor": meta.scale_factors[0],
        "has_geolocation": meta.has_geolocation,
        "lat_min": lat[0],
        "lat_max": lat[1],
        "lon_min": lon[0],
        "lon_max": lon[1],
        "overlap_scans": meta.overlap_scans,
        "source_size": meta.source_size,
        "source_sha256": meta.source_sha256,
        "product_version": meta.product_version,
        "has_scan_times": meta.has_scan_times,
        "variables": ",".join(meta.variables),
        "first_scan": meta.first_scan,
        "region": meta.region,
        "region_key": meta.region_key,
        "granule_scans": meta.granule_scans,
    }
    row.update({_scale_column(c): s for c, s in zip(meta.channels[1:], meta.scale_factors[1:], strict=True)})
    return row


def index_table(metas: Sequence[SwathMetadata], channels: Sequence[str]) -> np.ndarray:
    """The structured ``index.npy`` array for swaths that all have ``channels``."""
    rows = [metadata_row(m) for m in metas]
    fields: list[tuple[str, str]] = []
    for name, kind in (*INDEX_COLUMNS, *((n, k) for n, k, _ in OPTIONAL_INDEX_COLUMNS)):
        if kind == "U":
            width = max((len(r[name]) for r in rows), default=0)
            kind = f"<U{max(width, 1)}"
        fields.append((name, kind))
        if name == "scale_factor":
            fields.extend((_scale_column(c), "<f8") for c in channels[1:])
    table = np.zeros(len(rows), dtype=fields)
    for name, _ in fields:
        table[name] = [r[name] for r in rows]
    return table


def row_metadata(row: np.void) -> SwathMetadata:
    """Rebuild a swath's metadata exactly from its index row."""
    channels = tuple(str(row["channels"]).split(","))
    geo = bool(row["has_geolocation"])
    names = row.dtype.names or ()
    return SwathMetadata(
        granule_id=str(row["granule_id"]),
        orbit_type=str(row["orbit_type"]),
        channels=channels,
        scale_factors=(float(row["scale_factor"]), *(float(row[_scale_column(c)]) for c in channels[1:])),
        shape=(int(row["n_scans"]), int(row["n_pixels"])),
        temp_range=(int(row["temp_min"]), int(row["temp_max"])),
        lat_range=(float(row["lat_min"]), float(row["lat_max"])) if geo else None,
        lon_range=(float(row["lon_min"]), float(row["lon_max"])) if geo else None,
        scan_start_utc=str(row["scan_start_utc"]),
        scan_end_utc=str(row["scan_end_utc"]),
        overlap_scans=int(row["overlap_scans"]),
        source_size=int(row["source_size"]),
        source_sha256=str(row["source_sha256"]),
        product_version=str(row["product_version"]),
        has_scan_times=bool(row["has_scan_times"]) if "has_scan_times" in names else False,
        variables=variables.parse_list(str(row["variables"])) if "variables" in names else (),
        first_scan=int(row["first_scan"]) if "first_scan" in names else 0,
        region=str(row["region"]) if "region" in names else "",
        region_key=str(row["region_key"]) if "region_key" in names else "",
        granule_scans=int(row["granule_scans"]) if "granule_scans" in names else -1,
    )


def index_frame(table: np.ndarray) -> Any:
    """The index as a pandas DataFrame, times as ``datetime64[ns, UTC]`` (NaT when unknown)."""
    import pandas as pd  # only the DataFrame view needs pandas

    frame = pd.DataFrame({name: table[name] for name in table.dtype.names})
    for column in ("scan_start_utc", "scan_end_utc"):
        frame[column] = pd.to_datetime(frame[column].replace("", None), utc=True, format="ISO8601")
    return frame


# -- zip plumbing ---------------------------------------------------------------------------------------------
def _member_info(name: str, compresslevel: int, compress_type: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    """A ZipInfo whose every header field is fixed, so the bytes depend only on the content."""
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = compress_type
    info.create_system = 3  # Unix, whatever the platform writing it
    info.external_attr = 0o644 << 16
    if "compress_level" in zipfile.ZipInfo.__slots__:  # Python >= 3.13 renamed the private slot
        info.compress_level = compresslevel  # type: ignore[attr-defined]
    else:
        info._compresslevel = compresslevel  # type: ignore[attr-defined]
    return info


def _append_raw_member(zf: zipfile.ZipFile, name: str, source: zipfile.ZipInfo, raw: bytes) -> None:
    """Append an already-compressed member, exactly as ``ZipFile.open(info, 'w')`` would have written it.

    The standard library has no public raw copy. This mirrors what ``_open_to_write``/``_ZipWriteFile.close``
    do for a seekable file (local header with final sizes, data, then bookkeeping used by ``close()`` to
    write the central directory), using attributes stable since Python 3.6. The part tests check the
    result is byte-identical to writing the same swaths afresh.
    """
    info = _member_info(name, 0, source.compress_type)
    info.file_size = source.file_size
    info.compress_size = len(raw)
    info.CRC = source.CRC
    info.flag_bits = 0
    zip64 = info.file_size * 1.05 > zipfile.ZIP64_LIMIT  # the rule ZipFile.open(..., "w") applies
    fp = zf.fp
    assert fp is not None
    fp.seek(zf.start_dir)
    info.header_offset = fp.tell()
    fp.write(info.FileHeader(zip64))
    fp.write(raw)
    zf.start_dir = fp.tell()
    zf.filelist.append(info)
    zf.NameToInfo[name] = info
    zf._didModify = True  # type: ignore[attr-defined]


_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zip local file header (APPNOTE 4.3.7)


def _member_prefix(info: zipfile.ZipInfo, raw: bytes, size: int = 1 << 17) -> bytes:
    """The first ``size`` bytes (at most; all of them for a negative size) of a member, from its raw bytes."""
    if info.compress_type == zipfile.ZIP_STORED:
        data = raw
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        return zlib.decompress(raw, -15) if size < 0 else zlib.decompressobj(-15).decompress(raw, size)
    else:
        # bzip2 and LZMA members: zipfile's own decompressor, which knows the zip LZMA header (the standard
        # library has no public one for a member's raw bytes)
        data = zipfile._get_decompressor(info.compress_type).decompress(raw)  # type: ignore[attr-defined]
    return data if size < 0 else data[:size]


def _refuse_objects(info: zipfile.ZipInfo, raw: bytes) -> None:
    """ArchiveError when a (compressed) member's ``.npy`` header is unreadable or declares an object dtype."""
    try:
        dtype = npy.header_of_bytes(_member_prefix(info, raw))[2]
    except (npy.NpyError, zlib.error, OSError, EOFError, ValueError) as exc:
        raise ArchiveError(f"member {info.filename!r}: {exc}") from exc
    if dtype.hasobject:
        raise ArchiveError(
            f"member {info.filename!r} holds Python objects (a pickle); nothing amsr2flow writes may contain one"
        )


def read_raw_member(fp: IO[bytes], info: zipfile.ZipInfo) -> bytes:
    """The compressed bytes of one member, located through its local header."""
    fp.seek(info.header_offset)
    fields = _LOCAL_HEADER.unpack(fp.read(_LOCAL_HEADER.size))
    if fields[0] != b"PK\x03\x04":
        raise ArchiveError(f"member {info.filename!r}: bad local header (damaged archive?)")
    fp.seek(info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11])
    raw = fp.read(info.compress_size)
    if len(raw) != info.compress_size:
        raise ArchiveError(f"member {info.filename!r} is truncated")
    return raw


WRITE_CHUNK = 1 << 18


def write_npy(fp: IO[bytes], array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` bytes (identical to ``np.save``'s) without copying it.

    ``np.lib.format.write_array`` copies the whole array with ``tobytes`` when the target is not a real
    file (a zip member is not); feeding 256 KiB views keeps the writer's extra memory small.
    """
    if array.dtype.hasobject:
        raise ArchiveError("object arrays are never written (they would need pickle)")
    # np.require, not np.ascontiguousarray: the latter turns 0-d arrays (period, provenance) into 1-d
    array = np.require(array, requirements="C")
    header = np.lib.format.header_data_from_array_1_0(array)
    try:  # the version np.save picks: 1.0 when the header fits
        np.lib.format.write_array_header_1_0(fp, header)
    except ValueError:
        np.lib.format.write_array_header_2_0(fp, header)
    data = memoryview(array.reshape(-1)).cast("B") if array.size else memoryview(b"")
    for offset in range(0, len(data), WRITE_CHUNK):
        fp.write(data[offset : offset + WRITE_CHUNK])


def _scalar_text(text: str) -> np.ndarray:
    return np.array(text, dtype=f"<U{max(len(text), 1)}")


def provenance_json(provenance: Mapping[str, Any]) -> str:
    return json.dumps(provenance, sort_keys=True, separators=(",", ":"))


def compression_of(provenance: Mapping[str, Any]) -> str:
    """The member compression an archive was written with (``deflate`` for archives that do not say)."""
    name = str(provenance.get("member_compression", DEFAULT_COMPRESSION)).split("-", 1)[0]
    return name if name in MEMBER_COMPRESSIONS else DEFAULT_COMPRESSION


def base_provenance(
    channels: Sequence[str],
    geolocation: bool,
    config_digest: str,
    notes: Sequence[str],
    compression: str = DEFAULT_COMPRESSION,
) -> dict[str, Any]:
    level = MEMBER_COMPRESSIONS[compression][1]
    return {
        "member_compression": f"{compression}-{level}",
        "format": ARCHIVE_FORMAT,
        "format_version": ARCHIVE_FORMAT_VERSION,
        "software": f"amsr2flow {__version__}",
        "config_digest": config_digest,
        "channels": list(channels),
        "geolocation": geolocation,
        "acknowledgement": JAXA_ACKNOWLEDGEMENT,
        "notes": list(notes),
    }


# -- writing --------------------------------------------------------------------------------------------------
class ArchiveWriter:
    """Stream swaths, in time order, into an archive; the file appears under ``path`` only on success.

    >>> with ArchiveWriter(path, config_digest=digest) as writer:  # doctest: +SKIP
    ...     for p in swath_paths:
    ...         writer.add(read_swath(p))

    Only the metadata of swaths already written stays in memory. ``period`` defaults to the first scan
    start and the last scan end (to the second); ``provenance`` replaces the generated provenance (used
    when partitioning, so parts carry their source's).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        period: str | tuple[datetime, datetime] | None = None,
        config_digest: str = "",
        notes: Sequence[str] = (),
        compresslevel: int | None = None,
        provenance: Mapping[str, Any] | None = None,
        compression: str = DEFAULT_COMPRESSION,
    ) -> None:
        self.path = Path(path)
        self._period = period_string(*period) if isinstance(period, tuple) else period
        self._config_digest = config_digest
        self._notes = tuple(notes)
        if compression not in MEMBER_COMPRESSIONS:
            raise ArchiveError(f"unknown member compression {compression!r}; one of {', '.join(MEMBER_COMPRESSIONS)}")
        self._compression = compression
        self._method, default_level = MEMBER_COMPRESSIONS[compression]
        self._level = default_level if compresslevel is None else compresslevel
        self._provenance = dict(provenance) if provenance is not None else None
        self._metas: list[SwathMetadata] = []
        self._ids: set[str] = set()
        self._layout: tuple[tuple[str, ...], bool] | None = None
        fd, self._tmp = atomic.temporary_beside(self.path)
        self._file = os.fdopen(fd, "w+b")
        self._zip: zipfile.ZipFile | None = zipfile.ZipFile(self._file, "w", zipfile.ZIP_DEFLATED, allowZip64=True)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __len__(self) -> int:
        return len(self._metas)

    # -- adding swaths
    def _check_next(self, meta: SwathMetadata) -> None:
        layout = (meta.channels, meta.has_geolocation)
        if self._layout is None:
            self._layout = layout
        elif layout != self._layout:
            raise ArchiveError(
                f"{meta.granule_id}: channels/geolocation {layout} differ from the archive's {self._layout}; "
                "an archive holds swaths extracted with one configuration"
            )
        if meta.granule_id in self._ids:
            raise ArchiveOrderError(f"{meta.granule_id} is already in the archive (duplicate granule)")
        previous = self._metas[-1].scan_start_utc if self._metas else UNKNOWN_TIME
        if previous and meta.scan_start_utc and meta.scan_start_utc < previous:
            raise ArchiveOrderError(
                f"{meta.granule_id} starts at {meta.scan_start_utc}, before the previous swath ({previous}); "
                "add swaths in time order (write_archive sorts swath files by their sidecar)"
            )

    def _record(self, meta: SwathMetadata) -> None:
        self._metas.append(meta)
        self._ids.add(meta.granule_id)

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None:
            raise ArchiveError(f"{self.path}: writer is closed")
        return self._zip

    def _write_array(self, name: str, array: np.ndarray) -> None:
        with self._zipfile().open(_member_info(name, self._level, self._method), "w") as member:
            write_npy(member, array)

    def add(self, swath: Swath) -> None:
        """Append one swath (its arrays are compressed and written now, then released)."""
        meta = swath.metadata
        self._check_next(meta)
        for name in meta_array_names(meta):
            array = swath.arrays[name]
            expected, ndim = ARRAY_KINDS.get(name, (np.uint16, 2))
            if array.dtype != expected or array.ndim != ndim or array.shape[0] != meta.shape[0]:
                raise SwathError(
                    f"{meta.granule_id}: array {name!r} is {array.dtype} {array.shape}, expected {np.dtype(expected)}"
                    f" with {meta.shape[0]} rows"
                )
            self._write_array(member_name(meta.granule_id, name), array)
        self._record(meta)

    def add_compressed(self, meta: SwathMetadata, members: Mapping[str, tuple[zipfile.ZipInfo, bytes]]) -> None:
        """Append a swath from another archive's compressed members, without recompressing them.

        Each member's header is read first: one holding Python objects (a pickle) is refused, naming it.
        """
        self._check_next(meta)
        zf = self._zipfile()
        for name in meta_array_names(meta):
            source, raw = members[name]
            _refuse_objects(source, raw)
            if source.compress_type == self._method and not source.flag_bits & 0x1:
                _append_raw_member(zf, member_name(meta.granule_id, name), source, raw)
            else:  # another method: decompress and compress this member the writer's way
                data = _member_prefix(source, raw, size=-1)
                target = _member_info(member_name(meta.granule_id, name), self._level, self._method)
                with zf.open(target, "w") as member:
                    member.write(data)
        self._record(meta)

    # -- finishing
    def provenance(self) -> dict[str, Any]:
        if self._provenance is not None:
            return self._provenance
        channels, geo = self._layout or (l1b.DEFAULT_CHANNELS, False)
        return base_provenance(channels, geo, self._config_digest, self._notes, self._compression)

    def period(self) -> str:
        if self._period is not None:
            return self._period
        starts = [m.scan_start_utc for m in self._metas if m.scan_start_utc]
        ends = [m.scan_end_utc for m in self._metas if m.scan_end_utc]
        if not starts or not ends:
            return ""
        return period_string(parse_utc(min(starts)), parse_utc(max(ends)))

    def close(self) -> Path:
        """Write index, period and provenance, then move the file into place. Returns the final path."""
        if self._zip is None:
            return self.path
        try:
            channels = (self._layout or (l1b.DEFAULT_CHANNELS, False))[0]
            self._write_array(INDEX_MEMBER, index_table(self._metas, channels))
            self._write_array(PERIOD_MEMBER, _scalar_text(self.period()))
            self._write_array(PROVENANCE_MEMBER, _scalar_text(provenance_json(self.provenance())))
            self._zip.close()
            self._zip = None
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            atomic.commit(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Discard everything written so far (the final path is never touched)."""
        if self._zip is not None:
            with contextlib.suppress(Exception):  # the file is deleted anyway; keep the original error
                self._zip.close()
            self._zip = None
        self._file.close()
        self._tmp.unlink(missing_ok=True)


def sorted_swath_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Swath files in time order (scan start, then granule id), reading only their sidecars."""
    keyed = [(read_swath_metadata(p), Path(p)) for p in paths]
    keyed.sort(key=lambda mp: (mp[0].scan_start_utc, mp[0].granule_id))
    return [p for _, p in keyed]


def write_archive(
    path: str | os.PathLike[str], swaths: Iterable[Swath | str | os.PathLike[str]], **writer_options: Any
) -> Path:
    """Write swaths (objects, or swath ``.npy`` paths which are sorted by time first) into one archive."""
    items = list(swaths)
    if items and not isinstance(items[0], Swath):
        items = sorted_swath_paths(items)  # type: ignore[arg-type]
    with ArchiveWriter(path, **writer_options) as writer:
        for item in items:
            writer.add(item if isinstance(item, Swath) else read_swath(item))
    return writer.path


# -- partitioning ---------------------------------------------------------------------------------------------
def _chunks(count: int, size: int) -> list[range]:
    if size < 1:
        raise ValueError(f"part size must be at least 1, not {size}")
    return [range(i, min(i + size, count)) for i in range(0, count, size)]


def partition_swaths(
    swath_paths: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    part_size: int = DEFAULT_PART_SIZE,
    period: tuple[datetime, datetime] | None = None,
    **writer_options: Any,
) -> list[Path]:
    """Write swath files into parts of ``part_size`` swaths named ``..._part_XofY.npz``.

    All parts carry the whole period (as the legacy parts do); it defaults to the swaths' time span.
    """
    paths = sorted_swath_paths(swath_paths)
    metas = [read_swath_metadata(p) for p in paths]
    if period is None:
        starts = [m.scan_start_utc for m in metas if m.scan_start_utc]
        ends = [m.scan_end_utc for m in metas if m.scan_end_utc]
        if not starts:
            raise ArchiveError("swaths have no scan times; pass period=(start, end)")
        period = (parse_utc(min(starts)).replace(microsecond=0), parse_utc(max(ends)).replace(microsecond=0))
    geo = bool(metas and metas[0].has_geolocation)
    chunks = _chunks(len(paths), part_size)
    out: list[Path] = []
    for number, chunk in enumerate(chunks, start=1):
        target = Path(out_dir) / part_name(period[0], period[1], number, len(chunks), geo)
        out.append(write_archive(target, [read_swath(paths[i]) for i in chunk], period=period, **writer_options))
    return out


def partition_archive(
    archive_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, part_size: int = DEFAULT_PART_SIZE
) -> list[Path]:
    """Split an archive into parts of ``part_size`` swaths, copying compressed members as they are.

    Parts keep the source's period and provenance and are named ``<source stem>_part_XofY.npz``.
    """
    out: list[Path] = []
    with Archive(archive_path) as source, open(archive_path, "rb") as raw_file:
        chunks = _chunks(len(source), part_size)
        for number, chunk in enumerate(chunks, start=1):
            target = Path(out_dir) / part_name_for(archive_path, number, len(chunks))
            with ArchiveWriter(
                target,
                period=source.period,
                provenance=source.provenance,
                compression=compression_of(source.provenance),
            ) as writer:
                for i in chunk:
                    meta = source.metadata(i)
                    members = {}
                    for name in meta_array_names(meta):
                        info = source.member_info(i, name)
                        members[name] = (info, read_raw_member(raw_file, info))
                    writer.add_compressed(meta, members)
            out.append(target)
    return out


# -- reading --------------------------------------------------------------------------------------------------
def detect_format(path: str | os.PathLike[str]) -> str:
    """``"archive"`` or ``"legacy"``; raises ``NotAnArchiveError`` for anything else. Never unpickles."""
    if not zipfile.is_zipfile(path):
        raise NotAnArchiveError(
            f"{path}: not an NPZ (zip) file; expected an amsr2flow archive or a legacy AMSR2_temp_only_*.npz"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if {INDEX_MEMBER, PROVENANCE_MEMBER} <= names:
                return "archive"
            if LEGACY_MEMBER in names:
                with zf.open(LEGACY_MEMBER) as member:
                    dtype = npy.read_header(member)[2]
                if dtype.hasobject:
                    return "legacy"
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error, NotImplementedError) as exc:
        raise NotAnArchiveError(f"{path}: damaged zip/NPZ file ({exc})") from exc
    found = ", ".join(sorted(names)[:5]) or "nothing"
    raise NotAnArchiveError(
        f"{path}: an NPZ without index.npy/provenance.npy (amsr2flow) or an object swath_array (legacy); "
        f"it holds {found}"
    )


def _checked_index(table: np.ndarray, path: Path) -> np.ndarray:
    """The index if it is a 1-d structured array with every fixed column; else ArchiveError naming it."""
    if table.ndim != 1 or table.dtype.names is None:
        raise ArchiveError(
            f"{path}: member {INDEX_MEMBER!r} is not a table of swaths (shape {table.shape}, {table.dtype})"
        )
    missing = [name for name, _ in INDEX_COLUMNS if name not in table.dtype.names]
    if missing:
        raise ArchiveError(f"{path}: member {INDEX_MEMBER!r} lacks the column(s) {', '.join(missing)}")
    return table


def _scalar_string(value: np.ndarray, path: Path, member: str) -> str:
    if value.ndim != 0 or value.dtype.kind != "U":
        raise ArchiveError(f"{path}: member {member!r} is not a text (shape {value.shape}, {value.dtype})")
    return str(value)


def _provenance(value: np.ndarray, path: Path) -> dict[str, Any]:
    text = _scalar_string(value, path, PROVENANCE_MEMBER)
    try:
        provenance = json.loads(text)
    except ValueError as exc:
        raise ArchiveError(f"{path}: member {PROVENANCE_MEMBER!r} is not JSON ({exc})") from exc
    if not isinstance(provenance, dict):
        raise ArchiveError(f"{path}: member {PROVENANCE_MEMBER!r} is JSON but not an object")
    return provenance


class ArchiveSwath(Mapping[str, Any]):
    """One swath of an archive, read lazily: each array is decompressed on first access, then kept."""

    def __init__(self, archive: Archive, position: int) -> None:
        self._archive = archive
        self._position = position
        self.metadata: SwathMetadata = archive.metadata(position)
        self._names = meta_array_names(self.metadata)
        self._cache: dict[str, np.ndarray] = {}

    @property
    def granule_id(self) -> str:
        return self.metadata.granule_id

    def __getitem__(self, key: str) -> Any:
        if key == "metadata":
            return self.metadata.legacy_dict()
        if key == self.metadata.channels[0]:
            key = TEMPERATURE
        if key not in self._names:
            raise KeyError(key)
        if key not in self._cache:
            self._cache[key] = self._archive.read_array(self._position, key)
        return self._cache[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._names
        yield "metadata"

    def __len__(self) -> int:
        return len(self._names) + 1

    def __repr__(self) -> str:
        return f"<ArchiveSwath {self.granule_id} {self.metadata.shape}>"

    __eq__ = object.__eq__  # identity: Mapping's comparison would compare arrays elementwise
    __hash__ = object.__hash__

    def load(self) -> Swath:
        """All arrays of this swath as a ``Swath``."""
        return Swath(self.metadata, {name: self[name] for name in self._names})


class Archive(Sequence[ArchiveSwath]):
    """A lazily read archive: ``len``, indexing (int, slice, granule id), iteration, ``index``, ``select``.

    Opening reads only the zip directory and the small index/period/provenance members; swaths are read
    when accessed. Views made by slicing or ``select`` share the open file; close the archive (or use it as a
    context manager) when done.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if detect_format(self.path) != "archive":
            raise LegacyPickleRefused(legacy_refusal(self.path))
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise ArchiveError(f"{self.path}: damaged zip directory ({exc})") from exc
        try:
            self._table: np.ndarray = _checked_index(self._read_member(INDEX_MEMBER), self.path)
            self.period: str = _scalar_string(self._read_member(PERIOD_MEMBER), self.path, PERIOD_MEMBER)
            self.provenance: dict[str, Any] = _provenance(self._read_member(PROVENANCE_MEMBER), self.path)
        except BaseException:
            self._zip.close()
            raise
        self._positions = np.arange(len(self._table))

    def _view(self, positions: np.ndarray) -> Archive:
        view = object.__new__(Archive)
        view.__dict__.update(self.__dict__)
        view._positions = positions
        return view

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def __repr__(self) -> str:
        return f"<Archive {self.path.name}: {len(self)} swaths, {self.period!r}>"

    # -- raw access
    def _read_member(self, name: str) -> np.ndarray:
        """One member's array; its header's claimed size is checked against the member's before reading."""
        try:
            info = self._zip.getinfo(name)
        except KeyError as exc:
            raise ArchiveError(f"{self.path}: member {name!r} is missing") from exc
        try:
            with self._zip.open(info) as member:
                return npy.read_array(member, info.file_size)
        except npy.NpyError as exc:
            raise ArchiveError(f"{self.path}: member {name!r}: {exc}") from exc
        except (ValueError, OSError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise ArchiveError(f"{self.path}: member {name!r} is unreadable ({exc})") from exc

    @property
    def table(self) -> np.ndarray:
        """The index rows of this view as the stored structured array."""
        return self._table[self._positions]

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.provenance.get("channels", l1b.DEFAULT_CHANNELS))

    @property
    def geolocation(self) -> bool:
        return bool(self.provenance.get("geolocation", False))

    def metadata(self, i: int) -> SwathMetadata:
        try:
            return row_metadata(self._table[self._positions[i]])
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise ArchiveError(f"{self.path}: member {INDEX_MEMBER!r}, row {i}: {exc}") from exc

    def member_info(self, i: int, array: str) -> zipfile.ZipInfo:
        return self._zip.getinfo(member_name(str(self._table[self._positions[i]]["granule_id"]), array))

    def read_array(self, i: int, array: str = TEMPERATURE) -> np.ndarray:
        return self._read_member(member_name(str(self._table[self._positions[i]]["granule_id"]), array))

    def zip_infos(self) -> list[zipfile.ZipInfo]:
        return self._zip.infolist()

    # -- the collection
    def __len__(self) -> int:
        return len(self._positions)

    @overload
    def __getitem__(self, key: int | str) -> ArchiveSwath: ...

    @overload
    def __getitem__(self, key: slice) -> Archive: ...

    def __getitem__(self, key: int | str | slice) -> ArchiveSwath | Archive:
        if isinstance(key, slice):
            return self._view(self._positions[key])
        if isinstance(key, str):
            matches = np.flatnonzero(self._table["granule_id"][self._positions] == key)
            if not matches.size:
                raise KeyError(key)
            return ArchiveSwath(self, int(matches[0]))
        position = range(len(self))[key]  # IndexError and negative indices as for a list
        return ArchiveSwath(self, position)

    def __iter__(self) -> Iterator[ArchiveSwath]:
        for i in range(len(self)):
            yield ArchiveSwath(self, i)

    def to_xarray(self, chunks: Mapping[str, int] | None = None, **decode: Any) -> Any:
        """This archive (or view) as a lazy CF ``xarray.Dataset`` with dimensions ``(swath, scan, pixel)``;
        ``chunks={"swath": 1}`` gives dask arrays. Keep the archive open while using it. See ``formats.dataset``."""
        from .dataset import archive_dataset

        dataset = archive_dataset(self, **decode)
        return dataset.chunk(dict(chunks)) if chunks else dataset

    @property
    def index(self) -> Any:
        """The index of this view as a pandas DataFrame."""
        return index_frame(self.table)

    def select(
        self,
        orbit_type: str | Iterable[str] | None = None,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
    ) -> Archive:
        """Swaths of the given orbit type(s) whose scan start is in ``[start, end)``.

        Swaths with unknown times (converted legacy archives) are excluded by any time bound.
        """
        table = self.table
        keep = np.ones(len(table), dtype=bool)
        if orbit_type is not None:
            wanted = [orbit_type] if isinstance(orbit_type, str) else list(orbit_type)
            keep &= np.isin(table["orbit_type"], wanted)
        starts = table["scan_start_utc"]
        if start is not None:
            keep &= (starts != "") & (starts >= _iso_bound(start))
        if end is not None:
            keep &= (starts != "") & (starts < _iso_bound(end))
        return self._view(self._positions[keep])


def _iso_bound(value: str | datetime) -> str:
    """A time bound in the index's string form, so bounds compare as strings with ``scan_start_utc``."""
    stamp = parse_utc(value)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def legacy_refusal(path: Path, how: str = "") -> str:
    """Why a legacy pickled archive is not opened, and ``how`` to open it when trusted (by default the library's
    way and `amsr2flow convert-legacy`; a command names its own ``--trust-legacy-pickle``)."""
    how = how or (
        "open it with open_archive(path, allow_legacy_pickle=True) or convert it once with "
        "`amsr2flow convert-legacy --trust-legacy-pickle`"
    )
    return (
        f"{path} is a legacy pickled archive: reading it runs whatever code the file carries. If you trust "
        f"where it came from, {how}"
    )


# -- helpers for analysis -------------------------------------------------------------------------------------
def to_kelvin(swath_or_array: Mapping[str, Any] | np.ndarray, scale_factor: float | None = None) -> np.ndarray:
    """Raw temperatures to Kelvin (float32), NaN where the raw value is 0 (invalid).

    Takes a swath (its ``temperature`` and ``scale_factor``) or a raw array plus ``scale_factor``.
    """
    if isinstance(swath_or_array, np.ndarray):
        raw = swath_or_array
        if scale_factor is None:
            raise ValueError("scale_factor is needed when converting a bare array")
    else:
        raw = swath_or_array["temperature"]
        if scale_factor is None:
            scale_factor = float(swath_or_array["metadata"]["scale_factor"])
    kelvin = (raw.astype(np.float64) * scale_factor).astype(np.float32)
    kelvin[raw == 0] = np.nan
    return kelvin


def crop_or_pad(array: np.ndarray, n_scans: int = 2000, fill: float | None = None) -> np.ndarray:
    """Exactly ``n_scans`` rows: crop the end (as the legacy README does) or pad with invalid rows.

    The pad value is 0 for integer arrays (the invalid raw value) and NaN for float arrays, unless ``fill``.
    """
    if array.shape[0] >= n_scans:
        return array[:n_scans]
    if fill is None:
        fill = np.nan if np.issubdtype(array.dtype, np.floating) else 0
    pad = np.full((n_scans - array.shape[0], *array.shape[1:]), fill, dtype=array.dtype)
    return np.concatenate([array, pad])


@dataclass(frozen=True)
class ArchiveSummary:
    """What ``amsr2flow info`` prints."""

    path: Path
    format: str
    swaths: int
    period: str
    channels: tuple[str, ...]
    geolocation: bool
    orbit_types: dict[str, int]
    first_scan_utc: str
    last_scan_utc: str
    provenance: dict[str, Any]


def summarise(archive: Any) -> ArchiveSummary:
    """Summary of an open archive (new or legacy) from its index only."""
    table = archive.table
    starts = sorted(s for s in table["scan_start_utc"].tolist() if s)
    ends = sorted(s for s in table["scan_end_utc"].tolist() if s)
    kinds, counts = np.unique(table["orbit_type"], return_counts=True)
    return ArchiveSummary(
        path=Path(archive.path),
        format=str(archive.provenance.get("format", "?")),
        swaths=len(archive),
        period=archive.period,
        channels=archive.channels,
        geolocation=archive.geolocation,
        orbit_types={str(k): int(c) for k, c in zip(kinds, counts, strict=True)},
        first_scan_utc=starts[0] if starts else "",
        last_scan_utc=ends[-1] if ends else "",
        provenance=archive.provenance,
    )
