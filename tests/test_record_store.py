"""The record (``formats.record``): appends, reruns, kills, late granules, two sensors, refusals and the check.

Small swaths (tens of scans): what is tested is the bookkeeping, which does not depend on the size; the
benchmark (benchmarks/bench_record.py) runs the same at full size."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from amsr2flow.formats import record  # before icechunk: it sets ICECHUNK_LOG, which icechunk reads on import
from amsr2flow.formats.archive import Archive, write_archive
from amsr2flow.formats.record import RecordError, RecordSource, append_archives, open_record, verify_record
from amsr2flow.formats.swath import make_swath, utc_iso

icechunk = pytest.importorskip("icechunk")
xr = pytest.importorskip("xarray")
zarr = pytest.importorskip("zarr")

HALF_ORBIT = timedelta(minutes=49, seconds=30)
DAY0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
SHA = "a" * 64


def swath(
    day: int,
    k: int,
    rows: int = 24,
    *,
    prefix: str = "GW1AM2",
    channels: tuple[str, ...] = ("36.5H", "89.0AV"),
    start: datetime = DAY0,
    minutes: float = 0.0,
    sha: str = SHA,
    **extra: object,
) -> object:
    """Swath ``k`` of day ``day`` (half-orbits from midnight, plus ``minutes``), random but reproducible values."""
    t0 = start + timedelta(days=day) + k * HALF_ORBIT + timedelta(minutes=minutes)
    rng = np.random.default_rng([day, k, int(minutes * 60), rows])
    arrays = {
        c: rng.integers(10000, 28000, (rows, 486 if c.startswith("89") else 243)).astype(np.uint16) for c in channels
    }
    arrays[channels[0]][0, :5] = 0  # a few missing values (the fill)
    return make_swath(
        f"{prefix}_{t0:%Y%m%d%H%M}_{(day * 29 + k) % 1000:03d}{'AD'[k % 2]}_L1SGBTBR_2220220",
        "AD"[k % 2],
        arrays,
        [0.01] * len(arrays),
        scan_start_utc=utc_iso(t0.timestamp()),
        scan_end_utc=utc_iso((t0 + HALF_ORBIT).timestamp() - 1),
        overlap_scans=2,
        source_sha256=sha,
        latitude=rng.uniform(-70, 70, (rows, 243)).astype(np.float32),
        longitude=rng.uniform(-180, 180, (rows, 243)).astype(np.float32),
        **extra,
    )


def day_swaths(day: int, count: int = 4, rows: int = 24, **options: object) -> list:
    return [swath(day, k, rows + (day * 7 + k * 3) % 11, **options) for k in range(count)]


def ancestry(path: Path) -> list:
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    return list(repo.ancestry(branch="main"))


def state(path: Path) -> dict[str, tuple[str, tuple[int, ...], bytes | list]]:
    """Every variable of the record's last commit as it reads (raw), for byte comparisons."""
    out: dict[str, tuple[str, tuple[int, ...], bytes | list]] = {}
    with open_record(path, mask_and_scale=False) as ds:
        for name, var in ds.variables.items():
            values = var.values
            data = values.tolist() if values.dtype.kind in "OUT" else np.ascontiguousarray(values).tobytes()
            out[str(name)] = (str(values.dtype), values.shape, data)
    return out


def differences(a: dict, b: dict, skip: tuple[str, ...] = ()) -> list[str]:
    names = (set(a) | set(b)) - set(skip)
    return sorted(n for n in names if a.get(n) != b.get(n))


def channel_arrays(archive_path: Path) -> list[dict[str, np.ndarray]]:
    """Each swath's arrays as the archive holds them, by the record's variable names."""
    out = []
    with Archive(archive_path) as archive:
        for s in archive:
            arrays = {record.variable_name(c): np.asarray(s[c]) for c in s.metadata.channels}
            arrays.update({n: np.asarray(s[n]) for n in ("latitude", "longitude") if n in s})
            out.append(arrays)
    return out


# -- append, rerun, values -----------------------------------------------------------------------------------
def test_append_then_rerun_adds_nothing_and_values_are_the_archives(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "day0.npz", day_swaths(0, 5))
    rec = tmp_path / "record"
    [first] = append_archives(rec, [archive])
    assert (first.added, first.already, first.swaths) == (5, 0, 5) and first.snapshot
    commits = ancestry(rec)
    assert len(commits) == 2 and commits[0].id == first.snapshot  # the repository's first commit and ours
    before = state(rec)

    [again] = append_archives(rec, [archive])
    assert (again.added, again.already, again.swaths, again.snapshot) == (0, 5, 5, "")
    assert [c.id for c in ancestry(rec)] == [c.id for c in commits]  # no new commit
    assert state(rec) == before

    expected = channel_arrays(archive)
    source = RecordSource(rec)
    assert len(source) == 5 and source.snapshot == first.snapshot
    assert source.channels == ("36.5H", "89.0AV")
    with Archive(archive) as opened:
        assert source.index()["granule_id"].tolist() == [str(g) for g in opened.table["granule_id"]]
        rows = [int(n) for n in opened.table["n_scans"]]
    assert source.index()["n_scans"].tolist() == rows
    with open_record(rec, mask_and_scale=False) as raw:
        assert raw.sizes["scan"] == max(rows)
        for i, arrays in enumerate(expected):
            got = source.read_raw(i, ["36.5H", "89.0AV", "latitude", "longitude"])
            assert got["36.5H"].tobytes() == arrays["tb_36_5H"].tobytes()
            assert got["89.0AV"].tobytes() == arrays["tb_89_0AV"].tobytes()
            assert got["latitude"].tobytes() == arrays["latitude"].tobytes()
            for name, want in arrays.items():
                values = raw[name].isel(swath=i).values
                assert values.dtype == want.dtype and values[: rows[i]].tobytes() == want.tobytes(), name
                if name.startswith("tb_"):
                    assert (values[rows[i] :] == 0).all()  # padding is the fill
    with open_record(rec) as decoded:
        tb = decoded["tb_36_5H"]
        assert tb.attrs["units"] == "K" and tb.attrs["standard_name"] == "toa_brightness_temperature"
        values = tb.isel(swath=0).values
        assert np.isnan(values[0, :5]).all()  # the fill decodes as missing
        np.testing.assert_allclose(values[: rows[0]][1:], expected[0]["tb_36_5H"][1:] * 0.01, rtol=1e-6)
        assert np.nanmin(tb.values) >= 100 and np.nanmax(tb.values) <= 280
        assert decoded["time"].dtype.kind == "M" and str(decoded["time"].values[0]).startswith("2020-01-01T00:00")
        assert list(decoded["sensor"].values) == ["AMSR2"] * 5


# -- a kill in the middle of an append -----------------------------------------------------------------------
APPEND = "import sys; from amsr2flow.formats.record import append_archives; append_archives(sys.argv[1], sys.argv[2:])"


def _files(folder: Path) -> int:
    try:
        return sum(1 for _ in os.scandir(folder))
    except FileNotFoundError:
        return 0


def _child_env() -> dict[str, str]:
    src = str(Path(record.__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def append_killed(rec: Path, archives: list[Path], folder: str, gained: int) -> bool:
    """Append in a child process and SIGKILL it once ``rec/folder`` holds ``gained`` more files than before
    (polled, no sleeps); whether the kill came before the child ended."""
    watched = rec / folder
    start = _files(watched)
    child = subprocess.Popen([sys.executable, "-c", APPEND, str(rec), *map(str, archives)], env=_child_env())
    try:
        while child.poll() is None and _files(watched) < start + gained:
            pass
        killed = child.poll() is None
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:  # pragma: no cover - only if the assertions above raised
            child.kill()
    assert killed or child.returncode == 0, child.returncode
    return killed


@pytest.fixture(scope="module")
def kill_setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Day 0 (a commit to fall back to), day 1 (the append to kill: 48 swaths, 240 chunks) and the record
    both make uninterrupted, with the chunk files day 1 adds."""
    folder = tmp_path_factory.mktemp("kill")
    day0 = write_archive(folder / "day0.npz", day_swaths(0, 6))
    day1 = write_archive(folder / "day1.npz", day_swaths(1, 48, rows=60, channels=("36.5H", "89.0AV", "7.3H")))
    base = folder / "base"
    append_archives(base, [day0])
    reference = folder / "reference"
    shutil.copytree(base, reference)
    chunks_before = _files(reference / "chunks")
    append_archives(reference, [day1])
    return {
        "folder": folder,
        "day0": day0,
        "day1": day1,
        "base": base,
        "base_state": state(base),
        "base_commits": [c.id for c in ancestry(base)],
        "reference_state": state(reference),
        "new_chunks": _files(reference / "chunks") - chunks_before,
    }


@pytest.mark.parametrize("point", ["first chunk", "half the chunks", "every chunk", "a manifest"])
def test_a_kill_during_an_append_leaves_the_last_commit_and_a_rerun_completes_it(kill_setup: dict, point: str) -> None:
    rec = kill_setup["folder"] / point.replace(" ", "-")
    shutil.copytree(kill_setup["base"], rec)
    new = kill_setup["new_chunks"]
    assert new >= 240
    folder, gained = {
        "first chunk": ("chunks", 1),
        "half the chunks": ("chunks", new // 2),
        "every chunk": ("chunks", new),
        "a manifest": ("manifests", 1),
    }[point]
    killed = append_killed(rec, [kill_setup["day1"]], folder, gained)
    commits = [c.id for c in ancestry(rec)]
    if point in ("first chunk", "half the chunks"):  # chunks are still to be written: the child was mid-append
        assert killed
    if commits == kill_setup["base_commits"]:
        assert state(rec) == kill_setup["base_state"]  # the last commit, whole
    else:  # the commit's reference was updated before the kill: the append is complete
        assert point in ("every chunk", "a manifest") and commits[1:] == kill_setup["base_commits"]
        assert state(rec) == kill_setup["reference_state"]
    [result] = append_archives(rec, [kill_setup["day1"]])  # the rerun
    assert result.swaths == 54
    assert state(rec) == kill_setup["reference_state"]
    assert verify_record(rec, [kill_setup["day0"], kill_setup["day1"]]).ok


def test_a_kill_during_the_first_append_leaves_no_record_and_a_rerun_builds_it(kill_setup: dict) -> None:
    rec = kill_setup["folder"] / "first"
    assert append_killed(rec, [kill_setup["day0"], kill_setup["day1"]], "chunks", 1)
    with pytest.raises(RecordError, match="no commit with swaths"):
        open_record(rec)
    append_archives(rec, [kill_setup["day0"], kill_setup["day1"]])
    assert state(rec) == kill_setup["reference_state"]


KILLED_IN_CREATE = """
import os, shutil, signal, sys
import icechunk
from amsr2flow.formats.record import append_archives
made, storage, create = [], icechunk.local_filesystem_storage, icechunk.Repository.create
def local(path):
    made.append(path)
    return storage(path)
def killed(store, *args, **kwargs):  # the state of a kill between the first snapshot and the branch reference
    create(store, *args, **kwargs)
    shutil.rmtree(os.path.join(made[-1], "refs"))
    os.kill(os.getpid(), signal.SIGKILL)
icechunk.local_filesystem_storage, icechunk.Repository.create = local, killed
append_archives(sys.argv[1], sys.argv[2:])
"""


def test_a_kill_while_the_repository_is_created_does_not_leave_a_folder_refused_for_ever(tmp_path: Path) -> None:
    # Repository.create writes the first snapshot, then the branch reference; a kill between them must not
    # leave, at the record's path, a folder that every rerun refuses as "exists and is not a record"
    rec = tmp_path / "record"
    archive = write_archive(tmp_path / "day0.npz", day_swaths(0, 2))
    child = subprocess.run([sys.executable, "-c", KILLED_IN_CREATE, str(rec), str(archive)], env=_child_env())
    assert child.returncode == -signal.SIGKILL
    assert not record.is_record(rec)
    append_archives(rec, [archive])
    assert verify_record(rec, [archive]).ok and len(ancestry(rec)) == 2


# -- a late granule ------------------------------------------------------------------------------------------
def test_a_late_granule_is_appended_at_the_end_and_time_order_puts_it_in_its_place(tmp_path: Path) -> None:
    swaths = day_swaths(0, 6)
    late = swath(0, 2, 30, minutes=20)  # between swaths 2 and 3 of the day
    archive = write_archive(tmp_path / "day0.npz", swaths)
    rec = tmp_path / "record"
    append_archives(rec, [archive])
    before = state(rec)
    rebuilt = write_archive(tmp_path / "day0.npz", [*swaths[:3], late, *swaths[3:]])  # the same name, rebuilt
    [result] = append_archives(rec, [rebuilt])
    assert (result.added, result.already, result.swaths) == (1, 6, 7)
    after = state(rec)
    source = RecordSource(rec)
    index = source.index()
    assert index["granule_id"].tolist()[-1] == late.granule_id
    with open_record(rec, mask_and_scale=False) as raw:
        assert raw.sizes["scan"] == 33  # the late swath is not the longest: no array grew along scan
        for name, (dtype, shape, data) in before.items():  # every swath before it unchanged
            if name == "time_order":
                continue
            values = raw[name].values[:6]
            assert values.shape == shape and str(values.dtype) == dtype, name
            assert (values.tobytes() if isinstance(data, bytes) else values.tolist()) == data, name
        np.testing.assert_array_equal(raw["tb_36_5H"].values[6, :30], late["temperature"])
    assert before["time_order"][2] != after["time_order"][2]
    order = np.asarray(source.group["time_order"][:])
    assert order.tolist() == [0, 1, 2, 6, 3, 4, 5]
    assert bool((np.diff(index["time"][order]).astype(np.int64) > 0).all())
    assert verify_record(rec, [rebuilt]).ok


# -- two sensors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("amsre_first", [True, False], ids=["amsre-then-amsr2", "amsr2-then-amsre"])
def test_amsre_and_amsr2_in_one_record_amsre_reads_as_fill_where_it_has_no_channel(
    tmp_path: Path, amsre_first: bool
) -> None:
    old_start = datetime(2011, 10, 3, tzinfo=timezone.utc)
    amsre = write_archive(
        tmp_path / "AMSRE.npz",
        day_swaths(0, 3, rows=16, prefix="A2ES1M", channels=("36.5H", "89.0AV"), start=old_start),
    )
    amsr2 = write_archive(tmp_path / "AMSR2.npz", day_swaths(0, 3, rows=30, channels=("36.5H", "89.0AV", "7.3H")))
    rec = tmp_path / "record"
    for archive in (amsre, amsr2) if amsre_first else (amsr2, amsre):
        append_archives(rec, [archive])
    sensors = ["AMSR-E"] * 3 + ["AMSR2"] * 3 if amsre_first else ["AMSR2"] * 3 + ["AMSR-E"] * 3
    e = slice(0, 3) if amsre_first else slice(3, 6)
    n = slice(3, 6) if amsre_first else slice(0, 3)
    with open_record(rec) as ds:
        assert list(ds["sensor"].values) == sensors
        assert np.isnan(ds["tb_7_3H"].values[e]).all() and np.isfinite(ds["tb_7_3H"].values[n][:, 1:30]).all()
        assert ds.attrs["sensors"] == '["AMSR-E", "AMSR2"]' and "AMSR-E and AMSR2" in ds.attrs["title"]
        assert bool((np.diff(ds["time"].values[ds["time_order"].values]).astype(np.int64) > 0).all())
    with open_record(rec, mask_and_scale=False) as raw:
        assert (raw["tb_7_3H"].values[e] == 0).all()
        for i, arrays in zip(range(n.start, n.stop), channel_arrays(amsr2), strict=True):
            rows = arrays["tb_7_3H"].shape[0]
            assert raw["tb_7_3H"].values[i, :rows].tobytes() == arrays["tb_7_3H"].tobytes()
        for i, arrays in zip(range(e.start, e.stop), channel_arrays(amsre), strict=True):
            rows = arrays["tb_36_5H"].shape[0]
            assert raw["tb_89_0AV"].values[i, :rows].tobytes() == arrays["tb_89_0AV"].tobytes()
    assert verify_record(rec, [amsre, amsr2]).ok


# -- day by day against at once ------------------------------------------------------------------------------
def test_days_appended_one_after_another_equal_all_days_appended_at_once(tmp_path: Path) -> None:
    days = [day_swaths(d, 4) for d in range(6)]
    day_archives = [write_archive(tmp_path / f"day{d}.npz", s) for d, s in enumerate(days)]
    year = write_archive(tmp_path / "year.npz", [s for day in days for s in day])
    daily, once = tmp_path / "daily", tmp_path / "once"
    for archive in day_archives:
        append_archives(daily, [archive])
    append_archives(once, [year])
    assert len(ancestry(daily)) == 7 and len(ancestry(once)) == 2
    a, b = state(daily), state(once)
    # the index names the archive each swath came from; everything else is the same bytes
    assert differences(a, b) == ["archive"]
    assert a["archive"][2] == [f"day{d}.npz" for d in range(6) for _ in range(4)] and set(b["archive"][2]) == {
        "year.npz"
    }
    assert len(a) > 15


# -- refusals ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change", ["source_sha256", "region_key"])
def test_the_same_granule_as_another_extraction_is_refused_naming_it(tmp_path: Path, change: str) -> None:
    swaths = day_swaths(0, 3)
    rec = tmp_path / "record"
    append_archives(rec, [write_archive(tmp_path / "a.npz", swaths)])
    commits = ancestry(rec)
    if change == "source_sha256":
        other = swath(0, 1, swaths[1]["temperature"].shape[0], sha="b" * 64)
    else:
        other = swath(0, 1, swaths[1]["temperature"].shape[0], region="arctic", region_key="arctic-1234+8")
    later = write_archive(tmp_path / "b.npz", [other, swath(0, 5)])
    with pytest.raises(RecordError, match=other.granule_id):
        append_archives(rec, [later])
    assert len(ancestry(rec)) == len(commits)  # nothing of that archive committed


def test_a_second_appender_is_refused_while_one_holds_the_lock(tmp_path: Path) -> None:
    rec = tmp_path / "record"
    archive = write_archive(tmp_path / "a.npz", day_swaths(0, 2))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from amsr2flow.formats import record\n"
            "with record._append_lock(Path(sys.argv[1])):\n    print('held', flush=True); sys.stdin.read()",
            str(rec),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_child_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RecordError, match="another process is appending"):
            append_archives(rec, [archive])
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert holder.returncode == 0
    assert append_archives(rec, [archive])[0].added == 2  # released: the next appender goes on


# -- the check against the archives -------------------------------------------------------------------------
def test_verify_record_finds_missing_extra_and_different_swaths(tmp_path: Path) -> None:
    a = write_archive(tmp_path / "a.npz", day_swaths(0, 3))
    b = write_archive(tmp_path / "b.npz", day_swaths(1, 2))
    rec = tmp_path / "record"
    append_archives(rec, [a])
    check = verify_record(rec, [a, b])
    with Archive(b) as opened:
        b_ids = [str(g) for g in opened.table["granule_id"]]
    assert not check.ok and check.missing == b_ids and not check.extra and not check.different
    append_archives(rec, [b])
    assert verify_record(rec, [a, b]).ok
    check = verify_record(rec, [a])
    assert not check.ok and check.extra == b_ids and not check.missing

    copy = tmp_path / "copy"
    shutil.copytree(rec, copy)
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(copy)))
    session = repo.writable_session("main")
    group = zarr.open_group(session.store, mode="r+")
    group["tb_89_0AV"][4, 3, 7] = int(group["tb_89_0AV"][4, 3, 7]) ^ 1  # one bit of one value
    session.commit("corrupt one value")
    check = verify_record(copy, [a, b])
    assert check.different == [f"{b_ids[1]}: tb_89_0AV differs"] and check.checked == 5
    assert "PROBLEMS" in check.lines()[0] and verify_record(rec, [a, b]).ok  # the original is untouched
    assert verify_record(copy, [a, b], data=False).ok  # the index alone does not see it


# -- what is not a record ------------------------------------------------------------------------------------
def test_opening_what_is_not_a_record_is_a_record_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a record")
    for path in (empty, other, tmp_path / "absent"):
        with pytest.raises(RecordError, match="not a record"):
            open_record(path)
        with pytest.raises(RecordError, match="not a record"):
            RecordSource(path)
    bare = tmp_path / "bare"
    icechunk.Repository.create(icechunk.local_filesystem_storage(str(bare)))
    with pytest.raises(RecordError, match="no commit with swaths"):
        open_record(bare)
    with pytest.raises(RecordError, match="exists and is not a record"):
        append_archives(other, [write_archive(tmp_path / "a.npz", day_swaths(0, 1))])
    assert os.listdir(other) == ["notes.txt"]


def test_a_process_forked_after_the_record_was_opened_is_told_to_spawn_instead_of_hanging(tmp_path: Path) -> None:
    import multiprocessing

    rec = tmp_path / "rec"
    append_archives(rec, [write_archive(tmp_path / "a.npz", [swath(0, 0, 20)])])
    source = RecordSource(rec)
    assert source.read_raw(0, ["36.5H"])["36.5H"].shape == (20, 243)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        outcome = pool.apply_async(_read_first_swath, (source,)).get(timeout=60)
    assert outcome.startswith("RecordError") and "'spawn' or 'forkserver'" in outcome
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # a fresh interpreter reads it
        assert pool.apply_async(_read_first_swath, (source,)).get(timeout=120) == "(20, 243)"


def _read_first_swath(source: RecordSource) -> str:
    try:
        return str(source.read_raw(0, ["36.5H"])["36.5H"].shape)
    except RecordError as exc:
        return f"RecordError: {exc}"
