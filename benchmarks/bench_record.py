"""Record benchmark: opening a 13-year record, appending day by day against at once, SIGKILL during appends.

    .venv/bin/python benchmarks/bench_record.py              # 30 days x 29 full-size swaths, 10 kills (~10 min)
    .venv/bin/python benchmarks/bench_record.py --days 6     # quicker

1. **Open and index at 13 years.** A synthetic record of ``--big`` swaths (143,000: about 13 years) and one of
   ``--year`` (11,000): one small real archive is appended (so record.py itself creates every array with its
   names, attributes, chunks and fills), then one commit resizes every array to the full shape (swaths x 2048 x
   243 or 486) and writes the whole index (unique granule ids, times, random SHA-256s, archive names). The
   channels' and positions' chunks are not written: what grows with the record is the index and the metadata,
   which is what opening reads. ``open_record`` and ``RecordSource.index()`` are timed in fresh child processes
   (median of 3), with their resident memory increase (peak ``VmHWM`` minus ``VmRSS`` after the imports).
2. **A year-like run** of ``--days`` days x 29 full-size swaths (1980 scans; 36.5H at 243 pixels, 89.0AV at 486,
   uint16), one archive per day appended one call after another, against one archive of all the days appended
   at once: equal bytes, wall time, time per appended day, size on disk.
3. **SIGKILL** at ``--kills`` seeded random moments within the measured duration of a child that appends one
   day to a record of two days; after each kill the record must open and equal its last commit, and the
   rerun must complete it to the bytes of an uninterrupted append (the moments are uniform between the end of
   the child's imports, which it reports on a pipe, and its commit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from amsr2flow.formats import record  # before icechunk: it quiets icechunk's log (ICECHUNK_LOG)
from amsr2flow.formats.archive import write_archive
from amsr2flow.formats.swath import make_swath, utc_iso

HALF_ORBIT = timedelta(minutes=49, seconds=30)
DAY0 = datetime(2013, 1, 1, tzinfo=timezone.utc)
PER_DAY = 29
ROWS = 1980
BIG_CHANNELS = ("6.9H", "10.7H", "18.7V", "36.5H", "89.0AV")


# -- memory ---------------------------------------------------------------------------------------------------
def _status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- data -----------------------------------------------------------------------------------------------------
def base_fields(count: int, rows: int, pixels: int, seed: int) -> list[np.ndarray]:
    """Smooth fields with noise (compress like brightness temperatures, unlike uniform noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:pixels]
    out = []
    for _ in range(count):
        a, b, c = rng.uniform(0.002, 0.02, 3)
        field = 20000 + 5000 * np.sin(a * y + c) * np.cos(b * x) + rng.normal(0, 60, (rows, pixels))
        out.append(np.clip(field, 10000, 30000).astype(np.uint16))
    return out


def day_swaths(day: int, bases: dict[str, list[np.ndarray]], rows: int = ROWS, count: int = PER_DAY) -> list:
    out = []
    for k in range(count):
        n = day * PER_DAY + k
        t0 = DAY0 + timedelta(days=day) + k * HALF_ORBIT
        arrays = {c: np.roll(b[n % len(b)], 11 * n, axis=0)[: rows + n % 5] for c, b in bases.items()}
        out.append(
            make_swath(
                f"GW1AM2_{t0:%Y%m%d%H%M}_{n % 1000:03d}{'AD'[k % 2]}_L1SGBTBR_2220220",
                "AD"[k % 2],
                arrays,
                [0.01] * len(arrays),
                scan_start_utc=utc_iso(t0.timestamp()),
                scan_end_utc=utc_iso((t0 + HALF_ORBIT).timestamp() - 1),
                overlap_scans=30,
                source_sha256=f"{n:064x}",
            )
        )
    return out


def state(path: Path) -> dict:
    """A digest of every variable of the record's last commit as it reads raw (values, not chunk files)."""
    out = {}
    with record.open_record(path, mask_and_scale=False) as ds:
        for name, var in ds.variables.items():
            values = var.values
            data = "\0".join(map(str, values.tolist())).encode() if values.dtype.kind in "OUT" else values.tobytes()
            out[str(name)] = (values.dtype.str, values.shape, hashlib.sha256(data).hexdigest())
    return out


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def commits(path: Path) -> list[str]:
    import icechunk

    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    return [c.id for c in repo.ancestry(branch="main")]


# -- 1. a synthetic 13-year record ----------------------------------------------------------------------------
def build_synthetic(path: Path, n: int, work: Path) -> float:
    """A record of ``n`` swaths: record.py's own arrays (from one real append), then resized to ``n`` swaths
    and 2048 scans with the whole index written in one commit; no channel or position chunk beyond swath 0."""
    import icechunk
    import zarr

    t = time.perf_counter()
    rng = np.random.default_rng(n)
    lat = np.zeros((8, 243), np.float32)
    t0 = DAY0
    seed_swath = make_swath(
        f"GW1AM2_{t0:%Y%m%d%H%M}_000A_L1SGBTBR_2220220",
        "A",
        {c: np.full((8, 486 if c.startswith("89") else 243), 20000, np.uint16) for c in BIG_CHANNELS},
        [0.01] * len(BIG_CHANNELS),
        scan_start_utc=utc_iso(t0.timestamp()),
        scan_end_utc=utc_iso((t0 + HALF_ORBIT).timestamp() - 1),
        latitude=lat,
        longitude=lat,
        source_sha256="0" * 64,
    )
    record.append_archives(path, [write_archive(work / f"seed-{n}.npz", [seed_swath])])
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    group = zarr.open_group(session.store, mode="r+")
    for name in group.array_keys():
        array = group[name]
        shape = list(array.shape)
        shape[0] = n
        if len(shape) > 1:
            shape[1] = record.SCAN_CHUNK
        array.resize(tuple(shape))
    group.attrs["scans"] = record.SCAN_CHUNK
    starts = DAY0.timestamp() + np.arange(n) * HALF_ORBIT.total_seconds()
    stamps = [datetime.fromtimestamp(s, timezone.utc) for s in starts]
    ids = [f"GW1AM2_{s:%Y%m%d%H%M}_{i % 1000:03d}{'AD'[i % 2]}_L1SGBTBR_2220220" for i, s in enumerate(stamps)]
    ids[0] = str(group["granule_id"][0])
    index = {
        "time": starts,
        "time_end": starts + HALF_ORBIT.total_seconds() - 1,
        "granule_id": np.array(ids, dtype=object),
        "orbit_direction": np.array(["AD"[i % 2] for i in range(n)], dtype=object),
        "sensor": np.full(n, "AMSR2", dtype=object),
        "n_scans": rng.integers(1972, 1985, n).astype(np.int32),
        "first_scan": np.zeros(n, np.int64),
        "region": np.full(n, "", dtype=object),
        "region_key": np.full(n, "", dtype=object),
        "source_sha256": np.array([rng.bytes(32).hex() for _ in range(n)], dtype=object),
        "archive": np.array([f"AMSR2_temp_{s:%Y}0101_000000_to_{s.year + 1}0101_000000.npz" for s in stamps], object),
        record.TIME_ORDER: np.arange(n, dtype=np.int64),
    }
    for name, values in index.items():
        group[name][:] = values
    session.commit(f"synthetic: {n} swaths of index, data arrays at full shape")
    return time.perf_counter() - t


def child_open(args: argparse.Namespace) -> dict:
    import icechunk  # noqa: F401 - the imports are the baseline, not the measure
    import xarray  # noqa: F401
    import zarr  # noqa: F401

    before = _status("VmRSS")
    t = time.perf_counter()
    ds = record.open_record(args.path)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "rss_mb": _status("VmHWM") - before, "sizes": dict(ds.sizes)}


def child_index(args: argparse.Namespace) -> dict:
    import icechunk  # noqa: F401
    import zarr  # noqa: F401

    before = _status("VmRSS")
    t = time.perf_counter()
    index = record.RecordSource(args.path).index()
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "rss_mb": _status("VmHWM") - before, "swaths": len(index["granule_id"])}


def child_batches(args: argparse.Namespace) -> dict:
    """Peak memory of drawing training batches over the whole record (its channels' chunks are absent, so
    swaths read as fill: the same arrays, shapes and copies as real ones, without the decompression)."""
    import icechunk  # noqa: F401
    import zarr  # noqa: F401

    from amsr2flow.training import SwathBatches

    before = _status("VmRSS")
    t = time.perf_counter()
    batches = SwathBatches(record.RecordSource(args.path), n_scans=2000, batch_size=8, seed=0)
    drawn = 0
    for _ in zip(range(BATCHES_DRAWN), batches, strict=False):
        drawn += 1
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "rss_mb": _status("VmHWM") - before, "batches": drawn}


#: Batches drawn by the memory measure (8 swaths x 2000 scans x 243 pixels x 5 channels each).
BATCHES_DRAWN = 20
CHILDREN = {"open": child_open, "index": child_index, "batches": child_batches}


def run_child(kind: str, path: Path) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--path", str(path)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_child(kind: str, path: Path, repeat: int = 3) -> dict:
    runs = [run_child(kind, path) for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in runs) for key in ("seconds", "rss_mb")}


def part_open(args: argparse.Namespace, work: Path) -> dict:
    out: dict = {}
    for label, n in (("year", args.year), ("big", args.big)):
        path = work / f"synthetic-{n}"
        built = build_synthetic(path, n, work)
        out[label] = {
            "swaths": n,
            "build_s": built,
            "disk_mb": du(path) / 1e6,
            "open": median_child("open", path),
            "index": median_child("index", path),
            "batches": median_child("batches", path),
        }
        print(f"synthetic record of {n} swaths built in {built:.1f} s ({out[label]['disk_mb']:.1f} MB)", flush=True)
    y, b = out["year"], out["big"]
    print(f"\n| measure | {y['swaths']:,} swaths | {b['swaths']:,} swaths | ratio |")
    print("|---|---:|---:|---:|")
    for label, key, field, unit in (
        ("`open_record` wall", "open", "seconds", "s"),
        ("`open_record` memory increase", "open", "rss_mb", "MB"),
        ("`RecordSource.index()` wall", "index", "seconds", "s"),
        ("`RecordSource.index()` memory increase", "index", "rss_mb", "MB"),
        (f"{BATCHES_DRAWN} training batches (8 x 5 x 2000 x 243): peak memory increase", "batches", "rss_mb", "MB"),
    ):
        a, c = y[key][field], b[key][field]
        print(f"| {label} | {a:.3f} {unit} | {c:.3f} {unit} | {c / a:.2f} |")
    print(
        f"| size on disk (index + metadata) | {y['disk_mb']:.1f} MB | {b['disk_mb']:.1f} MB | "
        f"{b['disk_mb'] / y['disk_mb']:.2f} |"
    )
    return out


# -- 2. day by day against at once ----------------------------------------------------------------------------
def part_days(args: argparse.Namespace, work: Path) -> dict:
    bases = {"36.5H": base_fields(8, ROWS + 5, 243, 2), "89.0AV": base_fields(8, ROWS + 5, 486, 3)}
    t = time.perf_counter()
    days = [day_swaths(d, bases) for d in range(args.days)]
    day_archives = [write_archive(work / f"day{d:03d}.npz", s) for d, s in enumerate(days)]
    year = write_archive(work / "all-days.npz", [s for day in days for s in day])
    raw_mb = sum(a.nbytes for day in days for s in day for a in s.arrays.values()) / 1e6
    del days
    print(
        f"\n{args.days} days x {PER_DAY} swaths ({raw_mb:,.0f} MB raw) archived in {time.perf_counter() - t:.0f} s",
        flush=True,
    )
    daily, once = work / "daily", work / "once"
    per_day = []
    t = time.perf_counter()
    for archive in day_archives:
        t_day = time.perf_counter()
        record.append_archives(daily, [archive])
        per_day.append(time.perf_counter() - t_day)
    daily_s = time.perf_counter() - t
    t = time.perf_counter()
    record.append_archives(once, [year])
    once_s = time.perf_counter() - t
    a, b = state(daily), state(once)
    different = sorted(n for n in a.keys() | b.keys() if a.get(n) != b.get(n))
    k = min(3, len(per_day) // 2) or 1
    out = {
        "days": args.days,
        "swaths": args.days * PER_DAY,
        "raw_mb": raw_mb,
        "daily_s": daily_s,
        "once_s": once_s,
        "per_day_s": per_day,
        "first_days_s": statistics.mean(per_day[:k]),
        "last_days_s": statistics.mean(per_day[-k:]),
        "different": different,
        "daily_mb": du(daily) / 1e6,
        "once_mb": du(once) / 1e6,
        "archives_mb": sum(p.stat().st_size for p in day_archives) / 1e6,
        "commits": (len(commits(daily)), len(commits(once))),
    }
    equal = different == ["archive"]  # the index names the archive a swath came from: day files, or one file
    print(f"\n| {out['swaths']} swaths | day by day ({args.days} appends) | at once (1 append) | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| wall | {daily_s:.1f} s | {once_s:.1f} s | {daily_s / once_s:.2f} |")
    size = f"{out['daily_mb']:,.0f} MB | {out['once_mb']:,.0f} MB | {out['daily_mb'] / out['once_mb']:.3f}"
    print(f"| record on disk | {size} |")
    print(f"| commits | {out['commits'][0]} | {out['commits'][1]} | |")
    print(
        f"\nequal bytes (every variable but `archive`, which names the day file or the one file): "
        f"{'yes' if equal else 'NO: ' + ', '.join(different)}"
    )
    print(
        f"per appended day: first {k} days {out['first_days_s']:.2f} s, last {k} days {out['last_days_s']:.2f} s "
        f"(ratio {out['last_days_s'] / out['first_days_s']:.2f}); all: " + " ".join(f"{s:.2f}" for s in per_day)
    )
    print(f"raw {raw_mb:,.0f} MB, day archives {out['archives_mb']:,.0f} MB, record {out['once_mb']:,.0f} MB")
    out["equal"] = equal
    out["day_archives"] = [str(p) for p in day_archives]
    return out


# -- 3. SIGKILL during appends --------------------------------------------------------------------------------
#: The append in a child: it says "ready" once its imports are done, so that the kill's random moment falls within
#: the append itself, not Python's start (a pipe, not a sleep, says when)
APPEND = (
    "import sys, icechunk, zarr, xarray, amsr2flow.formats.archive\n"
    "from amsr2flow.formats.record import append_archives\n"
    "print('ready', flush=True)\n"
    "append_archives(sys.argv[1], sys.argv[2:])"
)


def start_append(rec: Path, archives: list[str]) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", APPEND, str(rec), *archives], stdout=subprocess.PIPE, text=True, env=_env()
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def _env() -> dict[str, str]:
    src = str(Path(record.__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def part_kills(args: argparse.Namespace, work: Path, day_archives: list[str]) -> dict:
    base = work / "kill-base"
    record.append_archives(base, day_archives[:2])
    base_state, base_commits = state(base), commits(base)
    reference = work / "kill-reference"
    shutil.copytree(base, reference)
    durations = []
    for attempt in range(3):  # the append's duration in a child, from its "ready" to its commit (median of 3)
        target = reference if attempt == 0 else work / f"kill-timing-{attempt}"
        if attempt:
            shutil.copytree(base, target)
        ref = target / "refs" / "branch.main" / "ref.json"
        last = ref.read_bytes()
        child = start_append(target, [day_archives[2]])
        t = time.perf_counter()
        while child.poll() is None and ref.read_bytes() == last:  # until the commit moves the branch (polled)
            time.sleep(0.002)  # a poll interval: a busy loop would take one of the two cores from the child
        durations.append(time.perf_counter() - t)
        assert child.wait() == 0 and ref.read_bytes() != last
        if attempt:
            shutil.rmtree(target)
    duration = statistics.median(durations)
    reference_state = state(reference)
    chunks = sum(1 for _ in (reference / "chunks").iterdir()) - sum(1 for _ in (base / "chunks").iterdir())
    print(
        f"\nkills: appending day 3 ({PER_DAY} swaths, {chunks} chunk files) to a record of 2 days takes "
        f"{duration:.2f} s in a child "
        f"(from the end of its imports to its commit; median of 3); kills at uniform random moments in it, "
        f"seed {args.seed}"
    )
    rng = random.Random(args.seed)
    rows = []
    for i in range(args.kills):
        rec = work / f"kill-{i}"
        shutil.copytree(base, rec)
        before_chunks = sum(1 for _ in (rec / "chunks").iterdir())
        delay = rng.uniform(0, duration)
        child = start_append(rec, [day_archives[2]])
        time.sleep(delay)  # the random moment (the benchmark's input, not a synchronisation)
        running = child.poll() is None
        child.send_signal(signal.SIGKILL)
        child.wait()
        written = sum(1 for _ in (rec / "chunks").iterdir()) - before_chunks
        last = commits(rec)
        after_commit = last != base_commits
        try:
            now = state(rec)
            readable = now == (reference_state if after_commit else base_state)
        except Exception as exc:  # reported, counted as unreadable
            readable, now = False, repr(exc)
        t = time.perf_counter()
        record.append_archives(rec, [day_archives[2]])
        rerun_s = time.perf_counter() - t
        complete = state(rec) == reference_state and record.verify_record(rec, day_archives[:3]).ok
        where = "after the commit" if after_commit else ("before any chunk" if not written else f"{written} chunks in")
        rows.append(
            {
                "delay": delay,
                "running": running,
                "written": written,
                "after_commit": after_commit,
                "readable": readable,
                "complete": complete,
                "rerun_s": rerun_s,
            }
        )
        print(
            f"kill {i + 1:2d} at {delay:5.2f} s ({'running' if running else 'already ended'}, {where}): "
            f"open {'= last commit' if readable else 'WRONG'}, rerun {rerun_s:.2f} s "
            f"{'complete, equal to uninterrupted' if complete else 'NOT COMPLETE'}",
            flush=True,
        )
        shutil.rmtree(rec)
    readable = sum(r["readable"] for r in rows)
    complete = sum(r["complete"] for r in rows)
    mid = sum(r["running"] and not r["after_commit"] for r in rows)
    print(
        f"{readable}/{len(rows)} readable before, {complete}/{len(rows)} complete after "
        f"({mid} kills in the middle of the append)"
    )
    return {"duration_s": duration, "chunks": chunks, "kills": rows}


# -- main -------------------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big", type=int, default=143_000, help="swaths of the synthetic 13-year record")
    parser.add_argument("--year", type=int, default=11_000, help="swaths of the synthetic one-year record")
    parser.add_argument("--days", type=int, default=30, help="days of 29 full-size swaths for parts 2 and 3")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parts", default="open,days,kills", help="which parts to run (kills needs days)")
    parser.add_argument("--workdir", type=Path, help="keep data here (default: a temporary folder, removed)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--child", choices=CHILDREN, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="amsr2flow-bench-record-"))
    work.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    results: dict = {}
    try:
        if "open" in parts:
            results["open"] = part_open(args, work)
        if "days" in parts or "kills" in parts:
            results["days"] = part_days(args, work)
        if "kills" in parts:
            results["kills"] = part_kills(args, work, results["days"]["day_archives"])
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    ok = results.get("days", {}).get("equal", True) and all(
        r["readable"] and r["complete"] for r in results.get("kills", {}).get("kills", [])
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
