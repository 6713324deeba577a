"""Extra variables (angles, land fraction, quality flags): extraction raw from the granule, swath and archive
round trips, verification, the xarray view of archives whose swaths hold different sets."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from amsr2flow.emulator import orbit, synth
from amsr2flow.formats import archive, variables, verify
from amsr2flow.formats.swath import extract_swath, read_swath, write_swath
from amsr2flow.stages.archives import variables_notice

ALL = tuple(variables.EXTRA_VARIABLES)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def granules(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("granules")
    paths = []
    # the day's granules over North America and Europe carry RFI flags in the local G-Portal's granules
    for spec in orbit.granules_beginning_on(date(2020, 1, 1))[:3]:
        synth.write_granule(folder / spec.file_name, spec, n_scans=60)
        paths.append(folder / spec.file_name)
    return paths


def test_every_variable_is_the_granules_dataset_unchanged(granules: list[Path]) -> None:
    swath = extract_swath(granules[0], ("36.5H",), True, extra_variables=list(reversed(ALL)))
    assert swath.metadata.variables == ALL  # the registry's order, whatever the configuration's
    with h5py.File(granules[0], "r") as h5:
        for name in ("earth_incidence", "earth_azimuth", "sun_elevation", "sun_azimuth", "pixel_quality_89"):
            dataset = variables.EXTRA_VARIABLES[name].dataset
            np.testing.assert_array_equal(swath[name], h5[dataset][()])
            assert swath[name].dtype == h5[dataset].dtype
        # layers second: (scan, layer, pixel), the same values
        np.testing.assert_array_equal(swath["land_fraction"], np.moveaxis(h5["Land_Ocean Flag 6 to 36"][()], 0, 1))
        np.testing.assert_array_equal(swath["land_fraction_89"], np.moveaxis(h5["Land_Ocean Flag 89"][()], 0, 1))
        # two bytes per pixel, least significant first, are one uint16 flag word
        raw = h5["Pixel Data Quality 6 to 36"][()]
        np.testing.assert_array_equal(swath["pixel_quality"], raw[:, 0::2] + 256 * raw[:, 1::2].astype(np.uint16))
        np.testing.assert_array_equal(swath["scan_quality"], h5["Scan Data Quality"][()])
    assert 54.0 < swath["earth_incidence"].mean() * 0.01 < 56.0  # AMSR2's 55 degree incidence


def test_rfi_flags_of_the_local_gportal_reach_the_swath(granules: list[Path]) -> None:
    words = [extract_swath(g, extra_variables=["pixel_quality"])["pixel_quality"] for g in granules]
    assert any((w & 0x0004).any() or (w & 0x0001).any() for w in words)
    assert all((w[w != 0] & ~np.uint16(0x0005) == 0).all() for w in words)


def test_swath_and_archive_round_trip_and_verify(granules: list[Path], tmp_path: Path) -> None:
    paths = []
    for i, granule in enumerate(granules):
        extra = ALL if i != 1 else ("land_fraction",)  # swaths of one archive may hold different sets
        swath = extract_swath(granule, ("36.5H", "89.0AV"), True, extra_variables=extra)
        paths.append(write_swath(swath, tmp_path / "swaths" / f"{swath.granule_id}.npy"))
        back = read_swath(paths[-1])
        assert back.metadata == swath.metadata
        for name in extra:
            np.testing.assert_array_equal(back[name], swath[name])
    target = archive.write_archive(tmp_path / "a.npz", paths)
    with archive.Archive(target) as arch:
        assert [m.variables for m in (arch.metadata(i) for i in range(3))] == [ALL, ("land_fraction",), ALL]
        np.testing.assert_array_equal(arch[2]["sun_elevation"], read_swath(paths[2])["sun_elevation"])
    with np.load(target, allow_pickle=False) as plain:  # plain numpy reads every member
        assert plain[f"swaths/{read_swath(paths[0]).granule_id}/land_fraction"].shape == (
            read_swath(paths[0]).metadata.shape[0],
            4,
            243,
        )
    assert verify.verify_archive(target).ok


def test_verify_catches_values_outside_their_physical_range(granules: list[Path], tmp_path: Path) -> None:
    swath = extract_swath(granules[0], extra_variables=["earth_incidence", "land_fraction"])
    swath.arrays["land_fraction"][3, 0, 5] = 140  # no footprint is 140 % land
    swath.arrays["earth_incidence"][2, 2] = 12000  # 120 degrees
    target = archive.write_archive(tmp_path / "a.npz", [write_swath(swath, tmp_path / f"{swath.granule_id}.npy")])
    problems = " ".join(verify.verify_archive(target).problems())
    assert "land_fraction outside [0, 100]" in problems and "earth_incidence outside [0, 90]" in problems


def test_a_variable_a_granule_holds_otherwise_is_left_out_not_the_granule(
    granules: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    odd = tmp_path / granules[0].name
    odd.write_bytes(granules[0].read_bytes())
    with h5py.File(odd, "r+") as h5:
        h5["Sun Elevation"].attrs["SCALE FACTOR"] = np.array([0.1], dtype=np.float32)
        del h5["Land_Ocean Flag 89"]
    swath = extract_swath(odd, extra_variables=["sun_elevation", "earth_incidence", "land_fraction_89"])
    assert swath.metadata.variables == ("earth_incidence",)  # the temperatures and the sound variable stay
    assert "sun_elevation left out" in caplog.text and "SCALE FACTOR 0.1" in caplog.text
    assert "land_fraction_89 left out" in caplog.text and "'Land_Ocean Flag 89' is missing" in caplog.text


def test_the_dataset_shows_each_variable_with_cf_attributes_and_fills_where_absent(
    granules: list[Path], tmp_path: Path
) -> None:
    xr = pytest.importorskip("xarray")
    paths = []
    for i, granule in enumerate(granules):
        swath = extract_swath(granule, ("36.5H",), True, extra_variables=ALL if i != 1 else ())
        paths.append(write_swath(swath, tmp_path / f"{swath.granule_id}.npy"))
    target = archive.write_archive(tmp_path / "a.npz", paths)
    with xr.open_dataset(target, engine="amsr2flow") as ds:
        assert ds["earth_incidence"].attrs["standard_name"] == "sensor_zenith_angle"
        assert ds["land_fraction"].dims == ("swath", "scan", "land_layer", "pixel")
        assert list(ds["land_layer"].values) == ["6.9", "10.7", "23.8", "36.5"]
        assert bool(ds["earth_incidence"][1].isnull().all())  # the swath extracted without variables
        first = read_swath(paths[0])
        np.testing.assert_allclose(ds["earth_incidence"][0, : first.metadata.shape[0]], first["earth_incidence"] * 0.01)
        assert ds["pixel_quality"].dtype == np.uint16  # flags stay integers, padding says so in the comment
        assert (ds["pixel_quality"][1] == 65535).all()
    with xr.open_dataset(target, engine="amsr2flow", mask_and_scale=False) as raw:
        assert raw["earth_incidence"].dtype == np.int16 and raw["land_fraction"].dtype == np.uint8


def test_the_schema_offers_exactly_the_registry() -> None:
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"]["variables"]["items"]["enum"] == list(ALL)
    assert schema["properties"]["variables"]["default"] == []


def test_a_start_notice_names_archives_built_with_another_set(granules: list[Path], tmp_path: Path) -> None:
    swath = extract_swath(granules[0], extra_variables=["land_fraction"])
    built = archive.write_archive(tmp_path / "a.npz", [write_swath(swath, tmp_path / f"{swath.granule_id}.npy")])
    assert variables_notice([built], ("land_fraction",)) is None
    notice = variables_notice([built], ("earth_incidence", "land_fraction"))
    assert notice is not None and "in a.npz, has [land_fraction]" in notice and "downloaded again" in notice
