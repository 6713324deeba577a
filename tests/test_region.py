"""Regions: the setting's checks, points in and out across the antimeridian and the poles, and catalogue outlines
against the truth computed independently from the orbit model's footprints at the instrument's scan clock."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from amsr2flow.emulator import catalogue as emulator_catalogue
from amsr2flow.emulator import orbit, store
from amsr2flow.formats import l1b
from amsr2flow.region import RegionError, outline_polygon, parse_outline, region_from_setting

JAPAN = [128.0, 30.0, 146.0, 46.0]
BERING = [160.0, 50.0, -160.0, 66.0]  # across the antimeridian
ARCTIC = {"arctic": 70}
SMALL_POLYGON = "POLYGON ((-30 -40, -26 -40, -26 -36, -30 -37, -30 -40))"  # the South Atlantic, about 4 degrees


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ([1, 2, 3], "4 numbers"),
        ([0, 95, 10, 20], "lat_min 95 is outside -90..90"),
        ([0, 20, 10, 10], "lat_min 20 must be below lat_max 10"),
        ([190, 0, 10, 20], "lon_min 190 is outside -180..180"),
        ([10, 0, 10, 20], "lon_min equals lon_max"),
        ([0, "north", 10, 20], "lat_min 'north' is not a number"),
        ({"arctic": -60}, "must be a northern latitude"),
        ({"antarctic": 60}, "must be a southern latitude"),
        ({"pacific": 1}, "pacific is not a region"),
        ("POLYGON ((0 0, 10 10, 10 0, 0 10, 0 0))", "not a valid polygon (Self-intersection"),
        ("POLYGON ((0 0, 10 0, 10 10))", "does not parse"),
        ("POLYGON ((170 0, -170 0, -170 10, 170 10, 170 0))", "longer than 180 degrees"),
        ("POLYGON ((0 0, 10 0, 10 95, 0 0))", "latitudes outside -90..90"),
        ("somewhere", "neither WKT"),
        (42, "is not a region"),
    ],
)
def test_a_setting_that_is_no_region_is_refused_naming_the_problem(setting, message: str) -> None:
    with pytest.raises(RegionError, match=None) as caught:
        region_from_setting(setting)
    assert message in str(caught.value)
    assert str(caught.value).startswith("region: ")


def test_no_setting_is_the_globe() -> None:
    assert region_from_setting(None) is None


def test_a_box_across_the_antimeridian_holds_both_sides_and_is_not_sent_to_the_catalogue() -> None:
    bering = region_from_setting(BERING)
    assert bering.crosses_antimeridian and bering.catalogue_bbox is None
    assert "across the antimeridian" in bering.description
    inside = bering.contains(np.array([175.0, -175.0, 180.0, -180.0, 540.0 - 365.0]), np.full(5, 55.0))
    assert inside.all()
    assert not bering.contains(np.array([0.0, 159.0, -159.0]), np.full(3, 55.0)).any()
    assert not bering.contains(np.array([175.0]), np.array([67.0])).any()


def test_a_plain_box_goes_to_the_catalogue_as_it_is() -> None:
    japan = region_from_setting(JAPAN)
    assert japan.catalogue_bbox == (128.0, 30.0, 146.0, 46.0)
    assert japan.contains(np.array([140.0, 140.0, np.nan]), np.array([35.0, 50.0, 35.0])).tolist() == [
        True,
        False,
        False,
    ]


def test_caps_hold_their_pole_at_every_longitude() -> None:
    arctic, antarctic = region_from_setting({"arctic": 60}), region_from_setting({"antarctic": -60})
    lon = np.array([-180.0, -90.0, 0.0, 90.0, 179.9])
    assert arctic.contains(lon, np.full(5, 89.9)).all() and not arctic.contains(lon, np.full(5, 59.0)).any()
    assert antarctic.contains(lon, np.full(5, -61.0)).all() and not antarctic.contains(lon, np.full(5, 0.0)).any()
    assert arctic.catalogue_bbox == (-180.0, 60.0, 180.0, 90.0)


def test_a_geojson_file_is_read_relative_to_the_configuration_and_named_by_its_content(tmp_path: Path) -> None:
    feature = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]},
            }
        ],
    }
    (tmp_path / "basin.geojson").write_text(json.dumps(feature))
    (tmp_path / "copy.geojson").write_text(json.dumps(feature, indent=2))
    basin = region_from_setting({"geojson": "basin.geojson"}, base_dir=tmp_path)
    assert basin.kind == "polygon" and basin.contains(np.array([5.0]), np.array([5.0])).all()
    assert basin.fingerprint == region_from_setting(str(tmp_path / "copy.geojson")).fingerprint
    assert basin.fingerprint != region_from_setting(JAPAN).fingerprint
    with pytest.raises(RegionError, match="does not exist"):
        region_from_setting({"geojson": "missing.geojson"}, base_dir=tmp_path)
    (tmp_path / "line.geojson").write_text(json.dumps({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}))
    with pytest.raises(RegionError, match="Polygon or MultiPolygon"):
        region_from_setting({"geojson": "line.geojson"}, base_dir=tmp_path)


def test_an_outline_round_a_pole_is_closed_over_it() -> None:
    # a ring round the pole at 75-78 N, as a half orbit's outline over the pole comes back a turn away
    ring = [(float(x), 75.0 + 3.0 * (x % 60 == 0)) for x in np.arange(-150.0, 210.0, 30.0)]
    polygon = outline_polygon([*ring, ring[0]])
    assert polygon is not None and polygon.bounds[3] == 90.0
    assert region_from_setting({"arctic": 85}).touches_outline([*ring, ring[0]])
    assert not region_from_setting({"antarctic": -60}).touches_outline([*ring, ring[0]])
    # the same ring without the pole: an outline that goes east and comes back is no cap
    band = [(float(x), 75.0) for x in np.arange(-150.0, 181.0, 30.0)]
    band += [(float(x), 78.0) for x in np.arange(180.0, -151.0, -30.0)]
    assert not region_from_setting({"arctic": 85}).touches_outline([*band, band[0]])


def test_an_outline_that_cannot_be_read_keeps_the_granule() -> None:
    assert parse_outline("") == [] and parse_outline("1 2 x 4") == [] and parse_outline("1 2 3") == []
    assert region_from_setting(JAPAN).touches_outline([])


# -- the catalogue's outlines against the truth -------------------------------------------------------------
def _truth(spec: orbit.GranuleSpec, region) -> bool:
    """Whether any footprint of the granule (the orbit model's positions at the instrument's scan clock, every
    scan of its own, without the overlap rows that are its neighbours' scans; the swath's two edges and every
    5th pixel between) lies in the region: computed without the outline."""
    overlap = l1b.DEFAULT_OVERLAP_SCANS
    times = spec.scan_times_unix()[overlap:-overlap]
    pixels = np.unique(np.r_[np.arange(0, l1b.HIGH_FREQ_PIXELS, 5), l1b.HIGH_FREQ_PIXELS - 1])
    lat, lon = orbit.footprints(times, l1b.HIGH_FREQ_PIXELS, spec.flavour)
    return bool(region.contains(lon[:, pixels], lat[:, pixels]).any())


SVALBARD = [10.0, 76.0, 30.0, 81.0]  # polar boxes: granules begin and end near them (the scan arc's bulge)
ROSS_SEA = [160.0, -78.0, -150.0, -70.0]
NEAR_POLE = {"arctic": 88}


@pytest.mark.parametrize(
    ("setting", "days"),
    [(JAPAN, 2), (BERING, 2), (ARCTIC, 1), (SMALL_POLYGON, 2), (SVALBARD, 2), (ROSS_SEA, 2), (NEAR_POLE, 1)],
    ids=["japan", "bering", "arctic", "small-polygon", "svalbard", "ross-sea", "arctic-88"],
)
def test_the_outline_test_keeps_exactly_the_granules_with_footprints_in_the_region(setting, days: int) -> None:
    region = region_from_setting(setting)
    kept, truth = set(), set()
    for offset in range(days):
        for spec in orbit.granules_beginning_on(date(2024, 1, 1) + timedelta(days=offset)):
            entry = store.entry_from_spec(spec)
            ring = parse_outline(
                emulator_catalogue.feature(entry, 1, "current", "http://x/")["properties"]["multiExtentOf"]
            )
            if region.touches_outline(ring):
                kept.add(spec.granule_id)
            if _truth(spec, region):
                truth.add(spec.granule_id)
    assert truth, "the region is crossed by no granule: the test would prove nothing"
    assert truth <= kept, f"left out: {sorted(truth - kept)}"  # never a granule with data in the region
    if setting in (ARCTIC, NEAR_POLE):
        assert len(kept) == 29  # every half orbit passes north of 70 (and within reach of 88)
    elif region_from_setting(setting).extent[3] < 70 and region_from_setting(setting).extent[1] > -70:
        assert kept == truth and len(kept) <= 0.25 * 29 * days  # away from the poles: exactly those


# -- the catalogue step against the local G-Portal ------------------------------------------------------------
def _listing(state, tmp_path: Path, region, days: int = 2):
    from workflow_helpers import emulator_config

    from amsr2flow import config as settings
    from amsr2flow.plan import Layout
    from amsr2flow.run.connection import source_from
    from amsr2flow.stages.catalogue import build_year_listing

    end = date(2024, 1, 1) + timedelta(days=days - 1)
    cfg = settings.validate(
        emulator_config(state, tmp_path, end=end.isoformat(), region=region), check_environment=False
    )
    layout = Layout.from_config(cfg)
    all_days = [date(2024, 1, 1) + timedelta(days=n) for n in range(days)]
    listing = build_year_listing(
        all_days, cfg=cfg, source=source_from(cfg), layout=layout, listing_path=tmp_path / "listing.csv"
    )
    infos = [json.loads(layout.day_manifest_info(d).read_text()) for d in all_days]
    return listing, infos, layout


def _truth_of_days(setting, days: int) -> set[str]:
    region = region_from_setting(setting)
    return {
        spec.granule_id
        for n in range(days)
        for spec in orbit.granules_beginning_on(date(2024, 1, 1) + timedelta(days=n))
        if _truth(spec, region)
    }


@pytest.mark.parametrize("setting", [JAPAN, BERING], ids=["japan-bbox-sent", "bering-whole-days"])
def test_the_catalogue_step_keeps_the_granules_crossing_the_region_and_says_why(
    emulator, tmp_path: Path, setting, caplog
) -> None:
    caplog.set_level("INFO")
    listing, infos, _ = _listing(emulator, tmp_path, setting)
    truth = _truth_of_days(setting, 2)
    # exactly those (a region reaching 70 N or S would also keep those within a scan arc's reach)
    assert truth <= set(listing["granule_id"]) and (setting != JAPAN or set(listing["granule_id"]) == truth)
    for info in infos:
        region = info["region"]
        assert region["fingerprint"] == region_from_setting(setting).fingerprint
        assert set(region["kept"]) == set(listing[listing["day"] == info["day"]]["granule_id"])
        assert set(region["kept"].values()) <= {"its catalogue footprint (multiExtentOf) touches the region"}
        # every granule of the day is either kept or left out by the region (none lost between the two counts)
        assert info["granules"] + region["left_out"] == region["day_granules"] == 29
    if setting == JAPAN:
        assert infos[0]["region"]["catalogue_bbox"] == [128.0, 30.0, 146.0, 46.0]
        assert "held all" in caplog.text and "granules the region needs on 2 day(s); asking with it" in caplog.text
        # the local G-Portal answers a box generously, as a catalogue of coarse footprints would: the client's test
        # drops what the server's answer held beyond the region
        assert any(info["region"]["outside_by_footprint"] for info in infos)
    else:
        assert all(info["region"]["catalogue_bbox"] is None for info in infos)


def test_a_changed_region_lists_the_days_again_and_the_globe_keeps_every_granule(emulator, tmp_path: Path) -> None:
    japan, _, layout = _listing(emulator, tmp_path, JAPAN, days=1)
    manifest = layout.day_manifest(date(2024, 1, 1))
    arctic, infos, _ = _listing(emulator, tmp_path, ARCTIC, days=1)
    assert len(arctic) == 29 > len(japan) and infos[0]["region"]["left_out"] == 0
    globe, infos, _ = _listing(emulator, tmp_path, None, days=1)
    assert len(globe) == 29 and "region" not in infos[0] and manifest.is_file()


@pytest.mark.parametrize(
    ("setting", "what"),
    [(JAPAN, "refused"), ([20.0, 30.0, 40.0, 50.0], "another area")],
    ids=["latitudes-out-of-range", "another-area"],
)
def test_a_catalogue_that_reads_bbox_latitude_first_is_found_out_and_whole_days_are_asked_for(
    emulator_factory, tmp_path: Path, setting, what: str, caplog
) -> None:
    """A CSW server may follow EPSG:4326's axis order (latitude first): Japan's box is then refused, and a box
    whose numbers are latitudes either way selects another area, losing granules unless the answer is checked."""
    caplog.set_level("INFO")
    state = emulator_factory("--bbox-lat-lon")
    listing, infos, _ = _listing(state, tmp_path, setting, days=1)
    assert set(listing["granule_id"]) == _truth_of_days(setting, 1)
    assert infos[0]["region"]["catalogue_bbox"] is None  # whole days were asked for
    found_out = {"refused": "could not check the catalogue's bbox answer", "another area": "whose footprint touches"}
    assert found_out[what] in caplog.text


def test_the_start_notice_names_years_listed_again_and_sealed_years_kept(tmp_path: Path) -> None:
    from amsr2flow import config as settings
    from amsr2flow.plan import RunPlan
    from amsr2flow.stages.catalogue import region_notice

    cfg = settings.validate(
        {"start": "2022-01-01", "end": "2023-01-05", "output_dir": str(tmp_path), "region": JAPAN},
        check_environment=False,
    )
    plan = RunPlan.from_config(cfg)
    japan = region_from_setting(JAPAN)
    assert region_notice(plan, japan) is None  # nothing listed yet
    for year in (2022, 2023):  # both listed for the globe; 2022 (complete) is archived, so sealed
        info = plan.layout.day_manifest_info(plan.years[year].first_day)
        info.parent.mkdir(parents=True, exist_ok=True)
        info.write_text(json.dumps({"day": f"{year}-01-01"}))
    plan.archive(2022).parent.mkdir(parents=True, exist_ok=True)
    plan.archive(2022).write_bytes(b"")
    notice = region_notice(plan, japan)
    assert notice.startswith(f"the region is now {japan.description}; days were listed for the globe")
    assert "2023 are listed again" in notice and "the archives of 2022 (sealed) keep the granules they hold" in notice
    assert region_notice(plan, None) is None  # the globe, as listed


def test_a_bad_region_stops_the_configuration_check_naming_the_key() -> None:
    from amsr2flow import config as settings

    base = {"start": "2024-01-01", "end": "2024-01-02"}
    with pytest.raises(settings.ConfigError, match=r"region: lat_min 20 must be below lat_max 10"):
        settings.validate({**base, "region": [0, 20, 10, 10]}, check_environment=False)
    with pytest.raises(settings.ConfigError, match=r"region: antarctic and arctic together; give one of"):
        settings.validate({**base, "region": {"arctic": 60, "antarctic": -60}}, check_environment=False)
    assert settings.validate({**base, "region": {"arctic": 60}}, check_environment=False)["region"] == {"arctic": 60}


def test_a_region_needing_too_few_granules_to_check_the_bbox_answer_asks_for_whole_days(
    emulator_factory, tmp_path: Path, caplog
) -> None:
    """A latitude-first server and a tiny box in the tropics: its first day needs no granule, so a check of it
    would pass whatever the server does; over three days the server's answer is found to lose granules."""
    caplog.set_level("INFO")
    tiny = [-40.0, 10.0, -39.5, 10.5]
    state = emulator_factory("--bbox-lat-lon")
    _, infos, _ = _listing(state, tmp_path / "one-day", tiny, days=1)
    assert infos[0]["region"]["catalogue_bbox"] is None
    assert "the region needs 0 granule(s) on the 1 day(s) checked, too few to tell" in caplog.text
    listing, infos, _ = _listing(state, tmp_path / "three-days", tiny, days=3)
    assert set(listing["granule_id"]) == _truth_of_days(tiny, 3) and len(listing) == 3
    assert all(info["region"]["catalogue_bbox"] is None for info in infos)
    assert "2024-01-02: the catalogue's answer to bbox=-40.0,10.0,-39.5,10.5 left out 2 granule(s)" in caplog.text


def test_the_region_is_in_the_archives_configuration_digest_and_the_globes_digest_is_unchanged() -> None:
    from amsr2flow import config as settings

    base = settings.validate({"start": "2024-01-01", "end": "2024-01-02"}, check_environment=False)
    japan = settings.validate({"start": "2024-01-01", "end": "2024-01-02", "region": JAPAN}, check_environment=False)
    assert settings.digest(base) == "97b42e507b03f312"  # as before regions: no globe archive is rebuilt
    assert settings.digest(japan) != settings.digest(base)
    assert settings.digest(dict(japan, region_margin_scans=5)) != settings.digest(japan)
