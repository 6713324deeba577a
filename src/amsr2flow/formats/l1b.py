"""Facts about the AMSR2 L1B HDF5 granule format, shared by the generator, the extractor and the verifier.

Collected from public readers that run against real files (satpy's ``amsr2_l1b`` reader and its tests, the
WRF data-assimilation AMSR2 reader, FIDUCEO's reader tests, operational download scripts); this module only
encodes them. What is not confirmed by such code is marked so where it is used.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

# -- channels ---------------------------------------------------------------------------------------------
#: Short channel names used in configs and archives, mapped to the HDF5 dataset name.
CHANNEL_DATASETS: dict[str, str] = {
    "6.9H": "Brightness Temperature (6.9GHz,H)",
    "6.9V": "Brightness Temperature (6.9GHz,V)",
    "7.3H": "Brightness Temperature (7.3GHz,H)",
    "7.3V": "Brightness Temperature (7.3GHz,V)",
    "10.7H": "Brightness Temperature (10.7GHz,H)",
    "10.7V": "Brightness Temperature (10.7GHz,V)",
    "18.7H": "Brightness Temperature (18.7GHz,H)",
    "18.7V": "Brightness Temperature (18.7GHz,V)",
    "23.8H": "Brightness Temperature (23.8GHz,H)",
    "23.8V": "Brightness Temperature (23.8GHz,V)",
    "36.5H": "Brightness Temperature (36.5GHz,H)",
    "36.5V": "Brightness Temperature (36.5GHz,V)",
    "89.0AH": "Brightness Temperature (89.0GHz-A,H)",
    "89.0AV": "Brightness Temperature (89.0GHz-A,V)",
    "89.0BH": "Brightness Temperature (89.0GHz-B,H)",
    "89.0BV": "Brightness Temperature (89.0GHz-B,V)",
}
#: Channels absent from AMSR-E granules in AMSR2 format (no 7.3 GHz receiver on AMSR-E).
AMSRE_MISSING_CHANNELS = ("7.3H", "7.3V")
DEFAULT_CHANNELS = ("36.5H",)

LOW_FREQ_PIXELS = 243  # 6.9 to 36.5 GHz samples per scan
HIGH_FREQ_PIXELS = 486  # 89 GHz samples per scan (A and B horns)

LATITUDE_89A = "Latitude of Observation Point for 89A"
LONGITUDE_89A = "Longitude of Observation Point for 89A"
LATITUDE_89B = "Latitude of Observation Point for 89B"
LONGITUDE_89B = "Longitude of Observation Point for 89B"
SCAN_TIME = "Scan Time"

TB_MISSING = 65535  # uint16 fill of brightness temperatures
TB_MISSING_ALT = 65534  # also rejected by one operational reader
TB_MISSING_CODES = (TB_MISSING, TB_MISSING_ALT)
TB_SCALE_FACTOR = 0.01
GEO_FILL = -9999.0
GEO_ABNORMAL_MAX = -9991.0  # values <= this are abnormal positions
INT16_FILL = -32767
UINT8_FILL = 255

SCAN_PERIOD_S = 1.49985
DEFAULT_OVERLAP_SCANS = 30


def channel_pixels(channel: str) -> int:
    """Samples per scan of a channel short name (243 below 89 GHz, 486 at 89 GHz)."""
    return HIGH_FREQ_PIXELS if channel.startswith("89") else LOW_FREQ_PIXELS


# -- the 43 datasets of a real L1B granule ------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetSpec:
    """Name, shape pattern and dtype of one root dataset. Shape uses "N" for the row count."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str
    scale_factor: float | None = None
    unit: str | None = None
    fill: int | float | None = None


def _tb_specs() -> list[DatasetSpec]:
    return [
        DatasetSpec(name, ("N", channel_pixels(short)), "uint16", TB_SCALE_FACTOR, "K", TB_MISSING)
        for short, name in CHANNEL_DATASETS.items()
    ]


DATASETS: tuple[DatasetSpec, ...] = (
    *_tb_specs(),
    DatasetSpec(LATITUDE_89A, ("N", HIGH_FREQ_PIXELS), "float32", 1.0, "deg", GEO_FILL),
    DatasetSpec(LATITUDE_89B, ("N", HIGH_FREQ_PIXELS), "float32", 1.0, "deg", GEO_FILL),
    DatasetSpec(LONGITUDE_89A, ("N", HIGH_FREQ_PIXELS), "float32", 1.0, "deg", GEO_FILL),
    DatasetSpec(LONGITUDE_89B, ("N", HIGH_FREQ_PIXELS), "float32", 1.0, "deg", GEO_FILL),
    DatasetSpec(SCAN_TIME, ("N",), "float64", None, "sec", None),
    DatasetSpec("Earth Incidence", ("N", LOW_FREQ_PIXELS), "int16", 0.01, "deg", INT16_FILL),
    DatasetSpec("Earth Azimuth", ("N", LOW_FREQ_PIXELS), "int16", 0.01, "deg", INT16_FILL),
    DatasetSpec("Sun Azimuth", ("N", LOW_FREQ_PIXELS), "int16", 0.01, "deg", INT16_FILL),
    DatasetSpec("Sun Elevation", ("N", LOW_FREQ_PIXELS), "int16", 0.01, "deg", INT16_FILL),
    DatasetSpec("Land_Ocean Flag 6 to 36", (4, "N", LOW_FREQ_PIXELS), "uint8", None, None, UINT8_FILL),
    DatasetSpec("Land_Ocean Flag 89", (2, "N", HIGH_FREQ_PIXELS), "uint8", None, None, UINT8_FILL),
    DatasetSpec("Pixel Data Quality 6 to 36", ("N", HIGH_FREQ_PIXELS), "uint8"),
    DatasetSpec("Pixel Data Quality 89", ("N", HIGH_FREQ_PIXELS), "uint8"),
    DatasetSpec("Scan Data Quality", ("N", 512), "int8"),
    DatasetSpec("Position in Orbit", ("N",), "float64"),
    DatasetSpec("Navigation Data", ("N", 6), "float32"),
    DatasetSpec("Observation Supplement", ("N", 24), "int16"),
    DatasetSpec("PCD Data", ("N", 128), "uint8"),
    DatasetSpec("Interpolation Flag 6 to 36", ("N", LOW_FREQ_PIXELS), "uint8"),
    DatasetSpec("Interpolation Flag 89", ("N", HIGH_FREQ_PIXELS), "uint8"),
    DatasetSpec("Hot Load Count 6 to 36", ("N", 16, 12), "uint16"),
    DatasetSpec("Hot Load Count 89", ("N", 32, 4), "uint16"),
    DatasetSpec("Cold Sky Mirror Count 6 to 36", ("N", 16, 12), "uint16"),
    DatasetSpec("Cold Sky Mirror Count 89", ("N", 32, 4), "uint16"),
    DatasetSpec("Rx Offset_Gain Count", ("N", 32), "uint16"),
    DatasetSpec("SPC Temperature Count", ("N", 20), "uint16"),
    DatasetSpec("SPS Temperature Count", ("N", 32), "uint16"),
)
assert len(DATASETS) == 43, len(DATASETS)


def dataset_shape(spec: DatasetSpec, rows: int) -> tuple[int, ...]:
    """Concrete shape of a dataset for a granule with ``rows`` scan rows."""
    return tuple(rows if dim == "N" else int(dim) for dim in spec.shape)


# -- TAI93 time ---------------------------------------------------------------------------------------------
TAI93_EPOCH_UNIX = 725846400  # 1993-01-01T00:00:00Z
#: Leap seconds inserted since 1993-01-01, as the Unix UTC time at which each took effect.
LEAP_SECONDS_SINCE_1993 = tuple(
    calendar.timegm(t)
    for t in (
        (1993, 7, 1, 0, 0, 0),
        (1994, 7, 1, 0, 0, 0),
        (1996, 1, 1, 0, 0, 0),
        (1997, 7, 1, 0, 0, 0),
        (1999, 1, 1, 0, 0, 0),
        (2006, 1, 1, 0, 0, 0),
        (2009, 1, 1, 0, 0, 0),
        (2012, 7, 1, 0, 0, 0),
        (2015, 7, 1, 0, 0, 0),
        (2017, 1, 1, 0, 0, 0),
    )
)


def leap_count_at_unix(unix_utc: float) -> int:
    """Leap seconds inserted between 1993-01-01 and the UTC instant ``unix_utc``."""
    return sum(1 for t in LEAP_SECONDS_SINCE_1993 if unix_utc >= t)


def unix_to_tai93(unix_utc: float) -> float:
    """UTC Unix seconds to TAI93 (SI seconds since 1993-01-01 UTC, leap seconds included)."""
    return unix_utc - TAI93_EPOCH_UNIX + leap_count_at_unix(unix_utc)


def tai93_to_unix(tai93: float) -> float:
    """TAI93 seconds to UTC Unix seconds (the correct inverse; not the 37 s TAI-UTC shortcut)."""
    approx = tai93 + TAI93_EPOCH_UNIX
    # The leap count must be taken at the UTC instant; at most one step of correction is needed.
    leaps = leap_count_at_unix(approx - leap_count_at_unix(approx))
    return approx - leaps


def utc_iso_ms(unix_utc: float) -> str:
    """``2024-01-01T00:16:06.777Z``: the one rule for every time the workflow writes (manifests, swaths, index).

    Rounded to the microsecond first (float noise below it is not time), then cut to the millisecond, as the
    catalogue's own times are: the same instant gives the same text whether it comes from the catalogue or
    from a granule's TAI93 scan times.
    """
    micro = round(unix_utc * 1_000_000)
    milli = micro // 1000
    stamp = datetime.fromtimestamp(milli // 1000, tz=timezone.utc).replace(microsecond=(milli % 1000) * 1000)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tai93_to_unix_array(tai93: np.ndarray) -> np.ndarray:
    """:func:`tai93_to_unix` for an array (float64 UTC Unix seconds); NaN where the time is not positive or
    not finite (fills)."""
    values = np.asarray(tai93, dtype=np.float64)
    ok = np.isfinite(values) & (values > 0)
    approx = np.where(ok, values, 0.0) + TAI93_EPOCH_UNIX
    leaps_at = np.asarray(LEAP_SECONDS_SINCE_1993, dtype=np.float64)
    first = np.searchsorted(leaps_at, approx, side="right")
    leaps = np.searchsorted(leaps_at, approx - first, side="right")
    return np.where(ok, approx - leaps, np.nan)


# -- file names ---------------------------------------------------------------------------------------------
#: Sensor of each file-name platform field (AMSR-E's is not confirmed, see mission.py).
PLATFORM_SENSORS = {"GW1AM2": "AMSR2", "A2ES1M": "AMSR-E"}


def sensor_of(granule_id: str) -> str:
    """``AMSR2`` or ``AMSR-E`` from a granule id's first field; ``unknown`` for other names."""
    return PLATFORM_SENSORS.get(granule_id.split("_", 1)[0], "unknown")


GRANULE_NAME_RE = re.compile(
    r"^(?P<platform>GW1AM2|A2ES1M)_(?P<start>\d{12})_(?P<path>\d{3})(?P<direction>[ADU])_"
    r"(?P<kind>L1SG[A-Z]{3}[A-Z])_(?P<version>\d{7})(?:\.h5(?:\.gz)?)?$"
)


@dataclass(frozen=True)
class GranuleName:
    """The parts of a JAXA granule file name such as ``GW1AM2_202001010047_189D_L1SGBTBR_2220220.h5``."""

    granule_id: str
    platform: str
    start_minute_utc: datetime
    path_number: int
    orbit_direction: str  # "A", "D" or "U"
    product_kind: str
    product_version: str


def parse_granule_name(name: str) -> GranuleName:
    """Parse a granule id or file name; raises ``ValueError`` naming the expected pattern."""
    base = name.rsplit("/", 1)[-1]
    match = GRANULE_NAME_RE.match(base)
    if match is None:
        raise ValueError(
            f"{base!r} is not an AMSR2 granule name; expected e.g. GW1AM2_202001010047_189D_L1SGBTBR_2220220.h5"
        )
    granule_id = base.split(".h5", 1)[0]
    start = datetime.strptime(match["start"], "%Y%m%d%H%M").replace(tzinfo=timezone.utc)
    return GranuleName(
        granule_id=granule_id,
        platform=match["platform"],
        start_minute_utc=start,
        path_number=int(match["path"]),
        orbit_direction=match["direction"],
        product_kind=match["kind"],
        product_version=match["version"],
    )


#: The stored orbit types that say a direction, in words.
DIRECTIONS = {"A": "ascending", "D": "descending"}
UNKNOWN_DIRECTION = "unknown direction"  # what any other stored orbit type is called: never a guess


def direction_name(orbit_type: str) -> str:
    """``ascending``, ``descending``, or ``unknown direction`` for anything else (``U``, a damaged value)."""
    return DIRECTIONS.get(str(orbit_type), UNKNOWN_DIRECTION)


def direction_key(orbit_type: str) -> str:
    """``A``, ``D``, or ``U`` for anything else."""
    return str(orbit_type) if str(orbit_type) in DIRECTIONS else "U"


def orbit_type_from_name(name: str) -> str:
    """Orbit type exactly as the legacy system derives it: the last character of the third name field."""
    parts = name.rsplit("/", 1)[-1].split("_")
    flag = parts[2][-1] if len(parts) > 2 and parts[2] else "U"
    return flag if flag in ("A", "D") else "U"
