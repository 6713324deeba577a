"""The reports people read: HTML pages, figures, map pages, the per-granule table, Snakemake's own report.

One real run against the local G-Portal (geolocation and two channels, so that there are maps to draw) feeds
the end-to-end checks; the pages are then opened in Debian's Chromium as a person would open them.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import browser_available, open_page
from emulator_fixtures import start_emulator, stop_emulator
from workflow_helpers import emulator_config, run_workflow

from amsr2flow.formats import coastlines
from amsr2flow.stages import figures, maps, report, report_pages

needs_browser = pytest.mark.skipif(not browser_available(), reason="Chromium or playwright missing")


# -- one run, shared ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("reports")
    proc, state = start_emulator(root / "emulator", scans=120)
    try:
        cfg = emulator_config(
            state,
            root / "work",
            channels=["36.5H", "18.7V"],
            geolocation=True,
            report={"progress_interval_s": 0, "figures": True},
        )
        result = run_workflow(root / "work", cfg, timeout=400)
    finally:
        stop_emulator(proc)
    assert result.returncode == 0, result.stdout[-4000:]
    reports = root / "work" / "results" / "reports"
    return {"root": root, "cfg": cfg, "reports": reports, "year": reports / "2024", "work": root / "work"}


@pytest.mark.slow
def test_a_run_writes_the_pages_figures_map_and_granule_tables(collected: dict) -> None:
    year = collected["year"]
    period = "20240101-20240102"
    assert (year / f"report_{period}.html").is_file()
    manifest = json.loads((year / f"figures_{period}" / figures.FIGURE_MANIFEST).read_text())
    kinds = {f["kind"] for f in manifest["figures"]}
    assert kinds == {"daily_counts", "histograms"}
    # one ascending and one descending sample in the single week
    assert sorted(q["orbit_direction"] for q in manifest["quicklooks"]) == ["A", "D"]
    for q in manifest["quicklooks"]:
        assert (year / f"figures_{period}" / q["file_name"]).stat().st_size > 10_000
    assert (year / "maps" / "2024-01-01.html").is_file()

    table = pd.read_csv(year / f"granules_{period}.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == report.GRANULE_COLUMNS
    listing = pd.read_csv(collected["work"] / "results" / "manifests" / "2024" / f"granules_{period}.csv")
    assert sorted(table["granule_id"]) == sorted(listing["granule_id"])
    assert set(table["status"]) == {"archived"}
    assert table["sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert table["part"].str.endswith("_part_1of1.npz").all() and table["archive"].str.endswith(".npz").all()
    run_table = pd.read_csv(next(collected["reports"].glob("granules_*.csv")), dtype=str, keep_default_na=False)
    assert run_table.equals(table)
    # tries as the day jobs' logs count them ("<id>: done in 0.4 s after 1 attempt(s)"), not 0
    logs = "".join(p.read_text() for p in (collected["work"] / "results" / "logs" / "granules").rglob("*.log"))
    tries = dict(re.findall(r"(\S+): done in [\d.]+ s after (\d+) attempt", logs))
    assert tries and dict(zip(table["granule_id"], table["attempts"], strict=True)) == tries


def test_figures_are_the_same_bytes_when_drawn_again_and_quicklooks_are_not_redrawn(collected: dict) -> None:
    folder = next(collected["year"].glob("figures_*"))
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.png")}
    cache = collected["year"] / ".quicklook_cache"
    cached = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.png")}
    assert len(cached) == 2
    result = run_workflow(collected["work"], collected["cfg"], "--forcerun", "year_figures", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.png")}
    assert after == before
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.png")} == cached  # taken from the cache


def test_snakemake_report_lists_the_results_with_captions(collected: dict) -> None:
    from workflow_helpers import SNAKEFILE, snakemake

    config_path = collected["work"] / "config.yaml"
    out = collected["work"] / "snakemake_report.html"
    result = snakemake(
        collected["work"],
        *("-s", str(SNAKEFILE), "--configfile", str(config_path), "--workflow-profile", "none"),
        *("--report", str(out)),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    text = out.read_text(encoding="utf-8")
    for needle in ("daily_counts.png", "histograms.png", "2024-01-01.html", "granules_20240101-20240102.csv"):
        assert needle in text, needle
    for caption in ("One row per catalogued granule", "coverage calendar", "AMSR-2 brightness temperatures collected"):
        assert caption in text, caption


# -- in a browser --------------------------------------------------------------------------------------------
def _not_blank(png: bytes) -> bool:
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return pixels.std() > 5


@needs_browser
def test_the_year_page_opens_offline_with_every_image(collected: dict, tmp_path: Path) -> None:
    page = next(collected["year"].glob("report_*.html"))
    with open_page(page) as view:
        images = view.images
        text = view.text()
        shot = view.page.screenshot(full_page=True)
        calendar_cells = view.page.locator(".grid span.c-full").count()
    assert len(images) == 4 and all(i["loaded"] for i in images), images
    assert view.failed_requests == [] and view.console_errors == []
    assert "Coverage" in text and "Every catalogued granule is archived." in text
    assert calendar_cells == 1  # the one day of the run
    assert _not_blank(shot)


@needs_browser
def test_the_run_page_links_to_the_year_pages(collected: dict) -> None:
    page = next(collected["reports"].glob("run_*.html"))
    with open_page(page) as view:
        links = view.page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
        text = view.text()
        shot = view.page.screenshot()
    assert "complete" in text and view.failed_requests == []
    for link in links:
        assert (page.parent / link).is_file(), link
    assert any(link.endswith(".html") for link in links)
    assert _not_blank(shot)


@needs_browser
def test_the_map_page_draws_the_swaths_as_layers_offline(collected: dict) -> None:
    page = collected["year"] / "maps" / "2024-01-01.html"
    with open_page(page) as view:
        leaflet = view.page.evaluate("typeof L !== 'undefined' && L.version")
        overlays = view.page.locator("img.leaflet-image-layer").count()
        toggles = view.page.locator(".leaflet-control-layers-overlays input").count()
        shot = view.page.screenshot()
    assert leaflet == "1.9.4"
    assert view.failed_requests == [] and view.console_errors == []
    assert overlays == maps.VISIBLE_LAYERS
    assert toggles >= 25  # the day's ~29 swaths plus the coastlines
    assert _not_blank(shot)


# -- the pieces --------------------------------------------------------------------------------------------
def test_calendar_colours_each_day_by_what_is_archived() -> None:
    days = [
        {"day": "2024-01-01", "expected": 10, "archived": 10, "ascending": {"expected": 5, "archived": 5},
         "descending": {"expected": 5, "archived": 5}},
        {"day": "2024-01-02", "expected": 10, "archived": 9, "ascending": {"expected": 5, "archived": 4},
         "descending": {"expected": 5, "archived": 5}},
        {"day": "2024-01-03", "expected": 10, "archived": 0, "ascending": {"expected": 5, "archived": 0},
         "descending": {"expected": 5, "archived": 0}},
    ]  # fmt: skip
    missing = [{"day": "2024-01-02", "reason_class": "absent"}]
    html = report_pages.calendar_html(days, date(2024, 1, 1), date(2024, 1, 4), missing)
    cells = re.findall(r"<span class='c-(\w+)'[^>]*>(\d+)</span>", html)
    assert cells[:4] == [("full", "1"), ("most", "2"), ("none", "3"), ("unlisted", "4")]
    assert "1 absent" in html and "January 2024" in html
    assert report_pages.cell_class(0, 0) == "empty" and report_pages.cell_class(10, 5) == "part"


def test_granule_table_names_why_a_granule_is_not_archived() -> None:
    listing = pd.DataFrame(
        {"granule_id": ["g1", "g2", "g3"], "day": ["2024-01-01"] * 3, "orbit_direction": ["A", "D", "A"],
         "size_bytes": ["100", "200", "300"]}
    )  # fmt: skip
    index = pd.DataFrame({"granule_id": ["g1"], "source_size": [101], "source_sha256": ["ab" * 32]})
    ledger = {"g2": {"status": "absent", "reason_class": "absent", "attempts": 1, "last_error": "not there"}}
    table = report.granule_table(
        listing=listing, archive_name="a.npz", archive_index=index, part_of={"g1": "p1.npz"}, ledger=ledger
    )
    rows = table.set_index("granule_id")
    assert rows.loc["g1", "status"] == "archived" and rows.loc["g1", "part"] == "p1.npz"
    assert rows.loc["g1", "size_bytes"] == 101
    assert rows.loc["g2", "status"] == "absent" and rows.loc["g2", "last_error"] == "not there"
    assert rows.loc["g3", "status"] == "unaccounted" and rows.loc["g3", "size_bytes"] == 300


def test_granule_table_counts_tries_over_all_runs() -> None:
    """An archived granule without a ledger entry worked at its first try (it used to say 0 tries); one that
    failed before has the ledger's sum, the try that worked included; one never tried has none."""
    listing = pd.DataFrame(
        {"granule_id": ["g1", "g2", "g3", "g4"], "day": ["2024-01-01"] * 4, "orbit_direction": ["A", "D", "A", "D"],
         "size_bytes": ["100"] * 4}
    )  # fmt: skip
    index = pd.DataFrame({"granule_id": ["g1", "g2"], "source_size": [100] * 2, "source_sha256": ["ab" * 32] * 2})
    ledger = {
        "g2": {"status": "resolved", "reason_class": "stall", "attempts": 5, "last_error": "stalled"},
        "g3": {"status": "failed", "reason_class": "transient", "attempts": 4, "last_error": "reset"},
    }
    table = report.granule_table(listing=listing, archive_name="a.npz", archive_index=index, part_of={}, ledger=ledger)
    assert table.set_index("granule_id")["attempts"].to_dict() == {"g1": 1, "g2": 5, "g3": 4, "g4": 0}


def test_sample_takes_the_first_swaths_of_each_week_and_direction() -> None:
    starts = ["2024-01-01T00:10:00Z", "2024-01-01T01:00:00Z", "2024-01-02T00:00:00Z", "2024-01-08T00:00:00Z", ""]
    table = np.array(
        list(zip(starts, ["A", "D", "A", "A", "D"], strict=True)),
        dtype=[("scan_start_utc", "U24"), ("orbit_type", "U1")],
    )
    assert figures.sample_positions(table, 1) == [0, 1, 3]
    assert figures.sample_positions(table, 2) == [0, 1, 2, 3]
    assert figures.sample_positions(table, 0) == []


@pytest.mark.parametrize("n_days", [1, 3, 8, 14, 40, 366])
def test_the_per_day_chart_has_a_tick_per_day_or_coarser_never_hours(n_days: int) -> None:
    """A 3-day run's year page used to tick "12:00" between its days."""
    import matplotlib.dates as mdates

    days = [
        {"day": str(date(2024, 1, 1) + timedelta(days=i)), "expected": 29,
         "ascending": {"archived": 15}, "descending": {"archived": 14}}
        for i in range(n_days)
    ]  # fmt: skip
    fig = figures.daily_counts_figure(days)
    fig.canvas.draw()
    ax = fig.axes[0]
    ticks = [mdates.num2date(x) for x in ax.get_xticks()]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(ticks) >= 3 and all((t.hour, t.minute) == (0, 0) for t in ticks), labels
    assert not any(":" in text for text in [*labels, ax.xaxis.get_major_formatter().format_data(ax.get_xticks()[0])])
    if n_days <= 6:  # every day of a short run has its tick, named by its date
        assert [t.date() for t in ticks] == [date(2024, 1, 1) + timedelta(days=i) for i in range(-1, n_days + 1)]
        assert labels[1] == "01 Jan"


def test_quads_across_the_date_line_are_left_out() -> None:
    lon = np.array([[170.0, 175.0, 179.0, -178.0], [171.0, 176.0, 179.5, -177.0]])
    assert figures.quads_across_jumps(lon).tolist() == [[False, False, True]]


def test_shipped_coastlines_are_closed_rings_on_the_globe() -> None:
    rings = coastlines.land_outlines()
    assert len(rings) > 100
    assert all((r[0] == r[-1]).all() for r in rings)
    stacked = np.vstack(rings)
    assert stacked[:, 0].min() >= -180 and stacked[:, 0].max() <= 180 and stacked[:, 1].min() > -90
    pieces = coastlines.split_at_dateline(np.array([[170.0, 0], [179.0, 1], [-179.0, 2], [-170.0, 3]]))
    assert [len(p) for p in pieces] == [2, 2]
    lines = coastlines.as_geojson()["geometry"]["coordinates"]
    assert all(abs(a[0] - b[0]) <= 180 for line in lines for a, b in itertools.pairwise(line))


def test_map_grid_fills_polar_holes_without_growing_the_swath() -> None:
    grid = np.full((7, 7), np.nan)
    grid[1:6, 1:6] = 200.0
    grid[3, 3] = np.nan  # a hole inside
    filled = maps.fill_holes(grid)
    assert filled[3, 3] == 200.0
    assert np.isnan(filled[0]).all() and np.isnan(filled[:, 0]).all()  # the edge did not grow
    png = maps.palette_png(filled)
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    assert image.mode == "P" and image.info.get("transparency") == 0
    assert np.asarray(image)[0, 0] == 0 and np.asarray(image)[3, 3] > 0


def test_map_pages_are_offline_and_the_same_bytes_each_time(tmp_path: Path) -> None:
    from test_swath import synthetic_swath

    from amsr2flow.formats.archive import Archive, write_archive

    path = write_archive(tmp_path / "a.npz", [synthetic_swath(i, geolocation=True) for i in range(2)])
    with Archive(path) as archive:
        first = maps.day_map_html(archive, "2020-01-01", "t")
        second = maps.day_map_html(archive, "2020-01-01", "t")
        empty = maps.day_map_html(archive, "2020-01-05", "t")
    assert first == second
    assert not re.search(r"<(script|link)[^>]+(src|href)=['\"]https?://", first)
    assert first.count("data:image/png;base64,") >= 2 and "no swath of 2020-01-05" in empty


def test_89ghz_swaths_are_drawn_at_their_stored_positions(tmp_path: Path) -> None:
    # 89 GHz: 486 temperature columns, positions of every second column (243), as the archive stores them
    rng = np.random.default_rng(0)
    lat = np.repeat(np.linspace(-60, 60, 30)[:, None], 243, axis=1).astype(np.float32)
    lon = np.repeat(np.linspace(-20, 20, 243)[None, :], 30, axis=0).astype(np.float32)
    tb = rng.uniform(150, 280, (30, 486))
    assert figures.on_positions(tb, lat).shape == (30, 243)
    assert np.isfinite(maps.grid_swath(tb, lat, lon)).any()
    figures.draw_quicklook(temperature_k=tb, latitude=lat, longitude=lon, title="89", path=tmp_path / "q.png")
    assert (tmp_path / "q.png").stat().st_size > 5000
    with pytest.raises(ValueError, match="do not match"):
        figures.on_positions(tb[:, :100], lat)
