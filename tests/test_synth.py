"""Tests of the synthetic L1B granule generator (amsr2flow.emulator.synth) and its ``amsr2flow synth`` command."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import pytest

from amsr2flow import cli
from amsr2flow.emulator import orbit, synth
from amsr2flow.formats import l1b

DAY = date(2020, 1, 1)
SCANS = 40
OVERLAP = l1b.DEFAULT_OVERLAP_SCANS
TB_36H = l1b.CHANNEL_DATASETS["36.5H"]
TB_36V = l1b.CHANNEL_DATASETS["36.5V"]
GLOBAL_ATTRIBUTES = (
    "PlatformShortName",
    "SensorShortName",
    "StartOrbitNumber",
    "StopOrbitNumber",
    "ObservationStartDateTime",
    "ObservationEndDateTime",
    "OrbitDirection",
    "NumberOfScans",
    "OverlapScans",
    "CoRegistrationParameterA1",
    "CoRegistrationParameterA2",
    "GranuleID",
    "ProductVersion",
)


@pytest.fixture(scope="module")
def spec() -> orbit.GranuleSpec:
    return orbit.granules_beginning_on(DAY)[0]


@pytest.fixture(scope="module")
def small_granule(tmp_path_factory: pytest.TempPathFactory, spec: orbit.GranuleSpec) -> Path:
    path = tmp_path_factory.mktemp("small") / spec.file_name
    synth.write_granule(path, spec, n_scans=SCANS)
    return path


@pytest.fixture(scope="module")
def fields(spec: orbit.GranuleSpec) -> dict[str, np.ndarray]:
    return synth.generate_fields(spec, n_scans=SCANS)


def text(attrs: h5py.AttributeManager, name: str) -> str:
    return attrs[name][0].decode()


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    cos_angle = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return orbit.EARTH_RADIUS_KM * math.acos(max(-1.0, min(1.0, cos_angle)))


# -- structure --------------------------------------------------------------------------------------------------
def check_datasets(h5: h5py.File, rows: int) -> None:
    """Every dataset as the reference table says: name, shape, dtype, attributes, fill, chunked + gzip."""
    assert set(h5.keys()) == {s.name for s in l1b.DATASETS}
    assert len(h5.keys()) == 43
    for s in l1b.DATASETS:
        ds = h5[s.name]
        assert ds.shape == l1b.dataset_shape(s, rows), s.name
        assert ds.dtype == np.dtype(s.dtype), s.name
        if s.scale_factor is None:
            assert "SCALE FACTOR" not in ds.attrs, s.name
        else:
            scale = ds.attrs["SCALE FACTOR"]
            assert scale.shape == (1,) and scale.dtype.kind == "f", s.name
            assert float(scale[0]) == pytest.approx(s.scale_factor, rel=1e-6), s.name
        if s.unit is None:
            assert "UNIT" not in ds.attrs, s.name
        else:
            assert text(ds.attrs, "UNIT") == s.unit, s.name
        if s.fill is not None:
            assert ds.fillvalue == s.fill, s.name
        assert ds.chunks is not None, s.name
        assert ds.ndim == 1 or ds.chunks[-1] == ds.shape[-1], s.name  # full width
        row_axis = 1 if s.shape[0] != "N" else 0
        assert ds.chunks[row_axis] <= synth.CHUNK_ROWS, s.name
        assert ds.compression == "gzip" and ds.shuffle, s.name
        assert h5py.h5g.get_objinfo(h5.id, s.name.encode()).mtime == 0, s.name  # no timestamp: same bytes


def test_small_granule_has_the_reference_structure(small_granule: Path, spec: orbit.GranuleSpec) -> None:
    with h5py.File(small_granule, "r") as h5:
        check_datasets(h5, SCANS + 2 * OVERLAP)
        for name, value in h5.attrs.items():
            assert isinstance(value, np.ndarray) and value.shape == (1,) and value.dtype.kind == "S", name
        assert set(GLOBAL_ATTRIBUTES) <= set(h5.attrs)
        assert text(h5.attrs, "PlatformShortName") == "GCOM-W1"
        assert text(h5.attrs, "SensorShortName") == "AMSR2"
        assert text(h5.attrs, "StartOrbitNumber") == text(h5.attrs, "StopOrbitNumber") == str(spec.orbit_number)
        assert text(h5.attrs, "OrbitDirection") == {"A": "Ascending", "D": "Descending"}[spec.orbit_direction]
        assert text(h5.attrs, "NumberOfScans") == str(SCANS)
        assert text(h5.attrs, "OverlapScans") == str(OVERLAP)
        assert text(h5.attrs, "GranuleID") == small_granule.stem == spec.granule_id
        assert text(h5.attrs, "ProductVersion") == spec.flavour.product_version[0]
        for name in ("ObservationStartDateTime", "ObservationEndDateTime"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text(h5.attrs, name))
        coregistration = re.compile(r"\d+G-(-?\d+\.\d{5})(,\d+G-(-?\d+\.\d{5}))*")
        a1 = text(h5.attrs, "CoRegistrationParameterA1")
        assert coregistration.fullmatch(a1) and a1.startswith("6G-") and "7G-" in a1
        assert "--" in a1 or "--" in text(h5.attrs, "CoRegistrationParameterA2")  # negatives use a double dash
        assert coregistration.fullmatch(text(h5.attrs, "CoRegistrationParameterA2"))


def test_scan_times_are_tai93_and_agree_with_name_attributes_and_spec(
    small_granule: Path, spec: orbit.GranuleSpec
) -> None:
    with h5py.File(small_granule, "r") as h5:
        tai = h5[l1b.SCAN_TIME][...]
        start_text = text(h5.attrs, "ObservationStartDateTime")
        end_text = text(h5.attrs, "ObservationEndDateTime")
    unix = np.array([l1b.tai93_to_unix(t) for t in tai])
    first, last = unix[OVERLAP], unix[OVERLAP + SCANS - 1]
    assert first == pytest.approx(spec.start_unix, abs=1e-6)
    assert last == pytest.approx(spec.end_unix, abs=1e-6)  # reduced scans keep the observation span
    assert np.all(np.diff(unix) > 0)
    assert unix[0] < spec.start_unix and unix[-1] > spec.end_unix  # overlaps outside the span
    name_minute = l1b.parse_granule_name(small_granule.name).start_minute_utc
    assert datetime.fromtimestamp(first, tz=timezone.utc).replace(second=0, microsecond=0) == name_minute
    parsed_start = datetime.fromisoformat(start_text.replace("Z", "+00:00")).timestamp()
    assert 0 <= first - parsed_start < 0.001
    assert datetime.fromisoformat(end_text.replace("Z", "+00:00")).timestamp() == pytest.approx(last, abs=0.001)
    # 2020: 10 leap seconds since 1993, so the 37 s (TAI-UTC) shortcut is 27 s off.
    naive = tai[OVERLAP] + l1b.TAI93_EPOCH_UNIX - 37
    assert first - naive == pytest.approx(27.0, abs=1e-6)


def test_full_size_granule_structure_and_exact_scan_clock(tmp_path: Path) -> None:
    spec = orbit.granules_beginning_on(date(2013, 7, 1))[5]  # 8 leap seconds since 1993 in mid-2013
    path = tmp_path / spec.file_name
    size = synth.write_granule(path, spec)
    assert size == path.stat().st_size
    with h5py.File(path, "r") as h5:
        rows = spec.number_of_scans + 2 * OVERLAP
        check_datasets(h5, rows)
        assert 1970 <= spec.number_of_scans <= 1985
        assert text(h5.attrs, "NumberOfScans") == str(spec.number_of_scans)
        tai = h5[l1b.SCAN_TIME][...]
        tb = h5[TB_36H][...]
    expected_tai = np.array([l1b.unix_to_tai93(t) for t in spec.scan_times_unix(OVERLAP)])
    np.testing.assert_array_equal(tai, expected_tai)
    assert l1b.tai93_to_unix(tai[OVERLAP + spec.number_of_scans - 1]) == pytest.approx(spec.end_unix, abs=1e-6)
    assert tai[OVERLAP] - (spec.start_unix - l1b.TAI93_EPOCH_UNIX) == 8
    assert np.diff(tai) == pytest.approx(l1b.SCAN_PERIOD_S, abs=1e-6)
    whole_missing_rows = int(np.all(tb == l1b.TB_MISSING, axis=1).sum())
    assert whole_missing_rows <= 3
    assert 5_000_000 < size < 60_000_000  # compressed: far below the ~52 MB of raw arrays


def test_every_dataset_reads_back_as_generated(tmp_path: Path, spec: orbit.GranuleSpec) -> None:
    # 300 + 60 rows: the last chunk of 256 rows is a partial (padded) edge chunk.
    path = tmp_path / spec.file_name
    synth.write_granule(path, spec, n_scans=300)
    expected = synth.generate_fields(spec, n_scans=300)
    assert set(expected) == {s.name for s in l1b.DATASETS}
    with h5py.File(path, "r") as h5:
        assert h5[TB_36H].chunks == (synth.CHUNK_ROWS, l1b.LOW_FREQ_PIXELS)
        for name, array in expected.items():
            np.testing.assert_array_equal(h5[name][...], array, err_msg=name)


def test_uncompressed_option_writes_plain_chunks(tmp_path: Path, spec: orbit.GranuleSpec) -> None:
    compressed = synth.write_granule(tmp_path / "a.h5", spec, n_scans=SCANS)
    plain = synth.write_granule(tmp_path / "b.h5", spec, n_scans=SCANS, compression_level=0)
    assert plain > 1.5 * compressed
    with h5py.File(tmp_path / "b.h5", "r") as h5:
        assert h5[TB_36H].compression is None
        np.testing.assert_array_equal(h5[TB_36H][...], synth.generate_fields(spec, n_scans=SCANS)[TB_36H])


# -- determinism and atomicity ----------------------------------------------------------------------------------
def test_same_inputs_give_identical_bytes_and_another_seed_does_not(tmp_path: Path, spec: orbit.GranuleSpec) -> None:
    paths = [tmp_path / d / spec.file_name for d in ("one", "two", "three")]
    for p in paths:
        p.parent.mkdir()
    synth.write_granule(paths[0], spec, n_scans=SCANS, seed=7)
    synth.write_granule(paths[1], spec, n_scans=SCANS, seed=7)
    synth.write_granule(paths[2], spec, n_scans=SCANS, seed=8)
    first, second, other = (p.read_bytes() for p in paths)
    assert first == second
    assert first != other
    with h5py.File(paths[0], "r") as a, h5py.File(paths[2], "r") as b:
        assert not np.array_equal(a[TB_36H][...], b[TB_36H][...])
        np.testing.assert_array_equal(a[l1b.LATITUDE_89A][...], b[l1b.LATITUDE_89A][...])  # geometry is not random


def test_concurrent_writes_match_serial_ones(tmp_path: Path) -> None:
    # The local G-Portal generates granules on worker threads.
    specs = orbit.granules_beginning_on(DAY)[:4]
    (tmp_path / "serial").mkdir()
    (tmp_path / "threads").mkdir()
    for g in specs:
        synth.write_granule(tmp_path / "serial" / g.file_name, g, n_scans=SCANS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda g: synth.write_granule(tmp_path / "threads" / g.file_name, g, n_scans=SCANS), specs))
    for g in specs:
        assert (tmp_path / "threads" / g.file_name).read_bytes() == (tmp_path / "serial" / g.file_name).read_bytes()


def test_failed_write_leaves_nothing_and_keeps_an_existing_file(
    tmp_path: Path, spec: orbit.GranuleSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / spec.file_name
    target.write_bytes(b"previous")
    real_write = synth._write_hdf5

    def write_then_fail(path: Path, *args: object) -> None:
        real_write(path, *args)
        assert path.stat().st_size > 0  # the temporary file did exist
        raise OSError("disk full")

    monkeypatch.setattr(synth, "_write_hdf5", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        synth.write_granule(target, spec, n_scans=SCANS)
    assert [p.name for p in tmp_path.iterdir()] == [spec.file_name]
    assert target.read_bytes() == b"previous"


def test_bad_arguments_are_rejected(tmp_path: Path, spec: orbit.GranuleSpec) -> None:
    with pytest.raises(ValueError, match="n_scans"):
        synth.generate_fields(spec, n_scans=1)
    with pytest.raises(ValueError, match="n_scans"):
        synth.generate_fields(spec, n_scans=spec.number_of_scans + 1)
    with pytest.raises(ValueError, match="overlap_scans"):
        synth.generate_fields(spec, overlap_scans=-1)
    with pytest.raises(ValueError, match="compression_level"):
        synth.write_granule(tmp_path / "x.h5", spec, compression_level=10)
    with pytest.raises(ValueError, match="seed"):
        synth.generate_fields(spec, seed=-1)
    assert list(tmp_path.iterdir()) == []


# -- physical plausibility --------------------------------------------------------------------------------------
def surface_masks(fields: dict[str, np.ndarray], spec: orbit.GranuleSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pure ocean, pure sea ice and pure land pixels of the 243-column grid, from the generator's own model."""
    lat, lon = fields[l1b.LATITUDE_89A][:, ::2], fields[l1b.LONGITUDE_89A][:, ::2]
    land_percent = fields["Land_Ocean Flag 6 to 36"][3]  # the 36 GHz layer
    ice = synth.sea_ice_fraction(lat, lon, synth.granule_day_of_year(spec))
    valid = (fields[TB_36H] < l1b.TB_MISSING_ALT) & (fields[TB_36V] < l1b.TB_MISSING_ALT)
    water = valid & (land_percent == 0)
    return water & (ice == 0), water & (ice >= 1), valid & (land_percent == 100)


@pytest.mark.parametrize("day", [date(2020, 1, 1), date(2016, 7, 15)])
def test_brightness_temperatures_look_like_the_earth(day: date) -> None:
    spec = orbit.granules_beginning_on(day)[2]
    fields = synth.generate_fields(spec, n_scans=60, seed=3)
    ocean, ice, land = surface_masks(fields, spec)
    assert ocean.sum() > 1000 and ice.sum() > 100 and land.sum() > 500  # a half orbit crosses all three
    h = fields[TB_36H] * l1b.TB_SCALE_FACTOR
    v = fields[TB_36V] * l1b.TB_SCALE_FACTOR
    assert 80 <= h[ocean].min() <= h[ocean].max() <= 150
    assert 150 <= v[ocean].min() <= v[ocean].max() <= 220
    assert 200 <= h[ice].min() <= h[ice].max() <= 260
    assert 240 <= h[land].min() <= h[land].max() <= 300
    assert np.mean(v[ocean] >= h[ocean]) > 0.99
    assert 1.0 < h[ocean].std() < 20.0  # weather, not a constant and not noise only

    def ocean_tb(channel: str) -> np.ndarray:
        tb = fields[l1b.CHANNEL_DATASETS[channel]]
        tb = tb[:, ::2] if tb.shape[1] == l1b.HIGH_FREQ_PIXELS else tb  # same points as the 243-column grid
        return tb[ocean] * l1b.TB_SCALE_FACTOR

    def ocean_mean(channel: str) -> float:
        return float(np.mean(ocean_tb(channel)))

    means = [ocean_mean(c) for c in ("6.9H", "10.7H", "18.7H", "36.5H", "89.0AH")]
    assert means == sorted(means)  # rising with frequency over ocean
    assert ocean_mean("23.8H") > ocean_mean("36.5H")  # the water-vapour line
    assert ocean_tb("89.0AH").std() > 2 * ocean_tb("36.5H").std()  # clouds show most at 89 GHz


def test_few_missing_pixels(fields: dict[str, np.ndarray]) -> None:
    missing = total = 0
    for name in l1b.CHANNEL_DATASETS.values():
        tb = fields[name]
        rows = ~np.all(tb == l1b.TB_MISSING, axis=1)  # whole missing scans are counted apart
        missing += int((tb[rows] == l1b.TB_MISSING).sum())
        total += tb[rows].size
        assert tb[tb != l1b.TB_MISSING].max() < l1b.TB_MISSING_ALT
    assert 0 < missing < 0.001 * total


def test_missing_scans_are_whole_rows_and_counted_in_the_attributes(spec: orbit.GranuleSpec) -> None:
    seed = next(s for s in range(10_000) if synth.missing_scan_rows(spec, seed=s, n_scans=SCANS).size)
    rows = synth.missing_scan_rows(spec, seed=seed, n_scans=SCANS)
    fields = synth.generate_fields(spec, seed=seed, n_scans=SCANS)
    for name in l1b.CHANNEL_DATASETS.values():
        np.testing.assert_array_equal(np.flatnonzero(np.all(fields[name] == l1b.TB_MISSING, axis=1)), rows)
    assert np.all(fields["Scan Data Quality"][rows, 0] != 0)
    observed = np.count_nonzero((rows >= OVERLAP) & (rows < OVERLAP + SCANS))
    attrs = synth.global_attributes(spec, seed=seed, n_scans=SCANS)
    assert attrs["NumberOfMissingScans"] == str(observed)


def test_land_ocean_flags_follow_the_land_mask(fields: dict[str, np.ndarray]) -> None:
    flags = fields["Land_Ocean Flag 6 to 36"]
    assert flags.max() == 100 and flags.min() == 0
    lat, lon = fields[l1b.LATITUDE_89A], fields[l1b.LONGITUDE_89A]
    expected = np.rint(synth.land_fraction(lat, lon, "89") * 100)
    np.testing.assert_array_equal(fields["Land_Ocean Flag 89"][0], expected)
    # Lower frequencies see wider footprints: the coast is a wider band of partial land.
    partial = [np.mean((layer > 0) & (layer < 100)) for layer in flags]
    assert partial[0] > partial[3]


def test_geolocation_traces_the_swath(fields: dict[str, np.ndarray]) -> None:
    lat_a, lon_a = fields[l1b.LATITUDE_89A], fields[l1b.LONGITUDE_89A]
    lat_b = fields[l1b.LATITUDE_89B]
    assert np.all(np.abs(lat_a) <= 90) and np.all((lon_a >= -180) & (lon_a < 180))
    assert lat_a.min() < -65 and lat_a.max() > 65  # pole to pole
    mid = lat_a.shape[0] // 2
    width = great_circle_km(lat_a[mid, 0], lon_a[mid, 0], lat_a[mid, -1], lon_a[mid, -1])
    assert 1300 < width < 1600
    assert 0 < np.abs(lat_b - lat_a).max() < 0.5  # the B horn is a few km from A
    incidence = fields["Earth Incidence"] * 0.01
    assert np.all(np.abs(incidence - 55.0) < 1.0)
    sun_elevation = fields["Sun Elevation"] * 0.01
    assert np.all(np.abs(sun_elevation) <= 90) and sun_elevation.max() > 0 > sun_elevation.min()


def test_overlap_scans_repeat_the_next_granule() -> None:
    first, second = orbit.granules_beginning_on(DAY)[3:5]
    a = synth.generate_fields(first, seed=1)
    b = synth.generate_fields(second, seed=1)
    # a's trailing overlap rows and b's first rows are less than one scan period apart.
    tail = slice(OVERLAP + first.number_of_scans, OVERLAP + first.number_of_scans + OVERLAP)
    head = slice(OVERLAP, 2 * OVERLAP)
    gap = np.array([l1b.tai93_to_unix(t) for t in b[l1b.SCAN_TIME][head]]) - [
        l1b.tai93_to_unix(t) for t in a[l1b.SCAN_TIME][tail]
    ]
    assert np.all(np.abs(gap) < l1b.SCAN_PERIOD_S)
    ta, tb = a[TB_36H][tail].astype(float), b[TB_36H][head].astype(float)
    valid = (ta < l1b.TB_MISSING_ALT) & (tb < l1b.TB_MISSING_ALT)
    assert np.median(np.abs(ta - tb)[valid]) * l1b.TB_SCALE_FACTOR < 3.0


def test_weather_is_continuous_across_midnight() -> None:
    midnight = datetime(2020, 1, 2, tzinfo=timezone.utc).timestamp()
    lat, lon = np.linspace(-80, 80, 50), np.linspace(-180, 170, 50)
    before = synth.smooth_field(0, "vapour", lat, lon, np.full(50, midnight - 0.5))
    after = synth.smooth_field(0, "vapour", lat, lon, np.full(50, midnight + 0.5))
    assert np.abs(after - before).max() < 0.01
    assert 0.3 < before.std() < 3.0
    later = synth.smooth_field(0, "vapour", lat, lon, np.full(50, midnight + 86400.0 * 3))
    assert np.abs(later - before).max() > 0.5  # the weather does change


# -- AMSR-E ---------------------------------------------------------------------------------------------------
def test_amsre_granule_has_no_7ghz_and_names_aqua(tmp_path: Path) -> None:
    spec = orbit.granules_beginning_on(date(2005, 6, 1), orbit.AMSRE)[0]
    path = tmp_path / spec.file_name
    synth.write_granule(path, spec, n_scans=20)
    assert path.name.startswith("A2ES1M_20050601")
    with h5py.File(path, "r") as h5:
        names = set(h5.keys())
        assert len(names) == 41
        assert not any("7.3GHz" in n for n in names)
        assert names == {s.name for s in l1b.DATASETS} - {l1b.CHANNEL_DATASETS[c] for c in l1b.AMSRE_MISSING_CHANNELS}
        assert text(h5.attrs, "PlatformShortName") == "Aqua"
        assert text(h5.attrs, "SensorShortName") == "AMSR-E"
        assert "7G" not in text(h5.attrs, "CoRegistrationParameterA1")
        assert h5[TB_36H].shape == (20 + 2 * OVERLAP, l1b.LOW_FREQ_PIXELS)


# -- command line -----------------------------------------------------------------------------------------------
def test_cli_writes_a_days_granules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "granules"
    assert cli.main(["synth", "--date", "2020-01-01", "--scans", "8", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    files = sorted(out.iterdir())
    assert 29 <= len(files) <= 30 and len(lines) == len(files)
    assert [f.name for f in files] == sorted(g.file_name for g in orbit.granules_beginning_on(DAY))
    for line in lines:
        path, size = line.split("\t")
        assert Path(path).stat().st_size == int(size)
        assert l1b.GRANULE_NAME_RE.match(Path(path).name)
    with h5py.File(files[0], "r") as h5:
        assert h5[TB_36H].shape[0] == 8 + 2 * OVERLAP


def test_cli_one_granule_with_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wanted = orbit.granules_beginning_on(date(2008, 2, 2), orbit.AMSRE)[4]
    argv = ["synth", "--date", "2008-02-02", "--flavour", "amsre", "--granule", wanted.file_name]
    argv += ["--scans", "5", "--overlap", "2", "--seed", "9", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    assert [p.name for p in tmp_path.iterdir()] == [wanted.file_name]
    assert len(capsys.readouterr().out.splitlines()) == 1
    with h5py.File(tmp_path / wanted.file_name, "r") as h5:
        assert h5[TB_36H].shape == (5 + 2 * 2, l1b.LOW_FREQ_PIXELS)
        assert text(h5.attrs, "OverlapScans") == "2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2020-13-01"], "YYYY-MM-DD"),
        (["--date", "20200101"], "YYYY-MM-DD"),
        (["--date", "2020-01-02", "--end-date", "2020-01-01"], "before"),
        (["--date", "2011-01-01"], "outside the AMSR2 mission"),
        (["--date", "2012-01-01", "--flavour", "amsre"], "outside the AMSR-E mission"),
        (["--date", "2020-01-01", "--flavour", "ssmi"], "--flavour"),
        (["--date", "2020-01-01", "--granule", "GW1AM2_202001010047_999D_L1SGBTBR_2220220"], "granule"),
        (["--date", "2020-01-01", "--scans", "1"], "--scans"),
        (["--date", "2020-01-01", "--scans", "many"], "--scans"),
        (["--date", "2020-01-01", "--seed", "-3"], "--seed"),
        (["--date", "2020-01-01", "--overlap", "-1"], "--overlap"),
    ],
)
def test_cli_rejects_bad_input_without_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert cli.main(["synth", *args, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert message in captured.err and "error" in captured.err
    assert not out.exists()  # nothing created, not even the folder


def test_cli_rejects_an_unwritable_out_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "below"):
        assert cli.main(["synth", "--date", "2020-01-01", "--scans", "4", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "--out" in err and len(err.strip().splitlines()) == 1
    assert blocker.read_text() == "not a folder"


def test_module_entry_point_goes_through_the_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "amsr2flow.emulator.synth", "--date", "2020-02-30", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "amsr2flow synth: error: --date '2020-02-30'" in done.stderr
