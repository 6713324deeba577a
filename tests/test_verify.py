"""The verifier: good archives pass; each kind of damage is found and reported."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np
import pytest

from amsr2flow import cli
from amsr2flow.formats.archive import ArchiveWriter, write_archive
from amsr2flow.formats.swath import Swath, make_swath, write_swath, write_tombstone
from amsr2flow.formats.verify import verify_archive


def swath(i: int, rows: int = 30, columns: int = 243, high: int = 28000, gid: str | None = None) -> Swath:
    rng = np.random.default_rng(i)
    temperature = rng.integers(10000, high, (rows, columns)).astype(np.uint16)
    return make_swath(
        gid or f"GW1AM2_202001010{i}00_18{i}A_L1SGBTBR_2220220",
        "A",
        {"36.5H": temperature},
        [0.01],
        # an ascending half orbit goes north: its latitudes rise scan by scan (verify compares the two)
        latitude=np.sort(rng.uniform(-80, 80, (rows, 243)), axis=0).astype(np.float32),
        longitude=rng.uniform(-180, 180, (rows, 243)).astype(np.float32),
        scan_start_utc=f"2020-01-01T0{i}:00:00.000Z",
        scan_end_utc=f"2020-01-01T0{i}:49:00.000Z",
        overlap_scans=2,
    )


def build(path: Path, swaths: list[Swath], check_order: bool = True) -> Path:
    writer = ArchiveWriter(path)
    if not check_order:
        writer._check_next = lambda meta: None  # type: ignore[method-assign]
    with writer:
        for s in swaths:
            writer.add(s)
    return path


def test_good_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_archive(tmp_path / "a.npz", [swath(i) for i in range(4)])
    report = verify_archive(path)
    assert report.ok and report.valid == 4 and report.success_rate == 100.0
    assert cli.main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Found 4 swaths" in out and "Valid swaths: 4, Damaged swaths: 0" in out
    assert "Success rate: 100.0%" in out and "GOOD condition" in out


def test_corrupted_member_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_archive(tmp_path / "a.npz", [swath(i) for i in range(4)])
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"swaths/{swath(2).granule_id}/temperature.npy")
    data = bytearray(path.read_bytes())
    offset = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    report = verify_archive(path)
    assert not report.ok and list(report.damaged) == [swath(2).granule_id]
    assert "temperature unreadable" in report.damaged[swath(2).granule_id][0]
    assert cli.main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "Valid swaths: 3, Damaged swaths: 1" in out and "Success rate: 75.0%" in out and "DAMAGED" in out


def test_values_shapes_and_index_problems(tmp_path: Path) -> None:
    hot = swath(1, high=40000)  # up to 400 K: beyond the physical range
    narrow = swath(2, columns=200)
    wrong_range = dataclasses.replace(swath(3).metadata, temp_range=(1, 2))
    tall = swath(4, rows=2500)
    empty = Swath(swath(5).metadata, {**swath(5).arrays, "temperature": np.zeros((30, 243), np.uint16)})
    empty = Swath(dataclasses.replace(empty.metadata, temp_range=(0, 0)), empty.arrays)
    swaths = [swath(0), hot, narrow, Swath(wrong_range, swath(3).arrays), tall]
    report = verify_archive(build(tmp_path / "a.npz", [*swaths, empty]), min_scans=10)
    problems = "\n".join(report.problems())
    assert report.valid == 1 and len(report.damaged) == 5
    assert "above the physical 350 K" in problems
    assert "200 columns, expected 243" in problems
    assert "temp_range (1, 2) differs" in problems
    assert "2500 scans, outside the plausible" in problems
    assert "no valid pixel" in problems


def test_duplicates_and_time_order(tmp_path: Path) -> None:
    twin = Swath(
        dataclasses.replace(swath(1).metadata, granule_id="copy_of_1", scan_start_utc="2020-01-01T01:30:00.000Z"),
        swath(1).arrays,
    )
    late = swath(3)
    early = swath(2)
    report = verify_archive(build(tmp_path / "a.npz", [swath(0), swath(1), twin, late, early], check_order=False))
    assert set(report.damaged) == {"copy_of_1", early.granule_id}
    assert "same temperature as" in report.damaged["copy_of_1"][0]
    assert "before the previous swath" in report.damaged[early.granule_id][0]


def test_extra_member_and_not_an_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_archive(tmp_path / "a.npz", [swath(0)])
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("swaths/ghost/temperature.npy", b"")
    report = verify_archive(path)
    assert report.archive_problems == ["swaths/ghost/temperature.npy: member of no indexed swath"]
    truncated = tmp_path / "t.npz"
    truncated.write_bytes(path.read_bytes()[:1000])
    assert not verify_archive(truncated).ok
    assert cli.main(["verify", str(truncated)]) == 1
    assert "not an NPZ" in capsys.readouterr().out
    assert cli.main(["verify", str(tmp_path / "missing.npz")]) == 2


def test_a_swath_given_to_verify_is_named_as_such_not_a_damaged_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to say "Found 0 swaths ... Archive is DAMAGED" (exit 1) for one of the workflow's own swaths."""
    results = tmp_path / "results"
    (results / "archives").mkdir(parents=True)
    one = swath(1)
    path = write_swath(one, results / "swaths" / "2020" / "2020-01-01" / f"{one.granule_id}.npy")
    assert cli.main(["verify", str(path)]) == 2
    captured = capsys.readouterr()
    assert "DAMAGED" not in captured.out + captured.err and len(captured.err.strip().splitlines()) == 1
    said = captured.err
    assert f"is not an archive but a swath: granule {one.granule_id} (30 scans, ascending)" in said
    assert f"`amsr2flow info {path}` describes it" in said and f"the archives in {results / 'archives'}" in said
    assert cli.main(["info", str(path)]) == 0  # what verify suggests works
    described = capsys.readouterr().out
    assert one.granule_id in described and "a swath" in described and "orbit type: A (ascending)" in described
    tombstone = path.with_name("GW1AM2_202001010200_182D_L1SGBTBR_2220220.npy")
    write_tombstone(tombstone, tombstone.stem, "/x.h5", reason_class="absent", error="not on SFTP", n_pixels=243)
    assert cli.main(["verify", str(tombstone)]) == 2
    assert f"a tombstone: granule {tombstone.stem} is not archived (absent: not on SFTP)" in capsys.readouterr().err
