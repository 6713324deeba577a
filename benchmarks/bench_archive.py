"""Archive benchmark: streaming writer vs the legacy in-memory build, size, throughput, one-swath reads.

    .venv/bin/python benchmarks/bench_archive.py              # 1,000 full-size swaths (a few minutes)
    .venv/bin/python benchmarks/bench_archive.py --swaths 100 # quicker

Swaths are full size (2038-2044 scans x 243, uint16), made from ``--bases`` synthetic granules of
``amsr2flow.emulator.synth`` (realistic fields: surface, weather, noise, missing rows), each reused with a different
row roll, so generating 1,000 stays fast. Reuse does not flatter compression: DEFLATE's window (32 KiB) is
far smaller than one swath (~1 MB), so neither format can exploit repeats between swaths.

Every measurement runs in its own child process, whose peak resident memory (``VmHWM``) is its own,
so one measurement cannot inflate another. Baseline = a child that only imports numpy and amsr2flow.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from amsr2flow.emulator import orbit
from amsr2flow.formats import archive, l1b, swath

HALF_ORBIT = timedelta(minutes=49, seconds=30)


# -- data -----------------------------------------------------------------------------------------------------
def base_fields(count: int, cache: Path) -> list[np.ndarray]:
    """36.5H raw fields (missing codes -> 0) of ``count`` synthetic granules, cached between runs."""
    from amsr2flow.emulator import synth

    fields = []
    specs = [g for day in (date(2020, 1, 1), date(2020, 7, 1)) for g in orbit.granules_beginning_on(day)]
    for spec in specs[:count]:
        path = cache / f"{spec.granule_id}.36.5H.npy"
        if not path.is_file():
            raw = synth.generate_fields(spec)[l1b.CHANNEL_DATASETS["36.5H"]]
            raw[raw >= min(l1b.TB_MISSING_CODES)] = 0
            np.save(path, raw)
        fields.append(np.load(path))
    return fields


def write_swath_files(n: int, bases: list[np.ndarray], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    start = datetime(2020, 1, 1, tzinfo=timezone.utc)
    paths = []
    for k in range(n):
        raw = np.roll(bases[k % len(bases)], 7 * (k // len(bases)), axis=0)
        t0 = start + k * HALF_ORBIT
        s = swath.make_swath(
            f"GW1AM2_{t0:%Y%m%d%H%M}_{k % 1000:03d}{'AD'[k % 2]}_L1SGBTBR_2220220",
            "AD"[k % 2],
            {"36.5H": raw},
            [0.01],
            scan_start_utc=swath.utc_iso(t0.timestamp()),
            scan_end_utc=swath.utc_iso((t0 + HALF_ORBIT).timestamp() - 1),
            overlap_scans=30,
        )
        paths.append(swath.write_swath(s, folder / f"{s.granule_id}.npy"))
    return paths


# -- measurements (each in a child process) -------------------------------------------------------------------
def peak_rss_mb() -> float:
    """This process's peak resident memory.

    ``VmHWM`` belongs to the address space created by ``exec``; ``ru_maxrss`` would not do: Linux keeps it
    across ``fork``+``exec``, so a child would inherit the parent's peak.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux; bytes on macOS


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def child_baseline(_: argparse.Namespace) -> dict:
    return {}


def child_stream(args: argparse.Namespace) -> dict:
    paths = sorted(Path(args.swath_dir).glob("*.npy"))[: args.n]
    read_s = add_s = 0.0
    raw_bytes = 0
    writer = archive.ArchiveWriter(args.out)
    with writer:
        for path in paths:
            t = time.perf_counter()
            s = swath.read_swath(path)
            read_s += time.perf_counter() - t
            raw_bytes += sum(a.nbytes for a in s.arrays.values())
            t = time.perf_counter()
            writer.add(s)
            add_s += time.perf_counter() - t
        t = time.perf_counter()
    add_s += time.perf_counter() - t  # index, period, provenance, fsync, rename
    return {"write_s": add_s, "read_inputs_s": read_s, "raw_bytes": raw_bytes}


def child_legacy(args: argparse.Namespace) -> dict:
    """The legacy system's way: every swath dictionary in a list, then np.savez_compressed."""
    paths = sorted(Path(args.swath_dir).glob("*.npy"))[: args.n]
    t = time.perf_counter()
    swaths = []
    for path in paths:
        s = swath.read_swath(path)
        meta = s.metadata
        swaths.append(
            {
                "temperature": s["temperature"],
                "metadata": {
                    "orbit_type": meta.orbit_type,
                    "scale_factor": meta.scale_factor,
                    "temp_range": meta.temp_range,
                    "shape": meta.shape,
                },
            }
        )
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    swath_array = np.empty(len(swaths), dtype=object)
    swath_array[:] = swaths
    np.savez_compressed(
        args.out, swath_array=swath_array, period=np.array("2020-01-01T00:00:00 to 2021-01-01T00:00:00")
    )
    return {"write_s": time.perf_counter() - t, "read_inputs_s": read_s}


def child_zlib(args: argparse.Namespace) -> dict:
    """Plain zlib level 6 (raw DEFLATE, as in zip) on the same member bytes the archive compresses."""
    paths = sorted(Path(args.swath_dir).glob("*.npy"))[: args.n]
    seconds = 0.0
    raw = compressed = 0
    for path in paths:
        data = npy_bytes(swath.read_swath(path)["temperature"])
        t = time.perf_counter()
        packer = zlib.compressobj(args.level, zlib.DEFLATED, -15)
        compressed += len(packer.compress(data)) + len(packer.flush())
        seconds += time.perf_counter() - t
        raw += len(data)
    return {"seconds": seconds, "raw_bytes": raw, "compressed_bytes": compressed}


def child_read_new(args: argparse.Namespace) -> dict:
    t = time.perf_counter()
    with archive.Archive(args.out) as opened:
        temperature = opened[args.n // 2]["temperature"]
    return {"seconds": time.perf_counter() - t, "shape": list(temperature.shape)}


def child_read_legacy(args: argparse.Namespace) -> dict:
    t = time.perf_counter()
    with np.load(args.out, allow_pickle=True) as data:  # the legacy README's way (trusted file: our own)
        temperature = data["swath_array"][args.n // 2]["temperature"]
    return {"seconds": time.perf_counter() - t, "shape": list(temperature.shape)}


CHILDREN = {
    "baseline": child_baseline,
    "stream": child_stream,
    "legacy": child_legacy,
    "zlib": child_zlib,
    "read-new": child_read_new,
    "read-legacy": child_read_legacy,
}


def run_child(kind: str, **options: object) -> dict:
    command = [sys.executable, __file__, "--child", kind]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- report ---------------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--swaths", type=int, default=1000)
    parser.add_argument("--bases", type=int, default=20, help="distinct synthetic granules to build swaths from")
    parser.add_argument("--workdir", type=Path, help="keep data here (default: a temporary folder, removed)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--child", choices=CHILDREN, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--swath-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--level", type=int, default=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = CHILDREN[args.child](args)
        print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))
        return 0

    work = args.workdir or Path(tempfile.mkdtemp(prefix="amsr2flow-bench-"))
    try:
        return report(args, work)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, work: Path) -> int:
    n, small = args.swaths, max(args.swaths // 10, 1)
    cache = work / "bases"
    cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    swath_dir = work / "swaths"
    shutil.rmtree(swath_dir, ignore_errors=True)
    write_swath_files(n, base_fields(args.bases, cache), swath_dir)
    print(
        f"prepared {n} swath files from {args.bases} synthetic granules in {time.perf_counter() - t:.0f} s", flush=True
    )

    new, old = work / "new.npz", work / "legacy.npz"
    r: dict[str, dict] = {}
    r["baseline"] = run_child("baseline")
    r["stream_small"] = run_child("stream", n=small, swath_dir=swath_dir, out=work / "new_small.npz")
    r["stream"] = run_child("stream", n=n, swath_dir=swath_dir, out=new)
    r["legacy_small"] = run_child("legacy", n=small, swath_dir=swath_dir, out=work / "legacy_small.npz")
    r["legacy"] = run_child("legacy", n=n, swath_dir=swath_dir, out=old)
    r["zlib6"] = run_child("zlib", n=n, swath_dir=swath_dir, level=6)
    r["read_new"] = run_child("read-new", n=n, out=new)
    r["read_legacy"] = run_child("read-legacy", n=n, out=old)
    raw_mb = r["stream"]["raw_bytes"] / 1e6
    r["sizes"] = {"new": new.stat().st_size, "legacy": old.stat().st_size, "raw": r["stream"]["raw_bytes"]}
    base = r["baseline"]["peak_rss_mb"]

    write_mbps = raw_mb / r["stream"]["write_s"]
    zlib_mbps = r["zlib6"]["raw_bytes"] / 1e6 / r["zlib6"]["seconds"]
    legacy_mbps = raw_mb / r["legacy"]["write_s"]
    rows = [
        (
            f"peak memory, write {small} swaths (MB)",
            r["stream_small"]["peak_rss_mb"],
            r["legacy_small"]["peak_rss_mb"],
        ),
        (f"peak memory, write {n} swaths (MB)", r["stream"]["peak_rss_mb"], r["legacy"]["peak_rss_mb"]),
        ("write throughput (MB/s of raw data)", write_mbps, legacy_mbps),
        ("archive size (MB)", r["sizes"]["new"] / 1e6, r["sizes"]["legacy"] / 1e6),
        ("read one swath: time (s)", r["read_new"]["seconds"], r["read_legacy"]["seconds"]),
        ("read one swath: peak memory (MB)", r["read_new"]["peak_rss_mb"], r["read_legacy"]["peak_rss_mb"]),
    ]
    print(f"\n{n} swaths, {raw_mb:.0f} MB raw; child baseline (imports only) {base:.0f} MB\n")
    print(f"| {'measure':<40} | {'amsr2flow':>10} | {'legacy':>10} | {'ratio':>7} |")
    print(f"|{'-' * 42}|{'-' * 12}|{'-' * 12}|{'-' * 9}|")
    for label, ours, theirs in rows:
        print(f"| {label:<40} | {ours:>10.2f} | {theirs:>10.2f} | {ours / theirs:>7.3f} |")
    print(
        f"\nplain zlib level 6 on the same bytes: {zlib_mbps:.1f} MB/s -> writer / zlib6 = {write_mbps / zlib_mbps:.2f}"
    )
    sizes, z = r["sizes"], r["zlib6"]
    print(
        f"compressed / raw: amsr2flow {sizes['new'] / sizes['raw']:.4f}, legacy {sizes['legacy'] / sizes['raw']:.4f}, "
        f"zlib6 {z['compressed_bytes'] / z['raw_bytes']:.4f}"
    )
    growth = r["stream"]["peak_rss_mb"] - r["stream_small"]["peak_rss_mb"]
    checks = {
        f"writer peak memory < 300 MB at {n} swaths": r["stream"]["peak_rss_mb"] < 300,
        f"writer peak memory flat ({small} -> {n} swaths: {growth:+.1f} MB)": growth < 50,
        "archive no larger than legacy": r["sizes"]["new"] <= r["sizes"]["legacy"],
        "throughput >= 0.8 x zlib level 6": write_mbps >= 0.8 * zlib_mbps,
    }
    print()
    for label, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    if args.json:
        args.json.write_text(json.dumps({"results": r, "checks": checks}, indent=1, default=str))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
