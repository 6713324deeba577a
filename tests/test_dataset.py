"""Archives as xarray Datasets, and their exports to Zarr and NetCDF: values bit-equal, CF metadata, lazy."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from test_swath import synthetic_swath

from amsr2flow.formats import dataset
from amsr2flow.formats.archive import Archive, to_kelvin, write_archive
from amsr2flow.formats.swath import make_swath

AMSR2FLOW = Path(sys.executable).parent / "amsr2flow"


def two_channel_swath(i: int, rows: int) -> object:
    rng = np.random.default_rng(100 + i)
    low = rng.integers(10000, 28000, (rows, 243)).astype(np.uint16)
    high = rng.integers(15000, 29000, (rows, 486)).astype(np.uint16)
    low[0, :3] = 0
    return make_swath(
        f"GW1AM2_20200101{i:02d}00_{i:03d}{'AD'[i % 2]}_L1SGBTBR_2220220",
        "AD"[i % 2],
        {"36.5H": low, "89.0AV": high},
        [0.01, 0.01],
        scan_start_utc=f"2020-01-01T{i:02d}:00:00.000Z",
        scan_end_utc=f"2020-01-01T{i:02d}:49:00.000Z",
        overlap_scans=2,
        latitude=rng.uniform(-70, 70, (rows, 243)).astype(np.float32),
        longitude=rng.uniform(-180, 180, (rows, 243)).astype(np.float32),
    )


@pytest.fixture
def archive_path(tmp_path: Path) -> Path:
    # different scan counts, so that padding is exercised; an 89 GHz channel with its own pixel dimension
    return write_archive(tmp_path / "a.npz", [two_channel_swath(i, rows) for i, rows in enumerate((30, 41, 35))])


def test_the_dataset_has_the_documented_layout_and_cf_metadata(archive_path: Path) -> None:
    ds = xr.open_dataset(archive_path, engine="amsr2flow")
    assert dict(ds.sizes) == {"swath": 3, "scan": 41, "pixel": 243, "pixel_89": 486}
    tb = ds["tb_36_5H"]
    assert tb.attrs["standard_name"] == "toa_brightness_temperature" and tb.attrs["units"] == "K"
    assert tb.dtype == np.float32 and tb.encoding["dtype"] == np.uint16 and tb.encoding["_FillValue"] == 0
    assert ds["tb_89_0AV"].dims == ("swath", "scan", "pixel_89")
    assert set(ds.coords) >= {"latitude", "longitude", "time", "time_end", "granule_id", "orbit_direction"}
    assert ds.attrs["Conventions"].startswith("CF-") and "JAXA" in ds.attrs["acknowledgement"]
    assert list(ds["orbit_direction"].values) == ["A", "D", "A"]
    assert ds["time"].dtype.kind == "M" and str(ds["time"].values[1]).startswith("2020-01-01T01:00")
    import cf_xarray  # noqa: F401 - registers the .cf accessor

    assert ds.cf.standard_names["toa_brightness_temperature"] == ["tb_36_5H", "tb_89_0AV"]
    assert ds.cf["latitude"].name == "latitude" and ds.cf["longitude"].name == "longitude"


def test_values_are_the_archive_values(archive_path: Path) -> None:
    raw = xr.open_dataset(archive_path, engine="amsr2flow", mask_and_scale=False)
    decoded = xr.open_dataset(archive_path, engine="amsr2flow")
    with Archive(archive_path) as archive:
        for i, swath in enumerate(archive):
            rows = swath.metadata.shape[0]
            np.testing.assert_array_equal(raw["tb_36_5H"][i, :rows].values, swath["temperature"])
            np.testing.assert_array_equal(raw["tb_89_0AV"][i, :rows].values, swath["89.0AV"])
            np.testing.assert_array_equal(raw["latitude"][i, :rows].values, swath["latitude"])
            assert (raw["tb_36_5H"][i, rows:].values == 0).all()  # padding is the fill
            assert np.isnan(decoded["latitude"][i, rows:].values).all()
            kelvin = decoded["tb_36_5H"][i, :rows].values
            np.testing.assert_allclose(kelvin, to_kelvin(swath), rtol=1e-6)
            assert np.array_equal(np.isnan(kelvin), np.isnan(to_kelvin(swath)))


def test_dataset_is_lazy_and_chunked_one_swath_per_chunk(archive_path: Path) -> None:
    with Archive(archive_path) as archive:
        ds = archive.to_xarray()
        reads: list[str] = []
        original = archive.read_array
        archive.read_array = lambda i, name="temperature": reads.append((i, name)) or original(i, name)  # type: ignore[method-assign]
        ds["tb_36_5H"][1].values  # noqa: B018 - the read is the point
        assert reads == [(1, "temperature")]
        chunked = archive.to_xarray(chunks={"swath": 1})
        assert chunked["tb_36_5H"].chunks[0] == (1, 1, 1)
        ascending = archive.select(orbit_type="A").to_xarray()
        assert list(ascending["granule_id"].values) == [s.granule_id for s in archive if s.metadata.orbit_type == "A"]


@pytest.mark.parametrize(("to", "engine"), [("zarr", "zarr"), ("netcdf", "h5netcdf")])
def test_exports_round_trip_bit_equal_and_keep_uint16(archive_path: Path, tmp_path: Path, to: str, engine: str) -> None:
    out = tmp_path / f"out.{to}"
    result = subprocess.run(
        [AMSR2FLOW, "export", str(archive_path), "--to", to, "-o", str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    source = xr.open_dataset(archive_path, engine="amsr2flow", mask_and_scale=False)
    exported = xr.open_dataset(out, engine=engine, mask_and_scale=False)
    for name in ("tb_36_5H", "tb_89_0AV", "latitude", "longitude", "n_scans", "granule_id", "time"):
        np.testing.assert_array_equal(exported[name].values, source[name].values)
    assert exported["tb_36_5H"].dtype == np.uint16
    decoded = xr.open_dataset(out, engine=engine)
    assert decoded["tb_36_5H"].attrs["standard_name"] == "toa_brightness_temperature"
    assert decoded.attrs["acknowledgement"] == source.attrs["acknowledgement"]
    again = subprocess.run(
        [AMSR2FLOW, "export", str(archive_path), "--to", to, "-o", str(out)], capture_output=True, text=True
    )
    assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr


def test_the_zarr_store_reads_with_plain_zarr(archive_path: Path, tmp_path: Path) -> None:
    import zarr

    out = dataset.export_archive(archive_path, tmp_path / "a.zarr", "zarr")
    group = zarr.open_group(str(out), mode="r")
    tb = group["tb_36_5H"]
    assert tb.dtype == np.uint16 and tb.chunks[0] == 1 and tb.shape == (3, 41, 243)
    with Archive(archive_path) as archive:
        np.testing.assert_array_equal(tb[2, :35], archive[2]["temperature"])
    assert abs(float(tb.attrs["scale_factor"]) - 0.01) < 1e-7


def test_archives_that_cf_cannot_describe_are_refused_with_a_reason(tmp_path: Path) -> None:
    swaths = [synthetic_swath(i) for i in range(2)]
    other = make_swath(
        "GW1AM2_202001010500_005D_L1SGBTBR_2220220",
        "D",
        {"36.5H": swaths[0]["temperature"]},
        [0.02],
        scan_start_utc="2020-01-01T05:00:00.000Z",
        scan_end_utc="2020-01-01T05:49:00.000Z",
    )
    path = write_archive(tmp_path / "mixed.npz", [*swaths, other])
    with pytest.raises(dataset.DatasetError, match="different scale factors"):
        xr.open_dataset(path, engine="amsr2flow")
    result = subprocess.run(
        [AMSR2FLOW, "export", str(path), "--to", "zarr", "-o", str(tmp_path / "m.zarr")], capture_output=True, text=True
    )
    assert result.returncode == 2 and "scale factors" in result.stderr and not (tmp_path / "m.zarr").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        missing = subprocess.run(
            [AMSR2FLOW, "export", str(tmp_path / "nope.npz"), "--to", "zarr", "-o", str(tmp_path / "n.zarr")],
            capture_output=True,
            text=True,
        )
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_per_scan_times_become_a_time_coordinate(tmp_path: Path) -> None:
    swaths = []
    for i, rows in enumerate((20, 25)):
        base = two_channel_swath(i, rows)
        times = 1577836800.0 + i * 3600 + np.arange(rows) * 1.5
        times[3] = np.nan  # a fill in the file
        swaths.append(make_swath(
            base.granule_id, base.metadata.orbit_type, {"36.5H": base["temperature"]}, [0.01],
            scan_time=times, scan_start_utc=base.metadata.scan_start_utc, scan_end_utc=base.metadata.scan_end_utc,
        ))  # fmt: skip
    path = write_archive(tmp_path / "t.npz", swaths)
    ds = xr.open_dataset(path, engine="amsr2flow")
    assert ds["scan_time"].dims == ("swath", "scan") and ds["scan_time"].dtype.kind == "M"
    assert str(ds["scan_time"].values[1, 1]) == "2020-01-01T01:00:01.500000000"
    assert np.isnat(ds["scan_time"].values[0, 3]) and np.isnat(ds["scan_time"].values[0, 20:]).all()
    raw = xr.open_dataset(path, engine="amsr2flow", decode_times=False, mask_and_scale=False)
    np.testing.assert_array_equal(raw["scan_time"].values[1, :25], swaths[1]["scan_time"])
    out = dataset.export_archive(path, tmp_path / "t.nc", "netcdf")
    back = xr.open_dataset(out, engine="h5netcdf", decode_times=False, mask_and_scale=False)
    np.testing.assert_array_equal(back["scan_time"].values, raw["scan_time"].values)


def test_exports_follow_the_umask(archive_path: Path, tmp_path: Path) -> None:
    import os

    previous = os.umask(0o027)
    try:
        for to, name in (("zarr", "u.zarr"), ("netcdf", "u.nc")):
            result = subprocess.run(
                [AMSR2FLOW, "export", str(archive_path), "--to", to, "-o", str(tmp_path / name)],
                capture_output=True,
                text=True,
            )
            assert result.returncode == 0, result.stderr
    finally:
        os.umask(previous)
    assert (tmp_path / "u.zarr").stat().st_mode & 0o777 == 0o750  # not mkdtemp's 0700
    assert (tmp_path / "u.nc").stat().st_mode & 0o777 == 0o640


def _record_swath(prefix: str, hour: int, rows: int, channels: dict[str, int], **extra) -> object:
    rng = np.random.default_rng(hour)
    arrays = {
        c: rng.integers(10000, 28000, (rows, 243 if not c.startswith("89") else 486)).astype(np.uint16)
        for c in channels
    }
    return make_swath(
        f"{prefix}_2011100{hour % 9 + 1}0100_001A_L1SGBTBR_2220220",
        "A",
        arrays,
        [0.01] * len(arrays),
        scan_start_utc=f"2011-10-0{hour % 9 + 1}T01:00:00.000Z",
        scan_end_utc=f"2011-10-0{hour % 9 + 1}T01:49:00.000Z",
        **extra,
    )


def test_a_joined_export_pads_scans_and_fills_what_one_archive_lacks(tmp_path: Path) -> None:
    """AMSR-E years (no 7.3 GHz, shorter swaths, archived before scan times and extra variables) joined with
    AMSR2 years: one time series, the missing parts fill, the raw values of each archive unchanged."""
    old = _record_swath("A2ES1M", 1, 30, {"36.5H": 0})
    new = _record_swath(
        "GW1AM2",
        2,
        45,
        {"36.5H": 0, "7.3H": 0},
        scan_time=1.3e9 + 1.5 * np.arange(45),
        extra={"land_fraction": np.full((45, 4, 243), 7, np.uint8)},
    )
    amsre = write_archive(tmp_path / "AMSRE.npz", [old])
    amsr2 = write_archive(tmp_path / "AMSR2.npz", [new])
    empty = write_archive(tmp_path / "empty.npz", [])
    out = dataset.export_archive([amsr2, empty, amsre], tmp_path / "record.nc", "netcdf")
    with xr.open_dataset(out, mask_and_scale=False) as raw:
        assert raw.sizes["swath"] == 2 and raw.sizes["scan"] == 45
        assert list(raw["sensor"].values) == ["AMSR-E", "AMSR2"]
        np.testing.assert_array_equal(raw["tb_36_5H"][0, :30], old["temperature"])
        assert (raw["tb_36_5H"][0, 30:] == 0).all() and (raw["tb_7_3H"][0] == 0).all()  # padding, no channel
        np.testing.assert_array_equal(raw["tb_7_3H"][1], new["7.3H"])
        assert (raw["land_fraction"][0] == 255).all() and (raw["land_fraction"][1] == 7).all()
    with xr.open_dataset(out) as decoded:
        assert bool(decoded["scan_time"][0].isnull().all()) and not bool(decoded["scan_time"][1].isnull().any())
    with pytest.raises(dataset.DatasetError, match="share swaths"):
        dataset.export_archive([amsre, amsre], tmp_path / "twice.zarr", "zarr")
    assert not (tmp_path / "twice.zarr").exists()
