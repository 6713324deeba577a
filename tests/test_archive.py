"""The archive format: streaming writer, determinism, atomicity, partitioning, lazy reader."""

from __future__ import annotations

import tracemalloc
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import amsr2flow
from amsr2flow import cli
from amsr2flow.cli.archive import orbit_types_in_words
from amsr2flow.formats.archive import (
    ArchiveError,
    ArchiveOrderError,
    ArchiveWriter,
    NotAnArchiveError,
    archive_name,
    crop_or_pad,
    part_name,
    partition_archive,
    partition_swaths,
    to_kelvin,
    write_archive,
)
from amsr2flow.formats.reader import open_archive
from amsr2flow.formats.swath import Swath, make_swath, read_swath, write_swath


def synthetic_swath(i: int, rows: int = 40, geolocation: bool = False, orbit_type: str | None = None) -> Swath:
    rng = np.random.default_rng(i)
    temperature = rng.integers(10000, 28000, (rows, 243)).astype(np.uint16)
    temperature[i % rows, :10] = 0
    channels = {"36.5H": temperature, "89.0AV": rng.integers(10000, 28000, (rows, 486)).astype(np.uint16)}
    positions = {}
    kind = orbit_type or "AD"[i % 2]
    if geolocation:
        latitude = np.sort(rng.uniform(-70, 70, (rows, 243)), axis=0)  # rising: a half orbit going north
        positions = {
            "latitude": (latitude if kind == "A" else latitude[::-1]).astype(np.float32),
            "longitude": rng.uniform(-180, 180, (rows, 243)).astype(np.float32),
        }
    return make_swath(
        f"GW1AM2_202001{1 + i // 24:02d}{i % 24:02d}00_{100 + i:03d}{kind}_L1SGBTBR_2220220",
        kind,
        channels,
        [0.01, 0.01],
        scan_start_utc=f"2020-01-{1 + i // 24:02d}T{i % 24:02d}:00:00.000Z",
        scan_end_utc=f"2020-01-{1 + i // 24:02d}T{i % 24:02d}:49:00.000Z",
        overlap_scans=2,
        source_size=1000 + i,
        source_sha256=f"{i:064x}",
        product_version="2220220",
        **positions,
    )


def swath_files(folder: Path, count: int, **kwargs: object) -> list[Path]:
    return [
        write_swath(s, folder / f"{s.granule_id}.npy") for s in (synthetic_swath(i, **kwargs) for i in range(count))
    ]


def assert_same_swath(got: object, want: Swath) -> None:
    assert got.metadata == want.metadata  # type: ignore[attr-defined]
    for name, array in want.arrays.items():
        np.testing.assert_array_equal(got[name], array)  # type: ignore[index]
        assert got[name].dtype == array.dtype  # type: ignore[index]


# -- round trip -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("geolocation", [False, True])
def test_swath_to_archive_to_parts_to_reader_round_trip(tmp_path: Path, geolocation: bool) -> None:
    originals = [synthetic_swath(i, geolocation=geolocation) for i in range(7)]
    paths = [write_swath(s, tmp_path / "swaths" / f"{s.granule_id}.npy") for s in originals]
    archive = write_archive(tmp_path / "year.npz", reversed(paths), config_digest="cfg")  # sorted by time
    with open_archive(archive) as whole:
        assert [s.granule_id for s in whole] == [s.granule_id for s in originals]
        for got, want in zip(whole, originals, strict=True):
            assert_same_swath(got, want)
    parts = partition_archive(archive, tmp_path / "parts", part_size=3)
    assert [p.name for p in parts] == [f"year_part_{i}of3.npz" for i in (1, 2, 3)]
    read_back = []
    for part in parts:
        with open_archive(part) as opened:
            assert opened.period.startswith("2020-01-01T00:00:00 to ")
            assert opened.provenance["config_digest"] == "cfg"
            read_back.extend(s.load() for s in opened)
    assert len(read_back) == len(originals)
    for got, want in zip(read_back, originals, strict=True):
        assert_same_swath(got, want)


def test_archive_loads_with_plain_numpy_and_no_pickle(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "a.npz", [synthetic_swath(i, geolocation=True) for i in range(3)])
    with np.load(archive, allow_pickle=False) as data:
        gid = str(data["index"]["granule_id"][1])
        np.testing.assert_array_equal(data[f"swaths/{gid}/temperature"], synthetic_swath(1)["temperature"])
        assert data["period"].shape == () and " to " in str(data["period"])
        assert not any(data["index"].dtype[name].hasobject for name in data["index"].dtype.names)
        provenance = str(data["provenance"])
        assert amsr2flow.JAXA_ACKNOWLEDGEMENT in provenance and amsr2flow.__version__ in provenance
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in zf.infolist())
    assert names[-3:] == ["index.npy", "period.npy", "provenance.npy"]
    assert names[:4] == [
        f"swaths/{synthetic_swath(0).granule_id}/{a}.npy" for a in ("temperature", "89.0AV", "latitude", "longitude")
    ]


def test_same_swaths_give_byte_identical_archives(tmp_path: Path) -> None:
    swaths = [synthetic_swath(i) for i in range(4)]
    a = write_archive(tmp_path / "a" / "x.npz", swaths, config_digest="d")
    b = write_archive(tmp_path / "b" / "x.npz", swaths, config_digest="d")
    assert a.read_bytes() == b.read_bytes()


def test_parts_from_archive_are_identical_to_parts_from_swath_files(tmp_path: Path) -> None:
    paths = swath_files(tmp_path / "swaths", 5)
    from_files = partition_swaths(paths, tmp_path / "p1", part_size=2, config_digest="d")
    whole = write_archive(tmp_path / "whole" / "w.npz", paths, config_digest="d")
    from_archive = partition_archive(whole, tmp_path / "p2", part_size=2)
    assert len(from_files) == len(from_archive) == 3
    assert from_files[0].name.endswith("_part_1of3.npz") and from_files[0].name.startswith("AMSR2_temp_only_2020")
    for a, b in zip(from_files, from_archive, strict=True):
        assert a.read_bytes() == b.read_bytes()  # the raw member copy is exact


# -- writer rules ---------------------------------------------------------------------------------------------
def test_writer_refuses_out_of_order_and_duplicate_swaths(tmp_path: Path) -> None:
    with pytest.raises(ArchiveOrderError, match="time order"), ArchiveWriter(tmp_path / "a.npz") as writer:
        writer.add(synthetic_swath(2))
        writer.add(synthetic_swath(1))
    with pytest.raises(ArchiveOrderError, match="duplicate"), ArchiveWriter(tmp_path / "a.npz") as writer:
        writer.add(synthetic_swath(1))
        writer.add(synthetic_swath(1))
    assert list(tmp_path.iterdir()) == []  # nothing under the final name, no temporary left


def test_writer_refuses_mixed_configurations(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="one configuration"), ArchiveWriter(tmp_path / "a.npz") as writer:
        writer.add(synthetic_swath(0))
        writer.add(synthetic_swath(1, geolocation=True))


def test_crash_mid_stream_leaves_nothing_under_the_final_name(tmp_path: Path) -> None:
    target = tmp_path / "a.npz"
    target_existing = tmp_path / "b.npz"
    write_archive(target_existing, [synthetic_swath(0)])
    before = target_existing.read_bytes()
    for path in (target, target_existing):
        with pytest.raises(RuntimeError), ArchiveWriter(path) as writer:
            writer.add(synthetic_swath(0))
            raise RuntimeError("killed")
    assert not target.exists()
    assert target_existing.read_bytes() == before  # the previous version survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.npz"]


def test_writer_memory_is_bounded_by_one_swath(tmp_path: Path) -> None:
    full = synthetic_swath(0, rows=2040)
    one_swath = sum(a.nbytes for a in full.arrays.values())
    extra = 0
    tracemalloc.start()
    try:
        with ArchiveWriter(tmp_path / "a.npz") as writer:
            for i in range(25):
                swath = make_swath(
                    f"G{i:03d}", "A", {"36.5H": full["temperature"], "89.0AV": full["89.0AV"]}, [0.01, 0.01]
                )
                tracemalloc.reset_peak()
                baseline, _ = tracemalloc.get_traced_memory()
                writer.add(swath)
                _, peak = tracemalloc.get_traced_memory()
                extra = max(extra, peak - baseline)
                del swath
    finally:
        tracemalloc.stop()
    assert extra < 0.5 * one_swath  # adding a swath costs well under its own size, however many came before


# -- reader ---------------------------------------------------------------------------------------------------
@pytest.fixture
def archive_path(tmp_path: Path) -> Path:
    return write_archive(tmp_path / "a.npz", [synthetic_swath(i, geolocation=True) for i in range(6)])


def test_reader_collection_interface(archive_path: Path) -> None:
    with amsr2flow.open_archive(archive_path) as archive:
        assert len(archive) == 6
        assert archive[-1].granule_id == synthetic_swath(5).granule_id
        assert [s.granule_id for s in archive[1:3]] == [synthetic_swath(i).granule_id for i in (1, 2)]
        gid = synthetic_swath(4).granule_id
        assert archive[gid].metadata.granule_id == gid
        with pytest.raises(IndexError):
            archive[6]
        with pytest.raises(KeyError):
            archive["nope"]
        swath = archive[0]
        # the legacy dictionary access
        assert swath["temperature"].shape == (40, 243)
        assert swath["latitude"].dtype == np.float32
        meta = swath["metadata"]
        assert meta["orbit_type"] == "A" and meta["scale_factor"] == 0.01
        assert meta["temp_range"] == synthetic_swath(0).metadata.temp_range and meta["shape"] == (40, 243)
        assert set(meta["lat_range"]) and meta["granule_id"] == swath.granule_id
        ascending = [s for s in archive if s["metadata"]["orbit_type"] == "A"]
        assert len(ascending) == 3


def test_reader_index_and_select(archive_path: Path) -> None:
    with open_archive(archive_path) as archive:
        frame = archive.index
        assert len(frame) == 6 and str(frame["scan_start_utc"].dtype).startswith("datetime64")
        assert list(frame["orbit_type"]) == ["A", "D"] * 3
        descending = archive.select(orbit_type="D")
        assert len(descending) == 3 and all(s["metadata"]["orbit_type"] == "D" for s in descending)
        window = archive.select(start="2020-01-01T01:00:00", end=datetime(2020, 1, 1, 4))
        assert [s.granule_id for s in window] == [synthetic_swath(i).granule_id for i in (1, 2, 3)]
        both = archive.select(orbit_type="A", start="2020-01-01T01:00:00Z")
        assert len(both) == 2 and len(both.index) == 2
        np.testing.assert_array_equal(both[0]["temperature"], synthetic_swath(2)["temperature"])


def test_to_kelvin_and_crop_or_pad(archive_path: Path) -> None:
    with open_archive(archive_path) as archive:
        swath = archive[0]
        kelvin = to_kelvin(swath)
    raw = swath["temperature"]
    assert kelvin.dtype == np.float32
    assert np.isnan(kelvin[raw == 0]).all() and not np.isnan(kelvin[raw != 0]).any()
    np.testing.assert_allclose(kelvin[raw != 0], raw[raw != 0] * 0.01, rtol=1e-6)
    np.testing.assert_array_equal(to_kelvin(raw, 0.01), kelvin)
    assert crop_or_pad(raw, 30).shape == (30, 243)
    padded = crop_or_pad(raw, 50)
    assert padded.shape == (50, 243) and (padded[40:] == 0).all()
    assert np.isnan(crop_or_pad(kelvin, 50)[45]).all()
    with pytest.raises(ValueError, match="scale_factor"):
        to_kelvin(raw)


def test_not_an_archive(tmp_path: Path) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(NotAnArchiveError, match="not an NPZ"):
        open_archive(text)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(NotAnArchiveError, match=r"holds x\.npy"):
        open_archive(other)


def test_names_follow_the_legacy_convention() -> None:
    start, end = datetime(2016, 1, 1), datetime(2017, 1, 1)
    assert archive_name(start, end) == "AMSR2_temp_only_20160101_000000_to_20170101_000000.npz"
    assert part_name(start, end, 3, 25) == "AMSR2_temp_only_20160101_000000_to_20170101_000000_part_3of25.npz"
    assert archive_name(start, end, geolocation=True).startswith("AMSR2_temp_with_coords_20160101")


# -- commands -------------------------------------------------------------------------------------------------
def test_info_and_partition_commands(archive_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["info", str(archive_path)]) == 0
    out = capsys.readouterr().out
    assert "swaths:       6" in out and "36.5H, 89.0AV" in out
    with open_archive(archive_path) as archive:
        kinds = archive.table["orbit_type"].tolist()
    words = ", ".join(f"{kinds.count(k)} {name} ({k})" for k, name in (("A", "ascending"), ("D", "descending")))
    assert f"orbit types: {words}\n" in out and "{" not in out  # words, not a Python dict
    assert orbit_types_in_words({"U": 88, "A": 1}) == "1 ascending (A), 88 unknown direction (U)"  # was {'U': 88}
    assert cli.main(["partition", str(archive_path), "--out-dir", str(tmp_path / "parts"), "--size", "4"]) == 0
    parts = sorted((tmp_path / "parts").iterdir())
    assert [p.name for p in parts] == ["a_part_1of2.npz", "a_part_2of2.npz"]
    with open_archive(parts[1]) as second:
        assert len(second) == 2
    folder = tmp_path / "swaths"
    swath_files(folder, 3)
    assert cli.main(["partition", str(folder), "-o", str(tmp_path / "p2"), "--size", "2"]) == 0
    assert len(list((tmp_path / "p2").glob("AMSR2_temp_only_*_part_*of2.npz"))) == 2
    assert read_swath(sorted(folder.glob("*.npy"))[0]).metadata.channels == ("36.5H", "89.0AV")
    assert cli.main(["info", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in capsys.readouterr().err


@pytest.mark.parametrize("compression", ["bzip2", "lzma"])
def test_member_compression_is_a_choice_np_load_reads(tmp_path: Path, compression: str) -> None:
    from amsr2flow.formats import archive as archive_format
    from amsr2flow.formats.verify import verify_archive
    from amsr2flow.stages.archives import add_to_archive

    swaths = [synthetic_swath(i, geolocation=True) for i in range(5)]
    plain = write_archive(tmp_path / "deflate.npz", swaths)
    packed = write_archive(tmp_path / f"{compression}.npz", swaths, compression=compression)
    assert write_archive(tmp_path / "again.npz", swaths, compression=compression).read_bytes() == packed.read_bytes()
    method = {"bzip2": zipfile.ZIP_BZIP2, "lzma": zipfile.ZIP_LZMA}[compression]
    with zipfile.ZipFile(packed) as zf:
        assert {i.compress_type for i in zf.infolist()} == {method}
    with np.load(packed, allow_pickle=False) as data, np.load(plain, allow_pickle=False) as reference:
        assert sorted(data.files) == sorted(reference.files)
        for name in reference.files:
            if name != "provenance":  # which says the compression
                np.testing.assert_array_equal(data[name], reference[name])
    with archive_format.Archive(packed) as arch:
        assert arch.provenance["member_compression"].startswith(compression)
    assert verify_archive(packed).ok
    # parts copy the members as they are; swaths added to a sealed year's archive join its compression
    parts = archive_format.partition_archive(packed, tmp_path / "parts", part_size=2)
    with zipfile.ZipFile(parts[0]) as zf:
        assert {i.compress_type for i in zf.infolist()} == {method}
    extra = write_swath(synthetic_swath(9, geolocation=True), tmp_path / "more" / "extra.npy")
    assert add_to_archive(packed, [extra], not_archived=0) == 6
    with zipfile.ZipFile(packed) as zf:
        assert {i.compress_type for i in zf.infolist()} == {method}
    with pytest.raises(archive_format.ArchiveError, match="unknown member compression 'zstd'"):
        write_archive(tmp_path / "z.npz", swaths, compression="zstd")
