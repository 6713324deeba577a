"""One record across sensors, end to end against the local G-Portal: a configuration that lists AMSR-E and AMSR2
collects each day from the sensor whose mission covers it, names archives per sensor, grids the days, and the
export joins both sensors into one time series."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from emulator_fixtures import read_stats
from workflow_helpers import emulator_config, job_counts, run_workflow

from amsr2flow.formats.archive import Archive
from amsr2flow.formats.record import RecordSource

xr = pytest.importorskip("xarray")


@pytest.mark.slow
def test_amsre_and_amsr2_in_one_run_one_grid_one_export(tmp_path: Path, emulator: dict) -> None:
    # the last AMSR-E day and the first AMSR2 day; the 272 days between are in no mission and never asked for
    cfg = emulator_config(
        emulator,
        tmp_path,
        start="2011-10-04",
        end="2012-07-03",
        dataset=["amsre-l1b", "amsr2-l1b"],
        channels=["36.5H", "89.0AV"],
        geolocation=True,
        grid={"enabled": True, "grids": ["nsidc_north_25km"]},
        record={"enabled": True},
    )
    run = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
    assert run.returncode == 0, run.stdout[-4000:]
    results = tmp_path / "results"
    assert job_counts(run.stdout)["catalogue"] == 2
    assert sorted(p.name for p in (results / "manifests").rglob("*.csv") if p.name[:4].isdigit()) == [
        "2011-10-04.csv",
        "2012-07-03.csv",
    ]
    amsre, amsr2 = (
        results / "archives" / n
        for n in (
            "AMSRE_temp_with_coords_20111004_000000_to_20111005_000000.npz",
            "AMSR2_temp_with_coords_20120703_000000_to_20120704_000000.npz",
        )
    )
    with Archive(amsre) as a, Archive(amsr2) as b:
        assert {str(g)[:6] for g in a.table["granule_id"]} == {"A2ES1M"} and len(a) >= 28
        assert {str(g)[:6] for g in b.table["granule_id"]} == {"GW1AM2"} and len(b) >= 28
        n_amsre, n_amsr2 = len(a), len(b)
    assert sorted(p.relative_to(results / "parts").as_posix() for p in (results / "parts").rglob("*.npz")) == [
        "2011/AMSRE_temp_with_coords_20111004_000000_to_20111005_000000_part_1of1.npz",
        "2012/AMSR2_temp_with_coords_20120703_000000_to_20120704_000000_part_1of1.npz",
    ]

    run_report = (results / "reports" / "run_20111004-20120704.md").read_text()
    assert run_report.startswith("# AMSR-E and AMSR-2 collection report")
    assert (
        "# AMSR-E collection report, 2011" in (results / "reports" / "2011" / "report_20111004-20111005.md").read_text()
    )

    # daily grids: one file per day and grid, CF, both passes, values where the swaths were
    record = json.loads((results / "grids" / "2012" / "grids_20120703-20120704.json").read_text())
    assert record["made"] == 1 and record["files"][0].endswith("AMSR2_daily_nsidc_north_25km_20120703.nc")
    north = results / "grids" / "2012" / "nsidc_north_25km" / "AMSR2_daily_nsidc_north_25km_20120703.nc"
    with xr.open_dataset(north) as grid:
        assert grid["tb_36_5H"].dims == ("orbit_direction", "y", "x") and grid["tb_36_5H"].shape == (2, 448, 304)
        assert grid["crs"].attrs["grid_mapping_name"] == "polar_stereographic"
        filled = float(grid["tb_36_5H"].notnull().mean())
        assert 0 < filled < 0.5  # 16-scan test granules: short stripes of the Arctic
        assert 100 < float(grid["tb_36_5H"].mean()) < 320
        assert grid.attrs["granule_ids"].count("GW1AM2") >= 28
    assert (results / "grids" / "2011" / "nsidc_north_25km" / "AMSRE_daily_nsidc_north_25km_20111004.nc").is_file()

    # the record: both sensors' swaths once, AMSR-E first (its archive is older), one commit per archive
    store = results / "record" / "swaths.icechunk"
    source = RecordSource(store)
    index = source.index()
    assert len(source) == n_amsre + n_amsr2
    assert index["sensor"].tolist() == ["AMSR-E"] * n_amsre + ["AMSR2"] * n_amsr2
    assert bool((np.diff(index["time"].astype(np.int64)) > 0).all())
    assert source.channels == ("36.5H", "89.0AV")
    with Archive(amsre) as a:
        np.testing.assert_array_equal(source.read_raw(0, ["89.0AV"])["89.0AV"], a[0]["89.0AV"])
    assert json.loads((results / "record" / "record.json").read_text())["swaths"] == n_amsre + n_amsr2

    # a second run changes nothing: the grid job is not even scheduled
    again = run_workflow(tmp_path, cfg)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout, again.stdout[-2000:]
    served = read_stats(emulator)["files_served"]

    # one time series from 2011 to 2012: both sensors, channels aligned, raw encoding kept
    out = tmp_path / "record.zarr"
    export = subprocess.run(
        [sys.executable, "-m", "amsr2flow", "export", str(amsr2), str(amsre), "--to", "zarr", "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert export.returncode == 0, export.stderr
    with xr.open_zarr(out) as joined:
        assert joined.sizes["swath"] == n_amsre + n_amsr2
        assert list(joined["sensor"].values[:1]) == ["AMSR-E"] and joined["sensor"].values[-1] == "AMSR2"
        assert bool((np.diff(joined["time"].values).astype(np.int64) > 0).all())  # in time order
        assert joined["tb_36_5H"].encoding["dtype"] == np.uint16
        assert "89 GHz A horn failed" in joined.attrs["comment"]
    with xr.open_zarr(out, mask_and_scale=False) as raw, Archive(amsr2) as b, Archive(amsre) as a:
        last, first = b[len(b) - 1], a[0]  # values bit-equal to the archives', padding is the fill
        np.testing.assert_array_equal(
            raw["tb_36_5H"].isel(swath=-1).values[: last.metadata.shape[0]], last["temperature"]
        )
        np.testing.assert_array_equal(raw["tb_89_0AV"].isel(swath=0).values[: first.metadata.shape[0]], first["89.0AV"])
        assert (raw["tb_89_0AV"].isel(swath=0).values == 0).all()  # AMSR-E after its A horn failed: all fill
        assert (raw["tb_89_0AV"].isel(swath=-1).values != 0).any()
    assert read_stats(emulator)["files_served"] == served
