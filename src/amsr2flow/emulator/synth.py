"""Synthetic AMSR2 / AMSR-E L1B granules: the same HDF5 layout as JAXA's files, with Earth-like contents.

A granule is a pure function of ``(spec, seed, n_scans, overlap_scans, compression_level)``: the same inputs
give byte-identical files, so the local G-Portal can generate granules lazily and serve them again later.

What is in a granule:
- geometry from :mod:`amsr2flow.orbit` (scan times, 89A/89B footprints, nadir, Sun);
- a surface model that depends only on position and date, so that neighbouring granules agree: procedural
  continents (Gaussian blobs plus a fixed ragged-coast perturbation, on a cached 0.25 degree grid), sea ice
  poleward of a ragged, seasonal edge, ocean elsewhere;
- "weather": smooth random fields (sums of travelling plane waves on the sphere, seeded by ``(seed, day)``
  and blended continuously from one day to the next) for water vapour, cloud, wind, land temperature...;
- per-channel brightness temperatures from a few-parameter emission model per surface, instrument noise,
  a few missing pixels and now and then a missing scan;
- plausible, highly compressible engineering datasets (counts, flags, navigation).

Storage conventions (documented in ``docs/local-gportal.md``): global attributes and ``UNIT`` are
1-element fixed-length ASCII arrays (read ``attrs[name][0].decode()``), ``SCALE FACTOR`` is a 1-element
float32 array (read ``float(attrs["SCALE FACTOR"][0])``); datasets are chunked by at most 256 rows over the
full width, with shuffle + deflate unless ``compression_level`` is 0.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import math
import os
import sys
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import h5py
import numpy as np

from ..formats import l1b
from ..mission import Mission
from . import orbit

# -- knobs -----------------------------------------------------------------------------------------------------
CHUNK_ROWS = 256
SCAN_RADIUS_89B_KM = orbit.SCAN_RADIUS_KM + 5.0  # the B horn looks slightly further out than A
SATELLITE_ALTITUDE_KM = 700.0
EARTH_INCIDENCE_DEG = 55.0
MISSING_PIXEL_RATE = 3e-4  # per pixel and channel: 0.03 %
MISSING_SCANS_PER_GRANULE = 0.3  # expected whole missing scans in a full-size granule
TB_PHYSICAL_RANGE_K = (3.0, 340.0)
GRID_STEP_DEG = 0.25  # resolution of the cached land grid
COARSE_STEP_S = 6.0  # along-track spacing of the grid on which smooth fields are evaluated
COARSE_COLUMN_STEP = 8  # cross-track spacing (in 89 GHz pixels) of that grid

_U64 = (1 << 64) - 1
_WEATHER_TAG = 0x5EA7  # keeps weather streams apart from per-granule noise streams
_ENGINEERING_TAG = 0xE261
_MISSING_SCAN_STREAM = 1


# -- public API ------------------------------------------------------------------------------------------------
def write_granule(
    path: str | os.PathLike[str],
    spec: orbit.GranuleSpec,
    *,
    seed: int = 0,
    n_scans: int | None = None,
    overlap_scans: int = l1b.DEFAULT_OVERLAP_SCANS,
    compression_level: int = 4,
    big_endian: bool = False,
) -> int:
    """Write one synthetic granule atomically to ``path`` and return its size in bytes.

    The file appears under its final name only when complete (temporary name in the same folder, then
    ``os.replace``); on any error the temporary file is removed and nothing is left behind. ``big_endian``
    stores every multi-byte dataset big-endian (``>u2``, ``>f4``...) with the same values; attributes stay.
    """
    if not (isinstance(compression_level, int) and 0 <= compression_level <= 9):
        raise ValueError(f"compression_level must be an integer 0-9 (0 = no compression), got {compression_level!r}")
    fields = generate_fields(spec, seed=seed, n_scans=n_scans, overlap_scans=overlap_scans)
    attributes = global_attributes(spec, seed=seed, n_scans=n_scans, overlap_scans=overlap_scans)
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        _write_hdf5(Path(tmp_name), spec.flavour, fields, attributes, compression_level, big_endian)
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; granules are meant to be served and shared
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return target.stat().st_size


def generate_fields(
    spec: orbit.GranuleSpec,
    *,
    seed: int = 0,
    n_scans: int | None = None,
    overlap_scans: int = l1b.DEFAULT_OVERLAP_SCANS,
) -> dict[str, np.ndarray]:
    """Every dataset of the granule (name -> array with the format's shape and dtype), without HDF5."""
    times = scan_times_unix(spec, n_scans=n_scans, overlap_scans=overlap_scans)
    rng = np.random.default_rng(granule_seed_sequence(spec, seed))
    geo = _geometry(times, spec.flavour)
    surface = _surface(geo, granule_day_of_year(spec))
    weather = _weather(geo, times, seed)
    fields: dict[str, np.ndarray] = {
        l1b.LATITUDE_89A: geo.lat_a,
        l1b.LONGITUDE_89A: geo.lon_a,
        l1b.LATITUDE_89B: geo.lat_b,
        l1b.LONGITUDE_89B: geo.lon_b,
        l1b.SCAN_TIME: np.array([l1b.unix_to_tai93(t) for t in times], dtype=np.float64),
    }
    missing_rows = missing_scan_rows(spec, seed=seed, n_scans=n_scans, overlap_scans=overlap_scans)
    lost = spec.flavour.lost_channels_on(datetime.fromtimestamp(float(times[0]), tz=timezone.utc).date())
    for channel in spec.flavour.channels:
        tb_kelvin = _channel_tb(channel, surface, weather, rng)
        raw = _to_raw_tb(tb_kelvin, rng, missing_rows)
        if channel in lost:  # drawn anyway, so that the other channels' noise streams do not shift
            raw[:] = l1b.TB_MISSING
        fields[l1b.CHANNEL_DATASETS[channel]] = raw
    fields.update(_angles(geo, times))
    fields.update(_land_ocean_flags(surface))
    fields.update(_engineering(geo, times, missing_rows, rng.integers(0, 2**63)))
    return {s.name: fields[s.name] for s in dataset_specs(spec.flavour)}


def global_attributes(
    spec: orbit.GranuleSpec,
    *,
    seed: int = 0,
    n_scans: int | None = None,
    overlap_scans: int = l1b.DEFAULT_OVERLAP_SCANS,
) -> dict[str, str]:
    """Global attributes of the granule as strings (the writer stores each as a 1-element string array)."""
    n = resolve_scans(spec, n_scans)
    missing = missing_scan_rows(spec, seed=seed, n_scans=n_scans, overlap_scans=overlap_scans)
    observed_missing = int(np.count_nonzero((missing >= overlap_scans) & (missing < overlap_scans + n)))
    f = spec.flavour
    version, algorithm, parameter = f.product_version[:1], f.product_version[1:4], f.product_version[4:]
    coregistration = _COREGISTRATION_AMSRE if f.key == orbit.AMSRE.key else _COREGISTRATION_AMSR2
    equator_unix = spec.start_unix + orbit.HALF_ORBIT_S / 2  # half orbits run pole to pole
    _, equator_lon = orbit.subsatellite_point(np.array([equator_unix]), f)
    return {
        "ProductName": f"{f.sensor}-L1B",
        "GeophysicalName": "Brightness Temperature",
        "GranuleID": spec.granule_id,
        "ProductVersion": version,
        "AlgorithmVersion": algorithm,
        "ParameterVersion": parameter,
        "PlatformShortName": f.platform,
        "SensorShortName": f.sensor,
        "StartOrbitNumber": str(spec.orbit_number),
        "StopOrbitNumber": str(spec.orbit_number),
        "OrbitDirection": "Ascending" if spec.orbit_direction == "A" else "Descending",
        "ObservationStartDateTime": format_utc_ms(spec.start_unix),
        "ObservationEndDateTime": format_utc_ms(spec.end_unix),
        "EquatorCrossingDateTime": format_utc_ms(equator_unix),
        "EquatorCrossingLongitude": f"{float(equator_lon[0]):.3f}",
        "NumberOfScans": str(n),
        "NumberOfMissingScans": str(observed_missing),
        "OverlapScans": str(overlap_scans),
        "CoRegistrationParameterA1": _format_coregistration(coregistration[0]),
        "CoRegistrationParameterA2": _format_coregistration(coregistration[1]),
        "EllipsoidName": "WGS84",
        "ProcessingCenter": "JAXA",
        # A fixed delay after the observation keeps the file deterministic (no wall-clock time inside).
        "ProductionDateTime": format_utc_ms(spec.end_unix + 3 * 3600.0),
        "SyntheticDataGenerator": "amsr2flow.synth (synthetic data, not a JAXA product)",
    }


def dataset_specs(flavour: Mission) -> tuple[l1b.DatasetSpec, ...]:
    """The datasets a granule of this flavour holds: all 43, minus the TB channels the sensor lacks."""
    absent = {l1b.CHANNEL_DATASETS[c] for c in l1b.CHANNEL_DATASETS if c not in flavour.channels}
    return tuple(s for s in l1b.DATASETS if s.name not in absent)


def resolve_scans(spec: orbit.GranuleSpec, n_scans: int | None) -> int:
    """``n_scans`` checked against the spec; ``None`` means the full ``spec.number_of_scans``."""
    if n_scans is None:
        return spec.number_of_scans
    if not (isinstance(n_scans, int) and 2 <= n_scans <= spec.number_of_scans):
        raise ValueError(f"n_scans must be an integer from 2 to {spec.number_of_scans}, got {n_scans!r}")
    return n_scans


def scan_times_unix(
    spec: orbit.GranuleSpec, *, n_scans: int | None = None, overlap_scans: int = l1b.DEFAULT_OVERLAP_SCANS
) -> np.ndarray:
    """UTC Unix time of every row. Fewer scans keep the start-end span: the scan spacing stretches."""
    n = resolve_scans(spec, n_scans)
    _check_overlap(overlap_scans)
    if n == spec.number_of_scans:
        return spec.scan_times_unix(overlap_scans)  # exactly the real 1.49985 s clock
    spacing = (spec.end_unix - spec.start_unix) / (n - 1)
    times = spec.start_unix + (np.arange(n + 2 * overlap_scans, dtype=np.float64) - overlap_scans) * spacing
    times[overlap_scans + n - 1] = spec.end_unix  # exact, whatever the rounding of the product above
    return times


def _check_overlap(overlap_scans: int) -> None:
    if not (isinstance(overlap_scans, int) and overlap_scans >= 0):
        raise ValueError(f"overlap_scans must be a non-negative integer, got {overlap_scans!r}")


def granule_seed_sequence(spec: orbit.GranuleSpec, seed: int) -> np.random.SeedSequence:
    """The per-granule random stream: a function of (seed, granule index, flavour) only."""
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    flavour_key = int.from_bytes(spec.flavour.key.encode(), "big")
    return np.random.SeedSequence([seed, spec.index & _U64, flavour_key])


def missing_scan_rows(
    spec: orbit.GranuleSpec,
    *,
    seed: int = 0,
    n_scans: int | None = None,
    overlap_scans: int = l1b.DEFAULT_OVERLAP_SCANS,
) -> np.ndarray:
    """Rows whose whole scan is missing: rare (MISSING_SCANS_PER_GRANULE per full granule), same rate per hour.

    A stream of its own, so that the attributes can count them without generating the granule.
    """
    _check_overlap(overlap_scans)
    rows = resolve_scans(spec, n_scans) + 2 * overlap_scans
    full_rows = spec.number_of_scans + 2 * l1b.DEFAULT_OVERLAP_SCANS
    base = granule_seed_sequence(spec, seed)
    rng = np.random.default_rng(np.random.SeedSequence(base.entropy, spawn_key=(_MISSING_SCAN_STREAM,)))
    n = min(int(rng.poisson(MISSING_SCANS_PER_GRANULE * rows / full_rows)), rows)
    return np.sort(rng.choice(rows, size=n, replace=False))


def format_utc_ms(unix_utc: float) -> str:
    """``2013-07-01T09:42:53.154Z``: truncated (not rounded) to the millisecond, like the name's minute."""
    micro = round(unix_utc * 1_000_000)  # undo binary noise such as .85499999 before truncating
    seconds, micro = divmod(micro, 1_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{micro // 1000:03d}Z"


# -- surface model: depends on position and date only, so all granules agree ----------------------------------
#: Continents as Gaussian blobs: (lat, lon, sigma_lat, sigma_lon) in degrees. Rough on purpose.
_CONTINENT_BLOBS: tuple[tuple[float, float, float, float], ...] = (
    # North America and Greenland
    (60, -100, 12, 28), (40, -98, 9, 18), (65, -152, 6, 14), (33, -84, 5, 6), (22, -102, 6, 6),
    (14, -88, 3, 5), (75, -95, 5, 20), (74, -41, 8, 12),
    # South America
    (-5, -62, 12, 14), (-22, -57, 9, 9), (-38, -67, 8, 5), (-50, -70, 4, 3), (5, -67, 5, 8), (-10, -40, 5, 4),
    # Europe
    (50, 15, 6, 18), (63, 20, 6, 8), (40, -4, 3.5, 5), (54, -2, 3, 2.5), (42, 13, 2.5, 3), (60, 40, 8, 20),
    # Africa
    (20, 10, 9, 22), (5, 20, 8, 16), (-10, 25, 10, 9), (-26, 24, 6, 7), (8, 42, 5, 5), (-19, 47, 4, 2),
    # Asia
    (62, 100, 10, 40), (45, 75, 9, 25), (33, 100, 10, 18), (22, 79, 7, 6), (15, 102, 6, 5), (25, 46, 7, 8),
    (70, 130, 5, 30), (36, 138, 2.5, 4), (0, 113, 3, 6), (-5, 140, 3, 6),
    # Oceania
    (-25, 134, 9, 15), (-41, 173, 3, 2),
)  # fmt: skip
_ANTARCTIC_COAST_LAT = -71.0
_SURFACE_SEED = 20120703  # fixed: the planet is the same for every user seed

#: Binomial smoothing passes of the land grid per Land_Ocean layer: wider footprints at lower frequency.
_LAND_LAYER_SMOOTHING = {"6": 3, "10": 2, "23": 1, "36": 0, "89": 0}
#: Land_Ocean layer whose footprint each channel's TB mixes with.
_CHANNEL_LAND_LAYER = {"6.9": "6", "7.3": "6", "10.7": "10", "18.7": "23", "23.8": "23", "36.5": "36"}


def land_fraction(lat: np.ndarray, lon: np.ndarray, layer: str = "36") -> np.ndarray:
    """Fraction of land (0-1) seen at (lat, lon) by a footprint of the given Land_Ocean layer."""
    return _sample_grid(_land_grid(_LAND_LAYER_SMOOTHING[layer]), lat, lon)


def sea_ice_fraction(lat: np.ndarray, lon: np.ndarray, day_of_year: int) -> np.ndarray:
    """Fraction (0-1) of the water at (lat, lon) covered by sea ice on that day of the year.

    Ice lies poleward of a seasonal edge (about 67-77 N, 60-68 S) made ragged by a fixed sum of longitude
    harmonics, with a ~150 km marginal zone.
    """
    lat = np.asarray(lat, dtype=np.float32)
    season = 2 * math.pi * day_of_year / 365.25
    north_edge = 72.0 - 5.0 * math.cos(season - 2 * math.pi * 70 / 365.25)  # largest extent in March
    south_edge = 64.0 - 4.0 * math.cos(season - 2 * math.pi * 258 / 365.25)  # largest in September
    ragged = np.interp(np.asarray(lon, dtype=np.float32), _EDGE_LON, _ice_edge_wiggle()).astype(np.float32)
    edge = np.where(lat >= 0, north_edge, south_edge) + ragged
    return np.clip((np.abs(lat) - edge) / 1.4, 0.0, 1.0)


_EDGE_LON = np.linspace(-180.0, 180.0, 1441)


@functools.lru_cache(maxsize=1)
def _ice_edge_wiggle() -> np.ndarray:
    rng = np.random.default_rng([_SURFACE_SEED, 1])
    lon = np.radians(_EDGE_LON)
    wiggle = np.zeros_like(lon)
    for harmonic in (1, 2, 3, 5, 8, 13, 21, 34):
        wiggle += 2.2 / harmonic**0.7 * np.sin(harmonic * lon + rng.uniform(0, 2 * np.pi))
    return wiggle


@functools.lru_cache(maxsize=len(_LAND_LAYER_SMOOTHING))
def _land_grid(smoothing_passes: int) -> np.ndarray:
    """Land fraction on the cached global grid (cell centres), smoothed by binomial passes."""
    grid = _land_mask_grid().astype(np.float32)
    for _ in range(smoothing_passes):
        grid = _binomial_pass(grid)
    grid.setflags(write=False)
    return grid


@functools.lru_cache(maxsize=1)
def _land_mask_grid() -> np.ndarray:
    """Boolean land mask on a global 0.25 degree grid: blobs + ragged coasts + Antarctica.

    Everything is separable in (lat, lon), so each term is an outer product: ~50 ms for the whole planet.
    """
    lat = _grid_axis(-90.0, 180.0)
    lon = _grid_axis(-180.0, 360.0)
    score = np.zeros((lat.size, lon.size), dtype=np.float32)
    for lat0, lon0, s_lat, s_lon in _CONTINENT_BLOBS:
        dlon = (lon - lon0 + 180.0) % 360.0 - 180.0
        score += np.outer(np.exp(-0.5 * ((lat - lat0) / s_lat) ** 2), np.exp(-0.5 * (dlon / s_lon) ** 2))
    rng = np.random.default_rng([_SURFACE_SEED, 0])
    lat_r, lon_r = np.radians(lat), np.radians(lon)
    for k_lat, k_lon, amp in ((7, 5, 0.12), (13, 17, 0.08), (23, 31, 0.06), (41, 53, 0.04)):
        score += amp * np.outer(
            np.sin(k_lat * lat_r + rng.uniform(0, 2 * np.pi)), np.cos(k_lon * lon_r + rng.uniform(0, 2 * np.pi))
        )
    coast = _ANTARCTIC_COAST_LAT + 2.5 * np.sin(2 * lon_r + 1.0) + 1.5 * np.sin(5 * lon_r + 2.0)
    return (score > 0.5) | (lat[:, None] < coast[None, :])


def _grid_axis(start: float, span: float) -> np.ndarray:
    n = round(span / GRID_STEP_DEG)
    return (start + (np.arange(n) + 0.5) * GRID_STEP_DEG).astype(np.float32)


def _binomial_pass(grid: np.ndarray) -> np.ndarray:
    """One [1, 2, 1] / 4 pass along each axis (wrapping in longitude, clamped at the poles)."""
    lon_pass = 0.25 * np.roll(grid, 1, axis=1) + 0.5 * grid + 0.25 * np.roll(grid, -1, axis=1)
    padded = np.concatenate([lon_pass[:1], lon_pass, lon_pass[-1:]], axis=0)
    return (0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]).astype(np.float32)


def _sample_grid(grid: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of a global cell-centred grid at (lat, lon), wrapping in longitude."""
    n_lat, n_lon = grid.shape
    y = np.clip((np.asarray(lat, dtype=np.float32) + 90.0) / GRID_STEP_DEG - 0.5, 0.0, n_lat - 1.001)
    x = ((np.asarray(lon, dtype=np.float32) + 180.0) / GRID_STEP_DEG - 0.5) % n_lon
    y0, x0 = y.astype(np.intp), x.astype(np.intp)
    wy, wx = y - y0, x - x0
    x0 %= n_lon  # float32 modulo can round a tiny negative up to exactly n_lon
    x1 = (x0 + 1) % n_lon
    top = grid[y0, x0] * (1 - wx) + grid[y0, x1] * wx
    bottom = grid[y0 + 1, x0] * (1 - wx) + grid[y0 + 1, x1] * wx
    return np.clip(top * (1 - wy) + bottom * wy, 0.0, 1.0)


# -- geometry ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Geometry:
    lat_a: np.ndarray  # (rows, 486) float32, also the low-frequency positions at [:, ::2]
    lon_a: np.ndarray
    lat_b: np.ndarray
    lon_b: np.ndarray
    nadir_lat: np.ndarray  # (rows,)
    nadir_lon: np.ndarray
    anomaly: np.ndarray  # (rows,) argument of latitude, radians
    flavour: Mission


def _geometry(times: np.ndarray, flavour: Mission) -> _Geometry:
    lat_a, lon_a = orbit.footprints(times, l1b.HIGH_FREQ_PIXELS, flavour)
    lat_b, lon_b = orbit.footprints(times, l1b.HIGH_FREQ_PIXELS, flavour, radius_km=SCAN_RADIUS_89B_KM)
    nadir_lat, nadir_lon = orbit.subsatellite_point(times, flavour)
    anomaly = orbit.argument_of_latitude(times, flavour)
    return _Geometry(lat_a, lon_a, lat_b, lon_b, nadir_lat, nadir_lon, anomaly, flavour)


# -- smooth fields on a coarse swath grid -------------------------------------------------------------------------
@dataclass(frozen=True)
class _CoarseGrid:
    """Row and 89 GHz column indices at which smooth fields are evaluated before interpolation."""

    rows: np.ndarray
    cols: np.ndarray
    n_rows: int

    def interpolate(self, coarse: np.ndarray, columns: int) -> np.ndarray:
        """Bilinear interpolation of a (coarse rows, coarse cols) field to (n_rows, columns)."""
        fine_cols = np.arange(columns) * ((l1b.HIGH_FREQ_PIXELS - 1) / (columns - 1))
        along = _interp_axis(coarse, self.rows, np.arange(self.n_rows), axis=0)
        return _interp_axis(along, self.cols, fine_cols, axis=1).astype(np.float32)


def _coarse_grid(times: np.ndarray) -> _CoarseGrid:
    spacing = float(times[1] - times[0])
    row_step = max(1, int(COARSE_STEP_S // spacing))
    return _CoarseGrid(
        rows=_index_with_last(times.size, row_step),
        cols=_index_with_last(l1b.HIGH_FREQ_PIXELS, COARSE_COLUMN_STEP),
        n_rows=times.size,
    )


def _index_with_last(n: int, step: int) -> np.ndarray:
    idx = np.arange(0, n, step)
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def _interp_axis(values: np.ndarray, known: np.ndarray, wanted: np.ndarray, axis: int) -> np.ndarray:
    pos = np.interp(wanted, known, np.arange(known.size, dtype=np.float64))
    lo = np.minimum(pos.astype(np.intp), known.size - 2)
    w = (pos - lo).astype(np.float32)
    shape = [1, 1]
    shape[axis] = -1
    w = w.reshape(shape)
    a, b = np.take(values, lo, axis=axis), np.take(values, lo + 1, axis=axis)
    return a + (b - a) * w


@dataclass(frozen=True)
class _WaveSet:
    wavevectors: np.ndarray  # (n, 3) on the unit sphere, radians^-1
    phases: np.ndarray
    angular_speeds: np.ndarray  # rad / s: the pattern travels
    amplitudes: np.ndarray  # normalised so the field has unit variance


#: Smooth random fields: name -> (index in the seed, wavenumber range on the unit sphere).
#: Wavenumber k gives wavelengths of 2 pi 6371 km / k: 3 -> 13000 km, 25 -> 1600 km, 150 -> 270 km.
_WEATHER_FIELDS: dict[str, tuple[int, tuple[float, float]]] = {
    "vapour": (0, (3.0, 25.0)),
    "cloud": (1, (10.0, 60.0)),
    "wind": (2, (4.0, 30.0)),
    "land_temperature": (3, (3.0, 20.0)),
    "soil": (4, (5.0, 40.0)),
    "multiyear": (5, (3.0, 15.0)),
    "convection": (6, (40.0, 150.0)),
}
_WAVES_PER_FIELD = 16
_DRIFT_RAD_PER_DAY = 0.14  # ~900 km a day, the speed of weather systems


@functools.lru_cache(maxsize=64)
def _wave_set(seed: int, field_index: int, day: int, k_range: tuple[float, float]) -> _WaveSet:
    rng = np.random.default_rng([seed, _WEATHER_TAG, field_index, day & _U64])
    direction = rng.standard_normal((_WAVES_PER_FIELD, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    k = np.exp(rng.uniform(np.log(k_range[0]), np.log(k_range[1]), _WAVES_PER_FIELD))
    amplitudes = 1.0 / np.sqrt(k)  # more power at large scales
    amplitudes *= math.sqrt(2.0 / np.sum(amplitudes**2))
    speeds = k * _DRIFT_RAD_PER_DAY / 86400.0 * rng.uniform(-1.0, 1.0, _WAVES_PER_FIELD)
    return _WaveSet(direction * k[:, None], rng.uniform(0, 2 * np.pi, _WAVES_PER_FIELD), speeds, amplitudes)


def smooth_field(seed: int, name: str, lat: np.ndarray, lon: np.ndarray, times_unix: np.ndarray) -> np.ndarray:
    """A unit-variance random field of (position, time), smooth in both and continuous across midnight.

    The field of day d is blended into that of day d+1 with cos/sin weights over the day, so neighbouring
    granules (and their overlap scans) see the same weather.
    """
    field_index, k_range = _WEATHER_FIELDS[name]
    xyz = _unit_vectors(np.ravel(lat), np.ravel(lon))
    t = np.broadcast_to(times_unix, np.shape(lat)).ravel()
    day = np.floor(t / 86400.0)
    blend = (t - day * 86400.0) / 86400.0 * (np.pi / 2)
    out = np.empty(t.size, dtype=np.float64)
    for d in np.unique(day):
        sel = day == d
        today = _wave_sum(_wave_set(seed, field_index, int(d), k_range), xyz[sel], t[sel] - d * 86400.0)
        tomorrow = _wave_sum(_wave_set(seed, field_index, int(d) + 1, k_range), xyz[sel], t[sel] - (d + 1) * 86400.0)
        out[sel] = np.cos(blend[sel]) * today + np.sin(blend[sel]) * tomorrow
    return out.reshape(np.shape(lat))


def _wave_sum(waves: _WaveSet, xyz: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    # Plain broadcasting rather than matrix products: BLAS threads oversubscribe a busy 2-core machine.
    k = waves.wavevectors
    phase = waves.phases + seconds[:, None] * waves.angular_speeds
    for axis in range(3):
        phase += xyz[:, axis, None] * k[:, axis]
    return (np.cos(phase) * waves.amplitudes).sum(axis=1)


@dataclass(frozen=True)
class _Weather:
    """Smooth physical fields at low (243) and high (486) resolution: name -> (rows, columns) float32."""

    low: dict[str, np.ndarray]
    high: dict[str, np.ndarray]


def _weather(geo: _Geometry, times: np.ndarray, seed: int) -> _Weather:
    grid = _coarse_grid(times)
    lat = geo.lat_a[np.ix_(grid.rows, grid.cols)].astype(np.float64)
    lon = geo.lon_a[np.ix_(grid.rows, grid.cols)].astype(np.float64)
    t = times[grid.rows][:, None]
    physical = _physical_fields(seed, lat, lon, t)
    return _Weather(
        low={k: grid.interpolate(v, l1b.LOW_FREQ_PIXELS) for k, v in physical.items()},
        high={k: grid.interpolate(v, l1b.HIGH_FREQ_PIXELS) for k, v in physical.items()},
    )


def _physical_fields(seed: int, lat: np.ndarray, lon: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """Bounded physical quantities; the bounds are what keeps each surface's TB in its stated range."""

    def field(name: str) -> np.ndarray:
        return smooth_field(seed, name, lat, lon, t)

    lat_r = np.radians(lat)
    doy = _day_of_year(t)
    summer = np.sin(lat_r) * np.cos(2 * np.pi * (doy - 196) / 365.25)  # +1 in the local summer
    local_hours = (t % 86400.0) / 3600.0 + lon / 15.0
    afternoon = np.cos(2 * np.pi * (local_hours - 14.0) / 24.0)  # 13:30 passes are warm, 01:30 ones cool
    weather = 5.0 * np.tanh(field("land_temperature"))
    land_t = 300.0 - 40.0 * np.sin(lat_r) ** 2 + 12.0 * summer + 7.0 * afternoon + weather
    ice_t = 262.0 - 8.0 * np.abs(np.sin(lat_r)) + 8.0 * summer
    return {
        "vapour": np.clip(0.15 + 0.6 * np.cos(lat_r) ** 2 + 0.25 * np.tanh(field("vapour")), 0.0, 1.0),
        "cloud": np.clip(0.45 * (field("cloud") - 0.5), 0.0, 1.0),
        "wind": 0.5 + 0.5 * np.tanh(0.8 * field("wind")),
        "land_temperature": np.clip(land_t, 268.0, 310.0),
        "soil": 0.5 + 0.5 * np.tanh(field("soil")),
        "ice_temperature": np.clip(ice_t, 250.0, 271.0),
        "multiyear": 0.5 + 0.5 * np.tanh(1.5 * field("multiyear")),
        "convection": np.tanh(0.7 * field("convection")),
    }


def _day_of_year(unix: np.ndarray | float) -> np.ndarray:
    """Fractional day of the year (1 = 1 January 00:00), to within a day: all the seasons need."""
    return (np.asarray(unix) - _J2000_UNIX) / 86400.0 % _TROPICAL_YEAR_DAYS + 1.5


_J2000_UNIX = 946728000.0  # 2000-01-01T12:00Z, day 1.5 of its year
_TROPICAL_YEAR_DAYS = 365.2422


def granule_day_of_year(spec: orbit.GranuleSpec) -> int:
    """Calendar day of the year of the granule's start: the day the sea-ice edge is drawn for."""
    return spec.start_utc.timetuple().tm_yday


# -- surface fractions per pixel ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Surface:
    """Land fraction per Land_Ocean layer and ice fraction of the water, at each layer's resolution."""

    land: dict[str, np.ndarray]  # "6", "10", "23", "36": (rows, 243); "89A", "89B": (rows, 486)
    ice_low: np.ndarray
    ice_a: np.ndarray
    ice_b: np.ndarray


def _surface(geo: _Geometry, day_of_year: int) -> _Surface:
    lat_low, lon_low = geo.lat_a[:, ::2], geo.lon_a[:, ::2]
    land = {layer: land_fraction(lat_low, lon_low, layer) for layer in ("6", "10", "23")}
    land["89A"] = land_fraction(geo.lat_a, geo.lon_a, "89")
    land["89B"] = land_fraction(geo.lat_b, geo.lon_b, "89")
    land["36"] = land["89A"][:, ::2]  # same unsmoothed grid, same points
    ice_a = sea_ice_fraction(geo.lat_a, geo.lon_a, day_of_year)
    return _Surface(land, ice_a[:, ::2], ice_a, sea_ice_fraction(geo.lat_b, geo.lon_b, day_of_year))


# -- brightness temperatures --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ChannelModel:
    """Emission model of one channel.

    ocean: TB = base + vapour * d_vapour + cloud * d_cloud + wind * d_wind (+ convection * d_convection)
    ice:   TB = T_ice * (e - multiyear * d_e)       land: TB = T_land * (e - soil * d_e)
    """

    ocean: tuple[float, float, float, float]
    ice: tuple[float, float]
    land: tuple[float, float]
    nedt_k: float
    d_convection: float = 0.0


# Ocean TBs rise with frequency (means 84, 91, 108, 119, 210 K at 6.9/10.7/18.7/36.5/89 H), except that the
# 23.8 GHz water-vapour line (136 K) is warmer than 36.5 GHz; V is warmer than H. Before noise, 36.5 GHz H is
# 110-146 K over ocean, 205-244 K over ice and 244-294 K over land, and 36.5 V is 190-215 K over ocean.
_CHANNEL_MODELS: dict[str, _ChannelModel] = {
    "6.9H": _ChannelModel((80, 1, 4, 6), (0.88, 0.02), (0.90, 0.08), 0.34),
    "6.9V": _ChannelModel((158, 1, 3, 1), (0.97, 0.01), (0.96, 0.03), 0.34),
    "7.3H": _ChannelModel((81, 1, 4, 6), (0.88, 0.02), (0.90, 0.08), 0.43),
    "7.3V": _ChannelModel((159, 1, 3, 1), (0.97, 0.01), (0.96, 0.03), 0.43),
    "10.7H": _ChannelModel((85, 3, 10, 7), (0.89, 0.03), (0.91, 0.07), 0.70),
    "10.7V": _ChannelModel((163, 2, 8, 2), (0.97, 0.02), (0.96, 0.03), 0.70),
    "18.7H": _ChannelModel((95, 15, 25, 8), (0.90, 0.05), (0.93, 0.06), 0.70),
    "18.7V": _ChannelModel((175, 10, 20, 3), (0.96, 0.05), (0.965, 0.03), 0.70),
    "23.8H": _ChannelModel((110, 45, 25, 7), (0.90, 0.06), (0.94, 0.05), 0.60),
    "23.8V": _ChannelModel((182, 30, 18, 2), (0.95, 0.06), (0.97, 0.03), 0.60),
    "36.5H": _ChannelModel((110, 12, 20, 4), (0.90, 0.08), (0.95, 0.04), 0.70),
    "36.5V": _ChannelModel((190, 8, 15, 2), (0.94, 0.09), (0.97, 0.03), 0.70),
    "89.0AH": _ChannelModel((185, 40, 40, 6), (0.86, 0.12), (0.95, 0.03), 1.0, 12.0),
    "89.0AV": _ChannelModel((232, 20, 25, 2), (0.90, 0.13), (0.97, 0.02), 1.0, 8.0),
    "89.0BH": _ChannelModel((185, 40, 40, 6), (0.86, 0.12), (0.95, 0.03), 1.0, 12.0),
    "89.0BV": _ChannelModel((232, 20, 25, 2), (0.90, 0.13), (0.97, 0.02), 1.0, 8.0),
}


def _channel_tb(channel: str, surface: _Surface, weather: _Weather, rng: np.random.Generator) -> np.ndarray:
    """Kelvin, noise included: land / (ice over water) / open water mixed by their fractions."""
    model = _CHANNEL_MODELS[channel]
    if channel.startswith("89"):
        fields = weather.high
        horn = "89A" if channel.startswith("89.0A") else "89B"
        land, ice = surface.land[horn], surface.ice_a if horn == "89A" else surface.ice_b
    else:
        fields = weather.low
        land, ice = surface.land[_CHANNEL_LAND_LAYER[channel[:-1]]], surface.ice_low
    base, d_vapour, d_cloud, d_wind = model.ocean
    ocean = base + d_vapour * fields["vapour"] + d_cloud * fields["cloud"] + d_wind * fields["wind"]
    if model.d_convection:
        ocean = ocean + model.d_convection * fields["convection"]
    ice_tb = fields["ice_temperature"] * (model.ice[0] - model.ice[1] * fields["multiyear"])
    land_tb = fields["land_temperature"] * (model.land[0] - model.land[1] * fields["soil"])
    water = ocean + ice * (ice_tb - ocean)
    tb = water + land * (land_tb - water)
    return tb + model.nedt_k * rng.standard_normal(tb.shape, dtype=np.float32)


def _to_raw_tb(tb_kelvin: np.ndarray, rng: np.random.Generator, missing_rows: np.ndarray) -> np.ndarray:
    """uint16 counts of 0.01 K, clipped to a physical range, with random and whole-scan missing values."""
    raw = np.rint(np.clip(tb_kelvin, *TB_PHYSICAL_RANGE_K) / l1b.TB_SCALE_FACTOR).astype(np.uint16)
    n_missing = rng.binomial(raw.size, MISSING_PIXEL_RATE)
    raw.reshape(-1)[rng.integers(0, raw.size, n_missing)] = l1b.TB_MISSING
    raw[missing_rows] = l1b.TB_MISSING
    return raw


# -- angles, flags, engineering -----------------------------------------------------------------------------------
def _angles(geo: _Geometry, times: np.ndarray) -> dict[str, np.ndarray]:
    lat, lon = geo.lat_a[:, ::2].astype(np.float64), geo.lon_a[:, ::2].astype(np.float64)
    # Incidence varies a little with altitude along the orbit; azimuth looks back towards the satellite.
    incidence = EARTH_INCIDENCE_DEG + 0.15 * np.sin(geo.anomaly)[:, None] + np.zeros_like(lat)
    earth_azimuth = orbit.initial_bearing(lat, lon, geo.nadir_lat[:, None], geo.nadir_lon[:, None])
    sun_elevation, sun_azimuth = sun_position(lat, lon, times[:, None])
    return {
        "Earth Incidence": _to_int16_centi(incidence),
        "Earth Azimuth": _to_int16_centi(_signed_angle(earth_azimuth)),
        "Sun Azimuth": _to_int16_centi(_signed_angle(sun_azimuth)),
        "Sun Elevation": _to_int16_centi(sun_elevation),
    }


def sun_position(lat: np.ndarray, lon: np.ndarray, unix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solar elevation and azimuth (degrees, azimuth clockwise from north) from a low-precision formula."""
    doy = _day_of_year(unix)
    declination = np.radians(-23.44) * np.cos(2 * np.pi * (doy + 10) / 365.25)
    hour_angle = np.radians(15.0 * ((unix % 86400.0) / 3600.0 + lon / 15.0 - 12.0))
    phi = np.radians(lat)
    sin_el = np.sin(phi) * np.sin(declination) + np.cos(phi) * np.cos(declination) * np.cos(hour_angle)
    elevation = np.arcsin(np.clip(sin_el, -1.0, 1.0))
    azimuth = np.arctan2(
        -np.sin(hour_angle) * np.cos(declination),
        np.cos(phi) * np.sin(declination) - np.sin(phi) * np.cos(declination) * np.cos(hour_angle),
    )
    return np.degrees(elevation), np.degrees(azimuth) % 360.0


def _signed_angle(deg: np.ndarray) -> np.ndarray:
    # int16 with scale 0.01 holds at most 327.67, so azimuths are stored in (-180, 180].
    return 180.0 - (180.0 - np.asarray(deg)) % 360.0


def _to_int16_centi(deg: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(deg) * 100.0).astype(np.int16)


def _land_ocean_flags(surface: _Surface) -> dict[str, np.ndarray]:
    def percent(*layers: np.ndarray) -> np.ndarray:
        return np.rint(np.stack(layers) * 100.0).astype(np.uint8)

    land = surface.land
    return {
        "Land_Ocean Flag 6 to 36": percent(land["6"], land["10"], land["23"], land["36"]),
        "Land_Ocean Flag 89": percent(land["89A"], land["89B"]),
    }


def _engineering(geo: _Geometry, times: np.ndarray, missing_rows: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Counts, flags and navigation: plausible, slowly varying, and (like real ones) very compressible."""
    rows = times.size
    rng = np.random.default_rng([seed, _ENGINEERING_TAG])
    orbit_wave = np.sin(geo.anomaly)[:, None]  # the thermal environment follows the orbit

    def counts(base: float, spread: float, shape: tuple[int, ...], jitter: float) -> np.ndarray:
        level = base + spread * rng.random(shape[1:])
        wave = orbit_wave.reshape((rows,) + (1,) * (len(shape) - 1))
        values = level + 4.0 * wave + jitter * rng.standard_normal(shape)
        return np.rint(values).astype(np.uint16)

    scan_quality = np.zeros((rows, 512), dtype=np.int8)
    scan_quality[missing_rows, 0] = 1
    return {
        "Pixel Data Quality 6 to 36": _rfi_flags(geo),
        "Pixel Data Quality 89": np.zeros((rows, l1b.HIGH_FREQ_PIXELS), dtype=np.uint8),
        "Scan Data Quality": scan_quality,
        "Position in Orbit": np.degrees(geo.anomaly) % 360.0,
        "Navigation Data": _navigation(times, geo),
        "Observation Supplement": np.zeros((rows, 24), dtype=np.int16),
        "PCD Data": np.broadcast_to(rng.integers(0, 256, 128, dtype=np.uint8), (rows, 128)).copy(),
        "Interpolation Flag 6 to 36": np.zeros((rows, l1b.LOW_FREQ_PIXELS), dtype=np.uint8),
        "Interpolation Flag 89": np.zeros((rows, l1b.HIGH_FREQ_PIXELS), dtype=np.uint8),
        "Hot Load Count 6 to 36": counts(2600.0, 600.0, (rows, 16, 12), 1.5),
        "Hot Load Count 89": counts(2600.0, 600.0, (rows, 32, 4), 1.5),
        "Cold Sky Mirror Count 6 to 36": counts(400.0, 200.0, (rows, 16, 12), 1.5),
        "Cold Sky Mirror Count 89": counts(400.0, 200.0, (rows, 32, 4), 1.5),
        "Rx Offset_Gain Count": counts(1000.0, 2000.0, (rows, 32), 0.0),
        "SPC Temperature Count": counts(1500.0, 500.0, (rows, 20), 0.0),
        "SPS Temperature Count": counts(1500.0, 500.0, (rows, 32), 0.0),
    }


#: Regions with radio-frequency interference (lat/lon boxes) and the flag bit each raises: C-band over North
#: America, X-band over Europe, as AMSR-E and AMSR2 users know them. Bit meanings are illustrative only.
_RFI_REGIONS = (((25.0, 50.0, -125.0, -70.0), 0x0001), ((35.0, 60.0, -10.0, 30.0), 0x0004))


def _rfi_flags(geo: _Geometry) -> np.ndarray:
    """Pixel Data Quality 6 to 36: a 16-bit flag word per low-frequency pixel, as two bytes (LSB first)."""
    lat, lon = geo.lat_a[:, ::2], geo.lon_a[:, ::2]
    words = np.zeros(lat.shape, dtype=np.uint16)
    for (lat_min, lat_max, lon_min, lon_max), bit in _RFI_REGIONS:
        inside = (lat >= lat_min) & (lat <= lat_max) & (lon >= lon_min) & (lon <= lon_max)
        words[inside] |= bit
    return words.astype("<u2").view(np.uint8).reshape(lat.shape[0], l1b.HIGH_FREQ_PIXELS)


def _navigation(times: np.ndarray, geo: _Geometry) -> np.ndarray:
    """Earth-fixed position (m) and velocity (m/s) of the spacecraft, from the nadir track."""
    radius_m = (orbit.EARTH_RADIUS_KM + SATELLITE_ALTITUDE_KM) * 1000.0
    now = _unit_vectors(geo.nadir_lat, geo.nadir_lon)
    later = _unit_vectors(*orbit.subsatellite_point(times + 1.0, geo.flavour))
    return np.concatenate([now * radius_m, (later - now) * radius_m], axis=1).astype(np.float32)


def _unit_vectors(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


# -- HDF5 -------------------------------------------------------------------------------------------------------
_COREGISTRATION_AMSR2 = (
    {"6G": 1.51820, "7G": 1.40210, "10G": 1.04500, "18G": -0.03880, "23G": -0.27920, "36G": -0.46630},
    {"6G": 0.79930, "7G": 0.75880, "10G": 0.45670, "18G": 0.04820, "23G": -0.01670, "36G": -0.10550},
)
_COREGISTRATION_AMSRE = tuple({k: v for k, v in a.items() if k != "7G"} for a in _COREGISTRATION_AMSR2)


def _format_coregistration(values: Mapping[str, float]) -> str:
    """``6G-1.51820,18G--0.03880``: JAXA joins band and value with a dash, so negatives get two."""
    return ",".join(f"{band}-{value:.5f}" for band, value in values.items())


def _string_attribute(value: str) -> np.ndarray:
    # Fixed-length ASCII in a 1-element array: h5py reads it back as array([b'...']).
    return np.array([value.encode("ascii")])


def _chunk_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """At most CHUNK_ROWS scan rows over the full width; Land_Ocean layers (leading 4 or 2) one at a time."""
    if len(shape) == 3 and shape[0] in (2, 4) and shape[2] in (l1b.LOW_FREQ_PIXELS, l1b.HIGH_FREQ_PIXELS):
        return (1, min(CHUNK_ROWS, shape[1]), shape[2])
    return (min(CHUNK_ROWS, shape[0]), *shape[1:])


def _write_hdf5(
    path: Path,
    flavour: Mission,
    fields: Mapping[str, np.ndarray],
    attributes: Mapping[str, str],
    compression_level: int,
    big_endian: bool = False,
) -> None:
    rows = fields[l1b.SCAN_TIME].shape[0]
    filters = {"compression": "gzip", "compression_opts": compression_level, "shuffle": True}
    specs = dataset_specs(flavour)
    for spec in specs:
        shape, data = l1b.dataset_shape(spec, rows), fields[spec.name]
        if data.shape != shape or data.dtype != np.dtype(spec.dtype):
            raise AssertionError(f"{spec.name}: built {data.shape} {data.dtype}, format says {shape} {spec.dtype}")
    if big_endian:  # same values, other byte order: the chunks below are then encoded from big-endian bytes
        fields = {name: _big_endian(data) for name, data in fields.items()}
    encoded = _encode_all_chunks(specs, fields, compression_level) if compression_level else None
    with h5py.File(path, "w") as f:
        for name, value in attributes.items():
            f.attrs.create(name, _string_attribute(value))
        for spec in specs:
            data = fields[spec.name]
            ds = f.create_dataset(
                spec.name,
                shape=data.shape,
                dtype=data.dtype,
                chunks=_chunk_shape(data.shape),
                fillvalue=spec.fill,
                track_times=False,  # no creation time inside: identical inputs give identical bytes
                **(filters if compression_level else {}),
            )
            if encoded is None:
                ds[...] = data
            else:
                for offset, chunk in encoded[spec.name]:
                    ds.id.write_direct_chunk(offset, chunk)
            if spec.scale_factor is not None:
                ds.attrs.create("SCALE FACTOR", np.array([spec.scale_factor], dtype=np.float32))
            if spec.unit is not None:
                ds.attrs.create("UNIT", _string_attribute(spec.unit))


def _big_endian(data: np.ndarray) -> np.ndarray:
    if data.dtype.itemsize == 1 or data.dtype.byteorder == ">":
        return data
    return data.astype(data.dtype.newbyteorder(">"))


def _encode_all_chunks(
    specs: tuple[l1b.DatasetSpec, ...], fields: Mapping[str, np.ndarray], level: int
) -> dict[str, list[tuple[tuple[int, ...], bytes]]]:
    """Shuffle + deflate every chunk on worker threads.

    HDF5 would compress inside h5py's global lock, one chunk at a time; zlib releases the GIL, so encoding
    here uses both cores (and lets several granules be generated in parallel threads). The chunks are then
    written in a fixed order, which keeps the file byte-identical.
    """
    jobs = [
        (spec.name, offset, fields[spec.name], _chunk_shape(fields[spec.name].shape), spec.fill)
        for spec in specs
        for offset in _chunk_offsets(fields[spec.name].shape, _chunk_shape(fields[spec.name].shape))
    ]
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        chunks = list(pool.map(lambda job: _encode_chunk(job[1], *job[2:], level), jobs))
    encoded: dict[str, list[tuple[tuple[int, ...], bytes]]] = {spec.name: [] for spec in specs}
    for (name, offset, *_), chunk in zip(jobs, chunks, strict=True):
        encoded[name].append((offset, chunk))
    return encoded


def _chunk_offsets(shape: tuple[int, ...], chunks: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    return itertools.product(*(range(0, n, c) for n, c in zip(shape, chunks, strict=True)))


def _encode_chunk(
    offset: tuple[int, ...], data: np.ndarray, chunk_shape: tuple[int, ...], fill: float | None, level: int
) -> bytes:
    """The bytes HDF5's shuffle then deflate filters store for one chunk (edge chunks padded to full size)."""
    block = data[tuple(slice(o, o + c) for o, c in zip(offset, chunk_shape, strict=True))]
    if block.shape != chunk_shape:
        padded = np.full(chunk_shape, 0 if fill is None else fill, dtype=data.dtype)
        padded[tuple(slice(0, n) for n in block.shape)] = block
        block = padded
    raw = np.ascontiguousarray(block).view(np.uint8).reshape(block.size, data.dtype.itemsize)
    return zlib.compress(raw.T.tobytes(), level)  # the transpose is the shuffle filter: byte planes


# -- command line -------------------------------------------------------------------------------------------------
class SynthUsageError(ValueError):
    """Bad command-line input; the message names the problem and the fix."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``amsr2flow synth`` (values are checked in :func:`run` to give one-line errors)."""
    parser.add_argument("--date", required=True, help="UTC day whose granules to write, YYYY-MM-DD")
    parser.add_argument("--end-date", help="last UTC day of a range (inclusive), YYYY-MM-DD")
    parser.add_argument("--out", default=".", help="output folder, created if missing (default: .)")
    parser.add_argument("--seed", default="0", help="weather and noise seed, a non-negative integer (default 0)")
    parser.add_argument("--scans", help="scans per granule for quick tests (default: full size, ~1977)")
    parser.add_argument("--overlap", default=str(l1b.DEFAULT_OVERLAP_SCANS), help="overlap scans (default 30)")
    parser.add_argument("--flavour", default=orbit.AMSR2.key, help="amsr2 (default) or amsre")
    parser.add_argument("--granule", help="write only this granule id (or file name) of the day(s)")
    parser.add_argument("--compression", default="4", help="gzip level 0-9, 0 = uncompressed (default 4)")


def run(args: argparse.Namespace) -> int:
    """Write the requested granules, one output line per file; exit 2 on bad input (nothing written)."""
    try:
        plan = plan_from_args(args)
    except SynthUsageError as exc:
        print(f"amsr2flow synth: error: {exc}", file=sys.stderr)
        return 2
    for spec in plan.granules:
        target = plan.out_dir / spec.file_name
        try:
            size = write_granule(
                target,
                spec,
                seed=plan.seed,
                n_scans=plan.n_scans,
                overlap_scans=plan.overlap_scans,
                compression_level=plan.compression_level,
            )
        except OSError as exc:
            print(f"amsr2flow synth: error: writing {target} failed: {exc}", file=sys.stderr)
            return 1
        print(f"{target}\t{size}", flush=True)
    return 0


@dataclass(frozen=True)
class SynthPlan:
    granules: list[orbit.GranuleSpec]
    out_dir: Path
    seed: int
    n_scans: int | None
    overlap_scans: int
    compression_level: int


def plan_from_args(args: argparse.Namespace) -> SynthPlan:
    """Check every option before anything is written; raises SynthUsageError with a one-line fix."""
    flavour = orbit.FLAVOURS.get(str(args.flavour).lower())
    if flavour is None:
        raise SynthUsageError(f"unknown --flavour {args.flavour!r}; use one of: {', '.join(orbit.FLAVOURS)}")
    first = _parse_day("--date", args.date)
    last = _parse_day("--end-date", args.end_date) if args.end_date else first
    if last < first:
        raise SynthUsageError(f"--end-date {last} is before --date {first}; swap them or drop --end-date")
    _check_in_mission(flavour, first, last)
    seed = _parse_int("--seed", args.seed, minimum=0)
    overlap = _parse_int("--overlap", args.overlap, minimum=0)
    compression = _parse_int("--compression", args.compression, minimum=0, maximum=9)
    n_scans = _parse_int("--scans", args.scans, minimum=2) if args.scans is not None else None
    granules = [g for day in _days(first, last) for g in orbit.granules_beginning_on(day, flavour)]
    if n_scans is not None and n_scans > min(g.number_of_scans for g in granules):
        limit = min(g.number_of_scans for g in granules)
        raise SynthUsageError(f"--scans {n_scans} is more than a granule has ({limit}); omit --scans for full size")
    if args.granule:
        granules = _select_granule(granules, args.granule, first, last, flavour)
    return SynthPlan(granules, _writable_dir(args.out), seed, n_scans, overlap, compression)


def _parse_day(option: str, text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise SynthUsageError(f"{option} {text!r} is not a date; write it as YYYY-MM-DD, e.g. 2020-01-01") from None


def _parse_int(option: str, text: str, *, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(str(text), 10)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
        raise SynthUsageError(f"{option} {text!r} is not valid; give an integer {bound}")
    return value


def _check_in_mission(flavour: Mission, first: date, last: date) -> None:
    def mission_end(f: Mission) -> date:
        return f.last_day or datetime.now(timezone.utc).date()  # an ongoing mission has observed up to today

    if first >= flavour.first_day and last <= mission_end(flavour):
        return
    period = str(first) if first == last else f"{first}..{last}"
    others = [f.key for f in orbit.FLAVOURS.values() if f.first_day <= first and last <= mission_end(f)]
    fix = f"use --flavour {others[0]}" if others else "pick dates inside it"
    raise SynthUsageError(
        f"{period} is outside the {flavour.sensor} mission ({flavour.first_day}..{mission_end(flavour)}); {fix}"
    )


def _days(first: date, last: date) -> Iterator[date]:
    for offset in range((last - first).days + 1):
        yield first + timedelta(days=offset)


def _select_granule(
    granules: list[orbit.GranuleSpec], wanted: str, first: date, last: date, flavour: Mission
) -> list[orbit.GranuleSpec]:
    granule_id = wanted.rsplit("/", 1)[-1].split(".h5", 1)[0]
    chosen = [g for g in granules if g.granule_id == granule_id]
    if not chosen:
        period = str(first) if first == last else f"{first}..{last}"
        raise SynthUsageError(
            f"granule {granule_id!r} is not one of the {len(granules)} {flavour.key} granules beginning on "
            f"{period}; run without --granule to write (and list) them all"
        )
    return chosen


def _writable_dir(out: str) -> Path:
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise SynthUsageError(f"--out {out!r} is a file, not a folder; give a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise SynthUsageError(
            f"--out {out!r} is not a writable folder ({exc.strerror or exc}); choose another --out"
        ) from None
    return folder


if __name__ == "__main__":
    from amsr2flow.cli import main

    sys.exit(main(["synth", *sys.argv[1:]]))
