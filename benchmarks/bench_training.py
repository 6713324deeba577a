"""Training batches: batch rate against the raw read rate of the same swaths, side by side, and peak memory.

    .venv/bin/python benchmarks/bench_training.py                    # 16 swaths x 2000 scans, 36.5H + 89.0AV
    .venv/bin/python benchmarks/bench_training.py --swaths 8 --scans 1000
    .venv/bin/python benchmarks/bench_training.py --record results/record   # also a RecordSource, if present

One synthetic archive of ``--swaths`` swaths (smooth fields plus 1 K noise and a few invalid values, so they
compress like real ones) and one of 13 times as many (the same fields, new granule ids). Rates are measured on
the larger one (every reader gets enough swaths), memory on both. Measured in this run:

- ``raw``: ``source.read_raw`` of every swath (the same channels, the same order), nothing else;
- ``batches``: an epoch of ``SwathBatches`` (crop to ``--scans``, stack, Kelvin, mask), ``prefetch`` 0/1/2;
- with 2 and 4 readers (one process each, as DataLoader workers are, each opening its own source): raw reads
  of ``perm[r::W]`` against ``SwathBatches(rank=r, world_size=W)``; the rate is all swaths over the slowest
  reader's time;
- peak traced memory (tracemalloc) of one epoch at 1x and 13x the swaths: it must not grow with the source.

Goal: batch rate >= 0.8 of the raw read rate; memory independent of the number of swaths.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from amsr2flow.formats.archive import ArchiveWriter
from amsr2flow.formats.swath import make_swath
from amsr2flow.training import ArchiveSource, SwathBatches, SwathSource

CHANNELS = ("36.5H", "89.0AV")
BATCH_SIZE = 8
FIELDS = 4  # distinct fields; swaths reuse them (DEFLATE's 32 KiB window cannot see repeats between swaths)


# -- data -----------------------------------------------------------------------------------------------------
def field(seed: int, rows: int, pixels: int) -> np.ndarray:
    """A raw brightness temperature field: smooth large-scale structure, 1 K noise, ~1 % invalid (0)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:pixels]
    kelvin = 230 + 30 * np.sin(y / (97 + seed)) * np.cos(x / (41 + seed)) + rng.normal(0, 1, (rows, pixels))
    raw = np.round(kelvin / 0.01).astype(np.uint16)
    raw[rng.random((rows, pixels)) < 0.01] = 0
    return raw


def write_source(path: Path, swaths: int, rows: int) -> Path:
    fields = [{c: field(k, rows, 486 if c.startswith("89") else 243) for c in CHANNELS} for k in range(FIELDS)]
    start = datetime(2020, 1, 1)
    with ArchiveWriter(path) as writer:
        for n in range(swaths):
            first = start + timedelta(minutes=50 * n)
            writer.add(
                make_swath(
                    f"GW1AM2_{first:%Y%m%d%H%M}_{n % 1000:03d}{'AD'[n % 2]}_L1SGBTBR_2220220",
                    "AD"[n % 2],
                    fields[n % FIELDS],
                    [0.01] * len(CHANNELS),
                    scan_start_utc=f"{first:%Y-%m-%dT%H:%M:%S}.000Z",
                    scan_end_utc=f"{first + timedelta(minutes=49):%Y-%m-%dT%H:%M:%S}.000Z",
                )
            )
    return path


# -- one reader -----------------------------------------------------------------------------------------------
def raw_epoch(source: SwathSource, batches: SwathBatches) -> int:
    """Read the swaths an epoch of ``batches`` reads, in its order, with ``read_raw`` alone."""
    positions = batches.order(batches.epoch)
    for position in positions.tolist():
        source.read_raw(position, batches.channels)
    return len(positions)


def batch_epoch(source: SwathSource, batches: SwathBatches) -> int:
    return sum(len(batch["position"]) for batch in batches)


def timed(work: Callable[[], int]) -> tuple[int, float]:
    started = time.perf_counter()
    count = work()
    return count, time.perf_counter() - started


def make_batches(source: SwathSource, rows: int, **options: Any) -> SwathBatches:
    return SwathBatches(source, n_scans=rows, batch_size=BATCH_SIZE, seed=1, **options)


def epoch_rate(source: SwathSource, rows: int, what: str, **options: Any) -> float:
    """Swaths per second of one epoch (each a new shuffle of the same swaths)."""
    batches = make_batches(source, rows, **options)
    work = raw_epoch if what == "raw" else batch_epoch
    count, seconds = timed(lambda: work(source, batches))
    return count / seconds


# -- several readers (processes) -----------------------------------------------------------------------------
def _reader(job: tuple[str, str, int, int, int, int]) -> tuple[int, float]:
    opener, path, rows, rank, world, prefetch = job
    with open_source(opener, path) as source:
        batches = make_batches(source, rows, rank=rank, world_size=world, prefetch=max(prefetch, 0))
        return timed(lambda: (raw_epoch if prefetch < 0 else batch_epoch)(source, batches))


def readers_rate(opener: str, path: str, rows: int, world: int, prefetch: int) -> float:
    """All swaths over the slowest reader's time; ``prefetch < 0`` = raw reads."""
    jobs = [(opener, path, rows, rank, world, prefetch) for rank in range(world)]
    # spawn: a record cannot be read in a process forked after it was opened (formats.record.FORKED_CHILD), and
    # the same start for archives keeps the two comparable (the start-up is not in the timed epoch)
    with multiprocessing.get_context("spawn").Pool(world) as pool:
        results = pool.map(_reader, jobs)
    return sum(c for c, _ in results) / max(s for _, s in results)


class _Closing:
    def __init__(self, source: Any) -> None:
        self.source = source

    def __enter__(self) -> Any:
        return self.source

    def __exit__(self, *exc: Any) -> None:
        close = getattr(self.source, "close", None)
        if close is not None:
            close()


def open_source(opener: str, path: str) -> _Closing:
    if opener == "record":
        return _Closing(importlib.import_module("amsr2flow.formats.record").RecordSource(path))
    return _Closing(ArchiveSource(path))


# -- memory ---------------------------------------------------------------------------------------------------
def epoch_peak(source: SwathSource, rows: int, prefetch: int) -> tuple[int, int]:
    """Peak traced bytes over one epoch, and the swaths read."""
    batches = make_batches(source, rows, prefetch=prefetch)
    tracemalloc.start()
    try:
        count = batch_epoch(source, batches)
        return tracemalloc.get_traced_memory()[1], count
    finally:
        tracemalloc.stop()


# -- the run --------------------------------------------------------------------------------------------------
def best_interleaved(designs: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Best rate of each design over ``repeats`` rounds, the designs taking turns in every round, so that other
    load on the machine hits all of them alike."""
    best = dict.fromkeys(designs, 0.0)
    for _ in range(repeats):
        for name, run in designs.items():
            best[name] = max(best[name], run())
    return best


def measure(label: str, opener: str, path: str, rows: int, repeats: int, readers: list[int]) -> None:
    mb_per_swath = rows * sum(486 if c.startswith("89") else 243 for c in CHANNELS) * 2 / 1e6
    print(f"\n{label}: {path}")
    print(f"{'readers':>7} {'design':<22} {'swaths/s':>9} {'MB/s raw':>9} {'batches/s':>10} {'ratio to raw':>13}")
    with open_source(opener, path) as source:
        designs: dict[str, Callable[[], float]] = {"raw": lambda: epoch_rate(source, rows, "raw")}
        for prefetch in (0, 1, 2):
            designs[f"SwathBatches prefetch={prefetch}"] = lambda p=prefetch: epoch_rate(
                source, rows, "batches", prefetch=p
            )
        report(1, best_interleaved(designs, repeats), mb_per_swath)
    for world in readers:
        designs = {"raw": lambda w=world: readers_rate(opener, path, rows, w, -1)}
        for prefetch in (0, 1):
            designs[f"SwathBatches prefetch={prefetch}"] = lambda w=world, p=prefetch: readers_rate(
                opener, path, rows, w, p
            )
        report(world, best_interleaved(designs, repeats), mb_per_swath)


def report(readers: int, rates: dict[str, float], mb_per_swath: float) -> None:
    raw = rates.pop("raw")
    print(f"{readers:>7} {'read_raw alone':<22} {raw:>9.1f} {raw * mb_per_swath:>9.0f} {'':>10} {1:>13.2f}")
    for name, rate in rates.items():
        print(f"{readers:>7} {name:<22} {rate:>9.1f} {'':>9} {rate / BATCH_SIZE:>10.2f} {rate / raw:>13.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaths", type=int, default=16, help="swaths of the 1x source (default 16)")
    parser.add_argument("--scans", type=int, default=2000, help="scans per swath and n_scans (default 2000)")
    parser.add_argument("--repeats", type=int, default=2, help="best of N epochs per cell (default 2)")
    parser.add_argument("--readers", type=int, nargs="*", default=[2, 4], help="reader processes (default 2 4)")
    parser.add_argument("--record", help="a record store to measure too (amsr2flow.formats.record.RecordSource)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    work = Path(tempfile.mkdtemp(prefix="bench_training_"))
    started = time.perf_counter()
    small = write_source(work / "small.npz", args.swaths, args.scans)
    large = write_source(work / "large.npz", 13 * args.swaths, args.scans)
    print(
        f"{args.swaths} and {13 * args.swaths} swaths of {args.scans} scans, channels {', '.join(CHANNELS)} "
        f"(stacked at 243 pixels), batch {BATCH_SIZE}; archives {small.stat().st_size / 1e6:.0f} and "
        f"{large.stat().st_size / 1e6:.0f} MB, written in {time.perf_counter() - started:.0f} s; best of {args.repeats}"
    )
    measure("archive", "archive", str(large), args.scans, args.repeats, args.readers)
    print(f"\n{'peak traced memory over one epoch':<34} {'swaths':>7} {'MB':>7}  (one batch: Kelvin + mask + raw)")
    batch_mb = BATCH_SIZE * len(CHANNELS) * args.scans * 243 * 7 / 1e6
    for path in (small, large):
        for prefetch in (0, 1):
            with ArchiveSource(path) as source:
                peak, count = epoch_peak(source, args.scans, prefetch)
            name = f"{path.name} prefetch={prefetch}"
            print(f"{name:<34} {count:>7} {peak / 1e6:>7.1f}  ({peak / 1e6 / batch_mb:.1f} batches)")
    if args.record:
        try:
            importlib.import_module("amsr2flow.formats.record")
        except ImportError as exc:
            print(f"\nrecord: skipped ({exc}); amsr2flow.formats.record is not on this branch")
        else:
            measure("record", "record", args.record, args.scans, args.repeats, args.readers)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    for path in (small, large):
        path.unlink()
    work.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
