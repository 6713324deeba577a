"""The catalogue over HTTP, in both G-Portal generations' shapes.

``GET /csw/csw`` answers like the legacy service (what ``gportal`` 0.4.0 requests) and ``GET /csw`` like the
current one. Both take the CSW GetRecords parameters ``gportal`` sends and answer GeoJSON whose top-level
counts are integers while every value inside a feature's ``properties`` is a string, as the real service
does. They differ only in ``product.fileName``: a download URL (legacy) or a ``host:/products/...`` path that
is not an SFTP path (current).

``GET /order`` stands for G-Portal's web order of offline granules (the "2.5-year rule", see ``drift``):
``granule_id=<id>`` (repeatable) or ``day=YYYY-MM-DD`` (optionally narrowed by ``datasetId``) answers
``{"ordered": [...ids...]}``; unknown granules get HTTP 404.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import struct
import threading
import zlib
from collections.abc import Mapping
from concurrent.futures import CancelledError
from dataclasses import dataclass
from datetime import date, datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..formats import l1b
from . import orbit
from .drift import OrderBook
from .faults import FaultPlan
from .stats import Stats
from .store import GranuleEntry, GranuleStore

log = logging.getLogger("amsr2flow.emulator.catalogue")

LEGACY_PATH = "/csw/csw"
CURRENT_PATH = "/csw"
ORDER_PATH = "/order"
LEGACY_DOWNLOAD_PREFIX = "https://gportal.jaxa.jp/download/"
CURRENT_PRODUCT_PREFIX = "product.gportal.jaxa.jp:/products/Standard/"
#: Largest page the service returns, whatever ``count`` asks for: why clients must page.
MAX_COUNT = 100
DEFAULT_COUNT = 100


def _tiny_png() -> bytes:
    """A valid 1x1 transparent PNG, answered for browse (quicklook/thumbnail) URLs."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 5)) + chunk(b"IEND", b"")
    )


_PNG = _tiny_png()

MAINTENANCE_PAGE = (
    "<!DOCTYPE html><html><head><title>G-Portal maintenance</title></head><body>"
    "<h1>System maintenance</h1><p>G-Portal is currently under maintenance. Please try again later.</p>"
    "</body></html>"
)
UNAVAILABLE_PAGE = "<html><head><title>503 Service Unavailable</title></head><body>Service Unavailable</body></html>"


class QueryError(ValueError):
    """A request the catalogue answers with HTTP 400."""


@dataclass(frozen=True)
class CatalogueQuery:
    dataset_ids: tuple[str, ...] | None  # None: every served dataset
    start: datetime
    end: datetime | None
    bbox: tuple[float, float, float, float] | None
    count: int
    start_index: int


# -- parsing --------------------------------------------------------------------------------------------------
def parse_time(text: str, name: str) -> datetime:
    """ISO date or date-time; naive times are UTC (what ``gportal`` sends for naive datetimes)."""
    cleaned = text.strip().replace(" ", "T")
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise QueryError(f"{name} {text!r} is not an ISO 8601 date or date-time") from exc
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _single(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def _integer(params: Mapping[str, list[str]], name: str, default: int, minimum: int) -> int:
    text = _single(params, name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError as exc:
        raise QueryError(f"{name} {text!r} is not an integer") from exc
    if value < minimum:
        raise QueryError(f"{name} must be >= {minimum}, got {value}")
    return value


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise QueryError(f"bbox {text!r} must be lonmin,latmin,lonmax,latmax") from exc
    if len(values) != 4 or not (-90 <= values[1] <= values[3] <= 90):
        raise QueryError(f"bbox {text!r} must be lonmin,latmin,lonmax,latmax with latmin <= latmax")
    return values  # type: ignore[return-value]


def parse_query(params: Mapping[str, list[str]]) -> CatalogueQuery:
    start_text = _single(params, "startTime")
    if not start_text:
        raise QueryError("startTime is required (ISO 8601, e.g. 2020-01-01T00:00:00Z)")
    start = parse_time(start_text, "startTime")
    end_text = _single(params, "endTime")
    end = parse_time(end_text, "endTime") if end_text else None
    if end is not None and end < start:
        raise QueryError(f"endTime {end_text} is before startTime {start_text}")
    ids_text = _single(params, "datasetId")
    dataset_ids = tuple(i.strip() for i in ids_text.split(",") if i.strip()) if ids_text else None
    bbox_text = _single(params, "bbox")
    return CatalogueQuery(
        dataset_ids=dataset_ids,
        start=start,
        end=end,
        bbox=parse_bbox(bbox_text) if bbox_text else None,
        count=min(_integer(params, "count", DEFAULT_COUNT, 0), MAX_COUNT),
        start_index=_integer(params, "startIndex", 1, 1),
    )


# -- records --------------------------------------------------------------------------------------------------
def iso_ms(unix: float) -> str:
    return l1b.utc_iso_ms(unix)


def model_spec(entry: GranuleEntry) -> orbit.GranuleSpec | None:
    """The orbit-model granule behind an entry (mirrored files of modelled granules have one too)."""
    if entry.spec is not None:
        return entry.spec
    flavour = orbit.FLAVOUR_BY_DATASET.get(entry.dataset_id)
    return orbit.granule_by_id(entry.granule_id, flavour) if flavour else None


def footprint_ring(entry: GranuleEntry, samples: int = 13) -> list[tuple[float, float]] | None:
    """(lon, lat) outline of the swath: one edge forwards, the other backwards, closed."""
    if entry.ring is not None:
        return list(entry.ring)
    spec = model_spec(entry)
    if spec is None:
        return None
    times = np.linspace(spec.start_unix, spec.end_unix, samples)
    lat, lon = orbit.footprints(times, 2, spec.flavour)
    left = [(float(lon[i, 0]), float(lat[i, 0])) for i in range(samples)]
    right = [(float(lon[i, 1]), float(lat[i, 1])) for i in range(samples)]
    ring = left + right[::-1]
    return [*ring, ring[0]]


def ascending_node(entry: GranuleEntry) -> tuple[str, str]:
    """Time and longitude of the ascending node of the granule's orbit ("" when not modelled)."""
    spec = model_spec(entry)
    if spec is None:
        return "", ""
    orbit_index = spec.index // 2
    # Orbit k starts (descending) at the north pole; the node (argument of latitude 0) is 3/4 orbit later.
    t = orbit.EPOCHS[spec.flavour.key].start_unix + (orbit_index + 0.75) * orbit.ORBIT_PERIOD_S
    _, lon = orbit.subsatellite_point(np.array([t]), spec.flavour)
    return iso_ms(t), f"{float(lon[0]):.2f}"


def product_file_name(entry: GranuleEntry, generation: str, day_level: bool = True) -> str:
    """``product.fileName``: legacy download URL, or ``host:/products/Standard/<dir>/YYYY/MM[/DD]/<file>``."""
    if generation == "legacy":
        return LEGACY_DOWNLOAD_PREFIX + entry.legacy_remote_path.lstrip("/")
    s = entry.start_utc
    day = f"/{s:%d}" if day_level else ""
    return f"{CURRENT_PRODUCT_PREFIX}{entry.product_dir}/{s:%Y}/{s:%m}{day}/{entry.file_name}"


def feature(entry: GranuleEntry, size: int, generation: str, base_url: str, day_level: bool = True) -> dict:
    """One GeoJSON Feature; every property value is a string, like the real catalogue's."""
    ring = footprint_ring(entry)
    node_date, node_lon = ascending_node(entry)
    version = entry.product_version
    path = f"{entry.path_number:03d}"
    direction = {"A": "Ascending", "D": "Descending"}.get(entry.orbit_direction, "")
    return {
        "type": "Feature",
        "id": entry.granule_id,
        "geometry": {"type": "Polygon", "coordinates": [[[round(x, 3), round(y, 3)] for x, y in ring]]}
        if ring
        else None,
        "properties": {
            "identifier": entry.granule_id,
            "beginPosition": iso_ms(entry.start_unix),
            "endPosition": iso_ms(entry.end_unix),
            "processingLevel": f"{entry.sensor}-{entry.level}",
            "processorVersion": f"{version[1:4]},{version[4:7]}",
            "status": "ARCHIVED",
            "platformShortName": entry.platform,
            "instrumentShortName": entry.sensor,
            "wrsLongitudeGrid": path,
            "lastOrbitNumber": "" if entry.orbit_number is None else str(entry.orbit_number),
            "ascendingNodeDate": node_date,
            "ascendingNodeLongitude": node_lon,
            "multiExtentOf": " ".join(f"{x:.3f} {y:.3f}" for x, y in ring) if ring else "",
            "product": {
                "fileName": product_file_name(entry, generation, day_level),
                "size": str(size),
                "version": version[0],
            },
            "browse": [
                {"type": "QUICKLOOK", "fileName": f"{base_url}browse/{entry.granule_id}-QL.png"},
                {"type": "THUMBNAIL", "fileName": f"{base_url}browse/{entry.granule_id}-TH.png"},
            ],
            "gpp": {
                "datasetId": entry.dataset_id,
                "orbitDirection": direction,
                "startPathNumber": path,
                "endPathNumber": path,
                "algorithmVersion": version[1:4],
                "parameterVersion": version[4:7],
                "totalQualityCode": "Good",
                "numberMissingData": "0",
                "hasProduct": "true",
            },
        },
    }


# -- spatial filter -------------------------------------------------------------------------------------------
#: Pieces a granule's footprint is indexed in for ``bbox`` queries. A real catalogue indexes coarse footprints
#: (a few boxes per half orbit, not the swath) and answers generously; so does this one, so that clients meet
#: records whose swath misses their box and must test footprints themselves.
BBOX_PIECES = 6


def _piece_boxes(spec: orbit.GranuleSpec) -> list[tuple[float, float, float, float]]:
    """The footprint as ``BBOX_PIECES`` boxes ``(lon_west, lat_min, lon_east, lat_max)`` (``lon_east`` may
    pass 180); a piece over a pole covers every longitude up to it."""
    boxes = []
    edges = np.linspace(spec.start_unix, spec.end_unix, BBOX_PIECES + 1)
    for begin, end in itertools.pairwise(edges):
        times = np.linspace(begin, end, 24)
        lat, lon = orbit.footprints(times, 3, spec.flavour)  # both edges and the middle of each scan
        lat, lon = lat.astype(np.float64).ravel(), lon.astype(np.float64).ravel()
        order = np.argsort(np.repeat(times, 3), kind="stable")
        unwrapped = np.degrees(np.unwrap(np.radians(lon[order])))
        lat_min, lat_max = float(lat.min()), float(lat.max())
        if unwrapped.max() - unwrapped.min() > 180.0:  # round a pole
            boxes.append((-180.0, lat_min if lat_max > 0 else -90.0, 180.0, 90.0 if lat_max > 0 else lat_max))
        else:
            boxes.append((float(unwrapped.min()), lat_min, float(unwrapped.max()), lat_max))
    return boxes


def intersects_bbox(entry: GranuleEntry, bbox: tuple[float, float, float, float]) -> bool:
    """Whether one of the footprint's piece boxes meets the query box (``lon_min > lon_max``: across the
    antimeridian); unmodelled files pass."""
    spec = model_spec(entry)
    if spec is None:
        return True
    lon_min, lat_min, lon_max, lat_max = bbox
    east = lon_max if lon_max >= lon_min else lon_max + 360.0
    for west_p, south_p, east_p, north_p in _piece_boxes(spec):
        if north_p < lat_min or south_p > lat_max:
            continue
        if east_p - west_p >= 360.0 or east - lon_min >= 360.0:
            return True
        if any(west_p <= east + k * 360.0 and lon_min + k * 360.0 <= east_p for k in (-2, -1, 0, 1, 2)):
            return True
    return False


# -- the service ----------------------------------------------------------------------------------------------
class Catalogue:
    """Answers catalogue requests: search, page, apply faults, build the GeoJSON."""

    def __init__(
        self,
        store: GranuleStore,
        plan: FaultPlan,
        stats: Stats,
        *,
        catalogue_day_level: bool = True,
        orders: OrderBook | None = None,
        bbox_lat_lon: bool = False,
    ) -> None:
        self.bbox_lat_lon = bbox_lat_lon  # drift: bbox read latitude first
        self.store = store
        self.plan = plan
        self.stats = stats
        self.catalogue_day_level = catalogue_day_level
        self.orders = orders if orders is not None else OrderBook(None, None, stats)
        self.base_url = "http://127.0.0.1/"

    def matching(self, query: CatalogueQuery) -> list[GranuleEntry]:
        dataset_ids = query.dataset_ids if query.dataset_ids is not None else self.store.dataset_ids
        end = query.end or datetime.now(timezone.utc)
        entries = self.store.entries_between(query.start, end, dataset_ids)
        if query.bbox is not None:
            entries = [e for e in entries if intersects_bbox(e, query.bbox)]
        return entries

    def page_window(self, query: CatalogueQuery, matched: int, fault: str | None) -> tuple[int, int]:
        """Slice of the matching records on this page, after a paging fault."""
        first = query.start_index - 1
        if fault == "empty_page":
            return first, first
        if fault == "duplicate_records":
            # The window slips back by one, as with an unstable sort order: the previous page's last record
            # repeats and one record of the pass is never returned.
            first -= 1
        return first, min(first + query.count, matched)

    def answer(self, query: CatalogueQuery, generation: str, fault: str | None) -> tuple[dict, str | None]:
        """The FeatureCollection and the paging fault actually applied (None when it would change nothing)."""
        entries = self.matching(query)
        matched = len(entries)
        if query.count == 0:
            return _collection(matched, []), None
        applicable = fault
        if fault == "empty_page" and query.start_index > matched:
            applicable = None
        if fault == "duplicate_records" and (query.start_index <= 1 or query.start_index > matched):
            applicable = None
        first, stop = self.page_window(query, matched, applicable)
        page = entries[first:stop]
        sizes = self.store.sizes(page)
        day_level = self.catalogue_day_level
        features = [feature(e, sizes[e.granule_id], generation, self.base_url, day_level) for e in page]
        return _collection(matched, features), applicable

    def order(self, params: Mapping[str, list[str]]) -> tuple[int, dict]:
        """Answer ``GET /order``: (HTTP status, JSON body). Nothing is ordered unless every granule is known."""
        wanted = [v.strip() for v in params.get("granule_id", []) if v.strip()]
        day_texts = [v.strip() for v in params.get("day", []) if v.strip()]
        if not wanted and not day_texts:
            return 400, {"error": "give granule_id=<id> (repeatable) or day=YYYY-MM-DD"}
        ids_text = _single(params, "datasetId")
        dataset_ids = {i.strip() for i in ids_text.split(",") if i.strip()} if ids_text else None
        entries: list[GranuleEntry] = []
        unknown: list[str] = []
        for text in wanted:
            file_name = text.rsplit("/", 1)[-1]
            entry = self.store.entry_for_file(file_name if file_name.endswith(".h5") else file_name + ".h5")
            if entry is None:
                unknown.append(text)
            else:
                entries.append(entry)
        for text in day_texts:
            try:
                day = date.fromisoformat(text)
            except ValueError:
                return 400, {"error": f"day {text!r} is not a date YYYY-MM-DD"}
            on_day = [
                e
                for product_dir in self.store.product_dirs()
                for e in self.store.entries_on(product_dir, day)
                if dataset_ids is None or e.dataset_id in dataset_ids
            ]
            if not on_day:
                unknown.append(text)
            entries.extend(on_day)
        if unknown:
            return 404, {"error": f"no such granule served: {', '.join(unknown)}", "unknown": unknown}
        ids = list(dict.fromkeys(e.granule_id for e in entries))
        self.orders.order(ids)
        return 200, {"ordered": ids}


def _collection(matched: int, features: list[dict]) -> dict:
    return {
        "type": "FeatureCollection",
        "properties": {"numberOfRecordsMatched": matched, "numberOfRecordsReturned": len(features)},
        "features": features,
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "Apache"
    sys_version = ""
    catalogue: Catalogue  # set on the subclass made per server

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        if path.startswith("/browse/"):
            self._send(200, "image/png", _PNG)
            return
        if path == ORDER_PATH:
            status, body = self.catalogue.order(parse_qs(url.query))
            self._send_json(status, body)
            return
        generation = {LEGACY_PATH: "legacy", CURRENT_PATH: "current"}.get(path)
        if generation is None:
            self._send_json(404, {"error": f"no such endpoint {url.path}; use {CURRENT_PATH} or {LEGACY_PATH}"})
            return
        self._answer_catalogue(generation, parse_qs(url.query, keep_blank_values=True))

    def _answer_catalogue(self, generation: str, params: dict[str, list[str]]) -> None:
        catalogue = self.catalogue
        number = catalogue.stats.catalogue_request(generation)
        try:
            query = parse_query(params)
            if catalogue.bbox_lat_lon and query.bbox is not None:  # drift: latitude first
                lat_min, lon_min, lat_max, lon_max = query.bbox
                if not -90 <= lat_min <= lat_max <= 90:
                    raise QueryError(f"bbox {params['bbox'][0]!r} must be latmin,lonmin,latmax,lonmax")
                query = dataclasses.replace(query, bbox=(lon_min, lat_min, lon_max, lat_max))
        except QueryError as exc:
            self._send_json(400, {"error": str(exc)})
            return
        fault = catalogue.plan.catalogue_fault(number, is_page=query.count > 0)
        if fault == "http_503":
            catalogue.stats.fault(fault)
            self._send(503, "text/html; charset=utf-8", UNAVAILABLE_PAGE.encode())
            return
        if fault == "html_maintenance":
            catalogue.stats.fault(fault)
            self._send(200, "text/html; charset=utf-8", MAINTENANCE_PAGE.encode())
            return
        try:
            body, applied = catalogue.answer(query, generation, fault)
        except CancelledError:  # the service is stopping while this page's granules were being generated
            self._send_json(503, {"error": "the emulator is shutting down"})
            return
        except Exception as exc:  # a generation failure must reach the client as a server error, not a hang
            log.exception("catalogue request failed")
            self._send_json(500, {"error": f"internal error: {exc}"})
            return
        if applied:
            catalogue.stats.fault(applied)
        self._send_json(200, body)

    def _send_json(self, status: int, body: dict) -> None:
        self._send(status, "application/json", json.dumps(body).encode())

    def _send(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class CatalogueServer:
    """The HTTP server on 127.0.0.1, serving both generations' endpoints from one port."""

    def __init__(self, catalogue: Catalogue, port: int = 0) -> None:
        handler = type("CatalogueHandler", (_Handler,), {"catalogue": catalogue})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        catalogue.base_url = self.base_url
        # A short poll interval keeps a stop request prompt.
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="catalogue", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
