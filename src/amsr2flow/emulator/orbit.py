"""A simple sun-synchronous orbit model that schedules half-orbit granules and traces their ground track.

The model is anchored on a real granule, ``GW1AM2_202001010047_189D`` (start 2020-01-01T00:47:00.855Z, path 189,
orbit 40552), and uses the A-Train 16-day repeat of 233 orbits. With a path advance of 16 per orbit it
reproduces the path number of an independent real granule five years later
(``GW1AM2_202507060651_015D``), which is what "path numbers that advance like real ones" asks for.

Conventions of the model (simplifications, documented in the README):
- a granule is a half orbit between the northernmost and southernmost points: descending from the north pole,
  ascending from the south pole; a descending granule and the ascending one after it share an orbit and path;
- the orbital plane keeps the ascending node at 13:30 local solar time (no equation of time, no drift);
- the Earth is a sphere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import numpy as np

from .. import mission
from ..formats import l1b
from ..mission import Mission

EARTH_RADIUS_KM = 6371.0
INCLINATION_DEG = 98.2
ASCENDING_NODE_LOCAL_HOURS = 13.5
REPEAT_DAYS = 16
REPEAT_ORBITS = 233
PATH_ADVANCE_PER_ORBIT = 16
ORBIT_PERIOD_S = REPEAT_DAYS * 86400.0 / REPEAT_ORBITS  # 5932.96 s = 98.88 min
HALF_ORBIT_S = ORBIT_PERIOD_S / 2.0
SWATH_WIDTH_KM = 1450.0
#: Ground distance from nadir to the footprints of the conical scan (55 degree incidence from ~700 km).
SCAN_RADIUS_KM = 740.0
#: Half-angle of the active scan arc that gives a 1450 km swath.
SCAN_HALF_ANGLE_DEG = math.degrees(math.asin(SWATH_WIDTH_KM / 2 / SCAN_RADIUS_KM))


@dataclass(frozen=True)
class OrbitEpoch:
    """Where the model anchors a mission's granule sequence: one descending granule's start, path and orbit."""

    start_unix: float
    path: int
    orbit: int


AMSR2 = mission.AMSR2
AMSRE = mission.AMSRE
EPOCHS: dict[str, OrbitEpoch] = {
    # the real granule GW1AM2_202001010047_189D
    AMSR2.key: OrbitEpoch(datetime(2020, 1, 1, 0, 47, 0, 855000, tzinfo=timezone.utc).timestamp(), 189, 40552),
    AMSRE.key: OrbitEpoch(datetime(2002, 6, 1, 0, 3, 12, 0, tzinfo=timezone.utc).timestamp(), 1, 1),
}
FLAVOURS = mission.MISSIONS
FLAVOUR_BY_DATASET = {f.dataset_id: f for f in FLAVOURS.values()}


class UtcSpan:
    """``start_utc``/``end_utc`` of anything with ``start_unix``/``end_unix`` (UTC seconds)."""

    start_unix: float
    end_unix: float

    @property
    def start_utc(self) -> datetime:
        return datetime.fromtimestamp(self.start_unix, tz=timezone.utc)

    @property
    def end_utc(self) -> datetime:
        return datetime.fromtimestamp(self.end_unix, tz=timezone.utc)


@dataclass(frozen=True)
class GranuleSpec(UtcSpan):
    """Everything needed to name, catalogue and generate one half-orbit granule."""

    flavour: Mission
    index: int  # granules since the flavour's epoch granule (negative before it)
    start_unix: float  # observation start (first non-overlap scan), UTC
    end_unix: float  # observation end (last non-overlap scan), UTC
    orbit_direction: str  # "A" or "D"
    path_number: int
    orbit_number: int
    number_of_scans: int

    @property
    def granule_id(self) -> str:
        f = self.flavour
        stamp = self.start_utc.strftime("%Y%m%d%H%M")
        path = f"{self.path_number:03d}{self.orbit_direction}"
        return f"{f.name_prefix}_{stamp}_{path}_{f.product_kind}_{f.product_version}"

    @property
    def file_name(self) -> str:
        return self.granule_id + ".h5"

    @property
    def relative_remote_path(self) -> str:
        """Path below the product root, ``<product dir>/YYYY/MM/<file>`` (legacy tree layout)."""
        s = self.start_utc
        return f"{self.flavour.remote_product_dir}/{s:%Y}/{s:%m}/{self.file_name}"

    @property
    def legacy_remote_path(self) -> str:
        return "standard/" + self.relative_remote_path

    @property
    def current_remote_path(self) -> str:
        s = self.start_utc
        return f"/product/Standard/{self.flavour.remote_product_dir}/{s:%Y}/{s:%m}/{s:%d}/{self.file_name}"

    def scan_times_unix(self, overlap_scans: int = l1b.DEFAULT_OVERLAP_SCANS) -> np.ndarray:
        """UTC Unix time of every row: ``overlap`` scans before the start, the granule, ``overlap`` after."""
        rows = self.number_of_scans + 2 * overlap_scans
        return self.start_unix + (np.arange(rows, dtype=np.float64) - overlap_scans) * l1b.SCAN_PERIOD_S


def _granule(flavour: Mission, index: int) -> GranuleSpec:
    start = EPOCHS[flavour.key].start_unix + index * HALF_ORBIT_S
    orbit = index // 2  # floor division keeps D (even) and the next A (odd) on one orbit
    path = (EPOCHS[flavour.key].path - 1 + PATH_ADVANCE_PER_ORBIT * orbit) % REPEAT_ORBITS + 1
    n_scans = math.ceil(HALF_ORBIT_S / l1b.SCAN_PERIOD_S - _scan_phase(start))
    return GranuleSpec(
        flavour=flavour,
        index=index,
        start_unix=start,
        end_unix=start + (n_scans - 1) * l1b.SCAN_PERIOD_S,
        orbit_direction="D" if index % 2 == 0 else "A",
        path_number=path,
        orbit_number=EPOCHS[flavour.key].orbit + orbit,
        number_of_scans=n_scans,
    )


def _scan_phase(start_unix: float) -> float:
    """Fraction of a scan period by which the granule start lags the continuous scan clock (0 to 1).

    Makes the scan count alternate between 1977 and 1978 the way a continuous instrument clock cut at fixed
    orbit points does, instead of being the same for every granule.
    """
    return (start_unix / l1b.SCAN_PERIOD_S) % 1.0


def granules_between(start: datetime, end: datetime, flavour: Mission = AMSR2) -> list[GranuleSpec]:
    """Granules whose observation interval intersects ``[start, end]`` (what the catalogue's filter does).

    Granules outside the flavour's mission period are not returned.
    """
    t0, t1 = start.timestamp(), end.timestamp()
    first = math.floor((t0 - EPOCHS[flavour.key].start_unix) / HALF_ORBIT_S) - 1
    last = math.floor((t1 - EPOCHS[flavour.key].start_unix) / HALF_ORBIT_S) + 1
    out = []
    for index in range(first, last + 1):
        g = _granule(flavour, index)
        if g.end_unix >= t0 and g.start_unix <= t1 and _in_mission(g, flavour):
            out.append(g)
    return out


def granules_beginning_on(day: date, flavour: Mission = AMSR2) -> list[GranuleSpec]:
    """Granules whose observation starts on the UTC day ``day``: 29 or 30 of them."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    end = start + timedelta(days=1)
    return [g for g in granules_between(start, end, flavour) if start.timestamp() <= g.start_unix < end.timestamp()]


def granule_by_id(granule_id: str, flavour: Mission | None = None) -> GranuleSpec | None:
    """The modelled granule with this id, or ``None`` if the model has no such granule."""
    try:
        parsed = l1b.parse_granule_name(granule_id)
    except ValueError:
        return None
    candidates = [flavour] if flavour else [f for f in FLAVOURS.values() if f.name_prefix == parsed.platform]
    for fl in candidates:
        t = parsed.start_minute_utc
        for g in granules_between(t, t + timedelta(seconds=59.999), fl):
            if g.granule_id == parsed.granule_id:
                return g
    return None


def _in_mission(g: GranuleSpec, flavour: Mission) -> bool:
    day = g.start_utc.date()
    return day >= flavour.first_day and (flavour.last_day is None or day <= flavour.last_day)


# -- geometry ------------------------------------------------------------------------------------------------
def argument_of_latitude(times_unix: np.ndarray, flavour: Mission = AMSR2) -> np.ndarray:
    """Angle from the ascending node along the orbit, radians; descending granules start at pi/2."""
    return np.pi / 2 + 2 * np.pi * (np.asarray(times_unix) - EPOCHS[flavour.key].start_unix) / ORBIT_PERIOD_S


def subsatellite_point(times_unix: np.ndarray, flavour: Mission = AMSR2) -> tuple[np.ndarray, np.ndarray]:
    """Geodetic (spherical) latitude and longitude of the nadir point, degrees, longitude in [-180, 180)."""
    t = np.asarray(times_unix, dtype=np.float64)
    u = argument_of_latitude(t, flavour)
    inc = math.radians(INCLINATION_DEG)
    lat = np.arcsin(np.sin(inc) * np.sin(u))
    # The node stays at 13:30 local solar time, so its Earth-fixed longitude turns once per solar day.
    utc_hours = (t % 86400.0) / 3600.0
    node_lon = np.radians(15.0 * (ASCENDING_NODE_LOCAL_HOURS - utc_hours))
    lon = node_lon + np.arctan2(math.cos(inc) * np.sin(u), np.cos(u))
    return np.degrees(lat), _wrap_lon(np.degrees(lon))


def ground_track_heading(times_unix: np.ndarray, flavour: Mission = AMSR2) -> np.ndarray:
    """Azimuth (degrees clockwise from north) of the nadir point's motion, by a 1-second finite difference."""
    lat1, lon1 = subsatellite_point(times_unix, flavour)
    lat2, lon2 = subsatellite_point(np.asarray(times_unix) + 1.0, flavour)
    return initial_bearing(lat1, lon1, lat2, lon2)


def initial_bearing(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    x = np.sin(dl) * np.cos(p2)
    y = np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl)
    return np.degrees(np.arctan2(x, y)) % 360.0


def destination_point(
    lat: np.ndarray, lon: np.ndarray, bearing_deg: np.ndarray, distance_km: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Point reached from (lat, lon) along a great circle with the given initial bearing and distance."""
    p1, l1 = np.radians(lat), np.radians(lon)
    b = np.radians(bearing_deg)
    d = np.asarray(distance_km) / EARTH_RADIUS_KM
    p2 = np.arcsin(np.sin(p1) * np.cos(d) + np.cos(p1) * np.sin(d) * np.cos(b))
    l2 = l1 + np.arctan2(np.sin(b) * np.sin(d) * np.cos(p1), np.cos(d) - np.sin(p1) * np.sin(p2))
    return np.degrees(p2), _wrap_lon(np.degrees(l2))


def footprints(
    times_unix: np.ndarray, n_pixels: int, flavour: Mission = AMSR2, radius_km: float = SCAN_RADIUS_KM
) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (rows x pixels, float32) of the conical scan's footprints.

    Each scan is an arc ``radius_km`` ahead of the nadir point, spanning +/- SCAN_HALF_ANGLE_DEG around the
    direction of flight, which gives the ~1450 km swath.
    """
    t = np.asarray(times_unix, dtype=np.float64)
    lat0, lon0 = subsatellite_point(t, flavour)
    heading = ground_track_heading(t, flavour)
    scan_angle = np.linspace(-SCAN_HALF_ANGLE_DEG, SCAN_HALF_ANGLE_DEG, n_pixels)
    bearing = heading[:, None] + scan_angle[None, :]
    lat, lon = destination_point(lat0[:, None], lon0[:, None], bearing, radius_km)
    return lat.astype(np.float32), lon.astype(np.float32)


def _wrap_lon(lon_deg: np.ndarray) -> np.ndarray:
    return (np.asarray(lon_deg) + 180.0) % 360.0 - 180.0
