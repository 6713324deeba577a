"""The swath format: one granule's brightness temperatures as a pickle-free ``.npy`` plus a JSON sidecar.

A swath is the workflow's intermediate product: one L1B granule reduced to the configured channels (raw
integers, as in the file) and, optionally, the positions of the low-frequency samples.

On disk (``write_swath``):

- ``<granule_id>.npy``: a **structured** array with one row per scan and one sub-array field per variable,
  readable with ``np.load(path, allow_pickle=False)``. Field ``temperature`` is the first configured channel
  (the legacy name, so ``np.load(p)['temperature']`` is the legacy array); further channels keep their short
  names (``36.5V``, ``89.0AV``, ...); ``latitude``/``longitude`` (float32) are present with geolocation.
  A structured array is the one plain ``.npy`` layout that holds fields of different widths (243 and 486
  columns) and dtypes (uint16 and float32) in a single file.
- ``<granule_id>.json``: the metadata (``SwathMetadata``), written after the ``.npy`` so that an existing
  sidecar means the pair is complete.

Conventions kept from the legacy system, on purpose:

- Temperatures stay raw ``uint16`` with the file's ``SCALE FACTOR`` recorded per channel; the missing codes
  (65535, 65534) become 0, so the legacy rule ``valid = temperature != 0`` holds (0 K is unphysical).
- **All scan rows are kept, overlap rows included** (legacy swaths have 2000-2060 rows, i.e. with overlap);
  ``overlap_scans`` records how many rows at each end duplicate the neighbouring granules, and the scan
  start/end times are those of the first/last *non-overlap* row, so consecutive swaths do not overlap in time.
- The orbit type comes from the file name exactly as the legacy system derives it.
- Positions keep the file's values, including its fill (-9999, values <= -9991 are abnormal); the
  ``lat_range``/``lon_range`` ignore those fills.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import atomic
from . import facts, l1b, variables

if TYPE_CHECKING:  # a region's geometry (shapely) is imported only by runs that have one
    from ..region import Region

log = logging.getLogger(__name__)

SWATH_FORMAT = "amsr2flow.swath"
SWATH_FORMAT_VERSION = 1
TEMPERATURE = "temperature"
LATITUDE = "latitude"
LONGITUDE = "longitude"
SCAN_TIME_UTC = "scan_time"  # per scan, UTC Unix seconds (float64; NaN where the file's time is a fill)
UNKNOWN_TIME = ""  # scan times unknown (legacy swaths carry none)
TOMBSTONE_STATUS = "missing"  # sidecar status of a tombstone: a catalogued granule that could not be archived


# -- errors ---------------------------------------------------------------------------------------------------
class SwathError(ValueError):
    """A granule or swath file cannot be turned into a valid swath."""


class MissingDatasetError(SwathError):
    """A dataset the extraction needs is absent from the granule."""


class DatasetLayoutError(SwathError):
    """A dataset has a shape or dtype other than the L1B format's."""


class MissingAttributeError(SwathError):
    """An attribute the extraction needs (e.g. ``SCALE FACTOR``) is absent."""


# -- metadata -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SwathMetadata:
    """Everything known about one swath besides its arrays (one row of an archive's index)."""

    granule_id: str
    orbit_type: str  # "A", "D" or "U", from the file name
    channels: tuple[str, ...]  # configured channels; channels[0] is stored as `temperature`
    scale_factors: tuple[float, ...]  # one per channel, from the file's SCALE FACTOR attribute
    shape: tuple[int, int]  # shape of `temperature` (scans, pixels)
    temp_range: tuple[int, int]  # min/max valid (non-zero) raw value of `temperature`; (0, 0) if none
    lat_range: tuple[float, float] | None = None  # None without geolocation
    lon_range: tuple[float, float] | None = None
    scan_start_utc: str = UNKNOWN_TIME  # ISO 8601 with milliseconds and "Z"; "" when unknown
    scan_end_utc: str = UNKNOWN_TIME
    overlap_scans: int = -1  # rows at each end duplicating neighbouring granules; -1 unknown
    source_size: int = -1  # bytes of the source granule file; -1 unknown
    source_sha256: str = ""
    product_version: str = ""  # e.g. "2220220", from the file name
    has_scan_times: bool = False  # a `scan_time` array (UTC Unix seconds per scan); swaths before it have none
    variables: tuple[str, ...] = ()  # extra variables stored (formats.variables), in the registry's order
    first_scan: int = 0  # row of the source granule this swath's first row is (a swath cropped to a region)
    region: str = ""  # the region the swath was cropped to, in words ("" for a whole granule)
    region_key: str = ""  # what identifies the crop: the region's fingerprint and the margin ("" whole)
    granule_scans: int = -1  # the source granule's scans without its overlap rows; -1 unknown

    @property
    def scale_factor(self) -> float:
        return self.scale_factors[0]

    @property
    def has_geolocation(self) -> bool:
        return self.lat_range is not None

    def legacy_dict(self) -> dict[str, Any]:
        """The metadata as the legacy dictionaries hold it, plus this format's additional keys."""
        meta: dict[str, Any] = {
            "orbit_type": self.orbit_type,
            "scale_factor": self.scale_factor,
            "temp_range": self.temp_range,
            "shape": self.shape,
        }
        if self.lat_range is not None:
            meta["lat_range"] = self.lat_range
            meta["lon_range"] = self.lon_range
        meta.update(
            granule_id=self.granule_id,
            channels=self.channels,
            scale_factors=dict(zip(self.channels, self.scale_factors, strict=True)),
            scan_start_utc=self.scan_start_utc,
            scan_end_utc=self.scan_end_utc,
            overlap_scans=self.overlap_scans,
            source_size=self.source_size,
            source_sha256=self.source_sha256,
            product_version=self.product_version,
        )
        if self.variables:
            meta["variables"] = self.variables
        if self.region:
            meta.update(
                region=self.region,
                region_key=self.region_key,
                first_scan=self.first_scan,
                granule_scans=self.granule_scans,
            )
        return meta

    def to_json_dict(self) -> dict[str, Any]:
        data = {"format": SWATH_FORMAT, "format_version": SWATH_FORMAT_VERSION, **asdict(self)}
        for key in ("lat_range", "lon_range"):  # JSON has no NaN: a swath without valid positions gets nulls
            if data[key] is not None:
                data[key] = [None if math.isnan(v) else v for v in data[key]]
        return data

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> SwathMetadata:
        if data.get("format") != SWATH_FORMAT:
            raise SwathError(f"not an {SWATH_FORMAT} sidecar (format={data.get('format')!r})")

        def pair(value: Any, kind: type) -> tuple[Any, Any] | None:
            if value is None:
                return None
            return tuple(math.nan if v is None else kind(v) for v in value)  # type: ignore[return-value]

        return cls(
            granule_id=str(data["granule_id"]),
            orbit_type=str(data["orbit_type"]),
            channels=tuple(str(c) for c in data["channels"]),
            scale_factors=tuple(float(s) for s in data["scale_factors"]),
            shape=(int(data["shape"][0]), int(data["shape"][1])),
            temp_range=(int(data["temp_range"][0]), int(data["temp_range"][1])),
            lat_range=pair(data.get("lat_range"), float),
            lon_range=pair(data.get("lon_range"), float),
            scan_start_utc=str(data.get("scan_start_utc", UNKNOWN_TIME)),
            scan_end_utc=str(data.get("scan_end_utc", UNKNOWN_TIME)),
            overlap_scans=int(data.get("overlap_scans", -1)),
            source_size=int(data.get("source_size", -1)),
            source_sha256=str(data.get("source_sha256", "")),
            product_version=str(data.get("product_version", "")),
            has_scan_times=bool(data.get("has_scan_times", False)),
            variables=tuple(str(v) for v in data.get("variables", ())),
            first_scan=int(data.get("first_scan", 0)),
            region=str(data.get("region", "")),
            region_key=str(data.get("region_key", "")),
            granule_scans=int(data.get("granule_scans", -1)),
        )


# -- the swath ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Swath(Mapping[str, Any]):
    """One swath: arrays plus metadata, usable like a legacy swath dictionary.

    ``swath['temperature']`` is the first channel, ``swath['<channel>']`` any configured channel,
    ``swath['latitude']``/``['longitude']`` the positions when present, and ``swath['metadata']`` the legacy
    metadata dictionary (``orbit_type``, ``scale_factor``, ``temp_range``, ``shape``, ...).
    """

    metadata: SwathMetadata
    arrays: Mapping[str, np.ndarray] = field(repr=False)  # "temperature", extra channels, latitude, longitude

    def __getitem__(self, key: str) -> Any:
        if key == "metadata":
            return self.metadata.legacy_dict()
        if key == self.metadata.channels[0]:
            key = TEMPERATURE
        return self.arrays[key]

    def __iter__(self) -> Iterator[str]:
        yield from self.arrays
        yield "metadata"

    def __len__(self) -> int:
        return len(self.arrays) + 1

    def __contains__(self, key: object) -> bool:
        return key == "metadata" or key in self.arrays or key == self.metadata.channels[0]

    # Identity, not Mapping's value comparison (which would compare arrays elementwise and fail).
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    @property
    def granule_id(self) -> str:
        return self.metadata.granule_id

    @property
    def temperature(self) -> np.ndarray:
        return self.arrays[TEMPERATURE]

    def legacy_dict(self) -> dict[str, Any]:
        """A plain dictionary in the legacy layout (arrays plus ``metadata``)."""
        return {**self.arrays, "metadata": self.metadata.legacy_dict()}


def array_names(
    channels: Sequence[str], geolocation: bool, scan_times: bool = False, variables: Sequence[str] = ()
) -> tuple[str, ...]:
    """Names of a swath's arrays, in storage order: temperature, further channels, positions, scan times,
    extra variables."""
    names = (TEMPERATURE, *channels[1:])
    names = (*names, LATITUDE, LONGITUDE) if geolocation else names
    names = (*names, SCAN_TIME_UTC) if scan_times else names
    return (*names, *variables)


def meta_array_names(meta: SwathMetadata) -> tuple[str, ...]:
    return array_names(meta.channels, meta.has_geolocation, meta.has_scan_times, meta.variables)


def valid_range(raw: np.ndarray) -> tuple[int, int]:
    """Min/max of the valid (non-zero) raw values; (0, 0) when nothing is valid."""
    valid = raw[raw != 0]
    return (int(valid.min()), int(valid.max())) if valid.size else (0, 0)


def position_range(values: np.ndarray) -> tuple[float, float]:
    """Min/max of positions, ignoring the L1B fills (<= -9991) and NaN; (nan, nan) when none is valid."""
    valid = values[np.isfinite(values) & (values > l1b.GEO_ABNORMAL_MAX)]
    return (float(valid.min()), float(valid.max())) if valid.size else (float("nan"), float("nan"))


def make_swath(
    granule_id: str,
    orbit_type: str,
    channel_arrays: Mapping[str, np.ndarray],
    scale_factors: Sequence[float],
    *,
    latitude: np.ndarray | None = None,
    longitude: np.ndarray | None = None,
    scan_time: np.ndarray | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
    **metadata: Any,
) -> Swath:
    """Build a ``Swath`` from arrays, deriving shape and ranges (used by extraction, conversion and tests)."""
    channels = tuple(channel_arrays)
    arrays = {TEMPERATURE if i == 0 else c: channel_arrays[c] for i, c in enumerate(channels)}
    temperature = arrays[TEMPERATURE]
    if (latitude is None) != (longitude is None):
        raise SwathError("latitude and longitude must be given together")
    if latitude is not None and longitude is not None:
        arrays[LATITUDE] = latitude
        arrays[LONGITUDE] = longitude
        metadata.setdefault("lat_range", position_range(latitude))
        metadata.setdefault("lon_range", position_range(longitude))
    if scan_time is not None:
        if scan_time.shape != (temperature.shape[0],):
            raise SwathError(f"scan_time has shape {scan_time.shape}, expected ({temperature.shape[0]},)")
        arrays[SCAN_TIME_UTC] = np.asarray(scan_time, dtype=np.float64)
        metadata["has_scan_times"] = True
    if extra:
        names = variables.check_names(list(extra))
        for name in names:
            values = np.asarray(extra[name])
            variable = variables.EXTRA_VARIABLES[name]
            if values.shape != (temperature.shape[0], *variable.row_shape) or values.dtype != np.dtype(variable.dtype):
                raise SwathError(
                    f"variable {name} is {values.dtype} {values.shape}, expected {np.dtype(variable.dtype)} "
                    f"{(temperature.shape[0], *variable.row_shape)}"
                )
            arrays[name] = values
        metadata["variables"] = names
    meta = SwathMetadata(
        granule_id=granule_id,
        orbit_type=orbit_type,
        channels=channels,
        scale_factors=tuple(float(s) for s in scale_factors),
        shape=(int(temperature.shape[0]), int(temperature.shape[1])),
        temp_range=valid_range(temperature),
        **metadata,
    )
    return Swath(meta, arrays)


# -- extraction from L1B HDF5 ---------------------------------------------------------------------------------
def file_digest(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> tuple[int, str]:
    """Size in bytes and SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def utc_iso(unix_utc: float) -> str:
    """UTC Unix seconds as ISO 8601 with milliseconds and a ``Z`` (:func:`l1b.utc_iso_ms`, the one rule)."""
    return l1b.utc_iso_ms(unix_utc)


def index_times(values: Iterable[str]) -> np.ndarray:
    """ISO times as :func:`utc_iso` writes them ("2020-01-01T00:47:12.345Z", "" when unknown) as datetime64[ns]
    (NaT when unknown)."""
    return np.array([str(v).removesuffix("Z") or "NaT" for v in values], dtype="datetime64[ns]")


def _same_type(found: np.dtype, wanted: str) -> bool:
    """The L1B type whatever the byte order: real files may store big-endian datasets (read as native here)."""
    expected = np.dtype(wanted)
    return found.kind == expected.kind and found.itemsize == expected.itemsize


def _missing_dataset(h5: Any, name: str, path: str) -> MissingDatasetError:
    """Say precisely what is unexpected: the dataset needed, the names that look like it, what the file holds."""
    import difflib

    found = sorted(str(k) for k in h5)
    close = difflib.get_close_matches(name, found, n=3, cutoff=0.6)
    hint = f"; similar names in the file: {', '.join(repr(c) for c in close)}" if close else ""
    shown = ", ".join(repr(f) for f in found[:12]) + (" ..." if len(found) > 12 else "")
    return MissingDatasetError(
        f"{path}: dataset {name!r} is missing{hint}. The file holds {len(found)} datasets: {shown or 'none'}; "
        "is this an AMSR2/AMSR-E L1B granule?"
    )


def _dataset(h5: Any, name: str, pixels: int | None, dtype: str, path: str) -> Any:
    """The dataset ``name``, checked for shape (rows[, pixels]) and dtype; raises naming what is wrong."""
    if name not in h5:
        raise _missing_dataset(h5, name, path)
    ds = h5[name]
    expected_ndim = 1 if pixels is None else 2
    if ds.ndim != expected_ndim or (pixels is not None and ds.shape[1] != pixels):
        want = "(N,)" if pixels is None else f"(N, {pixels})"
        raise DatasetLayoutError(f"{path}: dataset {name!r} has shape {ds.shape}, expected {want}")
    if not _same_type(ds.dtype, dtype):
        raise DatasetLayoutError(f"{path}: dataset {name!r} has dtype {ds.dtype}, expected {dtype} (either byte order)")
    return ds


def _attribute_value(value: Any) -> Any:
    """An attribute as one plain value: real files hold 1-element arrays, scalars, bytes or str."""
    item = np.asarray(value).ravel()
    if item.size == 0:
        raise ValueError("empty attribute")
    first = item[0]
    return first.decode("ascii", "replace").strip() if isinstance(first, bytes) else first


def _scale_factor(ds: Any, path: str) -> float:
    if "SCALE FACTOR" not in ds.attrs:
        raise MissingAttributeError(f"{path}: dataset {ds.name!r} has no 'SCALE FACTOR' attribute")
    try:
        value = _attribute_value(ds.attrs["SCALE FACTOR"])
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise MissingAttributeError(
            f"{path}: dataset {ds.name!r} has a 'SCALE FACTOR' that is not a number ({ds.attrs['SCALE FACTOR']!r})"
        ) from exc
    # Files store it as float32 (0.01 reads back as 0.009999999776...). Recording the shortest decimal that
    # round-trips at the stored precision gives users 0.01, the value JAXA documents.
    if isinstance(value, np.floating) and value.dtype.itemsize == 4:
        return float(np.format_float_positional(np.float32(value), unique=True))
    return number


def _global_int(h5: Any, name: str) -> int | None:
    """A global attribute (a 1-element string array in real files; a scalar, bytes or str also do) as an int."""
    if name not in h5.attrs:
        return None
    try:
        return int(float(_attribute_value(h5.attrs[name])))
    except (TypeError, ValueError):
        return None


def overlap_scans_of(h5: Any, rows: int) -> int:
    """Overlap rows at each end: the ``OverlapScans`` attribute, else derived from ``NumberOfScans``, else 0."""
    overlap = _global_int(h5, "OverlapScans")
    if overlap is None:
        number_of_scans = _global_int(h5, "NumberOfScans")
        overlap = (rows - number_of_scans) // 2 if number_of_scans is not None else 0
    return overlap if overlap >= 0 and 2 * overlap < rows else 0


def raw_temperatures(ds: Any) -> np.ndarray:
    """A brightness temperature dataset as uint16 with the missing codes mapped to 0 (invalid)."""
    raw = np.asarray(ds[()], dtype=np.uint16)
    raw[raw >= min(l1b.TB_MISSING_CODES)] = 0
    return raw


@dataclass(frozen=True)
class Extraction:
    """A granule read once: its swath, and what the file's own attributes and latitudes say of it."""

    swath: Swath
    file_facts: facts.FileFacts
    # the granule's first and last non-overlap scan times, which a swath cropped to a region does not keep
    scan_start_utc: str = ""
    scan_end_utc: str = ""

    def disagreements(
        self, catalogue: facts.CatalogueRecord, remote_path: str, time_tolerance_s: float = facts.TIME_TOLERANCE_S
    ) -> list[facts.Disagreement]:
        """The catalogue's record against the file's name (its ``remote_path``), the file's own facts and the
        swath about to be stored (what a day job and ``amsr2flow doctor --download`` check)."""
        meta = self.swath.metadata
        return facts.granule_disagreements(
            catalogue=catalogue,
            remote_file_name=remote_path,
            granule_id=meta.granule_id,
            orbit_type=meta.orbit_type,
            scan_start_utc=self.scan_start_utc or meta.scan_start_utc,
            scan_end_utc=self.scan_end_utc or meta.scan_end_utc,
            source_size=meta.source_size,
            file_facts=self.file_facts,
            time_tolerance_s=time_tolerance_s,
        )


#: Scan rows of a full granule with its overlap (real files: 2040-2044); sizes a swath before it exists.
ESTIMATED_ROWS = 2100


@dataclass(frozen=True)
class ExtractionSpec:
    """What to extract from each granule: the channels (the first one is ``temperature``), the positions, and
    the extra variables (``formats.variables``)."""

    channels: tuple[str, ...] = l1b.DEFAULT_CHANNELS
    geolocation: bool = False
    variables: tuple[str, ...] = ()
    region: Region | None = None  # keep only the scans that touch it (and margin_scans around them)
    margin_scans: int = 0  # the configuration's region_margin_scans

    def extract(
        self, h5_path: str | os.PathLike[str], *, sha256: str | None = None, source_size: int | None = None
    ) -> Extraction:
        return extract_granule(
            h5_path,
            self.channels,
            self.geolocation,
            extra_variables=self.variables,
            sha256=sha256,
            source_size=source_size,
            region=self.region,
            margin_scans=self.margin_scans,
        )

    @property
    def region_description(self) -> str:
        return self.region.description if self.region is not None else ""

    @property
    def region_key(self) -> str:
        """What identifies a crop: the region's fingerprint and the margin ("" for whole granules). Two regions
        may read alike (a GeoJSON file edited in place keeps its name); their fingerprints differ."""
        return crop_key(self.region, self.margin_scans) if self.region is not None else ""

    def holds(self, meta: SwathMetadata) -> bool:
        """Whether a swath already made has this layout: its channels and positions, and its scans: a whole
        granule's, or those of this region (a swath cropped to another region may lack scans this one needs).
        A new variable set applies to granules extracted from then on, so the variables do not count."""
        same_layout = meta.channels == tuple(self.channels) and meta.has_geolocation == self.geolocation
        return same_layout and meta.region_key in ("", self.region_key)

    @property
    def pixels(self) -> int:
        """Columns of ``temperature`` (243, or 486 when the first channel is an 89 GHz one)."""
        return l1b.channel_pixels(self.channels[0])

    def estimated_bytes(self) -> int:
        """About how large a full-size swath file is (uint16 per channel, float32 positions, float64 scan times,
        the extra variables)."""
        per_row = sum(2 * l1b.channel_pixels(c) for c in self.channels)
        per_row += 2 * 4 * l1b.LOW_FREQ_PIXELS if self.geolocation else 0
        per_row += 8 + variables.size_per_scan(self.variables)
        return ESTIMATED_ROWS * per_row + 4096


def extract_swath(
    h5_path: str | os.PathLike[str],
    channels: Sequence[str] = l1b.DEFAULT_CHANNELS,
    geolocation: bool = False,
    **options: Any,
) -> Swath:
    """Read one L1B granule into a ``Swath``; raises a ``SwathError`` subclass naming any bad dataset.

    ``options`` are :func:`extract_granule`'s: ``extra_variables`` (variables of :mod:`formats.variables` to keep
    as well), ``sha256``/``source_size`` when already known (e.g. from the download; otherwise computed here).
    """
    return extract_granule(h5_path, channels, geolocation, **options).swath


def extract_granule(
    h5_path: str | os.PathLike[str],
    channels: Sequence[str] = l1b.DEFAULT_CHANNELS,
    geolocation: bool = False,
    *,
    extra_variables: Sequence[str] = (),
    sha256: str | None = None,
    source_size: int | None = None,
    region: Region | None = None,
    margin_scans: int = 0,
) -> Extraction:
    """:func:`extract_swath`, and the file's own facts (:class:`facts.FileFacts`) from the same open, for the
    cross-checks against the catalogue and the file name.

    With ``region``, the swath keeps the granule's rows from the first to the last whose footprints (the
    low-frequency positions) touch it, ``margin_scans`` more on each side, within the non-overlap rows (the
    neighbouring granules hold the overlap rows' scans); pixels stay whole scan lines. :class:`OutsideRegion`
    when no scan touches it."""
    import h5py  # only extraction needs HDF5

    path = os.fspath(h5_path)
    if not channels:
        raise SwathError("at least one channel is needed")
    unknown = [c for c in channels if c not in l1b.CHANNEL_DATASETS]
    if unknown:
        raise SwathError(f"unknown channel(s) {unknown}; known: {', '.join(l1b.CHANNEL_DATASETS)}")
    if sha256 is None or source_size is None:
        source_size, sha256 = file_digest(path)
    # One name per meaning: the file's name gives the granule id and the orbit type; variable names are others.
    file_name = Path(path).name
    try:
        parsed = l1b.parse_granule_name(file_name)
        granule_id, product_version = parsed.granule_id, parsed.product_version
    except ValueError:
        granule_id, product_version = file_name.split(".h5", 1)[0], ""

    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise SwathError(f"{path}: not a readable HDF5 file ({exc})") from exc
    with h5:
        arrays: dict[str, np.ndarray] = {}
        scales: list[float] = []
        for channel in channels:
            ds = _dataset(h5, l1b.CHANNEL_DATASETS[channel], l1b.channel_pixels(channel), "uint16", path)
            scales.append(_scale_factor(ds, path))
            arrays[channel] = raw_temperatures(ds)
        rows = {a.shape[0] for a in arrays.values()}
        if len(rows) != 1:
            raise DatasetLayoutError(f"{path}: channels have different scan counts {sorted(rows)}")
        n_rows = rows.pop()
        scan_time = np.asarray(_dataset(h5, l1b.SCAN_TIME, None, "float64", path)[()], dtype=np.float64)
        if scan_time.shape[0] != n_rows:
            raise DatasetLayoutError(f"{path}: {l1b.SCAN_TIME!r} has {scan_time.shape[0]} rows, not {n_rows}")
        overlap = overlap_scans_of(h5, n_rows)
        positions: dict[str, np.ndarray] = {}
        if geolocation or region is not None:
            for key, ds_name in ((LATITUDE, l1b.LATITUDE_89A), (LONGITUDE, l1b.LONGITUDE_89A)):
                ds = _dataset(h5, ds_name, l1b.HIGH_FREQ_PIXELS, "float32", path)
                if ds.shape[0] != n_rows:
                    raise DatasetLayoutError(f"{path}: {ds_name!r} has {ds.shape[0]} rows, not {n_rows}")
                # every second 89A sample sits on a low-frequency footprint (legacy system, satpy)
                positions[key] = np.ascontiguousarray(ds[()][:, ::2], dtype=np.float32)
        extra = {}
        for variable_name in variables.check_names(extra_variables):
            try:
                extra[variable_name] = _extra_variable(h5, variable_name, n_rows, path)
            except SwathError as exc:
                # The temperatures are what the granule is fetched for: a variable this granule does not hold
                # as documented is left out of its swath (which records the variables it has), not the granule.
                log.warning("%s: %s left out of the swath: %s", granule_id, variable_name, exc)
        file_facts = _file_facts(h5, positions.get(LATITUDE), overlap)

    first, last = scan_time[overlap], scan_time[n_rows - 1 - overlap]
    if not (np.isfinite(first) and np.isfinite(last) and first > 0 and last >= first):
        raise SwathError(f"{path}: {l1b.SCAN_TIME!r} of the non-overlap rows is invalid ({first}, {last})")
    granule_start, granule_end = utc_iso(l1b.tai93_to_unix(float(first))), utc_iso(l1b.tai93_to_unix(float(last)))
    cropped: dict[str, Any] = {"granule_scans": n_rows - 2 * overlap}
    if region is not None:
        rows = rows_in_region(positions[LONGITUDE], positions[LATITUDE], region, overlap, margin_scans)
        if rows is None:
            raise OutsideRegion(f"{granule_id}: none of its scans touches {region.description}")
        arrays = {c: a[rows] for c, a in arrays.items()}
        scan_time = scan_time[rows]
        extra = {k: v[rows] for k, v in extra.items()}
        positions = {k: v[rows] for k, v in positions.items()} if geolocation else {}
        first, last = scan_time[0], scan_time[-1]
        overlap = 0  # the overlap rows are the neighbours' scans: a cropped swath holds none
        cropped |= {
            "first_scan": rows.start,
            "region": region.description,
            "region_key": crop_key(region, margin_scans),
        }
    extracted = make_swath(
        granule_id,
        l1b.orbit_type_from_name(file_name),
        arrays,
        scales,
        latitude=positions.get(LATITUDE),
        longitude=positions.get(LONGITUDE),
        scan_time=l1b.tai93_to_unix_array(scan_time),
        extra=extra,
        scan_start_utc=utc_iso(l1b.tai93_to_unix(float(first))),
        scan_end_utc=utc_iso(l1b.tai93_to_unix(float(last))),
        overlap_scans=overlap,
        source_size=int(source_size),
        source_sha256=sha256,
        product_version=product_version,
        **cropped,
    )
    return Extraction(extracted, file_facts, granule_start, granule_end)


def crop_key(region: Region, margin_scans: int) -> str:
    """What identifies a crop: the region's fingerprint and the margin (``region_key`` of swaths and tombstones)."""
    return f"{region.fingerprint}+{margin_scans}"


class OutsideRegion(Exception):  # an outcome, not an error: the granule is not needed
    """No scan of a granule touches the configured region (its catalogue footprint did)."""


def rows_in_region(
    longitude: np.ndarray, latitude: np.ndarray, region: Region, overlap: int, margin_scans: int
) -> slice | None:
    """The rows a swath cropped to ``region`` keeps (see :func:`extract_granule`), or None for none."""
    n_rows = longitude.shape[0]
    touching = region.contains(longitude, latitude).any(axis=1)
    touching[:overlap] = False
    touching[n_rows - overlap :] = False
    found = np.flatnonzero(touching)
    if not len(found):
        return None
    return slice(max(overlap, int(found[0]) - margin_scans), min(n_rows - overlap, int(found[-1]) + 1 + margin_scans))


def _global_text(h5: Any, name: str) -> str:
    """A global attribute as text ("" when absent or unreadable)."""
    if name not in h5.attrs:
        return ""
    try:
        return str(_attribute_value(h5.attrs[name])).strip()
    except (TypeError, ValueError):
        return ""


def _file_facts(h5: Any, latitude: np.ndarray | None, overlap: int) -> facts.FileFacts:
    """What the file says of itself: ``GranuleID``, ``OrbitDirection``, ``ObservationStart/EndDateTime``, and
    the direction its latitudes go (read from the 89A positions' centre column when geolocation is not kept)."""
    if latitude is None and l1b.LATITUDE_89A in h5:
        ds = h5[l1b.LATITUDE_89A]
        if ds.ndim == 2 and ds.shape[1] == l1b.HIGH_FREQ_PIXELS:
            centre = l1b.LOW_FREQ_PIXELS // 2 * 2  # the 89A sample under the low-frequency centre footprint
            latitude = np.asarray(ds[:, centre : centre + 1], dtype=np.float32)
    direction = _global_text(h5, "OrbitDirection")[:1].upper()

    def stamp(name: str) -> str:
        text = _global_text(h5, name)
        try:
            return utc_iso(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()) if text else ""
        except ValueError:
            return text  # not a time: compared as it is, so the disagreement shows it

    # GranuleID is not confirmed by code against real files [U]: a value that is not a granule name at all is
    # another convention, not a witness of the id
    granule_id = _global_text(h5, "GranuleID").split(".h5", 1)[0]
    try:
        l1b.parse_granule_name(granule_id)
    except ValueError:
        granule_id = ""
    return facts.FileFacts(
        granule_id=granule_id,
        orbit_direction=direction if direction in ("A", "D") else "",
        observation_start_utc=stamp("ObservationStartDateTime"),
        observation_end_utc=stamp("ObservationEndDateTime"),
        latitude_direction=(facts.direction_of_latitudes(latitude, overlap) or "") if latitude is not None else "",
    )


def _extra_variable(h5: Any, name: str, rows: int, path: str) -> np.ndarray:
    """One extra variable, checked against its record (shape, dtype, the file's SCALE FACTOR if it has one)."""
    variable = variables.EXTRA_VARIABLES[name]
    if variable.dataset not in h5:
        raise _missing_dataset(h5, variable.dataset, path)
    ds = h5[variable.dataset]
    wanted = variables.expected_file_shape(variable, rows)
    if ds.shape != wanted:
        raise DatasetLayoutError(f"{path}: dataset {variable.dataset!r} has shape {ds.shape}, expected {wanted}")
    if not _same_type(ds.dtype, variable.file_dtype):
        raise DatasetLayoutError(
            f"{path}: dataset {variable.dataset!r} has dtype {ds.dtype}, expected {variable.file_dtype}"
        )
    if variable.scale_factor is not None and "SCALE FACTOR" in ds.attrs:
        # One scale per variable across archives: a granule with another one is refused, not silently mixed.
        found = _scale_factor(ds, path)
        if not math.isclose(found, variable.scale_factor, rel_tol=1e-6):
            raise DatasetLayoutError(
                f"{path}: dataset {variable.dataset!r} has SCALE FACTOR {found}, not the documented "
                f"{variable.scale_factor}; leave {name} out of `variables` for these granules and report it"
            )
    return variables.from_file_array(variable, np.asarray(ds[()]))


# -- swath files ----------------------------------------------------------------------------------------------
def structured_dtype(swath: Swath) -> np.dtype:
    """One field per array, each a row of that array (sub-array of its width)."""
    return np.dtype([(name, arr.dtype.newbyteorder("<"), arr.shape[1:]) for name, arr in swath.arrays.items()])


def to_structured(swath: Swath) -> np.ndarray:
    rows = swath.metadata.shape[0]
    out = np.empty(rows, dtype=structured_dtype(swath))
    for name, arr in swath.arrays.items():
        if arr.shape[0] != rows:
            raise SwathError(f"{swath.granule_id}: array {name!r} has {arr.shape[0]} rows, not {rows}")
        out[name] = arr
    return out


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path`` (see ``atomic``)."""
    with atomic.atomic_open(path, "wb") as fh:
        write(fh)


def sidecar_path(npy_path: str | os.PathLike[str]) -> Path:
    return Path(npy_path).with_suffix(".json")


def metadata_json(metadata: SwathMetadata) -> bytes:
    # sorted keys + fixed indentation: identical metadata gives identical bytes
    return (json.dumps(metadata.to_json_dict(), indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


def write_swath(swath: Swath, npy_path: str | os.PathLike[str]) -> Path:
    """Write ``<id>.npy`` and its ``<id>.json`` sidecar atomically; returns the ``.npy`` path.

    The bytes depend only on the swath (no timestamps), so rewriting a swath gives identical files.
    """
    path = Path(npy_path)
    table = to_structured(swath)
    atomic_write(path, lambda f: np.lib.format.write_array(f, table, allow_pickle=False))
    atomic_write(sidecar_path(path), lambda f: f.write(metadata_json(swath.metadata)))
    return path


def read_swath_metadata(npy_path: str | os.PathLike[str]) -> SwathMetadata:
    """Only the sidecar (cheap: used to sort swaths by time before streaming them)."""
    side = sidecar_path(npy_path)
    try:
        return SwathMetadata.from_json_dict(json.loads(side.read_text()))
    except FileNotFoundError as exc:
        raise SwathError(f"{npy_path}: sidecar {side.name} is missing (incomplete write?)") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise SwathError(f"{side}: malformed swath sidecar ({exc})") from exc


def read_swath(npy_path: str | os.PathLike[str]) -> Swath:
    """Read a swath written by ``write_swath`` (never unpickles)."""
    meta = read_swath_metadata(npy_path)
    try:
        table = np.load(npy_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SwathError(f"{npy_path}: not a readable swath .npy ({exc})") from exc
    names = meta_array_names(meta)
    if table.dtype.names != names or table.shape != (meta.shape[0],):
        raise SwathError(f"{npy_path}: fields {table.dtype.names} / rows {table.shape} do not match the sidecar")
    return Swath(meta, {name: np.ascontiguousarray(table[name]) for name in names})


# -- tombstones -----------------------------------------------------------------------------------------------
def write_tombstone(
    npy_path: str | os.PathLike[str],
    granule_id: str,
    remote_path: str,
    *,
    reason_class: str,
    error: str,
    n_pixels: int,
    region: str = "",
    region_key: str = "",
) -> None:
    """A 0-scan swath whose sidecar says why the granule is not archived (its year can still be archived);
    ``region``, ``region_key``: the region whose scans it lacks (a verdict for that region only)."""
    sidecar = {
        "granule_id": granule_id,
        "status": TOMBSTONE_STATUS,
        "reason_class": reason_class,
        "reason": error,
        "orbit_type": l1b.orbit_type_from_name(granule_id),
        "remote_path": remote_path,
    }
    crop = {"region": region, "region_key": region_key} if region_key else {}
    atomic.write_json(sidecar_path(npy_path), sidecar | crop)
    with atomic.atomic_open(npy_path) as fh:
        np.save(fh, np.zeros((0, n_pixels), dtype=np.uint16), allow_pickle=False)


def swath_file(path: str | os.PathLike[str]) -> SwathMetadata | dict[str, Any] | None:
    """What a ``.npy`` beside a swath sidecar is: the swath's metadata, a tombstone's sidecar (a dict with its
    ``status``, ``reason_class`` and ``reason``), or None when the file has neither (not a swath file)."""
    try:
        side = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(side, dict) or not Path(path).is_file():
        return None
    if side.get("status") == TOMBSTONE_STATUS:
        return side
    try:
        return SwathMetadata.from_json_dict(side)
    except (SwathError, KeyError, TypeError, ValueError):
        return None


def is_tombstone(npy_path: str | os.PathLike[str]) -> bool:
    try:
        return json.loads(sidecar_path(npy_path).read_text(encoding="utf-8")).get("status") == TOMBSTONE_STATUS
    except (OSError, ValueError):
        return False


def tombstone_reason(npy_path: str | os.PathLike[str]) -> str | None:
    """Why a tombstone's granule is not archived (its ``reason_class``); None for anything else."""
    try:
        side = json.loads(sidecar_path(npy_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(side.get("reason_class", "")) if side.get("status") == TOMBSTONE_STATUS else None
