"""Regions against the globe: granules and bytes downloaded, archive bytes and wall time (issue 24).

    .venv/bin/python benchmarks/bench_regions.py              # 2 days of full-size granules, ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_regions.py --quick      # 16-scan granules: a smoke test, ~2 min

One local G-Portal (one granule cache) serves five runs of the same days, each the ``snakemake`` command as users
run it (``--cores 2 --resources gportal=2``, positions on, two channels) into a folder of its own: the globe, a
box over Japan, a box across the antimeridian (the Bering Sea), the Arctic cap north of 70 N and a small
polygon in the South Atlantic. For each: granules and bytes the service served during the run (its stats),
the bytes of the run's archives, the run's wall time, and each as a ratio to the globe's, measured side by
side in this one run. The service generates each granule once (its cache): the globe runs first and pays for
that, so its wall time is measured again after the others (the second figure is the one compared).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from side_by_side import REPO

sys.path.insert(0, str(REPO / "tests"))

from emulator_fixtures import read_stats, start_emulator, stop_emulator
from workflow_helpers import emulator_config, run_workflow

REGIONS: dict[str, Any] = {
    "globe": None,
    "Japan box": [128.0, 30.0, 146.0, 46.0],
    "Bering Sea (across 180)": [160.0, 50.0, -160.0, 66.0],
    "Arctic cap (70 N)": {"arctic": 70},
    "small polygon": "POLYGON ((-30 -40, -26 -40, -26 -36, -30 -37, -30 -40))",
}


@dataclass(frozen=True)
class Measured:
    granules: int
    served_bytes: int
    archive_bytes: int
    outside: int
    wall_s: float


def measure(state: dict[str, Any], folder: Path, region: Any, args: argparse.Namespace) -> Measured:
    end = args.start + timedelta(days=args.days - 1)
    cfg = emulator_config(
        state,
        folder,
        start=args.start.isoformat(),
        end=end.isoformat(),
        region=region,
        geolocation=True,
        channels=["36.5H", "89.0AV"],
    )
    before = read_stats(state)
    started = time.perf_counter()
    run = run_workflow(folder, cfg, "--resources", "gportal=2", timeout=args.timeout_s)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"bench_regions: the run for {region!r} failed:\n{run.stdout[-3000:]}")
    after = read_stats(state)
    archives = sum(p.stat().st_size for p in (folder / "results" / "archives").rglob("*.npz"))
    outside = sum(1 for p in (folder / "results" / "ledger").rglob("*.json") if '"outside"' in p.read_text())
    return Measured(
        granules=after["files_served"] - before["files_served"],
        served_bytes=after["bytes_served"] - before["bytes_served"],
        archive_bytes=archives,
        outside=outside,
        wall_s=wall,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2, help="days of the runs (2)")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1), help="first day (2024-01-01)")
    parser.add_argument("--quick", action="store_true", help="16-scan granules (a smoke test)")
    parser.add_argument("--timeout-s", type=float, default=3600, help="limit per snakemake run")
    parser.add_argument("--workdir", type=Path, help="keep outputs and logs here (default: a temporary folder)")
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench_regions_"))
    root.mkdir(parents=True, exist_ok=True)
    revision = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(f"amsr2flow {revision.stdout.strip()}; {args.days} day(s) from {args.start}; ", end="")
    print("16-scan granules" if args.quick else "full-size granules", flush=True)
    results: dict[str, Measured] = {}
    proc, state = start_emulator(root / "emulator", scans=16 if args.quick else None)
    try:
        for n, (name, region) in enumerate(REGIONS.items()):
            results[name] = measure(state, root / f"run{n}", region, args)
        # the first run paid for generating the granules; the globe again, from a fresh folder, is the one compared
        results["globe"] = measure(state, root / "run-globe-again", None, args)
    finally:
        stop_emulator(proc)
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    report(results)
    return 0


def report(results: dict[str, Measured]) -> None:
    globe = results["globe"]
    print()
    print(f"{'region':<26} {'granules':>9} {'MB served':>10} {'MB archive':>11} {'wall s':>7}   ratio to the globe")
    for name, m in results.items():
        ratios = (
            f"granules {m.granules / globe.granules:.3f}, bytes {m.served_bytes / globe.served_bytes:.3f}, "
            f"archive {m.archive_bytes / globe.archive_bytes:.3f}, wall {m.wall_s / globe.wall_s:.2f}"
        )
        outside = f" ({m.outside} with no scan inside)" if m.outside else ""
        print(
            f"{name:<26} {m.granules:>9} {m.served_bytes / 1e6:>10.1f} {m.archive_bytes / 1e6:>11.1f} "
            f"{m.wall_s:>7.1f}   {ratios}{outside}"
        )


if __name__ == "__main__":
    sys.exit(main())
