"""Regions end to end: `snakemake` with a region against the local G-Portal (small granules): the catalogue step
keeps the granules crossing it, swaths keep the scans touching it, the rest is left out, never missing; then
the region changed on reruns."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from emulator_fixtures import read_stats
from test_region import JAPAN, _truth
from workflow_helpers import emulator_config, run_workflow

from amsr2flow import open_archive
from amsr2flow.emulator import orbit
from amsr2flow.region import region_from_setting
from amsr2flow.stages.catalogue import read_listing


def _archived(results: Path) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    (archive_path,) = sorted((results / "archives").rglob("*.npz"))
    with open_archive(archive_path) as archive:
        return {s.granule_id: (s["longitude"], s["latitude"], s.metadata.region) for s in archive}


@pytest.mark.slow
def test_a_region_lists_downloads_crops_and_reports_only_what_crosses_it(emulator, tmp_path: Path) -> None:
    results = tmp_path / "results"
    japan = region_from_setting(JAPAN)
    cfg = emulator_config(emulator, tmp_path, geolocation=True, region=JAPAN, region_margin_scans=0)
    run = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
    assert run.returncode == 0, run.stdout[-4000:]
    served = read_stats(emulator)["files_served"]
    listing = set(read_listing(results / "manifests" / "2024" / "granules_20240101-20240102.csv")["granule_id"])
    # listed: the granules whose footprints (the orbit model at the scan clock) meet the box
    truth = {s.granule_id for s in orbit.granules_beginning_on(date(2024, 1, 1)) if _truth(s, japan)}
    assert listing == truth and served == len(truth)
    # archived: those whose own (16-scan) positions meet it, each cropped to the scans that do, first to last
    archived = _archived(results)
    assert archived and set(archived) <= listing
    for lon, lat, region in archived.values():
        touching = japan.contains(lon, lat).any(axis=1)
        assert region == japan.description and touching[0] and touching[-1]
    outside = listing - set(archived)
    report = json.loads(next((results / "reports").glob("run_*.json")).read_text())
    region = report["region"]
    assert (region["description"], region["left_out"], region["no_scan_inside"]) == (
        japan.description,
        29 - len(truth),
        len(outside),
    )
    kept = sum(len(lon) for lon, *_ in archived.values())
    assert region["scans_kept"] == kept and 0 < kept < region["granule_scans"] == 16 * len(archived)
    assert report["missing_granules"] == 0 and report["expected_granules"] == len(archived)
    assert f"Region {japan.description}: {len(archived)} catalogued granules cross it" in run.stdout

    # the globe: every granule whole, so the cropped ones and those with no scan in Japan are downloaded again
    globe = run_workflow(tmp_path, dict(cfg, region=None), "--resources", "gportal=2")
    assert globe.returncode == 0, globe.stdout[-4000:]
    assert f"the region is now the globe; days were listed for {japan.description}" in globe.stdout
    assert read_stats(emulator)["files_served"] == served + 29
    assert {region for *_, region in _archived(results).values()} == {""} and len(_archived(results)) == 29

    # Japan again: the whole swaths hold its scans, nothing is downloaded
    again = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
    assert again.returncode == 0 and set(_archived(results)) == listing, again.stdout[-4000:]
    assert read_stats(emulator)["files_served"] == served + 29


@pytest.mark.slow
@pytest.mark.parametrize(
    "setting",
    [[160.0, 50.0, -160.0, 66.0], {"arctic": 70}, "POLYGON ((-30 -40, -26 -40, -26 -36, -30 -37, -30 -40))"],
    ids=["bering-across-180", "arctic-cap", "small-polygon"],
)
def test_each_region_archives_exactly_the_granules_with_scans_in_it(emulator, tmp_path: Path, setting) -> None:
    results = tmp_path / "results"
    region = region_from_setting(setting)
    cfg = emulator_config(emulator, tmp_path, geolocation=True, region=setting, region_margin_scans=0)
    run = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
    assert run.returncode == 0, run.stdout[-4000:]
    listing = set(read_listing(results / "manifests" / "2024" / "granules_20240101-20240102.csv")["granule_id"])
    truth = {s.granule_id for s in orbit.granules_beginning_on(date(2024, 1, 1)) if _truth(s, region)}
    assert truth <= listing and read_stats(emulator)["files_served"] == len(listing)
    archived = _archived(results) if listing else {}
    # every granule whose own positions meet the region is archived, cropped to the scans that do
    for granule_id, (lon, lat, cropped_to) in archived.items():
        touching = region.contains(lon, lat).any(axis=1)
        assert cropped_to == region.description and touching[0] and touching[-1], granule_id
    report = json.loads(next((results / "reports").glob("run_*.json")).read_text())
    assert report["missing_granules"] == 0 and report["expected_granules"] == len(archived)
    assert report["region"]["no_scan_inside"] == len(listing) - len(archived)
    if setting == {"arctic": 70}:
        assert len(archived) == 29 and report["region"]["scans_kept"] < report["region"]["granule_scans"] / 3


@pytest.mark.slow
def test_a_region_whose_listing_stays_the_same_still_crops_again(emulator, tmp_path: Path) -> None:
    """The Arctic north of 70, then north of 60: every half orbit crosses both, so the day manifests do not
    change, yet every swath cropped for 70 N lacks scans 60 N needs: the day jobs run and crop again."""
    results = tmp_path / "results"
    cfg = emulator_config(emulator, tmp_path, geolocation=True, region={"arctic": 70})
    assert run_workflow(tmp_path, cfg, "--resources", "gportal=2").returncode == 0
    served = read_stats(emulator)["files_served"]
    wider = run_workflow(tmp_path, dict(cfg, region={"arctic": 60}), "--resources", "gportal=2")
    assert wider.returncode == 0, wider.stdout[-4000:]
    assert read_stats(emulator)["files_served"] == served + 29
    assert {cropped_to for *_, cropped_to in _archived(results).values()} == {"Arctic cap north of 60 N"}
    # the margin alone: the same region, other crops
    margin = run_workflow(tmp_path, dict(cfg, region={"arctic": 60}, region_margin_scans=0), "--resources", "gportal=2")
    assert margin.returncode == 0 and read_stats(emulator)["files_served"] == served + 2 * 29, margin.stdout[-3000:]
