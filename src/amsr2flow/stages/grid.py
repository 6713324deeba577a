"""Daily grids (optional, ``grid.enabled``): each day's swaths averaged onto standard polar and global grids.

For every day and grid, ascending and descending passes apart, each grid cell holds the mean of the
brightness temperatures whose footprint centres fall in it (drop-in-the-bucket averaging, as the NSIDC daily
brightness-temperature grids are made), the number of those observations and their mean time. The averaging
is pyresample's ``BucketResampler``; the grids are pyresample area definitions of the published grids:

- NSIDC Sea Ice Polar Stereographic North and South, 25 and 12.5 km (the WGS 84 versions, EPSG 3413/3976,
  with the extents of NSIDC's grids: 304 x 448 and 316 x 332 cells at 25 km);
- EASE-Grid 2.0 North, South (EPSG 6931/6932, 720 x 720 at 25 km) and Global (EPSG 6933, 1388 x 584 at
  25.025 km).

Which observations belong to a day: the non-overlap scans (overlap scans repeat the neighbouring granules and
would be counted twice) whose own scan time is in the day, from the swaths of the year's archive; so a granule
that begins at 23:40 gives its scans after midnight to the next day. Without per-scan times (archives made
before they were kept) a swath goes whole to the day it begins. The first day of a year lacks the scans after
midnight of the granule that began on the last day of the previous year (in the previous year's archive).

A year's grids are made by one job that writes only what is missing or stale: a day's file records a digest of
what it was made from (the day's swaths: their metadata, orbit types included, and the checksums of the arrays
read) and the granules it used, and is made again only when the archive holds something else for that day (the
year in progress grows day by day, and rebuilding its archive must not regrid the whole year; a repaired
orbit type must).

Nothing is made from nothing: a day whose archive holds swaths of which none gives an observation (no known
orbit direction, no scan in the day, no valid position) stops the job with a message naming the day and why;
a grid on which none of the day's observations falls gets no file, and the job's record says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import JAXA_ACKNOWLEDGEMENT, __version__
from ..formats import archive as archive_format
from ..formats import l1b
from ..formats.dataset import NETCDF_COMPRESSION, RAW_FILL, TB_STANDARD_NAME, variable_name, write_dataset
from ..formats.swath import LATITUDE, LONGITUDE, SCAN_TIME_UTC, TEMPERATURE

if TYPE_CHECKING:
    from ..region import Region

log = logging.getLogger(__name__)

GRID_FORMATS = ("netcdf", "zarr")
#: Why 89 GHz B-horn channels cannot be gridded: the swaths keep the A horn's positions only.
B_HORN_REASON = (
    "the 89 GHz B horn looks a few km away from the A horn, whose positions are the only ones a swath keeps; "
    "grid 89.0AH/89.0AV, or leave the 89.0B channels out of grid.channels"
)
PASSES = ("A", "D")
TB_SCALE = 0.01  # grid files store uint16 hundredths of a Kelvin


@dataclass(frozen=True)
class GridSpec:
    """A published grid: projection, cell size and extent (lower-left and upper-right corners, metres)."""

    name: str
    description: str
    crs: str
    resolution_m: float
    extent: tuple[float, float, float, float]

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns), e.g. (448, 304) for the NSIDC north 25 km grid."""
        x0, y0, x1, y1 = self.extent
        return round((y1 - y0) / self.resolution_m), round((x1 - x0) / self.resolution_m)


_NSIDC_NORTH = (-3850000.0, -5350000.0, 3750000.0, 5850000.0)
_NSIDC_SOUTH = (-3950000.0, -3950000.0, 3950000.0, 4350000.0)
_EASE2_POLAR = (-9000000.0, -9000000.0, 9000000.0, 9000000.0)
# 1388 x 584 cells of 25025.26 m (EASE-Grid 2.0 "M25")
_EASE2_GLOBAL = (-694 * 25025.26, -292 * 25025.26, 694 * 25025.26, 292 * 25025.26)

GRIDS: dict[str, GridSpec] = {
    g.name: g
    for g in (
        GridSpec(
            "nsidc_north_25km", "NSIDC Sea Ice Polar Stereographic North, 25 km", "EPSG:3413", 25000.0, _NSIDC_NORTH
        ),
        GridSpec(
            "nsidc_north_12.5km", "NSIDC Sea Ice Polar Stereographic North, 12.5 km", "EPSG:3413", 12500.0, _NSIDC_NORTH
        ),
        GridSpec(
            "nsidc_south_25km", "NSIDC Sea Ice Polar Stereographic South, 25 km", "EPSG:3976", 25000.0, _NSIDC_SOUTH
        ),
        GridSpec(
            "nsidc_south_12.5km", "NSIDC Sea Ice Polar Stereographic South, 12.5 km", "EPSG:3976", 12500.0, _NSIDC_SOUTH
        ),
        GridSpec("ease2_north_25km", "EASE-Grid 2.0 North, 25 km", "EPSG:6931", 25000.0, _EASE2_POLAR),
        GridSpec("ease2_south_25km", "EASE-Grid 2.0 South, 25 km", "EPSG:6932", 25000.0, _EASE2_POLAR),
        GridSpec("ease2_global_25km", "EASE-Grid 2.0 Global, 25.025 km", "EPSG:6933", 25025.26, _EASE2_GLOBAL),
    )
}


class GridError(ValueError):
    """A grid that cannot be made from this archive (the message says why and what to change)."""


@cache
def area(name: str) -> Any:
    """The pyresample ``AreaDefinition`` of a grid of :data:`GRIDS`."""
    from pyresample import create_area_def

    spec = GRIDS[name]
    return create_area_def(name, spec.crs, shape=spec.shape, area_extent=spec.extent, description=spec.description)


#: Spacing (degrees) of the points that find a region's cells on a grid: finer than the finest grid's cells.
REGION_SAMPLE_DEG = 0.1
#: Cells kept around a region's on a grid cropped to it.
REGION_MARGIN_CELLS = 2


def grid_area(name: str, region: Region | None = None) -> Any:
    """The grid's ``AreaDefinition``, or with ``region`` its rows and columns that hold the region (and
    ``REGION_MARGIN_CELLS`` around): a sub-area of the same grid, its cells where the whole grid has them. A
    region the grid does not reach gives the whole grid (whose files then hold no data and are not written)."""
    definition = area(name)
    if region is None:
        return definition
    west, south, east, north = region.extent
    lon, lat = np.meshgrid(
        np.arange(west, east + REGION_SAMPLE_DEG, REGION_SAMPLE_DEG),
        np.arange(south, north + REGION_SAMPLE_DEG, REGION_SAMPLE_DEG),
    )
    inside = region.contains(lon, lat)
    wrapped = (lon[inside] + 180.0) % 360.0 - 180.0
    cols, rows = definition.get_array_indices_from_lonlat(wrapped, lat[inside])
    found = ~(np.ma.getmaskarray(cols) | np.ma.getmaskarray(rows))
    if not found.any():
        return definition
    rows, cols = np.asarray(rows)[found], np.asarray(cols)[found]
    height, width = definition.shape
    margin = REGION_MARGIN_CELLS
    row_slice = slice(max(int(rows.min()) - margin, 0), min(int(rows.max()) + 1 + margin, height))
    col_slice = slice(max(int(cols.min()) - margin, 0), min(int(cols.max()) + 1 + margin, width))
    return definition[row_slice, col_slice]


@cache
def _latitude_span(name: str) -> tuple[float, float]:
    """Latitudes the grid covers (with a margin of one degree), to drop observations it cannot hold early."""
    _, lats = area(name).get_lonlats()
    return float(np.nanmin(lats)) - 1.0, float(np.nanmax(lats)) + 1.0


# -- which observations belong to a day ---------------------------------------------------------------------
@dataclass
class DayObservations:
    """The day's observations of one pass (flattened): positions, temperatures per channel, times."""

    latitude: np.ndarray
    longitude: np.ndarray
    kelvin: dict[str, np.ndarray]  # channel -> float32 Kelvin (each swath's own scale), NaN = invalid
    seconds: np.ndarray  # since the day's 00:00 UTC
    granule_ids: list[str]
    unused: dict[str, int]  # swaths of the day that gave no observation (of either pass), counted by why


def day_positions(table: np.ndarray, day: date) -> list[int]:
    """Index positions of the swaths that may hold scans of ``day``: those that begin that day, and the
    one before (it may run past midnight)."""
    first = day.isoformat()
    after = (day + timedelta(days=1)).isoformat()
    starts = np.array([str(s)[:10] for s in table["scan_start_utc"]], dtype="<U10")  # also for 0 swaths
    positions = [int(i) for i in np.flatnonzero((starts >= first) & (starts < after))]
    before = np.flatnonzero(starts < first)
    has_times = table["has_scan_times"] if "has_scan_times" in (table.dtype.names or ()) else np.zeros(len(table), bool)
    # the swath before may run past midnight (without scan times a swath goes whole to the day it begins)
    if before.size and has_times[before[-1]] and str(table["scan_end_utc"][before[-1]])[:10] >= first:
        positions.insert(0, int(before[-1]))
    return positions


def _midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()


def require_positions(arch: Any) -> None:
    if len(arch) and not arch.geolocation:
        raise GridError(f"{arch.path.name} has no positions; daily grids need `geolocation: true`")


def day_observations(arch: Any, day: date, channels: Sequence[str]) -> dict[str, DayObservations]:
    """The day's observations per pass, read from an open archive (only the swaths of that day)."""
    require_positions(arch)
    table = arch.table
    start = _midnight(day)
    parts: dict[str, list[dict[str, np.ndarray]]] = {p: [] for p in PASSES}
    ids: dict[str, list[str]] = {p: [] for p in PASSES}
    unused: Counter[str] = Counter()  # why a swath of the day gave no observation
    for i in day_positions(table, day):
        meta = arch.metadata(i)
        if meta.orbit_type not in PASSES:
            unused[f"orbit type {meta.orbit_type!r}, neither A nor D"] += 1
            continue
        if meta.shape[0] == 0:
            unused["no scans"] += 1
            continue
        rows = np.arange(meta.shape[0])
        keep = (rows >= max(meta.overlap_scans, 0)) & (rows < meta.shape[0] - max(meta.overlap_scans, 0))
        if meta.has_scan_times:
            seconds = arch.read_array(i, SCAN_TIME_UTC) - start
            keep &= (seconds >= 0) & (seconds < 86400)
        elif meta.scan_start_utc[:10] == day.isoformat():
            first = archive_format.parse_utc(meta.scan_start_utc).timestamp() - start
            seconds = first + (rows - max(meta.overlap_scans, 0)) * l1b.SCAN_PERIOD_S  # `first`: row overlap
        else:
            unused["no scan times, and it begins on another day"] += 1
            continue
        lat = arch.read_array(i, LATITUDE)
        keep &= (np.isfinite(lat) & (lat > l1b.GEO_ABNORMAL_MAX)).any(axis=1)  # rows with a position to grid
        if not keep.any():
            unused["no non-overlap scan in the day with a valid position"] += 1
            continue
        lat = lat[keep]
        lon = arch.read_array(i, LONGITUDE)[keep]
        part = {"latitude": lat, "longitude": lon, "seconds": np.broadcast_to(seconds[keep][:, None], lat.shape)}
        for channel in channels:
            if channel not in meta.channels:
                raise GridError(f"channel {channel} is not in {arch.path.name} (it holds {', '.join(meta.channels)})")
            raw = arch.read_array(i, TEMPERATURE if channel == meta.channels[0] else channel)[keep]
            scale = np.float32(meta.scale_factors[meta.channels.index(channel)])
            # 89 GHz A-horn samples: every second one sits on a stored position (the others have none here)
            raw = raw[:, ::2] if raw.shape[1] == l1b.HIGH_FREQ_PIXELS else raw
            part[channel] = np.where(raw != RAW_FILL, raw * scale, np.float32(np.nan)).astype(np.float32)
        parts[meta.orbit_type].append(part)
        ids[meta.orbit_type].append(meta.granule_id)
    out = {}
    for direction in PASSES:
        chunks = parts[direction]

        def joined(key: str, chunks: list[dict[str, np.ndarray]] = chunks) -> np.ndarray:
            return np.concatenate([c[key].ravel() for c in chunks]) if chunks else np.zeros(0)

        out[direction] = DayObservations(
            latitude=joined("latitude"),
            longitude=joined("longitude"),
            kelvin={c: joined(c).astype(np.float32) for c in channels},
            seconds=joined("seconds"),
            granule_ids=ids[direction],
            unused=dict(unused),
        )
    return out


# -- averaging ----------------------------------------------------------------------------------------------
def bucket_average(
    grid: str, obs: DayObservations, channels: Sequence[str], definition: Any = None
) -> dict[str, np.ndarray]:
    """Per-cell means (Kelvin, float32; NaN where nothing fell), valid-observation counts and mean times, on
    the grid or on ``definition`` (a part of it, :func:`grid_area`)."""
    import dask.array as da
    from pyresample.bucket import BucketResampler

    definition = definition if definition is not None else area(grid)
    shape = definition.shape
    low, high = _latitude_span(grid)
    valid = (
        np.isfinite(obs.latitude)
        & (obs.latitude > l1b.GEO_ABNORMAL_MAX)
        & (obs.latitude >= low)
        & (obs.latitude <= high)
    )
    result: dict[str, np.ndarray] = {f"n_obs_{c}": np.zeros(shape, np.uint16) for c in channels}
    result.update({c: np.full(shape, np.nan, np.float32) for c in channels})
    result["seconds"] = np.full(shape, np.nan, np.float64)
    if not valid.any():
        return result
    # pyresample projects the footprints and finds their cells (its drop-in-the-bucket indexing); the sums
    # are then one np.bincount per quantity over those indices: BucketResampler.get_average would project
    # and index again for every channel (measured: 3.4 s against 1.2 s per pass on the 25 km north grid).
    resampler = BucketResampler(
        definition,
        da.from_array(obs.longitude[valid].astype(np.float64)),
        da.from_array(obs.latitude[valid].astype(np.float64)),
    )
    cells = np.asarray(resampler.idxs.compute())
    inside = cells >= 0
    cells = cells[inside]
    size = shape[0] * shape[1]

    def mean(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ok = np.isfinite(values)
        counts = np.bincount(cells[ok], minlength=size)
        sums = np.bincount(cells[ok], weights=values[ok], minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / counts, np.nan).reshape(shape), counts.reshape(shape)

    for channel in channels:
        kelvin = obs.kelvin[channel][valid][inside].astype(np.float64)
        average, counts = mean(kelvin)
        result[channel] = average.astype(np.float32)
        result[f"n_obs_{channel}"] = np.minimum(counts, np.iinfo(np.uint16).max).astype(np.uint16)
    result["seconds"] = mean(obs.seconds[valid][inside].astype(np.float64))[0]
    return result


# -- the day's file -----------------------------------------------------------------------------------------
def grid_dataset(
    grid: str,
    day: date,
    channels: Sequence[str],
    per_pass: dict[str, dict[str, np.ndarray]],
    granule_ids: str,
    source: str,
    definition: Any = None,
) -> Any:
    """The CF Dataset of one day on one grid (or ``definition``, a part of it): ``(orbit_direction, y, x)`` per
    variable, projection coordinates, 2-d latitude/longitude and the grid mapping."""
    import xarray as xr

    definition = definition if definition is not None else area(grid)
    x, y = definition.projection_x_coords, definition.projection_y_coords
    lons, lats = definition.get_lonlats()
    dims = ("orbit_direction", "y", "x")
    data_vars: dict[str, Any] = {}
    for channel in channels:
        data_vars[variable_name(channel)] = xr.Variable(
            dims,
            np.stack([per_pass[p][channel] for p in PASSES]),
            attrs={
                "standard_name": TB_STANDARD_NAME,
                "long_name": f"daily mean brightness temperature {channel} GHz",
                "units": "K",
                "grid_mapping": "crs",
                "cell_methods": "time: mean area: mean (drop-in-the-bucket of footprint centres)",
                "coordinates": "latitude longitude",
            },
            encoding={"dtype": "uint16", "scale_factor": np.float32(TB_SCALE), "_FillValue": np.uint16(RAW_FILL)},
        )
        data_vars[f"n_obs_{variable_name(channel)}"] = xr.Variable(
            dims,
            np.stack([per_pass[p][f"n_obs_{channel}"] for p in PASSES]),
            attrs={
                "long_name": f"valid {channel} GHz observations averaged in the cell",
                "units": "1",
                "grid_mapping": "crs",
            },
        )
    seconds = np.stack([per_pass[p]["seconds"] for p in PASSES])
    midnight = np.datetime64(day.isoformat(), "ns")
    # seconds since the day began, NaN where nothing fell: CF time units (decoded to datetimes on reading)
    data_vars["obs_time"] = xr.Variable(
        dims,
        seconds.astype(np.float64),
        attrs={
            "standard_name": "time",
            "long_name": "mean time of the observations in the cell",
            "units": f"seconds since {day.isoformat()} 00:00:00",
            "calendar": "proleptic_gregorian",  # as scan_time in formats.dataset (all-NaT chunks)
            "grid_mapping": "crs",
        },
    )
    crs_attrs = definition.crs.to_cf()
    data_vars["crs"] = xr.Variable((), np.int32(0), attrs={**crs_attrs, "long_name": GRIDS[grid].description})
    coords = {
        "orbit_direction": ("orbit_direction", np.array(PASSES), {"long_name": "A: ascending, D: descending passes"}),
        "x": ("x", x, {"standard_name": "projection_x_coordinate", "units": "m"}),
        "y": ("y", y, {"standard_name": "projection_y_coordinate", "units": "m"}),
        "latitude": (("y", "x"), lats.astype(np.float32), {"standard_name": "latitude", "units": "degrees_north"}),
        "longitude": (("y", "x"), lons.astype(np.float32), {"standard_name": "longitude", "units": "degrees_east"}),
        "time": ((), midnight, {"standard_name": "time", "long_name": "the UTC day"}),
    }
    dataset = xr.Dataset(data_vars, coords=coords)
    dataset.attrs = {
        "Conventions": "CF-1.10",
        "title": f"{archive_format.sensor_of_archive(source)} L1B brightness temperatures, daily means "
        f"on the {GRIDS[grid].description} grid",
        "grid": grid,
        "day": day.isoformat(),
        "source": source,
        "granule_ids": granule_ids,
        "channels": ",".join(channels),
        "acknowledgement": JAXA_ACKNOWLEDGEMENT,
        "history": f"gridded by amsr2flow {__version__} (pyresample BucketResampler)",
    }
    return dataset


def grid_path(out_dir: Path, grid: str, day: date, fmt: str, prefix: str = "AMSR2") -> Path:
    suffix = ".zarr" if fmt == "zarr" else ".nc"
    return out_dir / grid / f"{prefix}_daily_{grid}_{day:%Y%m%d}{suffix}"


def write_grid(dataset: Any, path: Path, fmt: str) -> None:
    """Atomically (``formats.dataset.write_dataset``) and deterministically (no wall clock in it), the 3-d
    variables compressed in NetCDF as in the exports."""
    encoding = {
        name: {**var.encoding, **NETCDF_COMPRESSION} for name, var in dataset.data_vars.items() if var.ndim == 3
    }
    write_dataset(dataset, path, fmt, encoding=encoding if fmt == "netcdf" else None)


#: Attributes of a day's file that the next job reads back: what it was made from, and how much it holds.
RECORDED_ATTRIBUTES = ("source_digest", "granule_ids", "valid_cells_A", "valid_cells_D")


def recorded_attributes(path: Path, fmt: str) -> dict[str, str] | None:
    """What a day's file says it was made from (``source_digest``, ``granule_ids``) and holds (``valid_cells_A``,
    ``valid_cells_D``); None when it is missing, unreadable or older than these attributes (make it again)."""
    if not path.exists():
        return None

    def text(value: Any) -> str:
        if isinstance(value, np.ndarray) and value.size == 1:  # h5py reads numeric NetCDF attributes as arrays
            value = value.ravel()[0]
        value = value.item() if isinstance(value, np.generic) else value
        return value.decode() if isinstance(value, bytes) else str(value)

    try:
        if fmt == "zarr":
            attrs = json.loads((path / ".zattrs").read_text(encoding="utf-8"))
        else:
            import h5py

            with h5py.File(path, "r") as h5:
                attrs = {k: h5.attrs[k] for k in RECORDED_ATTRIBUTES}
        return {k: text(attrs[k]) for k in RECORDED_ATTRIBUTES}
    except (OSError, KeyError, ValueError):
        return None


def source_digest(arch: Any, positions: Sequence[int], channels: Sequence[str]) -> str:
    """What a day's grid is made of: the channels, and each of the day's swaths' index row (granule id, orbit
    type, times, scales, ...) with the checksums (zip CRC) of the arrays the grid reads. Anything else gives
    another digest, so a changed swath, a repaired orbit type or another channel set makes the file stale."""
    digest = hashlib.sha256(",".join(channels).encode())
    for i in positions:
        meta = arch.metadata(i)
        row = archive_format.metadata_row(meta)
        names = [LATITUDE, LONGITUDE, *([SCAN_TIME_UTC] if meta.has_scan_times else [])]
        names += [TEMPERATURE if c == meta.channels[0] else c for c in channels if c in meta.channels]
        crcs = {name: arch.member_info(i, name).CRC for name in names}
        digest.update(json.dumps([row, crcs], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def _with_extent(digest: str, grid: str, definition: Any) -> str:
    """``digest`` for the whole grid; another for a part of it (its extent in the grid's metres)."""
    if definition.shape == area(grid).shape:
        return digest
    extent = ",".join(f"{v:.3f}" for v in definition.area_extent)
    return hashlib.sha256(f"{digest}:{extent}".encode()).hexdigest()[:32]


def valid_cells(per_grid: dict[str, np.ndarray], channels: Sequence[str]) -> int:
    """Cells of one pass where any channel has a mean (the file is not empty there)."""
    return int(np.logical_or.reduce([np.isfinite(per_grid[c]) for c in channels]).sum())


def nothing_observed(day: date, unused: dict[str, int]) -> GridError:
    """The error of a day whose archive holds swaths of which none gives an observation."""
    why = "; ".join(f"{n} swath(s): {reason}" for reason, n in sorted(unused.items()))
    hint = (
        "; `amsr2flow verify` checks the archive and `amsr2flow repair` sets orbit types from the granule ids"
        if any(reason.startswith("orbit type") for reason in unused)
        else ""
    )
    return GridError(
        f"{day}: the archive holds {sum(unused.values())} swath(s) of this day, none of which gives an observation "
        f"to grid ({why}){hint}"
    )


def build_year_grids(
    archive_path: Path,
    days: Iterable[date],
    grids: Sequence[str],
    channels: Sequence[str],
    out_dir: Path,
    fmt: str = "netcdf",
    prefix: str = "AMSR2",
    region: Region | None = None,
) -> dict[str, Any]:
    """Every day x grid file of a year that is missing or stale; returns a record of what exists, what was made
    and how many cells of each file hold data per pass (the job's output, written by the caller). With
    ``region``, each grid holds the rows and columns of the region (:func:`grid_area`).

    Raises :class:`GridError` for a day whose archive holds swaths of which none gives an observation.
    """
    unknown = [g for g in grids if g not in GRIDS]
    if unknown:
        raise GridError(f"unknown grid(s) {unknown}; known: {', '.join(GRIDS)}")
    b_horn = [c for c in channels if c.startswith("89.0B")]
    if b_horn:
        raise GridError(f"{', '.join(b_horn)}: {B_HORN_REASON}")
    if fmt not in GRID_FORMATS:
        raise GridError(f"unknown grid format {fmt!r}; use one of {', '.join(GRID_FORMATS)}")
    made, kept, empty = 0, 0, 0
    files: list[str] = []
    cells: dict[str, dict[str, int]] = {}
    no_data: list[str] = []
    definitions = {g: grid_area(g, region) for g in grids}
    with archive_format.Archive(archive_path) as arch:
        require_positions(arch)
        for day in days:
            positions = day_positions(arch.table, day)
            if not positions:
                empty += 1
                continue
            swaths_digest = source_digest(arch, positions, channels)
            # the swaths, and the part of the grid (another region's crop makes the file stale)
            digests = {g: _with_extent(swaths_digest, g, definitions[g]) for g in grids}
            paths = {g: grid_path(out_dir, g, day, fmt, prefix) for g in grids}
            recorded = {g: recorded_attributes(paths[g], fmt) for g in grids}
            stale = [g for g in grids if (recorded[g] or {}).get("source_digest") != digests[g]]
            kept += len(grids) - len(stale)
            if stale:
                observations = day_observations(arch, day, channels)
                used = sorted(gid for p in PASSES for gid in observations[p].granule_ids)
                if not used:
                    raise nothing_observed(day, observations[PASSES[0]].unused)
                for grid in stale:
                    definition = definitions[grid]
                    per_pass = {p: bucket_average(grid, observations[p], channels, definition) for p in PASSES}
                    counts = {p: valid_cells(per_pass[p], channels) for p in PASSES}
                    log.info("%s %s: %d granules, cells with data: %s", day, grid, len(used), counts)
                    if not any(counts.values()):
                        # Observed, but nowhere on this grid (a polar grid, a day of short swaths elsewhere).
                        paths[grid].unlink(missing_ok=True)
                        recorded[grid] = None
                        continue
                    dataset = grid_dataset(grid, day, channels, per_pass, ",".join(used), archive_path.name, definition)
                    if definition.shape != area(grid).shape:
                        dataset.attrs["region"] = region.description if region is not None else ""
                    dataset.attrs.update(
                        source_digest=digests[grid],
                        granules_used=len(used),
                        valid_cells_A=counts["A"],
                        valid_cells_D=counts["D"],
                    )
                    write_grid(dataset, paths[grid], fmt)
                    recorded[grid] = {"valid_cells_A": str(counts["A"]), "valid_cells_D": str(counts["D"])}
                    made += 1
            for grid in grids:
                name = str(paths[grid].relative_to(out_dir))
                if recorded[grid] is None:
                    no_data.append(name)
                    continue
                files.append(name)
                cells[name] = {p: int(recorded[grid][f"valid_cells_{p}"]) for p in PASSES}
    return {
        "archive": archive_path.name,
        "grids": list(grids),
        "format": fmt,
        "files": files,
        "made": made,
        "up_to_date": kept,
        "days_without_swaths": empty,
        # cells with data per file and pass (A, D); files with data in neither pass are not written
        "valid_cells": cells,
        "no_data_on_grid": no_data,
    }
