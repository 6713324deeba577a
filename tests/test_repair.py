"""`amsr2flow verify` finds, and `amsr2flow repair` sets right without downloading, what amsr2flow 0.1.0 wrote
wrongly: the orbit type of every swath extracted with `variables:` set. Archives, parts and sidecars are repaired
in place, atomically, with every array byte unchanged and the repair in the provenance."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from defect_helpers import archive_as_written_by_0_1_0, sidecar_as_written_by_0_1_0

from amsr2flow import cli
from amsr2flow.formats import archive, repair
from amsr2flow.formats.archive import Archive, read_raw_member
from amsr2flow.formats.swath import make_swath, metadata_json, read_swath_metadata, sidecar_path, write_swath
from amsr2flow.formats.verify import verify_archive


def _swath(i: int):
    rng = np.random.default_rng(i)
    direction = "AD"[i % 2]
    latitude = np.sort(rng.uniform(-80, 80, (30, 243)), axis=0)
    return make_swath(
        f"GW1AM2_2024010100{10 + i}_1{i:02d}{direction}_L1SGBTBR_2220220",
        direction,
        {"36.5H": rng.integers(10000, 28000, (30, 243)).astype(np.uint16)},
        [0.01],
        latitude=(latitude if direction == "A" else latitude[::-1]).astype(np.float32),
        longitude=rng.uniform(-180, 180, (30, 243)).astype(np.float32),
        extra={"earth_incidence": rng.integers(5400, 5600, (30, 243)).astype(np.int16)},
        scan_start_utc=f"2024-01-01T00:{10 + i}:30.000Z",
        scan_end_utc=f"2024-01-01T00:{10 + i}:59.000Z",
        overlap_scans=2,
    )


@pytest.fixture
def defective(tmp_path: Path) -> Path:
    """A results tree as 0.1.0 left it: an archive, its part and the kept swaths, all with orbit type U."""
    results = tmp_path / "results"
    swaths = [
        write_swath(_swath(i), results / "swaths" / "2024" / "2024-01-01" / f"{_swath(i).granule_id}.npy")
        for i in range(4)
    ]
    target = results / "archives" / "AMSR2_temp_with_coords_20240101_000000_to_20240102_000000.npz"
    target.parent.mkdir(parents=True)
    archive.write_archive(target, swaths)
    archive.partition_archive(target, results / "parts" / "2024", part_size=3)
    for path in [target, *sorted((results / "parts" / "2024").glob("*.npz"))]:
        archive_as_written_by_0_1_0(path)
    for npy in swaths:
        sidecar_as_written_by_0_1_0(npy)
    return results


def _raw_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        return {info.filename: read_raw_member(fh, info) for info in zf.infolist()}


def test_verify_reports_each_contradicted_orbit_type(defective: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = next((defective / "archives").glob("*.npz"))
    report = verify_archive(target)
    assert not report.ok and len(report.damaged) == 4
    assert all("file name A" in p or "file name D" in p for p in report.problems())
    assert all("stored swath U" in p for p in report.problems())
    assert cli.main(["verify", str(target)]) == 1
    out = capsys.readouterr().out
    assert "fix: 4 swath(s) store an orbit type their granule id contradicts" in out and "amsr2flow repair" in out


def test_repair_sets_the_orbit_types_in_place_and_leaves_every_array_byte(
    defective: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [next((defective / "archives").glob("*.npz")), *sorted((defective / "parts").rglob("*.npz"))]
    before = {f: _raw_members(f) for f in files}
    assert cli.main(["repair", "--dry-run", str(defective)]) == 0
    assert {f: _raw_members(f) for f in files} == before  # a dry run changes nothing
    assert "would repair" in capsys.readouterr().out

    assert cli.main(["repair", str(defective)]) == 0
    out = capsys.readouterr().out
    assert "4 swath sidecar(s): orbit type set from the granule id (U -> A x2, U -> D x2)" in out
    assert "3 of 3 archive(s) and part(s), 4 of 4 swath sidecar(s) repaired" in out
    for path in files:
        after = _raw_members(path)
        changed = {name for name in after if after[name] != before[path][name]}
        assert changed == {"index.npy", "provenance.npy"}  # arrays byte for byte
        assert set(after) == set(before[path])
        with Archive(path) as repaired:
            assert [str(o) for o in repaired.table["orbit_type"]] == [
                str(g).split("_")[2][-1] for g in repaired.table["granule_id"]
            ]
            (entry,) = repaired.provenance["repairs"]
            assert entry["repair"] == repair.ORBIT_TYPE_REPAIR and entry["swaths"] == len(repaired)
        assert verify_archive(path).ok
    for npy in (defective / "swaths").rglob("*.npy"):
        meta = read_swath_metadata(npy)
        assert meta.orbit_type == meta.granule_id.split("_")[2][-1]
        assert sidecar_path(npy).read_bytes() == metadata_json(meta)  # the format extraction writes
    # written with the user's umask, like every output (atomic.commit)
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o666 & ~_umask()

    stamps = {f: f.stat().st_mtime_ns for f in files}
    assert cli.main(["repair", str(defective)]) == 0  # nothing left to repair: nothing is touched
    assert "0 of 3 archive(s) and part(s), 0 of 4 swath sidecar(s) repaired" in capsys.readouterr().out
    assert {f: f.stat().st_mtime_ns for f in files} == stamps


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_repaired_archives_are_what_a_fresh_build_gives_but_for_the_provenance(defective: Path, tmp_path: Path) -> None:
    target = next((defective / "archives").glob("*.npz"))
    repair.repair_archive(target)
    npys = sorted((defective / "swaths").rglob("*.npy"))
    for npy in npys:
        repair.repair_sidecar(sidecar_path(npy))
    fresh = archive.write_archive(tmp_path / "fresh.npz", npys)
    repaired, built = _raw_members(target), _raw_members(fresh)
    assert {n for n in repaired if repaired[n] != built[n]} == {"provenance.npy"}


def test_repair_refuses_nothing_silently(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["repair", str(tmp_path / "nowhere")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    broken = tmp_path / "results" / "archives" / "AMSR2_temp_only_20240101_000000_to_20240102_000000.npz"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    assert cli.main(["repair", str(tmp_path / "results")]) == 1
    assert f"{broken}: cannot be repaired" in capsys.readouterr().err
    assert broken.read_bytes() == b"PK\x03\x04 not really a zip"


def test_the_start_of_a_run_finds_contradicted_archives_once_per_version(defective: Path) -> None:
    target = next((defective / "archives").glob("*.npz"))
    checked = defective / ".state" / "metadata_checked.json"
    assert repair.contradicting_swaths([target], checked) == {target: 4}
    assert not checked.exists()  # not remembered as right
    message = repair.contradiction_message({target: 4}, defective)
    assert "4 swath(s)" in message and f"amsr2flow repair {defective}" in message
    repair.repair_archive(target)
    assert repair.contradicting_swaths([target], checked) == {}
    assert json.loads(checked.read_text())[target.name].startswith(str(target.stat().st_size))
    archive_as_written_by_0_1_0(target)  # another version of the file is read again
    assert repair.contradicting_swaths([target], checked) == {target: 4}


def test_repair_waits_for_a_run_that_uses_the_folder(defective: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from amsr2flow.run.lock import RunLock

    lock = RunLock(defective / ".state")
    lock.acquire(defective)
    try:
        target = next((defective / "archives").glob("*.npz"))
        before = target.read_bytes()
        assert cli.main(["repair", str(target)]) == 2
        assert "a run is using the results folder" in capsys.readouterr().err
        assert target.read_bytes() == before
    finally:
        lock.release()
    assert cli.main(["repair", str(defective)]) == 0
