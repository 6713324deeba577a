"""Member compression benchmark (issue goal: storage as an option): deflate vs bzip2 vs LZMA, side by side.

    .venv/bin/python benchmarks/bench_compression.py               # 12 full-size granules (~2 minutes)
    .venv/bin/python benchmarks/bench_compression.py --granules 4  # quicker

Swaths are extracted from the local G-Portal's full-size synthetic granules (realistic fields: surface,
weather, noise, missing rows), as 36.5H alone and as 36.5H + 18.7V with positions. For each member
compression the archive is written, read back whole (every array of every swath, as a loader would), and
checked with ``np.load(allow_pickle=False)``. Ratios are against deflate, measured in this one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np


def main() -> int:
    from amsr2flow.emulator import orbit, synth
    from amsr2flow.formats import archive, swath

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--granules", type=int, default=12)
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder (granules are reused)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_compression_"))
    specs = orbit.granules_beginning_on(date(2020, 7, 1))[: args.granules]
    (work / "granules").mkdir(parents=True, exist_ok=True)
    for spec in specs:
        if not (work / "granules" / spec.file_name).is_file():
            synth.write_granule(work / "granules" / spec.file_name, spec)
    print(f"{len(specs)} full-size synthetic swaths")
    print(f"{'content':28s} {'compression':12s} {'MB/swath':>9s} {'size':>6s} {'write MB/s':>11s} {'read MB/s':>10s}")
    for label, channels, geo in (("36.5H", ("36.5H",), False), ("36.5H+18.7V, positions", ("36.5H", "18.7V"), True)):
        swaths = [swath.extract_swath(work / "granules" / s.file_name, channels, geo) for s in specs]
        raw_bytes = sum(a.nbytes for s in swaths for a in s.arrays.values())
        reference: dict[str, float] = {}
        for compression in archive.MEMBER_COMPRESSIONS:
            target = work / f"{compression}.npz"
            target.unlink(missing_ok=True)
            started = time.perf_counter()
            archive.write_archive(target, swaths, compression=compression)
            write_s = time.perf_counter() - started
            started = time.perf_counter()
            with archive.Archive(target) as arch:
                for i in range(len(arch)):
                    for name in swath.meta_array_names(arch.metadata(i)):
                        arch.read_array(i, name)
            read_s = time.perf_counter() - started
            with np.load(target, allow_pickle=False) as plain:  # numpy alone reads every member
                assert all(plain[name].size >= 0 for name in plain.files)
            size = target.stat().st_size
            reference.setdefault("size", size)
            print(
                f"{label:28s} {compression:12s} {size / len(swaths) / 1e6:9.2f} {size / reference['size']:6.2f} "
                f"{raw_bytes / write_s / 1e6:11.1f} {raw_bytes / read_s / 1e6:10.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
