"""Regions end to end: `snakemake` with a region against the local G-Portal (small granules), then the region
changed on reruns: smaller downloads nothing, larger downloads only the granules newly inside."""

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


def _archived(results: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    (archive_path,) = sorted((results / "archives").rglob("*.npz"))
    with open_archive(archive_path) as archive:
        return {s.granule_id: (s["longitude"], s["latitude"]) for s in archive}


@pytest.mark.slow
def test_a_region_lists_downloads_and_reports_only_what_crosses_it_and_a_change_costs_only_what_is_new(
    emulator, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    japan = region_from_setting(JAPAN)
    cfg = emulator_config(emulator, tmp_path, geolocation=True, region=JAPAN)
    run = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
    assert run.returncode == 0, run.stdout[-4000:]
    served = read_stats(emulator)["files_served"]
    listing = read_listing(results / "manifests" / "2024" / "granules_20240101-20240102.csv")
    # the granules kept are those whose footprints (the orbit model at the scan clock) meet the box, and every
    # granule whose own swath positions meet it is among them
    truth = {s.granule_id for s in orbit.granules_beginning_on(date(2024, 1, 1)) if _truth(s, japan)}
    archived = _archived(results)
    assert set(listing["granule_id"]) == set(archived) == truth and served == len(truth)
    over_japan = {g for g, (lon, lat) in archived.items() if japan.contains(lon, lat).any()}
    assert over_japan and over_japan <= truth
    line = f"Region {japan.description}: {len(truth)} catalogued granules cross it; {29 - len(truth)} other"
    assert line in run.stdout
    report = json.loads(next((results / "reports").glob("run_*.json")).read_text())
    assert report["region"] == {"description": japan.description, "left_out": 29 - len(truth)}
    assert report["missing_granules"] == 0

    # larger: the Arctic cap holds every half orbit; only the granules not yet extracted are downloaded
    arctic = run_workflow(tmp_path, dict(cfg, region={"arctic": 70}), "--resources", "gportal=2")
    assert arctic.returncode == 0, arctic.stdout[-4000:]
    assert f"the region is now Arctic cap north of 70 N; days were listed for {japan.description}" in arctic.stdout
    assert read_stats(emulator)["files_served"] == served + 29 - len(truth)
    assert len(_archived(results)) == 29

    # smaller again, then the globe: nothing downloaded, the archive follows the listing
    back = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
    assert back.returncode == 0 and set(_archived(results)) == truth, back.stdout[-4000:]
    globe = run_workflow(tmp_path, dict(cfg, region=None), "--resources", "gportal=2")
    assert globe.returncode == 0 and len(_archived(results)) == 29, globe.stdout[-4000:]
    assert "the region is now the globe" in globe.stdout and "amsr2flow: Region" not in globe.stdout
    assert read_stats(emulator)["files_served"] == served + 29 - len(truth)
