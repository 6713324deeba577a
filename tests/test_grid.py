"""Daily grids: checked against an independent computation on known fields at known positions, the published
facts of the grids, the day's scans, and the year job's skip-what-is-done."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from amsr2flow.formats import archive
from amsr2flow.formats.swath import make_swath, write_swath
from amsr2flow.stages import grid

xr = pytest.importorskip("xarray")
pytest.importorskip("pyresample")

MIDNIGHT = datetime(2024, 1, 2, tzinfo=timezone.utc).timestamp()


def _swath(
    granule_id: str,
    lat: np.ndarray,
    lon: np.ndarray,
    raw: np.ndarray,
    start_unix: float,
    overlap: int = 0,
    channels: tuple[str, ...] = ("36.5H",),
):
    """A swath of given positions and raw values (36.5H, or the same in each of ``channels``; one scan per row,
    1.5 s apart)."""
    rows = lat.shape[0]
    times = start_unix + 1.5 * np.arange(rows)
    iso = [datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z" for t in times]
    return make_swath(
        granule_id,
        granule_id.split("_")[2][-1],
        dict.fromkeys(channels, raw.astype(np.uint16)),
        [0.01] * len(channels),
        latitude=lat.astype(np.float32),
        longitude=lon.astype(np.float32),
        scan_time=times,
        scan_start_utc=iso[overlap],
        scan_end_utc=iso[rows - 1 - overlap],
        overlap_scans=overlap,
    )


def _archive(tmp_path: Path, swaths) -> Path:
    paths = [write_swath(s, tmp_path / "swaths" / f"{s.granule_id}.npy") for s in swaths]
    return archive.write_archive(tmp_path / "year.npz", paths)


def test_grids_have_their_published_sizes() -> None:
    assert grid.area("nsidc_north_25km").shape == (448, 304)
    assert grid.area("nsidc_south_25km").shape == (332, 316)
    assert grid.area("nsidc_north_12.5km").shape == (896, 608)
    assert grid.area("ease2_north_25km").shape == (720, 720)
    assert grid.area("ease2_global_25km").shape == (584, 1388)
    assert grid.area("ease2_global_25km").resolution[0] == pytest.approx(25025.26)


def test_known_field_at_cell_centres_lands_in_its_own_cells(tmp_path: Path) -> None:
    """Independent computation: every 7th cell of the NSIDC north grid gets one observation at its centre (the
    grid's own inverse projection) holding a value made from the cell's row and column; the grid must give back
    exactly that value in exactly those cells, nothing elsewhere."""
    definition = grid.area("nsidc_north_25km")
    lons, lats = definition.get_lonlats()
    rows, cols = np.indices(definition.shape)
    chosen = (rows * definition.shape[1] + cols) % 7 == 0
    raw = (10000 + 20 * rows + cols)[chosen]  # a known field: 100 K + 0.2 K per row + 0.01 K per column
    n = raw.size - raw.size % 243
    shape = (n // 243, 243)
    swath = _swath(
        "GW1AM2_202401020100_001A_L1SGBTBR_2220220",
        lats[chosen][:n].reshape(shape),
        lons[chosen][:n].reshape(shape),
        raw[:n].reshape(shape),
        MIDNIGHT + 3600,
    )
    with archive.Archive(_archive(tmp_path, [swath])) as arch:
        observations = grid.day_observations(arch, date(2024, 1, 2), ["36.5H"])
    result = grid.bucket_average("nsidc_north_25km", observations["A"], ["36.5H"])
    expected = np.full(definition.shape, np.nan, np.float32)
    hit_rows, hit_cols = rows[chosen][:n], cols[chosen][:n]
    expected[hit_rows, hit_cols] = raw[:n] * np.float32(0.01)
    np.testing.assert_allclose(result["36.5H"], expected, rtol=0, atol=1e-4, equal_nan=True)
    assert result["n_obs_36.5H"].sum() == n and result["n_obs_36.5H"].max() == 1
    assert not observations["D"].latitude.size  # an ascending swath: nothing in the descending grid


@pytest.mark.parametrize(
    ("name", "pole", "corner"), [("nsidc_north_25km", 90.0, (234, 154)), ("nsidc_south_25km", -90.0, (174, 158))]
)
def test_the_pole_falls_where_nsidc_puts_it(tmp_path: Path, name: str, pole: float, corner: tuple[int, int]) -> None:
    """NSIDC's polar grids have the pole at projection (0, 0), the corner of four cells: above and left of row
    5850/25 = 234, column 3850/25 = 154 in the north grid, row 4350/25 = 174, column 3950/25 = 158 in the south
    one. A ring of observations 1 km from the pole falls in those four cells; invalid ones (0) count nowhere."""
    lat = np.full((1, 243), pole - np.sign(pole) * 0.01)
    lon = np.linspace(-180, 180, 243, endpoint=False)[None, :]
    raw = np.full((1, 243), 25000)
    raw[0, ::2] = 0  # invalid samples: counted nowhere
    raw[0, 1::4] = 26000
    swath = _swath("GW1AM2_202401020100_001D_L1SGBTBR_2220220", lat, lon, raw, MIDNIGHT + 60)
    with archive.Archive(_archive(tmp_path, [swath])) as arch:
        observations = grid.day_observations(arch, date(2024, 1, 2), ["36.5H"])
    result = grid.bucket_average(name, observations["D"], ["36.5H"])
    row, col = corner
    assert np.argwhere(np.isfinite(result["36.5H"])).tolist() == [
        [row - 1, col - 1],
        [row - 1, col],
        [row, col - 1],
        [row, col],
    ]
    counts = result["n_obs_36.5H"]
    assert counts.sum() == 121  # the valid samples: every second one of 243
    means = np.nan_to_num(result["36.5H"])
    assert (means * counts).sum() / counts.sum() == pytest.approx((61 * 260 + 60 * 250) / 121, abs=1e-3)


def test_a_day_takes_its_own_scans_without_the_overlap(tmp_path: Path) -> None:
    """A granule that begins at 23:50 gives its scans after midnight to the next day; overlap rows count once."""
    rows = 1200  # 30 minutes of scans
    lat = np.full((rows, 243), 80.0)
    lon = np.tile(np.linspace(-30, 30, 243), (rows, 1))
    raw = np.full((rows, 243), 20000)
    late = _swath("GW1AM2_202401012350_001A_L1SGBTBR_2220220", lat, lon, raw, MIDNIGHT - 600, overlap=10)
    with archive.Archive(_archive(tmp_path, [late])) as arch:
        assert grid.day_positions(arch.table, date(2024, 1, 2)) == [0]
        observations = grid.day_observations(arch, date(2024, 1, 2), ["36.5H"])
    seconds = observations["A"].seconds
    after_midnight = np.sum(np.arange(rows) * 1.5 - 600 >= 0)
    assert seconds.min() >= 0 and seconds.size == (after_midnight - 10) * 243  # the last 10 rows are overlap


def test_the_year_job_writes_cf_files_and_only_what_changed(tmp_path: Path) -> None:
    lat = np.tile(np.linspace(60, 85, 243), (40, 1))
    lon = np.tile(np.linspace(-50, 50, 40)[:, None], (1, 243))
    one = _swath("GW1AM2_202401020100_001A_L1SGBTBR_2220220", lat, lon, np.full((40, 243), 24000), MIDNIGHT + 3600)
    two = _swath("GW1AM2_202401030100_001A_L1SGBTBR_2220220", lat, lon, np.full((40, 243), 23000), MIDNIGHT + 90000)
    out = tmp_path / "grids"
    days = [date(2024, 1, 2), date(2024, 1, 3)]
    first = grid.build_year_grids(_archive(tmp_path / "a", [one]), days, ["nsidc_north_25km"], ["36.5H"], out)
    assert (first["made"], first["days_without_swaths"]) == (1, 1)
    path = out / "nsidc_north_25km" / "AMSR2_daily_nsidc_north_25km_20240102.nc"
    stamp = path.stat().st_mtime_ns
    grown = grid.build_year_grids(_archive(tmp_path / "b", [one, two]), days, ["nsidc_north_25km"], ["36.5H"], out)
    assert (grown["made"], grown["up_to_date"]) == (1, 1) and path.stat().st_mtime_ns == stamp
    with xr.open_dataset(path) as ds:
        assert float(ds["tb_36_5H"].sel(orbit_direction="A").max()) == pytest.approx(240.0)
        assert ds["tb_36_5H"].attrs["standard_name"] == "toa_brightness_temperature"
        assert ds["tb_36_5H"].encoding["dtype"] == np.uint16
        assert ds.attrs["granule_ids"] == one.granule_id
        times = ds["obs_time"].sel(orbit_direction="A").values
        seen = times[~np.isnat(times)]
        assert (
            seen.size
            and seen.min() >= np.datetime64("2024-01-02T01:00")
            and seen.max() < np.datetime64("2024-01-02T01:01")
        )
    with xr.open_dataset(path, decode_coords="all") as ds:
        pytest.importorskip("cf_xarray")
        assert ds.cf["projection_x_coordinate"].size == 304


def test_unknown_grids_and_archives_without_positions_are_refused(tmp_path: Path) -> None:
    swath = make_swath(
        "GW1AM2_202401020100_001A_L1SGBTBR_2220220",
        "A",
        {"36.5H": np.full((5, 243), 20000, np.uint16)},
        [0.01],
        scan_start_utc="2024-01-02T01:00:00.000Z",
        scan_end_utc="2024-01-02T01:00:06.000Z",
    )
    path = _archive(tmp_path, [swath])
    with pytest.raises(grid.GridError, match="unknown grid"):
        grid.build_year_grids(path, [date(2024, 1, 2)], ["nsidc_north_6km"], ["36.5H"], tmp_path / "g")
    with pytest.raises(grid.GridError, match="geolocation: true"):
        grid.build_year_grids(path, [date(2024, 1, 2)], ["nsidc_north_25km"], ["36.5H"], tmp_path / "g")


def test_empty_archives_89b_and_new_channels(tmp_path: Path) -> None:
    empty = archive.write_archive(tmp_path / "empty.npz", [])
    record = grid.build_year_grids(empty, [date(2024, 1, 2)], ["nsidc_north_25km"], ["36.5H"], tmp_path / "g")
    assert (record["made"], record["days_without_swaths"]) == (0, 1)
    with pytest.raises(grid.GridError, match="89 GHz B horn"):
        grid.build_year_grids(empty, [date(2024, 1, 2)], ["nsidc_north_25km"], ["89.0BH"], tmp_path / "g")
    lat = np.tile(np.linspace(60, 85, 243), (40, 1))
    lon = np.tile(np.linspace(-50, 50, 40)[:, None], (1, 243))
    swath = _swath(
        "GW1AM2_202401020100_001A_L1SGBTBR_2220220",
        lat,
        lon,
        np.full((40, 243), 24000),
        MIDNIGHT + 3600,
        channels=("36.5H", "18.7V"),
    )
    path = _archive(tmp_path / "one", [swath])
    out = tmp_path / "grids"
    assert grid.build_year_grids(path, [date(2024, 1, 2)], ["nsidc_north_25km"], ["36.5H"], out)["made"] == 1
    assert grid.build_year_grids(path, [date(2024, 1, 2)], ["nsidc_north_25km"], ["36.5H"], out)["made"] == 0
    # another channel set makes the day again (the granules alone are not the whole key)
    assert grid.build_year_grids(path, [date(2024, 1, 2)], ["nsidc_north_25km"], ["18.7V"], out)["made"] == 1


def test_swaths_without_scan_times_take_their_times_from_the_first_real_scan(tmp_path: Path) -> None:
    rows, overlap = 60, 10
    lat = np.full((rows, 243), 80.0)
    lon = np.tile(np.linspace(-30, 30, 243), (rows, 1))
    swath = _swath(
        "GW1AM2_202401020100_001A_L1SGBTBR_2220220", lat, lon, np.full((rows, 243), 20000), MIDNIGHT + 3600, overlap
    )
    old = make_swath(
        swath.granule_id,
        "A",
        {"36.5H": swath["temperature"]},
        [0.01],
        latitude=swath["latitude"],
        longitude=swath["longitude"],
        scan_start_utc=swath.metadata.scan_start_utc,
        scan_end_utc=swath.metadata.scan_end_utc,
        overlap_scans=overlap,
    )  # as archived before scan times were kept
    with archive.Archive(_archive(tmp_path, [old])) as arch:
        observations = grid.day_observations(arch, date(2024, 1, 2), ["36.5H"])
    first_real = 3600 + 1.5 * overlap  # the scan start is the first non-overlap row's time
    assert observations["A"].seconds.min() == pytest.approx(first_real, abs=1e-3)


# -- nothing made from nothing ----------------------------------------------------------------------------------
def _arctic(granule_id: str, orbit_type: str | None = None):
    lat = np.tile(np.linspace(60, 85, 243), (40, 1))
    lon = np.tile(np.linspace(-50, 50, 40)[:, None], (1, 243))
    swath = _swath(granule_id, lat, lon, np.full((40, 243), 24000), MIDNIGHT + 3600)
    return swath if orbit_type is None else type(swath)(replace(swath.metadata, orbit_type=orbit_type), swath.arrays)


def test_a_day_whose_swaths_give_nothing_is_an_error_that_names_the_day_and_why(tmp_path: Path) -> None:
    """The defect this guards against: every orbit type `U`, so every grid empty yet counted as made."""
    path = _archive(tmp_path, [_arctic("GW1AM2_202401020100_001A_L1SGBTBR_2220220", "U")])
    out = tmp_path / "grids"
    with pytest.raises(grid.GridError) as error:
        grid.build_year_grids(path, [date(2024, 1, 2)], ["nsidc_north_25km"], ["36.5H"], out)
    message = str(error.value)
    assert message.startswith("2024-01-02: the archive holds 1 swath(s) of this day, none of which gives")
    assert "orbit type 'U', neither A nor D" in message and "amsr2flow repair" in message
    assert not out.exists() or not any(out.rglob("*.nc"))


def test_granule_ids_are_the_granules_used_and_a_grid_without_data_gets_no_file(tmp_path: Path) -> None:
    used = _arctic("GW1AM2_202401020100_001A_L1SGBTBR_2220220")
    unused = _arctic("GW1AM2_202401020200_001A_L1SGBTBR_2220220", "U")  # no direction: not used, and said so
    path = _archive(tmp_path, [used, unused])
    out = tmp_path / "grids"
    record = grid.build_year_grids(path, [date(2024, 1, 2)], ["nsidc_north_25km", "nsidc_south_25km"], ["36.5H"], out)
    north = "nsidc_north_25km/AMSR2_daily_nsidc_north_25km_20240102.nc"
    south = "nsidc_south_25km/AMSR2_daily_nsidc_south_25km_20240102.nc"
    assert record["files"] == [north] and record["no_data_on_grid"] == [south] and record["made"] == 1
    assert record["valid_cells"][north]["A"] > 0 and record["valid_cells"][north]["D"] == 0
    assert not (out / south).exists()  # Arctic swaths on the Antarctic grid: nothing to write
    with xr.open_dataset(out / north) as ds:
        assert ds.attrs["granule_ids"] == used.granule_id and int(ds.attrs["granules_used"]) == 1
        assert int(ds.attrs["valid_cells_A"]) == record["valid_cells"][north]["A"]
        assert int(ds["tb_36_5H"].sel(orbit_direction="A").notnull().sum()) == record["valid_cells"][north]["A"]
    again = grid.build_year_grids(path, [date(2024, 1, 2)], ["nsidc_north_25km", "nsidc_south_25km"], ["36.5H"], out)
    assert again["valid_cells"] == record["valid_cells"] and again["up_to_date"] == 1


def test_a_repaired_orbit_type_makes_the_day_again(tmp_path: Path) -> None:
    """Same granules, same arrays, another orbit type: the file is stale (its key is the metadata too)."""
    out = tmp_path / "grids"
    day = [date(2024, 1, 2)]
    first = _archive(tmp_path / "a", [_arctic("GW1AM2_202401020100_001D_L1SGBTBR_2220220", "A")])
    assert grid.build_year_grids(first, day, ["nsidc_north_25km"], ["36.5H"], out)["valid_cells"]
    repaired = _archive(tmp_path / "b", [_arctic("GW1AM2_202401020100_001D_L1SGBTBR_2220220", "D")])
    record = grid.build_year_grids(repaired, day, ["nsidc_north_25km"], ["36.5H"], out)
    (cells,) = record["valid_cells"].values()
    assert record["made"] == 1 and cells["A"] == 0 and cells["D"] > 0


def test_a_grid_cropped_to_a_region_is_the_whole_grids_cells_around_it(tmp_path: Path) -> None:
    from amsr2flow.region import region_from_setting

    lat = np.tile(np.linspace(60, 85, 243), (40, 1))
    lon = np.tile(np.linspace(-50, 50, 40)[:, None], (1, 243))
    raw = (20000 + np.arange(40 * 243) % 5000).reshape(40, 243)
    one = _swath("GW1AM2_202401020100_001A_L1SGBTBR_2220220", lat, lon, raw, MIDNIGHT + 3600)
    path = _archive(tmp_path, [one])
    day = [date(2024, 1, 2)]
    svalbard = region_from_setting([0.0, 74.0, 30.0, 81.0])
    whole = grid.build_year_grids(path, day, ["nsidc_north_25km"], ["36.5H"], tmp_path / "whole")
    part = grid.build_year_grids(path, day, ["nsidc_north_25km"], ["36.5H"], tmp_path / "part", region=svalbard)
    name = "nsidc_north_25km/AMSR2_daily_nsidc_north_25km_20240102.nc"
    with xr.open_dataset(tmp_path / "whole" / name) as full, xr.open_dataset(tmp_path / "part" / name) as cropped:
        assert cropped.attrs["region"] == svalbard.description and "region" not in full.attrs
        assert 0 < cropped.sizes["x"] * cropped.sizes["y"] < full.sizes["x"] * full.sizes["y"] / 20
        same = full.sel(x=cropped["x"], y=cropped["y"])  # the same cells, at the same projection coordinates
        np.testing.assert_array_equal(cropped["tb_36_5H"].values, same["tb_36_5H"].values)
        # the region's every cell is inside the crop, with data where the swath passed
        inside = svalbard.contains(cropped["longitude"].values, cropped["latitude"].values)
        assert inside.any() and np.isfinite(cropped["tb_36_5H"].sel(orbit_direction="A").values[inside]).any()
        edge = np.zeros(inside.shape, bool)
        edge[[0, -1], :] = edge[:, [0, -1]] = True
        assert not (inside & edge).any()  # a margin of cells all round
    assert part["valid_cells"] and whole["valid_cells"]
