"""A year's report figures, drawn from its archive (never from the deleted HDF5 files): per-day counts,
brightness-temperature histograms per channel and orbit direction, and quick-looks of sample swaths on a map.

matplotlib (Agg) only: coastlines come from the shipped Natural Earth outlines (``formats.coastlines``), so
nothing downloads and no projection library is needed for a global equirectangular quick-look. This module is
imported by the figure job alone, never by granule jobs.

Determinism: PNGs are written without a timestamp or software tag, so the same archive gives the same bytes
with the same matplotlib and FreeType. Quick-looks are cached by granule, swath checksum and style version: a
rerun draws only swaths it has not drawn before (the peer pipeline's ``skip_exist``).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import atomic
from ..formats.l1b import direction_key, direction_name
from ..formats.swath import LATITUDE, LONGITUDE, TEMPERATURE

if TYPE_CHECKING:
    from ..region import Region

#: Bump when the look of a quick-look changes, so cached ones are redrawn.
QUICKLOOK_STYLE = 2
KELVIN_RANGE = (100.0, 320.0)  # one colour scale for every quick-look, so that they compare
PHYSICAL_RANGE_K = (0.0, 350.0)  # as `amsr2flow verify` checks (the legacy README's physical range)
HISTOGRAM_BIN_K = 1.0
HISTOGRAM_TOP_K = 360.0
GEO_ABNORMAL = -9991.0  # positions at or below are fills (amsr2-l1b-format.md)
DATELINE_JUMP_DEG = 60.0
FIGURE_MANIFEST = "figures.json"
COLOURS = {"A": "#d95f02", "D": "#1b9e77", "U": "#7f7f7f"}
NO_DATA = "no valid data"


def no_data_panel(ax: Any, what: str) -> None:
    """Say in the panel itself that it shows nothing, so a blank never passes for a picture."""
    ax.text(
        0.5,
        0.5,
        f"{NO_DATA}\n{what}",
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=11,
        color="#b2182b",
        bbox={"facecolor": "white", "edgecolor": "#b2182b"},
    )


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 9, "svg.hashsalt": "amsr2flow"})
    return plt


def save_png(fig: Any, path: Path) -> None:
    """Atomically, without the time or software version in the file: same figure, same bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, metadata={"Software": None})
    atomic.write_bytes(path, buffer.getvalue())


# -- which swaths ------------------------------------------------------------------------------------------
def sample_positions(table: np.ndarray, per_week: int) -> list[int]:
    """The first ``per_week`` swaths of each ISO week and orbit direction, in the archive's time order."""
    if per_week <= 0:
        return []
    taken: dict[tuple[int, int, str], int] = {}
    out = []
    for i, (start, orbit) in enumerate(zip(table["scan_start_utc"], table["orbit_type"], strict=True)):
        if not start:
            continue
        iso = datetime.fromisoformat(str(start).replace("Z", "+00:00")).isocalendar()
        key = (iso.year, iso.week, str(orbit))
        if taken.get(key, 0) < per_week:
            taken[key] = taken.get(key, 0) + 1
            out.append(i)
    return out


def channel_scale(row: np.void, channel: str, first_channel: str) -> float:
    column = "scale_factor" if channel == first_channel else f"scale_factor_{channel}"
    return float(row[column])


def on_positions(temperature: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The temperatures at the stored positions: 89 GHz swaths (486 columns) keep positions of every second
    column (243, as the archive stores them), so every second temperature column goes with them."""
    if temperature.shape == positions.shape:
        return temperature
    if temperature.shape[0] == positions.shape[0] and temperature.shape[1] == 2 * positions.shape[1]:
        return temperature[:, ::2]
    raise ValueError(f"temperatures {temperature.shape} do not match positions {positions.shape}")


def kelvin(raw: np.ndarray, scale: float) -> np.ndarray:
    out = raw.astype(np.float64) * scale
    out[raw == 0] = np.nan
    return out


# -- histograms --------------------------------------------------------------------------------------------
def histogram_edges() -> np.ndarray:
    return np.arange(0.0, HISTOGRAM_TOP_K + HISTOGRAM_BIN_K, HISTOGRAM_BIN_K)


def channel_histograms(archive: Any, positions: Sequence[int]) -> dict[str, dict[str, np.ndarray]]:
    """Counts per 1 K bin, per channel and orbit direction (A, D, U for unknown), over the swaths at
    ``positions`` (streamed)."""
    edges = histogram_edges()
    channels = archive.channels
    counts = {ch: {d: np.zeros(len(edges) - 1, dtype=np.int64) for d in COLOURS} for ch in channels}
    table = archive.table
    for i in positions:
        row = table[i]
        direction = direction_key(str(row["orbit_type"]))  # swaths of unknown direction are shown as such
        for ch in channels:
            name = TEMPERATURE if ch == channels[0] else ch
            values = kelvin(archive.read_array(i, name), channel_scale(row, ch, channels[0]))
            values = values[np.isfinite(values)]
            counts[ch][direction] += np.histogram(np.clip(values, 0, HISTOGRAM_TOP_K - 1e-9), bins=edges)[0]
    return counts


def draw_histograms(counts: Mapping[str, Mapping[str, np.ndarray]], n_swaths: int, path: Path) -> None:
    plt = _pyplot()
    edges = histogram_edges()
    centres = (edges[:-1] + edges[1:]) / 2
    channels = list(counts)
    cols = min(len(channels), 3)
    rows = -(-len(channels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), dpi=100, squeeze=False)
    for ax, ch in zip(axes.flat, channels, strict=False):
        for direction in COLOURS:
            values = counts[ch].get(direction, np.zeros(len(centres), dtype=np.int64))
            total = values.sum()
            if total:
                label = f"{direction_name(direction)} ({total:,} px)"
                ax.step(centres, values / total, where="mid", color=COLOURS[direction], label=label)
        if not any(v.sum() for v in counts[ch].values()):
            no_data_panel(ax, f"in the {n_swaths} sample swath(s)")
        low, high = PHYSICAL_RANGE_K
        ax.axvspan(high, HISTOGRAM_TOP_K, color="#bbbbbb", alpha=0.5, label=f"outside {low:g}-{high:g} K")
        ax.set_title(f"{ch} GHz")
        ax.set_xlim(0, HISTOGRAM_TOP_K)
        ax.set_xlabel("brightness temperature (K)")
        ax.set_ylabel("fraction of pixels")
        ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(channels) :]:
        ax.axis("off")
    fig.suptitle(f"Brightness temperatures of {n_swaths} sample swath(s),\nper orbit direction", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


# -- per-day counts ----------------------------------------------------------------------------------------
#: Below this many days on the axis a day gets its own tick (date ticks would fall on hours: "12:00").
DAY_TICKS_UP_TO = 16


def draw_daily_counts(days: Sequence[Mapping[str, Any]], path: Path) -> None:
    fig = daily_counts_figure(days)
    save_png(fig, path)
    _pyplot().close(fig)


def daily_counts_figure(days: Sequence[Mapping[str, Any]]) -> Any:
    """Archived granules per day, ascending and descending stacked, against the catalogued count."""
    plt = _pyplot()
    import matplotlib.dates as mdates

    dates = np.array([np.datetime64(d["day"], "D") for d in days])
    asc = np.array([d["ascending"]["archived"] for d in days])
    desc = np.array([d["descending"]["archived"] for d in days])
    expected = np.array([d["expected"] for d in days])
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=100)
    width = 0.8 if len(days) < 200 else 1.0
    ax.bar(dates, asc, width=width, color=COLOURS["A"], label="ascending archived")
    ax.bar(dates, desc, width=width, bottom=asc, color=COLOURS["D"], label="descending archived")
    ax.plot(
        dates,
        expected,
        marker="_",
        markersize=max(2, 400 / max(len(days), 1)),
        linestyle="none",
        color="black",
        label="catalogued",
    )
    short = expected > asc + desc
    if short.any():
        ax.scatter(dates[short], expected[short] + 1, marker="v", color="#e7298a", s=14, label="not all archived")
    ax.set_xlim(dates[0] - np.timedelta64(1, "D"), dates[-1] + np.timedelta64(1, "D"))
    shown_days = len(days) + 2
    if shown_days <= DAY_TICKS_UP_TO:
        locator = mdates.DayLocator(interval=1 if shown_days <= 8 else 2)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))  # the page names the year
    else:  # weeks, months or years; AutoDateLocator goes below a day only for spans of under 5 days
        locator = mdates.AutoDateLocator(maxticks=14)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_ylabel("granules per day")
    ax.set_ylim(0, max(int(expected.max(initial=0)) + 4, 1))
    size = max(2, 400 / max(len(days), 1))
    ax.legend(fontsize=7, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, markerscale=8 / size)
    fig.tight_layout()
    return fig


# -- quick-looks -------------------------------------------------------------------------------------------
def quads_across_jumps(lon: np.ndarray) -> np.ndarray:
    """Quads (between four neighbouring pixel centres) whose corners straddle a jump in longitude (the date
    line, the poles): left out, or they would be drawn across the whole map."""
    corners = np.stack([lon[:-1, :-1], lon[1:, :-1], lon[:-1, 1:], lon[1:, 1:]])
    return (corners.max(axis=0) - corners.min(axis=0)) > DATELINE_JUMP_DEG


def draw_quicklook(
    *,
    temperature_k: np.ndarray,
    latitude: np.ndarray | None,
    longitude: np.ndarray | None,
    title: str,
    path: Path,
    region: Region | None = None,
) -> None:
    """A swath in Kelvin on a global map with coastlines and the run's region (or in scan/pixel space without
    positions)."""
    plt = _pyplot()
    from ..formats.coastlines import land_outlines, split_at_dateline

    vmin, vmax = KELVIN_RANGE
    fig, ax = plt.subplots(figsize=(8, 4.4), dpi=100)
    if latitude is not None and longitude is not None:
        temperature_k = on_positions(temperature_k, latitude)
        good_rows = ((latitude > GEO_ABNORMAL) & (longitude > GEO_ABNORMAL)).all(axis=1)
        lat, lon, tb = latitude[good_rows], longitude[good_rows], temperature_k[good_rows]
        # Pixel centres as quad corners ("flat"): no edge is inferred across the date line; each quad takes the
        # value of its first corner (half a pixel's shift, invisible at this scale).
        values = np.ma.masked_invalid(tb[:-1, :-1])
        values = np.ma.masked_where(quads_across_jumps(lon) | np.ma.getmaskarray(values), values)
        mesh = ax.pcolormesh(lon, lat, values, shading="flat", cmap="viridis", vmin=vmin, vmax=vmax, rasterized=True)
        for ring in land_outlines():
            for line in split_at_dateline(ring):
                ax.plot(line[:, 0], line[:, 1], color="black", linewidth=0.4)
        for lon_outline, lat_outline in region.outline_lonlat() if region is not None else ():
            ax.plot(lon_outline, lat_outline, color="#d62728", linewidth=1.0, linestyle="--")
        ax.set_xlim(-180, 180)
        ax.set_ylim(-90, 90)
        ax.set_xticks(range(-180, 181, 60))
        ax.set_yticks(range(-90, 91, 30))
        if region is not None and not region.crosses_antimeridian and lon.size:
            # the region and the swath's scans around it, not the globe (a box across 180 keeps the globe)
            west, south, east, north = region.extent
            finite = np.isfinite(lon) & np.isfinite(lat)
            west, east = min(west, float(lon[finite].min())), max(east, float(lon[finite].max()))
            south, north = min(south, float(lat[finite].min())), max(north, float(lat[finite].max()))
            x_range = (max(-180.0, west - 5.0), min(180.0, east + 5.0))
            y_range = (max(-90.0, south - 5.0), min(90.0, north + 5.0))
            for axis_range, set_ticks, set_lim in (
                (x_range, ax.set_xticks, ax.set_xlim),
                (y_range, ax.set_yticks, ax.set_ylim),
            ):
                step = 10 if axis_range[1] - axis_range[0] <= 90 else 30
                set_ticks(range(int(np.ceil(axis_range[0] / step)) * step, int(axis_range[1]) + 1, step))
                set_lim(*axis_range)
        ax.set_aspect("equal")
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
    else:
        mesh = ax.imshow(temperature_k.T, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_xlabel("scan")
        ax.set_ylabel("pixel")
        title += "\n(no positions in the archive: set geolocation: true for a map)"
    fig.colorbar(mesh, ax=ax, label="brightness temperature (K)", shrink=0.8, extend="both")
    if not np.isfinite(temperature_k).any() or not mesh.get_array().count():
        no_data_panel(ax, "in this swath" + (" at a valid position" if latitude is not None else ""))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


@dataclass(frozen=True)
class Quicklook:
    granule_id: str
    orbit_direction: str
    scan_start_utc: str
    file_name: str


def quicklook_key(archive: Any, i: int, region: Region | None = None) -> str:
    """Granule, orbit type, data checksum (the member's CRC), style and region outline: a cache name that changes
    when the picture would."""
    row = archive.table[i]
    crc = archive.member_info(i, TEMPERATURE).CRC
    outline = f"_r{region.fingerprint}" if region is not None else ""
    # the orbit type is in the caption: a repaired one draws the quick-look again
    return f"{row['granule_id']}_{direction_key(str(row['orbit_type']))}_{crc:08x}_s{QUICKLOOK_STYLE}{outline}.png"


def draw_sample_quicklooks(
    archive: Any, positions: Sequence[int], out_dir: Path, cache_dir: Path, region: Region | None = None
) -> list[Quicklook]:
    """Quick-looks of the swaths at ``positions``: drawn into ``cache_dir`` once, linked into ``out_dir``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    channel = archive.channels[0]
    table = archive.table
    made = []
    for i in positions:
        row = table[i]
        cached = cache_dir / quicklook_key(archive, i, region)
        if not cached.is_file():
            has_positions = archive.geolocation and bool(row["has_geolocation"])
            draw_quicklook(
                temperature_k=kelvin(archive.read_array(i, TEMPERATURE), float(row["scale_factor"])),
                latitude=archive.read_array(i, LATITUDE) if has_positions else None,
                longitude=archive.read_array(i, LONGITUDE) if has_positions else None,
                title=(
                    f"{row['granule_id']}\n{channel} GHz, {direction_name(str(row['orbit_type']))}, "
                    f"scan start {row['scan_start_utc']}"
                ),
                path=cached,
                region=region,
            )
        name = f"quicklook_{row['granule_id']}.png"
        _link_or_copy(cached, out_dir / name)
        made.append(Quicklook(str(row["granule_id"]), str(row["orbit_type"]), str(row["scan_start_utc"]), name))
    return made


def _link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        atomic.write_bytes(target, source.read_bytes())


def prune_cache(cache_dir: Path, keep: set[str]) -> None:
    """Cached quick-looks no longer in the sample go (the cache holds what the current sample needs)."""
    if cache_dir.is_dir():
        for png in cache_dir.glob("*.png"):
            if png.name not in keep:
                png.unlink()


# -- the figure job ----------------------------------------------------------------------------------------
def build_year_figures(
    *,
    archive_path: Path,
    report: Mapping[str, Any],
    out_dir: Path,
    cache_dir: Path,
    quicklooks_per_week: int,
    region: Region | None = None,
) -> dict[str, Any]:
    """Every figure of a year's report into ``out_dir`` (a fresh folder), and a manifest the page reads."""
    from ..formats.archive import Archive

    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"year": report["year"], "figures": []}
    if report["days"]:
        draw_daily_counts(report["days"], out_dir / "daily_counts.png")
        manifest["figures"].append({"file": "daily_counts.png", "kind": "daily_counts"})
    with Archive(archive_path) as archive:
        positions = sample_positions(archive.table, quicklooks_per_week)
        if positions:
            draw_histograms(channel_histograms(archive, positions), len(positions), out_dir / "histograms.png")
            manifest["figures"].append({"file": "histograms.png", "kind": "histograms", "swaths": len(positions)})
        quicklooks = draw_sample_quicklooks(archive, positions, out_dir, cache_dir, region)
        prune_cache(cache_dir, {quicklook_key(archive, i, region) for i in positions})
        manifest["geolocation"] = archive.geolocation
        manifest["channel"] = archive.channels[0] if archive.channels else ""
    manifest["quicklooks"] = [q.__dict__ for q in quicklooks]
    atomic.write_bytes(out_dir / FIGURE_MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return manifest
