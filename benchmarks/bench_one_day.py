"""One day at gportal=N: does a run with fewer day jobs than the cap use the cap? (issue 22, part 4)

    .venv/bin/python benchmarks/bench_one_day.py                       # 1 and 4 days, ~7 min on 2 cores
    .venv/bin/python benchmarks/bench_one_day.py --before-rev 80516a9  # and one session per day job, ~+6 min
    .venv/bin/python benchmarks/bench_one_day.py --quick               # 16-scan granules: a smoke test

The granule stage of a run of ``--days`` (1) and of ``--compare-days`` (4) days, at ``--cores N --resources
gportal=N`` (N = ``--sessions``, 4), against a local G-Portal capping each SFTP connection at ``--cap-bytes-per-s``
(``--faults '{"bandwidth_bytes_per_s": CAP}'``, 1 MB/s as in the issue's measurement) with granules of ``--scans``
(400, ~4.3 MB). Each measurement is bench_day_jobs.py's: the ``snakemake`` command as users run it, the catalogue
first (untimed), then the granule stage alone, asked for by its day records; *net* is its wall time less a dry
run's start-up (parsing, the DAG; the run's preflight login stays in net), waiting first for a quiet machine. Each
has a fresh service instance (all on one ``--data-dir``), so its peak of concurrent sessions is the stage's own.

    ratio = bytes served during the stage / (N x CAP x net seconds)        goal (one day): >= 0.9

A day's granules are whole units of work: a session downloads each granule whole. So ``bound``, the ratio were
every granule equally large and everything else free, is the most any design of whole granules can reach: a
day of 29 granules over 4 sessions takes 8 granule times while 29 / 4 = 7.25 would fill the cap, 0.906. Printed
beside the ratio, with ratio / bound (what the overheads leave of it).

``--before-rev`` adds the design of that commit (one session per day job) from a temporary git worktree, as
bench_day_jobs.py does.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import Any

from bench_day_jobs import Design, Stage, after_revision, check_imports, run_design
from side_by_side import REPO, SNAKEMAKE, worktree_of

sys.path.insert(0, str(REPO / "tests"))

from emulator_fixtures import read_stats, start_emulator, stop_emulator

from amsr2flow.run.sessions import day_job_share


def whole_granule_bound(granules_per_day: list[int], cap: int, share: int) -> float:
    """The ratio a run reaches when its granules are equally large and nothing but their bytes takes time: day
    jobs of ``share`` sessions each start in date order as the cap allows, and a day of g granules over s
    sessions takes ceil(g / s) granule times."""
    free = [(0, slot) for slot in range(cap // share)]  # (when free, job slot): jobs of `share` sessions each
    heapq.heapify(free)
    end = 0
    for granules in granules_per_day:
        start, slot = heapq.heappop(free)
        finish = start + math.ceil(granules / min(share, granules))
        end = max(end, finish)
        heapq.heappush(free, (finish, slot))
    return sum(granules_per_day) / (cap * end)


def day_sizes(cfg: dict[str, Any]) -> list[int]:
    """Granules per day, from the day manifests the catalogue wrote."""
    from amsr2flow import config as settings
    from amsr2flow.plan import RunPlan

    plan = RunPlan.from_config(settings.validate(cfg, check_environment=False))
    sizes = []
    for day in plan.days:
        lines = plan.layout.day_manifest(day).read_text(encoding="utf-8").splitlines()
        sizes.append(len(lines) - 1)
    return [s for s in sizes if s]


def measure(
    design: Design, args: argparse.Namespace, root: Path, data_dir: Path, days: int
) -> tuple[Stage, int, float]:
    """The stage, the service's peak of concurrent sessions, and the whole-granule bound."""
    faults = json.dumps({"bandwidth_bytes_per_s": args.cap_bytes_per_s})
    label = f"{days} day(s)"
    tag = f"{design.name}-{days}d"
    proc, state = start_emulator(
        root / f"emulator-{tag}", "--faults", faults, "--data-dir", str(data_dir), scans=args.scans
    )
    try:
        stage, cfg = run_design(design, state, root / tag, args, days=days, sessions=args.sessions, label=label)
    finally:
        stop_emulator(proc)
    sizes = day_sizes(cfg)
    share = 1 if design.name == "before" else day_job_share(args.sessions, len(sizes))  # before: one per job
    return stage, read_stats(state)["peak_sftp_sessions"], whole_granule_bound(sizes, args.sessions, share)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=1, help="the run of fewer days than sessions (1)")
    parser.add_argument("--compare-days", type=int, default=4, help="the run for comparison (4)")
    parser.add_argument("--sessions", type=int, default=4, help="N: --cores N --resources gportal=N (4)")
    parser.add_argument("--cap-bytes-per-s", type=float, default=1e6, help="cap per SFTP connection (1e6)")
    parser.add_argument("--scans", type=int, default=400, help="scans per granule (400; 0: full size)")
    parser.add_argument("--goal", type=float, default=0.9, help="one day: ratio at least (0.9)")
    parser.add_argument("--before-rev", help="also measure the design of this commit (e.g. 80516a9)")
    parser.add_argument("--quick", action="store_true", help="16-scan granules (a smoke test)")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1), help="first day (2024-01-01)")
    parser.add_argument("--timeout-s", type=float, default=3600, help="limit per snakemake run")
    parser.add_argument("--max-wait-s", type=float, default=3600, help="longest wait for other processes to end")
    parser.add_argument("--repeat-disturbed", type=int, default=2, help="measure again when others worked meanwhile")
    parser.add_argument("--workdir", type=Path, help="keep outputs and logs here (default: a temporary folder)")
    args = parser.parse_args()
    if args.quick:
        args.scans = 16
    args.scans = args.scans or None  # full-size granules

    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench_one_day_"))
    root.mkdir(parents=True, exist_ok=True)
    data_dir = root / "emulator-data"  # one granule cache for every service instance
    results: dict[tuple[str, int], tuple[Stage, int, float]] = {}
    try:
        with ExitStack() as stack:
            designs = [Design("after", REPO, "day_kept_swaths", per_granule=False)]
            if args.before_rev:
                tree = stack.enter_context(worktree_of(args.before_rev))
                designs.insert(0, Design("before", tree, "day_kept_swaths", per_granule=False))
            for design in designs:
                check_imports(design)
            version = subprocess.run([str(SNAKEMAKE), "--version"], capture_output=True, text=True).stdout.strip()
            before = f"before = {args.before_rev} (a git worktree); " if args.before_rev else ""
            print(f"{before}after = {after_revision()}; snakemake {version}")
            for days in (args.days, args.compare_days):
                for design in designs:
                    results[(design.name, days)] = measure(design, args, root, data_dir, days)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    report(args, results)
    return 0


def report(args: argparse.Namespace, results: dict[tuple[str, int], tuple[Stage, int, float]]) -> None:
    n, cap = args.sessions, args.cap_bytes_per_s
    size = "full-size" if args.scans is None else f"{args.scans}-scan"
    print(
        f"\nThe granule stage at --cores {n} --resources gportal={n}, a cap of {cap / 1e6:g} MB/s per SFTP "
        f"connection ({size} granules); N x cap = {n * cap / 1e6:g} MB/s"
    )
    columns = [f"{design} {days}d" for design, days in results]
    rows = [
        ("day jobs", lambda s, p, b: str(s.jobs)),
        ("granules", lambda s, p, b: str(s.granules)),
        ("MB served", lambda s, p, b: f"{s.bytes / 1e6:.1f}"),
        ("SFTP sessions (incl. preflight)", lambda s, p, b: str(s.sessions)),
        ("peak concurrent sessions", lambda s, p, b: str(p)),
        ("start-up (dry run), s", lambda s, p, b: f"{s.dry_s:.1f}"),
        ("stage wall, raw / net, s", lambda s, p, b: f"{s.raw_s:.1f} / {s.net_s:.1f}"),
        ("ratio, raw", lambda s, p, b: f"{s.bytes / (n * cap * s.raw_s):.3f}"),
        ("ratio, net", lambda s, p, b: f"{s.bytes / (n * cap * s.net_s):.3f}"),
        ("whole-granule bound", lambda s, p, b: f"{b:.3f}"),
        ("ratio, net / bound", lambda s, p, b: f"{s.bytes / (n * cap * s.net_s) / b:.3f}"),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"  {'':{width}s} " + " ".join(f"{c:>14s}" for c in columns))
    for label, cell in rows:
        print(f"  {label:{width}s} " + " ".join(f"{cell(*value):>14s}" for value in results.values()))
    for (design, days), (stage, _, _) in results.items():
        if stage.disturbed:
            print(f"  ! {design} {days}d: other processes worked during it: {', '.join(stage.disturbed[:6])}")
    stage = results[("after", args.days)][0]
    ratio = stage.bytes / (n * cap * stage.net_s)
    verdict = "met" if ratio >= args.goal else "NOT met"
    print(f"\nGoal: {args.days} day(s) at gportal={n}, ratio (net) {ratio:.3f} >= {args.goal:g}: {verdict}")


if __name__ == "__main__":
    raise SystemExit(main())
