"""Facts checked end to end, through the `snakemake` command against the local G-Portal:

- files whose name, attributes and latitudes disagree reach the ledger, the year report, the per-granule
  table, `amsr2flow verify` and the exit status (3), each disagreement with every source's value;
- outputs as amsr2flow 0.1.0 left them (every orbit type `U`) stop the next run before any job, are reported by
  `amsr2flow verify`, repaired by `amsr2flow repair` without a download, and the rerun after the repair makes
  the grids, figures, maps and reports again from the right metadata.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from defect_helpers import results_as_written_by_0_1_0
from emulator_fixtures import read_stats, start_emulator, stop_emulator
from workflow_helpers import emulator_config, job_counts, run_workflow

from amsr2flow.emulator import orbit, synth
from amsr2flow.formats.archive import Archive

xr = pytest.importorskip("xarray")
DAY = date(2021, 3, 4)


def amsr2flow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "amsr2flow", *args], capture_output=True, text=True, check=False)


def _set_attribute(h5: h5py.File, name: str, value: str) -> None:
    h5.attrs[name] = np.array([value.encode()], dtype=f"S{len(value)}")


@pytest.mark.slow
def test_files_whose_sources_disagree_are_archived_listed_and_exit_3(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    specs = orbit.granules_beginning_on(DAY)[:5]
    for spec in specs:
        synth.write_granule(mirror / spec.file_name, spec, n_scans=16)
    flipped, late, renamed = specs[2], specs[3], specs[4]
    with h5py.File(mirror / flipped.file_name, "r+") as h5:  # named ascending, a file going south
        _set_attribute(h5, "OrbitDirection", "Descending")
        for name in ("Latitude of Observation Point for 89A", "Latitude of Observation Point for 89B"):
            h5[name][...] = h5[name][()][::-1]
    with h5py.File(mirror / late.file_name, "r+") as h5:  # the catalogue (from this attribute) 5 s after the scans
        _set_attribute(h5, "ObservationStartDateTime", synth.format_utc_ms(late.start_unix + 5))
    with h5py.File(mirror / renamed.file_name, "r+") as h5:
        _set_attribute(h5, "GranuleID", renamed.granule_id.replace("2220220", "2210210"))
    assert flipped.orbit_direction == "A"

    proc, state = start_emulator(tmp_path / "emulator", "--serve-dir", str(mirror))
    try:
        cfg = emulator_config(state, tmp_path / "work", start=DAY.isoformat(), end=DAY.isoformat(), geolocation=True)
        run = run_workflow(tmp_path / "work", cfg)
    finally:
        stop_emulator(proc)
    assert run.returncode == 3, run.stdout[-3000:]
    assert "fact(s) of archived granules disagree between the catalogue, the file names and the files" in run.stdout
    results = tmp_path / "work" / "results"

    # the archive keeps what the files hold: every granule is in it
    (archive_path,) = (results / "archives").glob("*.npz")
    with Archive(archive_path) as archive:
        assert sorted(archive.table["granule_id"]) == sorted(s.granule_id for s in specs)

    # the day job's ledger: every source's value
    entry = json.loads((results / "ledger" / "2021" / f"{flipped.granule_id}.json").read_text())
    assert entry["status"] == "disagrees"
    (orbit_entry,) = entry["disagreements"]
    assert orbit_entry["values"] == {
        "catalogue": "A",
        "file name": "A",
        "file attribute": "D",
        "latitudes": "D",
        "stored swath": "A",
    }

    # the year report: the three granules, each with both sides named
    report = json.loads(next((results / "reports" / "2021").glob("report_*.json")).read_text())
    found = {(d["granule_id"], d["fact"]): d["values"] for d in report["disagreements"]}
    assert set(found) == {
        (flipped.granule_id, "orbit direction"),
        (late.granule_id, "begin time"),
        (renamed.granule_id, "granule id"),
    }
    late_begin = found[(late.granule_id, "begin time")]
    assert late_begin["catalogue"] == late_begin["file attribute"] != late_begin["scan times"]
    assert late_begin["stored swath"] == late_begin["scan times"] == synth.format_utc_ms(late.start_unix)
    assert found[(renamed.granule_id, "granule id")]["file attribute"].endswith("2210210")
    assert report["count_problems"] == []  # the archive stores what the names say, as the catalogue does
    run_json = json.loads(next((results / "reports").glob("run_*.json")).read_text())
    assert run_json["disagreement_count"] == 3 and run_json["status"] == "incomplete"

    # the per-granule table marks them
    table = pd.read_csv(next((results / "reports").glob("granules_*.csv")), keep_default_na=False)
    marked = table[table["reason_class"] == "disagreement"]
    assert sorted(marked["granule_id"]) == sorted([flipped.granule_id, late.granule_id, renamed.granule_id])
    assert set(marked["status"]) == {"archived"}

    # `amsr2flow verify` finds what the archive itself and the catalogue (the run's manifests) can tell
    checked = amsr2flow("verify", str(archive_path), "--json")
    assert checked.returncode == 1
    problems = json.loads(checked.stdout)["problems"]
    assert any(flipped.granule_id in p and "latitudes D" in p and "stored swath A" in p for p in problems)
    assert any(late.granule_id in p and "begin time disagrees" in p for p in problems)
    assert "catalogue's records in" in json.loads(checked.stdout)["catalogue"]


@pytest.mark.slow
def test_outputs_of_0_1_0_are_found_repaired_without_download_and_remade(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator")
    try:
        cfg = emulator_config(
            state,
            tmp_path / "work",
            geolocation=True,
            variables=["earth_incidence"],
            grid={"enabled": True, "grids": ["nsidc_north_25km"]},
            report={"figures": True},
        )
        first = run_workflow(tmp_path / "work", cfg)
        assert first.returncode == 0, first.stdout[-3000:]
        results = tmp_path / "work" / "results"
        (archive_path,) = (results / "archives").glob("*.npz")
        (grid_file,) = (results / "grids").rglob("*.nc")
        served = read_stats(state)["files_served"]

        results_as_written_by_0_1_0(results)
        with Archive(archive_path) as archive:
            assert set(archive.table["orbit_type"]) == {"U"}
        before = {p: p.stat().st_mtime_ns for p in [grid_file, *results.glob("reports/2024/report_*")]}

        # the next run stops before any job, naming the problem and the fix
        stopped = run_workflow(tmp_path / "work", cfg)
        assert stopped.returncode == 2, stopped.stdout[-3000:]
        assert "store an orbit type their granule id contradicts" in stopped.stdout
        assert f"cannot start: run `amsr2flow repair {results}` first" in stopped.stdout
        verified = amsr2flow("verify", str(archive_path))
        assert verified.returncode == 1 and "stored swath U" in verified.stdout

        repaired = amsr2flow("repair", str(results))
        assert repaired.returncode == 0, repaired.stderr
        assert "nothing was downloaded" in repaired.stdout
        assert amsr2flow("verify", str(archive_path)).returncode == 0

        again = run_workflow(tmp_path / "work", cfg)
        assert again.returncode == 0, again.stdout[-3000:]
        assert read_stats(state)["files_served"] == served  # no granule downloaded again
    finally:
        stop_emulator(proc)
    redone = job_counts(again.stdout)
    assert {"year_grids", "year_figures", "day_map", "year_report", "year_page", "run_report"} <= set(redone)
    assert "day_kept_swaths" not in redone and "year_archive" not in redone
    assert all(p.stat().st_mtime_ns != stamp for p, stamp in before.items())

    with xr.open_dataset(grid_file) as grid:
        assert int(grid.attrs["granules_used"]) == len(grid.attrs["granule_ids"].split(",")) > 0
        for direction in ("A", "D"):
            assert int(grid["tb_36_5H"].sel(orbit_direction=direction).notnull().sum()) > 0
    year = next((results / "reports" / "2024").glob("report_*.json"))
    report = json.loads(year.read_text())
    assert report["disagreements"] == [] and report["count_problems"] == []
    assert all(c["archived"] == c["expected"] > 0 for c in report["orbit_direction"].values())
    figures = json.loads(next((results / "reports" / "2024").glob("figures_*/figures.json")).read_text())
    assert sorted(q["orbit_direction"] for q in figures["quicklooks"]) == ["A", "D"]
    page = next((results / "reports" / "2024" / "maps").glob("*.html")).read_text()
    assert " ascending GW1AM2_" in page and " descending GW1AM2_" in page and "unknown direction" not in page
    assert datetime.fromisoformat(report["days"][0]["day"]).date() == date(2024, 1, 1)
