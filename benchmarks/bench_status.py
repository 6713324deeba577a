"""`amsr2flow status` on a synthetic full-record layout: 13 years of manifests and listings (~138,000 granules)
written as the overhead benchmark writes them, a run part-way through (finished swaths for 60 % of the
granules, 1 % in the failure ledger, progress marks for the last hour's 2,000 granules).

    .venv/bin/python benchmarks/bench_status.py            # 13 years (~2 min to build, then the timings)
    .venv/bin/python benchmarks/bench_status.py --years 1

Measured in its own process each time (wall time and peak RSS, as ``amsr2flow status`` is run by a user):
the table, the JSON form, and for scale the plain ``find`` of the swath folders that any status has to list.
Swaths are empty files (status reads names, never contents); sealed years with real archives are not part of
this layout (their count is their archive's index, one member read).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_snakemake_overhead import WRAPPER, bench_config, write_manifests

from amsr2flow import config as settings
from amsr2flow.plan import Layout
from amsr2flow.run import progress

REPO = Path(__file__).resolve().parents[1]
AMSR2FLOW = Path(sys.executable).parent / "amsr2flow"


def build_run_state(cfg: dict, seed: int = 0) -> dict[str, int]:
    full = settings.validate(cfg, check_environment=False)
    layout = Layout.from_config(full)
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    counts = {"swaths": 0, "ledger": 0, "marks": 0}
    for listing in sorted((layout.root / "manifests").glob("*/granules_*.csv")):
        frame = pd.read_csv(listing, usecols=["granule_id", "day"], dtype=str)
        for gid, day in zip(frame["granule_id"], frame["day"], strict=True):
            draw = rng.random()
            if draw < 0.60:
                swath = layout.swath(day, gid)
                swath.parent.mkdir(parents=True, exist_ok=True)
                swath.touch()
                swath.with_suffix(".json").touch()
                counts["swaths"] += 1
                if counts["marks"] < 2000 and rng.random() < 0.05:
                    progress.mark_finished(layout, gid, "archived", now - timedelta(seconds=rng.uniform(0, 3500)))
                    counts["marks"] += 1
            elif draw < 0.61:
                entry = layout.ledger_entry(day, gid)
                entry.parent.mkdir(parents=True, exist_ok=True)
                entry.write_text(
                    json.dumps(
                        {
                            "granule_id": gid,
                            "status": "failed",
                            "reason_class": "stall",
                            "last_error": "no data for 120 s",
                            "last_attempt_utc": now.isoformat(timespec="seconds"),
                            "retryable": True,
                        }
                    )
                )
                counts["ledger"] += 1
    return counts


def measure(args: list[str], out: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", WRAPPER, str(out), *args], capture_output=True, text=True)
    return json.loads(result.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", type=int, default=13)
    parser.add_argument("--first-year", type=int, default=2013)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        workdir = Path(tmp)
        cfg = bench_config(workdir, args.first_year, args.years)
        t = time.monotonic()
        granules = write_manifests(workdir, cfg)
        counts = build_run_state(cfg)
        print(f"{args.years} years: {granules:,} granules, {counts} in {time.monotonic() - t:.0f} s", flush=True)
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        rows = []
        for name, command in (
            ("status (table)", [str(AMSR2FLOW), "status", "--configfile", str(config_path)]),
            ("status --json", [str(AMSR2FLOW), "status", "--configfile", str(config_path), "--json"]),
            ("find swaths/ -name '*.json' (floor)", ["find", str(workdir / "results" / "swaths"), "-name", "*.json"]),
        ):
            result = measure(command, workdir / "out.txt")
            rows.append((name, result))
            if name == "status (table)":
                print((workdir / "out.txt").read_text(encoding="utf-8"))
        print("| command | wall | peak RSS |\n|---|---:|---:|")
        for name, r in rows:
            print(f"| {name} | {r['wall_s']:.2f} s | {r['rss_kb'] / 1024:.0f} MB |")
        floor = rows[2][1]["wall_s"]
        print(f"\nstatus / find ratio: {rows[0][1]['wall_s'] / floor:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
