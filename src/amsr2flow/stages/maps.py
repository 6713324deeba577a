"""Interactive map pages (folium / Leaflet): one page per day, each swath of the day a layer to toggle.

As the peer pipeline does, maps are chunked by day so a browser opens them. Each swath is binned onto a
grid regular in Web Mercator (0.25 degree columns) and coloured on the quick-looks' Kelvin scale, then laid
on the map as an image overlay. Coastlines are the shipped Natural Earth outlines; there are no
tiles (a cluster node, or a laptop on a train, has no tile server).

Offline and deterministic, which folium is not by default:

- folium links Leaflet, jQuery and Bootstrap from CDNs; the page inlines the Leaflet 1.9.4 files shipped in
  ``amsr2flow/data/leaflet`` instead (nothing else is needed for overlays and a layer control), and draws its
  colour bar in plain HTML (branca's needs d3 from a CDN).
- folium names every element with a random UUID; while a page is built, ids come from a counter instead
  (branca offers no option for it), so the same archive gives the same bytes.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import atomic
from ..formats.l1b import direction_name
from ..formats.swath import LATITUDE, LONGITUDE, TEMPERATURE
from .figures import GEO_ABNORMAL, KELVIN_RANGE, NO_DATA, kelvin, on_positions

if TYPE_CHECKING:
    from ..region import Region

GRID_DEG = 0.25
MERCATOR_LAT = 85.0  # Web Mercator ends near 85 degrees
VISIBLE_LAYERS = 4
GRID_KM_AT_EQUATOR = 111.32 * GRID_DEG
FOOTPRINT_SPACING_KM = 10.0  # along-track spacing of the low-frequency footprints (~5 km across-track)
MAX_SPLAT = 9  # layers shown when the page opens (the rest are one click away)


def _leaflet_file(name: str) -> str:
    return resources.files("amsr2flow").joinpath("data", "leaflet", name).read_text(encoding="utf-8")


def leaflet_css() -> str:
    """Leaflet's CSS with the layer control's icons inlined (it refers to them as files beside it)."""
    css = _leaflet_file("leaflet.css")
    for icon in ("layers-2x.png", "layers.png"):
        data = resources.files("amsr2flow").joinpath("data", "leaflet", icon).read_bytes()
        css = css.replace(f"url(images/{icon})", "url(data:image/png;base64," + base64.b64encode(data).decode() + ")")
    return css


@contextlib.contextmanager
def counted_ids() -> Iterator[None]:
    """Element ids from a counter while a page is built (folium's are random)."""
    from branca.element import Element

    counter = itertools.count(1)
    original = Element._generate_id
    Element._generate_id = lambda self: f"{next(counter):032x}"  # type: ignore[method-assign]
    try:
        yield
    finally:
        Element._generate_id = original  # type: ignore[method-assign]


def _mercator_y(lat_deg: np.ndarray | float) -> np.ndarray:
    return np.log(np.tan(np.pi / 4 + np.radians(lat_deg) / 2))


def grid_shape() -> tuple[int, int]:
    """Rows evenly spaced in Web Mercator y (square cells at the equator), columns every GRID_DEG."""
    cols = int(360 / GRID_DEG)
    rows = round(2 * float(_mercator_y(MERCATOR_LAT)) / float(np.radians(GRID_DEG)))
    return rows, cols


def grid_swath(temperature_k: np.ndarray, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """Mean Kelvin per cell of a grid that is regular in Web Mercator, as Leaflet lays an image overlay out
    (so no re-projection, and no blurring, is needed); NaN where no pixel fell. Row 0 is the north edge."""
    rows, cols = grid_shape()
    y_max = float(_mercator_y(MERCATOR_LAT))
    temperature_k = on_positions(temperature_k, latitude)
    ok = np.isfinite(temperature_k) & (latitude > GEO_ABNORMAL) & (longitude > GEO_ABNORMAL)
    ok &= np.abs(latitude) < MERCATOR_LAT
    lat, lon, tb = latitude[ok], longitude[ok], temperature_k[ok]
    row = np.clip(((y_max - _mercator_y(lat)) / (2 * y_max) * rows).astype(np.int64), 0, rows - 1)
    col = np.clip(((lon + 180.0) / GRID_DEG).astype(np.int64), 0, cols - 1)
    # Towards the poles a cell gets smaller than the footprint spacing: each pixel then covers a square of
    # cells as wide as its spacing, or the swath would turn to speckle.
    cell_km = GRID_KM_AT_EQUATOR * np.cos(np.radians(lat))
    side = np.clip(np.ceil(FOOTPRINT_SPACING_KM / np.maximum(cell_km, 1e-3)), 1, MAX_SPLAT).astype(np.int64)
    cells, weights = [], []
    for size in np.unique(side):
        pick = side == size
        for dr in range(size):
            for dc in range(size):
                r = np.clip(row[pick] + dr - size // 2, 0, rows - 1)
                c = (col[pick] + dc - size // 2) % cols
                cells.append(r * cols + c)
                weights.append(tb[pick])
    cell = np.concatenate(cells) if cells else np.zeros(0, dtype=np.int64)
    tb = np.concatenate(weights) if weights else np.zeros(0)
    sums = np.bincount(cell, weights=tb, minlength=rows * cols)
    counts = np.bincount(cell, minlength=rows * cols)
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = sums / counts
    grid = grid.reshape(rows, cols)
    grid[counts.reshape(rows, cols) == 0] = np.nan
    return fill_holes(grid)


def fill_holes(grid: np.ndarray, passes: int = 2, min_neighbours: int = 5) -> np.ndarray:
    """Empty cells with data in most of their 8 neighbours take those neighbours' mean.

    Towards the poles a Mercator cell gets smaller than the footprint spacing and the swath turns to
    speckle; this closes those holes without growing the swath's edges (an edge cell has at most 5
    neighbours with data, and only one pass can reach the next).
    """
    out = grid.copy()
    for _ in range(passes):
        have = np.isfinite(out)
        padded = np.pad(np.where(have, out, 0.0), 1)
        padded_have = np.pad(have, 1).astype(np.int64)
        sums = np.zeros_like(out)
        counts = np.zeros(out.shape, dtype=np.int64)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if dr or dc:
                    window = (slice(1 + dr, padded.shape[0] - 1 + dr), slice(1 + dc, padded.shape[1] - 1 + dc))
                    sums += padded[window]
                    counts += padded_have[window]
        fill = ~have & (counts >= min_neighbours)
        if not fill.any():
            break
        out[fill] = sums[fill] / counts[fill]
    return out


def palette_png(grid: np.ndarray) -> bytes:
    """A palette PNG on the quick-looks' scale (viridis over KELVIN_RANGE, 255 steps; index 0 transparent):
    a few tens of kB per swath, where RGBA would be hundreds."""
    import io

    from matplotlib import colormaps
    from PIL import Image

    vmin, vmax = KELVIN_RANGE
    index = np.zeros(grid.shape, dtype=np.uint8)
    valid = np.isfinite(grid)
    index[valid] = 1 + np.round(np.clip((grid[valid] - vmin) / (vmax - vmin), 0, 1) * 254).astype(np.uint8)
    colours = colormaps["viridis"](np.linspace(0, 1, 255), bytes=True)[:, :3]
    image = Image.fromarray(index, mode="P")
    image.putpalette([0, 0, 0, *colours.ravel().tolist()])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True, transparency=0)
    return buffer.getvalue()


def _legend_html(channel: str) -> str:
    from matplotlib import colormaps

    stops = ", ".join(
        "#{:02x}{:02x}{:02x}".format(*colormaps["viridis"](x, bytes=True)[:3]) for x in np.linspace(0, 1, 9)
    )
    vmin, vmax = KELVIN_RANGE
    return (
        "<div style='position:fixed;bottom:24px;left:24px;z-index:1000;background:white;padding:6px 10px;"
        "font:12px sans-serif;border-radius:4px;box-shadow:0 0 4px #888'>"
        f"<div>{channel} GHz brightness temperature (K)</div>"
        f"<div style='height:12px;width:240px;background:linear-gradient(to right, {stops})'></div>"
        f"<div style='display:flex;justify-content:space-between;width:240px'><span>{vmin:g}</span>"
        f"<span>{(vmin + vmax) / 2:g}</span><span>{vmax:g}</span></div></div>"
    )


def day_map_html(archive: Any, day: str, title: str, region: Region | None = None) -> str:
    """The page for ``day``: the day's swaths of ``archive`` as layers (an empty map that says so if none), and
    the outline of the run's ``region``."""
    import folium
    from branca.element import Element

    from ..formats.coastlines import as_geojson

    table = archive.table
    positions = [i for i, start in enumerate(table["scan_start_utc"]) if str(start).startswith(day)]
    channel = archive.channels[0] if archive.channels else ""
    with counted_ids():

        class OfflineMap(folium.Map):
            default_js: list = []  # noqa: RUF012 - folium's own class attributes
            default_css: list = []  # noqa: RUF012

        page = OfflineMap(location=[20, 0], zoom_start=2, tiles=None, min_zoom=1, world_copy_jump=False)
        header = page.get_root().header
        header.add_child(Element(f"<style>{leaflet_css()}</style>"), name="leaflet_css")
        header.add_child(Element(f"<script>{_leaflet_file('leaflet.js')}</script>"), name="leaflet_js")
        header.add_child(Element(f"<title>{title}</title>"), name="title")
        folium.GeoJson(
            as_geojson(),
            name="coastlines (Natural Earth)",
            style_function=lambda _: {"color": "#333333", "weight": 1, "fill": False},
        ).add_to(page)
        if region is not None:
            folium.PolyLine(
                [list(zip(lat.tolist(), lon.tolist(), strict=True)) for lon, lat in region.outline_lonlat()],
                color="#d62728",
                weight=2,
                dash_array="6 4",
                tooltip=f"region: {region.description}",
            ).add_to(page)
            if not region.crosses_antimeridian:  # the page opens on the region (a map of the web's tiles wraps)
                west, south, east, north = region.extent
                page.fit_bounds([[max(south - 5, -80), west - 10], [min(north + 5, 80), east + 10]])
        if not archive.geolocation:
            note = "this archive has no positions (geolocation: false): no swaths can be drawn on a map"
        elif not positions:
            note = f"no swath of {day} is archived"
        else:
            note = f"{len(positions)} swaths of {day}; the layer button at the top right turns them on or off"
        for n, i in enumerate(positions if archive.geolocation else []):
            row = table[i]
            grid = grid_swath(
                kelvin(archive.read_array(i, TEMPERATURE), float(row["scale_factor"])),
                archive.read_array(i, LATITUDE),
                archive.read_array(i, LONGITUDE),
            )
            empty = "" if np.isfinite(grid).any() else f" ({NO_DATA})"
            folium.raster_layers.ImageOverlay(
                image="data:image/png;base64," + base64.b64encode(palette_png(grid)).decode("ascii"),
                bounds=[[-MERCATOR_LAT, -180], [MERCATOR_LAT, 180]],
                name=f"{str(row['scan_start_utc'])[11:16]} {direction_name(str(row['orbit_type']))} "
                f"{row['granule_id']}{empty}",
                show=n < VISIBLE_LAYERS,
                opacity=0.85,
            ).add_to(page)
        folium.LayerControl(collapsed=len(positions) > VISIBLE_LAYERS).add_to(page)
        page.get_root().html.add_child(Element(_legend_html(channel)), name="legend")
        page.get_root().html.add_child(
            Element(
                "<div style='position:fixed;top:10px;left:60px;z-index:1000;background:white;padding:4px 8px;"
                f"font:13px sans-serif;border-radius:4px'><b>{title}</b><br>{note}</div>"
            ),
            name="caption",
        )
        return page.get_root().render()


def write_day_map(archive_path: Path, day: str, out_path: Path, region: Region | None = None) -> None:
    from ..formats.archive import Archive

    with Archive(archive_path) as archive:
        page = day_map_html(archive, day, f"AMSR-2 swaths of {day}", region)
    atomic.write_bytes(out_path, page.encode("utf-8"))
