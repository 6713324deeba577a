"""Coastlines for quick-looks and map pages, from the Natural Earth outlines shipped in ``amsr2flow/data``.

The file is TopoJSON (``world-atlas``'s ``land-110m.json``). Its decoding is a few lines (quantised, delta-coded
arcs; rings as arc indices, negative ones reversed), so no geometry library is needed for it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

LAND_110M = "land-110m.json"


def _decode_arcs(topology: dict[str, Any]) -> list[np.ndarray]:
    scale = np.asarray(topology["transform"]["scale"], dtype=np.float64)
    translate = np.asarray(topology["transform"]["translate"], dtype=np.float64)
    return [np.cumsum(np.asarray(arc, dtype=np.float64), axis=0) * scale + translate for arc in topology["arcs"]]


def _ring(arcs: list[np.ndarray], indices: list[int]) -> np.ndarray:
    pieces = []
    for k, i in enumerate(indices):
        arc = arcs[i] if i >= 0 else arcs[~i][::-1]
        pieces.append(arc if k == 0 else arc[1:])  # consecutive arcs share their end point
    return np.concatenate(pieces)


@lru_cache(maxsize=2)
def land_outlines(name: str = LAND_110M) -> tuple[np.ndarray, ...]:
    """Every land polygon's rings as ``(n, 2)`` arrays of (longitude, latitude) in degrees."""
    text = resources.files("amsr2flow").joinpath("data", "natural-earth", name).read_text(encoding="utf-8")
    topology = json.loads(text)
    arcs = _decode_arcs(topology)
    rings = []
    for geometry in topology["objects"]["land"]["geometries"]:
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        rings += [_ring(arcs, ring) for polygon in polygons for ring in polygon]
    return tuple(rings)


def split_at_dateline(ring: np.ndarray) -> list[np.ndarray]:
    """A line cut where it wraps from one map edge to the other (else it is drawn across the whole map)."""
    breaks = np.flatnonzero(np.abs(np.diff(ring[:, 0])) > 180) + 1
    return [piece for piece in np.split(ring, breaks) if len(piece) > 1]


def as_geojson(rings: tuple[np.ndarray, ...] | None = None, decimals: int = 2) -> dict[str, Any]:
    """The outlines as a GeoJSON MultiLineString feature (for Leaflet), rounded to ``decimals`` degrees."""
    rings = land_outlines() if rings is None else rings
    lines = [np.round(piece, decimals).tolist() for r in rings for piece in split_at_dateline(r)]
    return {
        "type": "Feature",
        "properties": {"name": "coastlines"},
        "geometry": {"type": "MultiLineString", "coordinates": lines},
    }
