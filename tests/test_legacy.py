"""Legacy pickled archives: refusal without trust, conversion with it, hostile pickles, export back."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from amsr2flow import cli
from amsr2flow.formats.archive import LegacyPickleRefused, NotAnArchiveError, write_archive
from amsr2flow.formats.legacy import (
    LegacyFormatError,
    UnsafeLegacyContent,
    convert_legacy,
    export_legacy,
    load_legacy_archive,
)
from amsr2flow.formats.reader import open_archive
from amsr2flow.formats.swath import make_swath
from amsr2flow.formats.verify import verify_archive

LEGACY_NAME = "AMSR2_temp_only_20160101_000000_to_20170101_000000.npz"
PERIOD = "2016-01-01T00:00:00 to 2017-01-01T00:00:00"


def legacy_swath_dicts(count: int, coordinates: bool = False) -> list[dict]:
    """Swath dictionaries exactly as the legacy processors build them (int16, as their README says)."""
    rng = np.random.default_rng(7)
    swaths = []
    for i in range(count):
        raw = rng.integers(9000, 30000, (2000 + 10 * i, 243)).astype(np.int16)
        raw[0, :4] = 0  # invalid pixels
        raw[1, :2] = -1  # 65535 (missing) that the legacy extraction cast to int16
        metadata = {
            "orbit_type": "AD"[i % 2],
            "scale_factor": 0.01,
            "temp_range": (int(raw.min()), int(raw.max())),
            "shape": raw.shape,
        }
        swath = {"temperature": raw, "metadata": metadata}
        if coordinates:
            lat = np.sort(rng.uniform(-89, 89, raw.shape), axis=0).astype(np.float32)  # north: an ascending pass
            lat = lat if metadata["orbit_type"] == "A" else lat[::-1]
            lon = rng.uniform(-180, 180, raw.shape).astype(np.float32)
            swath.update(latitude=lat, longitude=lon)
            metadata.update(lat_range=(float(lat.min()), float(lat.max())), lon_range=(float(lon.min()), 1.0))
        swaths.append(swath)
    return swaths


def write_legacy_npz(path: Path, swaths: list[dict], period: str = PERIOD) -> Path:
    """The legacy layout: savez_compressed of an object array of dictionaries and the period."""
    swath_array = np.empty(len(swaths), dtype=object)
    swath_array[:] = swaths
    np.savez_compressed(path, swath_array=swath_array, period=np.array(period))
    return path


@pytest.fixture
def legacy_file(tmp_path: Path) -> Path:
    return write_legacy_npz(tmp_path / LEGACY_NAME, legacy_swath_dicts(3))


def test_legacy_archive_is_refused_without_trust(legacy_file: Path) -> None:
    with pytest.raises(LegacyPickleRefused, match="allow_legacy_pickle=True") as caught:
        open_archive(legacy_file)
    assert "runs whatever code" in str(caught.value) and "--trust-legacy-pickle" in str(caught.value)
    with pytest.raises(LegacyPickleRefused):
        load_legacy_archive(legacy_file)


def test_trusted_legacy_archive_reads_like_the_new_format(legacy_file: Path) -> None:
    originals = legacy_swath_dicts(3)
    with open_archive(legacy_file, allow_legacy_pickle=True) as legacy:
        assert len(legacy) == 3 and legacy.period == PERIOD
        swath = legacy[1]
        assert swath["metadata"]["orbit_type"] == "D"
        assert swath.granule_id == f"legacy_{legacy_file.stem}_00001"
        raw = swath["temperature"]
        assert raw.dtype == np.uint16 and raw.shape == (2010, 243)
        want = originals[1]["temperature"].view(np.uint16).copy()
        want[want >= 65534] = 0
        np.testing.assert_array_equal(raw, want)
        assert len(legacy.select(orbit_type="A")) == 2


def test_convert_legacy_then_verify(legacy_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "converted"
    out.mkdir()
    converted = convert_legacy(legacy_file, out, trust_legacy_pickle=True)
    # named for what it is, not like the pickle it came from (which a folder of both could not tell apart)
    assert converted.name == LEGACY_NAME.replace(".npz", "_converted.npz")
    report = verify_archive(converted)
    assert report.ok and report.swaths == 3, report.summary()
    with np.load(converted, allow_pickle=False) as data:  # the result needs no pickle at all
        assert str(data["period"]) == PERIOD
    with open_archive(converted) as archive:
        assert [s["metadata"]["orbit_type"] for s in archive] == ["A", "D", "A"]  # original order kept
        assert archive[0]["metadata"]["scan_start_utc"] == ""  # legacy swaths carry no times
        notes = " ".join(archive.provenance["notes"])
        assert "legacy" in notes and "synthesised" in notes and "mapped to 0" in notes
        assert archive.index["scan_start_utc"].isna().all()


def test_convert_legacy_with_coordinates_and_parts(tmp_path: Path) -> None:
    part = write_legacy_npz(tmp_path / LEGACY_NAME.replace(".npz", "_part_2of5.npz"), legacy_swath_dicts(2, True))
    converted = convert_legacy(part, tmp_path / "new.npz", trust_legacy_pickle=True)
    assert verify_archive(converted).ok
    with open_archive(converted) as archive:
        assert archive.geolocation and archive[1]["latitude"].dtype == np.float32
        assert archive[1]["latitude"].shape == archive[1]["temperature"].shape
        assert "_part_2of5_00001" in archive[1].granule_id


def test_convert_legacy_command(legacy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert cli.main(["convert-legacy", str(legacy_file), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--trust-legacy-pickle" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())
    assert cli.main(["convert-legacy", str(legacy_file), "-o", str(out), "--trust-legacy-pickle"]) == 0
    converted = out / LEGACY_NAME.replace(".npz", "_converted.npz")
    assert capsys.readouterr().out.strip() == str(converted)  # the command says what it wrote
    assert cli.main(["verify", str(converted)]) == 0
    capsys.readouterr()
    assert cli.main(["verify", str(legacy_file)]) == 2  # untrusted legacy: refused, not "damaged"
    # each command names its own flag (verify used to point at open_archive and convert-legacy)
    assert f"`amsr2flow verify --trust-legacy-pickle {legacy_file}`" in capsys.readouterr().err
    assert cli.main(["verify", "--trust-legacy-pickle", str(legacy_file)]) == 0
    capsys.readouterr()
    assert cli.main(["info", str(legacy_file)]) == 2
    assert f"`amsr2flow info --trust-legacy-pickle {legacy_file}`" in capsys.readouterr().err
    assert cli.main(["info", "--trust-legacy-pickle", str(legacy_file)]) == 0


# -- hostile files --------------------------------------------------------------------------------------------
class Payload:
    """Unpickling this runs a shell command (the attack an NPZ with allow_pickle=True is open to)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_executes_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = write_legacy_npz(tmp_path / LEGACY_NAME, [{"temperature": Payload(marker), "metadata": {}}])
    # without the flag: refused before any unpickling
    with pytest.raises(LegacyPickleRefused):
        open_archive(hostile)
    assert cli.main(["info", str(hostile)]) == 2
    assert cli.main(["verify", str(hostile)]) == 2
    # even with the flag: the restricted unpickler refuses os.system
    with pytest.raises(UnsafeLegacyContent, match="system"):
        open_archive(hostile, allow_legacy_pickle=True)
    assert cli.main(["convert-legacy", str(hostile), "-o", str(tmp_path / "o"), "--trust-legacy-pickle"]) == 2
    assert not marker.exists()
    # control: the file really is hostile for a plain np.load(allow_pickle=True)
    with np.load(hostile, allow_pickle=True) as data:
        data["swath_array"]
    assert marker.exists()


def test_other_files_get_clear_errors(tmp_path: Path) -> None:
    not_a_swath = tmp_path / "x.npz"
    swath_array = np.empty(1, dtype=object)
    swath_array[0] = [1, 2, 3]
    np.savez_compressed(not_a_swath, swath_array=swath_array)
    with pytest.raises(LegacyFormatError, match="not a swath dictionary"):
        open_archive(not_a_swath, allow_legacy_pickle=True)
    plain = tmp_path / "plain.npz"
    np.savez(plain, swath_array=np.zeros(3))  # no pickle inside: not a legacy archive
    with pytest.raises(NotAnArchiveError):
        open_archive(plain, allow_legacy_pickle=True)


# -- export ---------------------------------------------------------------------------------------------------
def new_swaths(count: int) -> list:
    rng = np.random.default_rng(3)
    return [
        make_swath(
            f"GW1AM2_2020010{i + 1}0047_189{'AD'[i % 2]}_L1SGBTBR_2220220",
            "AD"[i % 2],
            {"36.5H": rng.integers(9000, 30000, (50, 243)).astype(np.uint16)},
            [0.01],
            latitude=np.sort(rng.uniform(-80, 80, (50, 243)), axis=0)[:: 1 if i % 2 == 0 else -1].astype(np.float32),
            longitude=rng.uniform(-180, 180, (50, 243)).astype(np.float32),
            scan_start_utc=f"2020-01-0{i + 1}T00:47:12.000Z",
            scan_end_utc=f"2020-01-0{i + 1}T01:36:40.500Z",
            overlap_scans=3,
            source_size=123,
            source_sha256="ab" * 32,
            product_version="2220220",
        )
        for i in range(count)
    ]


def test_export_legacy_runs_the_legacy_readme_snippet_and_converts_back(tmp_path: Path) -> None:
    swaths = new_swaths(3)
    archive = write_archive(tmp_path / "new.npz", swaths)
    exported = export_legacy(archive, tmp_path / "legacy" / LEGACY_NAME)
    assert export_legacy(archive, tmp_path / "again.npz").read_bytes() == exported.read_bytes()  # deterministic

    # The legacy README's loading snippet, unchanged
    with np.load(exported, allow_pickle=True) as data:
        swath_array = data["swath_array"]
        period = data["period"]
    swath = swath_array[0]
    raw_temp = swath["temperature"]
    metadata = swath["metadata"]
    scale_factor = metadata["scale_factor"]
    temperature_kelvin = raw_temp.astype(float) * scale_factor
    temperature_kelvin[raw_temp == 0] = np.nan
    latitude = swath["latitude"]
    valid_mask = raw_temp != 0
    assert latitude[valid_mask].size == raw_temp[valid_mask].size
    ascending = [s for s in swath_array if s["metadata"]["orbit_type"] == "A"]
    assert len(ascending) == 2 and str(period).startswith("2020-01-01T00:47:12 to ")
    np.testing.assert_allclose(temperature_kelvin, swaths[0]["temperature"] * 0.01)

    # ... and back: the exported metadata carries ids and times, so the conversion is exact
    back = convert_legacy(exported, tmp_path / "back.npz", trust_legacy_pickle=True)
    with open_archive(back) as archive_back:
        for got, want in zip(archive_back, swaths, strict=True):
            assert got.metadata == want.metadata
            for name in want.arrays:
                np.testing.assert_array_equal(got[name], want[name])


def test_export_legacy_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = write_archive(tmp_path / "new.npz", new_swaths(2))
    assert cli.main(["export-legacy", str(archive), str(tmp_path / LEGACY_NAME)]) == 0
    assert "do not share" in capsys.readouterr().err
    with zipfile.ZipFile(tmp_path / LEGACY_NAME) as zf:
        assert zf.namelist() == ["swath_array.npy", "period.npy"]


def test_export_legacy_keeps_per_scan_times_through_the_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    times = 1577836800.0 + np.arange(12) * 1.5
    swath = make_swath(
        "GW1AM2_202001010000_001A_L1SGBTBR_2220220",
        "A",
        {"36.5H": rng.integers(10000, 28000, (12, 243)).astype(np.uint16)},
        [0.01],
        scan_time=times,
        scan_start_utc="2020-01-01T00:00:00.000Z",
        scan_end_utc="2020-01-01T00:00:16.500Z",
    )
    source = write_archive(tmp_path / "s.npz", [swath])
    legacy = export_legacy(source, tmp_path / "legacy.npz")
    back = convert_legacy(legacy, tmp_path / "back.npz", trust_legacy_pickle=True)
    with open_archive(back) as archive:
        assert archive[0].metadata.has_scan_times
        np.testing.assert_array_equal(archive[0]["scan_time"], times)
