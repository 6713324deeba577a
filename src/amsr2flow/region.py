"""Where the user's data lie: ``region:`` in the configuration, and whether a footprint or a pixel is inside it.

A region is a box ``[lon_min, lat_min, lon_max, lat_max]`` (across the antimeridian when ``lon_min > lon_max``),
a polygon (a GeoJSON file or WKT text, straight edges in longitude and latitude as GeoJSON defines them), or a
polar cap (``{"arctic": 60}``: latitudes at or north of 60; ``{"antarctic": -60}``).

Geometry is shapely's, on the plane of longitude and latitude. Two things make that plane awkward, and both are
handled here rather than in a library (none takes a swath outline that circles a pole):

- the antimeridian: a region is kept in one continuous frame of longitudes (a Bering Sea box runs from 160 to 200),
  and tested against copies of itself 360 degrees apart;
- the poles: a granule's catalogue outline (``multiExtentOf``) of a half orbit over a pole winds once around it.
  Its edges are followed along great circles (pyproj's Geod), its longitudes unwrapped, and a ring that winds
  around a pole is closed over that pole, which makes it an ordinary polygon of the plane.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

#: Spacing of the points put along each edge of a catalogue outline (degrees of arc): the outline's straight
#: sides in longitude/latitude would cut corners of a swath near a pole by hundreds of kilometres.
DENSIFY_DEG = 0.5
#: How far (degrees) an outline may miss the region and still count as touching it: the outline joins a few
#: points per edge by great circles while the swath's edge curves between them.
OUTLINE_TOLERANCE_DEG = 0.05
#: Granules are half orbits that begin and end at the orbit's turning latitudes (nadir ~82 degrees). There a
#: granule's last scan, an arc ~740 km ahead of nadir spanning +/-78 degrees, bulges ~590 km beyond the chord an
#: outline draws between the scan's edge pixels: where a region reaches this far toward a pole, an outline that
#: passes within SCAN_ARC_BULGE_KM of it (on the sphere) counts as touching it. The crop decides what is kept.
POLAR_LATITUDE = 70.0  # the bulge lies north of ~74 (south of ~-74): a margin below
SCAN_ARC_BULGE_KM = 650.0
EARTH_RADIUS_KM = 6371.0
#: Spacing of the points that stand for the region's polar edge in that test.
POLAR_EDGE_STEP_KM = 25.0


class RegionError(ValueError):
    """A ``region:`` setting that cannot be a region; the message names the problem and the fix."""


@dataclass(frozen=True)
class Region:
    """A region of the Earth's surface, in one continuous frame of longitudes (which may pass 180)."""

    kind: str  # "box", "polygon" or "cap"
    description: str  # what a user reads in logs, reports and provenance
    shape: BaseGeometry  # in the region's frame of longitudes
    setting: Any  # the configuration value, normalised (JSON-able): its fingerprint names the region

    @property
    def fingerprint(self) -> str:
        """A short hash of the setting: a manifest listed for one region is not the listing of another."""
        text = json.dumps(self.setting, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(lon_min, lat_min, lon_max, lat_max)`` in the region's frame (``lon_max`` may pass 180)."""
        return tuple(float(v) for v in self.shape.bounds)  # type: ignore[return-value]

    @property
    def crosses_antimeridian(self) -> bool:
        lon_min, _, lon_max, _ = self.extent
        return lon_min < -180.0 or lon_max > 180.0

    @property
    def catalogue_bbox(self) -> tuple[float, float, float, float] | None:
        """The box sent to the catalogue (``bbox=lonmin,latmin,lonmax,latmax``), or None to ask for the globe.

        A box across the antimeridian is not sent: what G-Portal does with ``lonmin > lonmax`` is not known, and a
        wrong guess would lose granules silently. The client's own test of each footprint is the truth anyway;
        the server's answer only saves records.
        """
        if self.crosses_antimeridian:
            return None
        lon_min, lat_min, lon_max, lat_max = self.extent
        return (max(lon_min, -180.0), max(lat_min, -90.0), min(lon_max, 180.0), min(lat_max, 90.0))

    @cached_property
    def _copies(self) -> BaseGeometry:
        # the region and its copies a turn east and west: a point or an outline given in any frame of longitudes
        # (-180..180, or unwrapped past it) meets one of them where it meets the region
        copies = [shapely.affinity.translate(self.shape, xoff=k * 360.0) for k in (-2, -1, 0, 1, 2)]
        merged = shapely.union_all(copies)
        shapely.prepare(merged)
        return merged

    def contains(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Whether each point (degrees, any frame of longitudes) lies in the region or on its edge."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        inside = np.zeros(lon.shape, dtype=bool)
        finite = np.isfinite(lon) & np.isfinite(lat)
        if finite.any():
            wrapped = (lon[finite] + 180.0) % 360.0 - 180.0
            inside[finite] = shapely.intersects_xy(self._copies, wrapped, lat[finite])
        return inside

    def touches_outline(self, ring: Sequence[tuple[float, float]]) -> bool:
        """Whether a catalogue outline (``(lon, lat)`` points of a closed ring) touches the region: in the plane
        of longitude and latitude, or near a pole within ``SCAN_ARC_BULGE_KM`` of it on the sphere."""
        outline = outline_polygon(ring)
        if outline is None:
            return True  # no usable outline: keep the granule, its scans decide (never lose one on a guess)
        if shapely.dwithin(self._copies, outline, OUTLINE_TOLERANCE_DEG):
            return True
        edge = self._polar_edge
        if not len(edge):
            return False
        lon, lat = _densified([(float(x), float(y)) for x, y in ring])
        near_pole = np.abs(lat) >= POLAR_LATITUDE - np.degrees(SCAN_ARC_BULGE_KM / EARTH_RADIUS_KM)
        if not near_pole.any():
            return False
        closest = np.max(_unit_vectors(lon[near_pole], lat[near_pole]) @ edge.T)
        return bool(EARTH_RADIUS_KM * np.arccos(np.clip(closest, -1.0, 1.0)) <= SCAN_ARC_BULGE_KM)

    @cached_property
    def _polar_edge(self) -> np.ndarray:
        """Unit vectors of points along the region's edge at or beyond ``POLAR_LATITUDE`` (north or south), every
        ``POLAR_EDGE_STEP_KM`` or closer; empty for a region that reaches no such latitude."""
        points = []
        polygons = self.shape.geoms if isinstance(self.shape, MultiPolygon) else [self.shape]
        for polygon in polygons:
            for ring in [polygon.exterior, *polygon.interiors]:
                for (lon1, lat1), (lon2, lat2) in itertools.pairwise(ring.coords):
                    span_km = EARTH_RADIUS_KM * math.radians(
                        math.hypot((lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2)), lat2 - lat1)
                    )
                    steps = max(1, math.ceil(span_km / POLAR_EDGE_STEP_KM))
                    fraction = np.arange(steps) / steps
                    points.append(np.column_stack([lon1 + (lon2 - lon1) * fraction, lat1 + (lat2 - lat1) * fraction]))
        edge = np.concatenate(points) if points else np.empty((0, 2))
        edge = edge[np.abs(edge[:, 1]) >= POLAR_LATITUDE]
        return _unit_vectors(edge[:, 0], edge[:, 1])

    def outline_lonlat(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The region's outline(s) for drawing, as (lon, lat) arrays in -180..180 pieces (split at 180)."""
        pieces = []
        polygons = self.shape.geoms if isinstance(self.shape, MultiPolygon) else [self.shape]
        for polygon in polygons:
            for ring in [polygon.exterior, *polygon.interiors]:
                lon, lat = np.asarray(ring.coords).T
                lon = np.concatenate([np.linspace(a, b, 20, endpoint=False) for a, b in itertools.pairwise(lon)])
                lat = np.concatenate([np.linspace(a, b, 20, endpoint=False) for a, b in itertools.pairwise(lat)])
                lon, lat = np.append(lon, lon[0]), np.append(lat, lat[0])
                wrapped = (lon + 180.0) % 360.0 - 180.0
                cuts = np.flatnonzero(np.abs(np.diff(wrapped)) > 180.0) + 1
                pieces.extend(zip(np.split(wrapped, cuts), np.split(lat, cuts), strict=True))
        return pieces


# -- catalogue outlines --------------------------------------------------------------------------------------
def _unit_vectors(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Points on the unit sphere, one row each: the dot product of two is the cosine of their angle apart."""
    lam, phi = np.radians(np.asarray(lon, dtype=np.float64)), np.radians(np.asarray(lat, dtype=np.float64))
    return np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])


def parse_outline(text: str) -> list[tuple[float, float]]:
    """``multiExtentOf``'s "lon lat lon lat ..." as (lon, lat) pairs; [] when empty or garbled."""
    try:
        values = [float(v) for v in str(text).split()]
    except ValueError:
        return []
    if len(values) < 6 or len(values) % 2:
        return []
    return list(zip(values[0::2], values[1::2], strict=True))


def _densified(ring: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """The ring's points with points added along each edge's great circle, every ``DENSIFY_DEG`` at most."""
    from pyproj import Geod

    geod = Geod(ellps="sphere")
    lons, lats = [], []
    for (lon1, lat1), (lon2, lat2) in itertools.pairwise(ring):
        lons.append(lon1)
        lats.append(lat1)
        _, _, metres = geod.inv(lon1, lat1, lon2, lat2)
        steps = math.ceil(metres / 111_195.0 / DENSIFY_DEG)
        if steps > 1:
            for lon, lat in geod.npts(lon1, lat1, lon2, lat2, steps - 1):
                lons.append(lon)
                lats.append(lat)
    lons.append(ring[-1][0])
    lats.append(ring[-1][1])
    return np.asarray(lons), np.asarray(lats)


def outline_polygon(ring: Sequence[tuple[float, float]]) -> BaseGeometry | None:
    """A catalogue outline as a polygon of the plane: unwrapped longitudes, closed over a pole it circles."""
    points = [(float(lon), float(lat)) for lon, lat in ring]
    if len(points) < 3 or not all(math.isfinite(v) for p in points for v in p):
        return None
    if points[0] != points[-1]:
        points.append(points[0])
    lon, lat = _densified(points)
    lon = np.degrees(np.unwrap(np.radians(lon)))
    turns = round((lon[-1] - lon[0]) / 360.0)  # a closed ring that circles a pole comes back a turn away
    if turns:
        pole = 90.0 if lat[np.argmax(np.abs(lat))] > 0 else -90.0
        lon = np.concatenate([lon, [lon[-1], lon[0]]])
        lat = np.concatenate([lat, [pole, pole]])
    polygon = shapely.make_valid(Polygon(zip(lon, lat, strict=True)))
    return polygon if not polygon.is_empty else None


# -- the setting ---------------------------------------------------------------------------------------------
def region_from_setting(setting: Any, base_dir: Path | None = None) -> Region | None:
    """The configured region (``region:``), or None for the globe. Raises RegionError with the fix."""
    if setting is None:
        return None
    if isinstance(setting, list | tuple):
        return _box(list(setting))
    if isinstance(setting, Mapping):
        return _mapping(setting, base_dir)
    if isinstance(setting, str):
        return _text(setting.strip(), base_dir)
    raise RegionError(
        f"region: {setting!r} is not a region; write a box [lon_min, lat_min, lon_max, lat_max], "
        "{arctic: 60}, {antarctic: -60}, {geojson: file.geojson} or {wkt: 'POLYGON ((...))'}"
    )


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RegionError(f"region: {what} {value!r} is not a number")
    return float(value)


def _latitude(value: Any, what: str) -> float:
    lat = _number(value, what)
    if not -90.0 <= lat <= 90.0:
        raise RegionError(f"region: {what} {lat:g} is outside -90..90")
    return lat


def _box(values: list[Any]) -> Region:
    if len(values) != 4:
        raise RegionError(f"region: a box has 4 numbers [lon_min, lat_min, lon_max, lat_max], not {len(values)}")
    lon_min, lon_max = (_number(values[i], name) for i, name in ((0, "lon_min"), (2, "lon_max")))
    lat_min, lat_max = _latitude(values[1], "lat_min"), _latitude(values[3], "lat_max")
    for name, lon in (("lon_min", lon_min), ("lon_max", lon_max)):
        if not -180.0 <= lon <= 180.0:
            raise RegionError(f"region: {name} {lon:g} is outside -180..180 (a box across 180 has lon_min > lon_max)")
    if lat_min >= lat_max:
        raise RegionError(f"region: lat_min {lat_min:g} must be below lat_max {lat_max:g}")
    if lon_min == lon_max:
        raise RegionError("region: lon_min equals lon_max; a box needs a width (for every longitude use -180, 180)")
    east = lon_max if lon_max > lon_min else lon_max + 360.0  # across the antimeridian: east of 180
    across = " (across the antimeridian)" if lon_max < lon_min else ""
    return Region(
        "box",
        f"box {lon_min:g}..{lon_max:g} E, {lat_min:g}..{lat_max:g} N{across}",
        box(lon_min, lat_min, east, lat_max),
        [lon_min, lat_min, lon_max, lat_max],
    )


def _cap(key: str, value: Any) -> Region:
    lat = _latitude(value, f"{key} latitude")
    if key == "arctic":
        if lat <= 0:
            raise RegionError(f"region: arctic: {lat:g} must be a northern latitude (e.g. arctic: 60)")
        return Region("cap", f"Arctic cap north of {lat:g} N", box(-180.0, lat, 180.0, 90.0), {"arctic": lat})
    if lat >= 0:
        raise RegionError(f"region: antarctic: {lat:g} must be a southern latitude (e.g. antarctic: -60)")
    return Region("cap", f"Antarctic cap south of {-lat:g} S", box(-180.0, -90.0, 180.0, lat), {"antarctic": lat})


def _mapping(setting: Mapping[str, Any], base_dir: Path | None) -> Region:
    keys = sorted(setting)
    if keys in (["arctic"], ["antarctic"]):
        return _cap(keys[0], setting[keys[0]])
    if keys == ["geojson"]:
        return _geojson_file(str(setting["geojson"]), base_dir)
    if keys == ["wkt"]:
        return _polygon(_wkt(str(setting["wkt"])), f"polygon {_short(str(setting['wkt']))}", setting)
    if len(keys) > 1:
        raise RegionError(f"region: {' and '.join(keys)} together; give one of arctic, antarctic, geojson or wkt")
    raise RegionError(
        f"region: {', '.join(keys) or 'an empty mapping'} is not a region; use one of arctic, antarctic, geojson or wkt"
    )


def _text(text: str, base_dir: Path | None) -> Region:
    upper = text.upper()
    if upper.startswith(("POLYGON", "MULTIPOLYGON")):
        return _polygon(_wkt(text), f"polygon {_short(text)}", {"wkt": text})
    if text.lower().endswith((".geojson", ".json")):
        return _geojson_file(text, base_dir)
    raise RegionError(
        f"region: {text!r} is neither WKT (POLYGON ((lon lat, ...))) nor a .geojson file; for a box write "
        "[lon_min, lat_min, lon_max, lat_max]"
    )


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _wkt(text: str) -> BaseGeometry:
    try:
        return shapely.from_wkt(text)
    except shapely.errors.GEOSException as exc:
        raise RegionError(f"region: the WKT does not parse ({exc}); write POLYGON ((lon lat, lon lat, ...))") from exc


def _geojson_file(name: str, base_dir: Path | None) -> Region:
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RegionError(f"region: {path} does not exist; give the GeoJSON file's path") from exc
    except (OSError, ValueError) as exc:
        raise RegionError(f"region: {path} is not readable GeoJSON ({exc})") from exc
    geometries = _geojson_geometries(data, path)
    shape = shapely.union_all([shapely.geometry.shape(g) for g in geometries])
    # the file's content, not its name, is the region: the same polygon under another name lists the same granules
    canonical = json.loads(json.dumps(geometries, sort_keys=True))
    return _polygon(shape, f"polygon from {path.name}", {"geojson": canonical})


def _geojson_geometries(data: Any, path: Path) -> list[Mapping[str, Any]]:
    kind = data.get("type") if isinstance(data, Mapping) else None
    if kind == "FeatureCollection":
        found = [f.get("geometry") for f in data.get("features", []) if isinstance(f, Mapping)]
    elif kind == "Feature":
        found = [data.get("geometry")]
    else:
        found = [data]
    geometries = [g for g in found if isinstance(g, Mapping) and g.get("type") in ("Polygon", "MultiPolygon")]
    if not geometries or len(geometries) != len(found):
        raise RegionError(f"region: {path} must hold Polygon or MultiPolygon geometries (found {kind or 'nothing'})")
    return geometries


def _polygon(shape: BaseGeometry, description: str, setting: Any) -> Region:
    if shape.is_empty or shape.geom_type not in ("Polygon", "MultiPolygon"):
        raise RegionError(f"region: {description} is not a polygon (it is {shape.geom_type})")
    polygons = shape.geoms if isinstance(shape, MultiPolygon) else [shape]
    for polygon in polygons:
        ring = list(polygon.exterior.coords)
        if len(ring) < 4:
            raise RegionError(f"region: {description} needs at least three corners")
        lon, lat = np.asarray(ring).T
        if (np.abs(lat) > 90).any():
            raise RegionError(f"region: {description} has latitudes outside -90..90")
        if (lon < -180).any() or (lon > 540).any():
            raise RegionError(f"region: {description} has longitudes outside -180..540")
        if np.abs(np.diff(lon)).max() > 180:
            raise RegionError(
                f"region: {description} has an edge longer than 180 degrees of longitude; across the "
                "antimeridian write longitudes past 180 (170, 190) rather than jumping to -170"
            )
    if not shape.is_valid:
        why = shapely.is_valid_reason(shape)
        raise RegionError(f"region: {description} is not a valid polygon ({why}); fix its outline")
    return Region("polygon", description, shape, setting)
