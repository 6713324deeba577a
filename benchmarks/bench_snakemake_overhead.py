"""Snakemake's own overhead with this project's Snakefile, for 1 year and 13 years of granules (no network).

    .venv/bin/python benchmarks/bench_snakemake_overhead.py                     # 1 and 13 years (~15 min)
    .venv/bin/python benchmarks/bench_snakemake_overhead.py --years 1           # one year only (~3 min)
    .venv/bin/python benchmarks/bench_snakemake_overhead.py --years 1 13 --run-years 1 13   # also run 13 years

What is measured, each in its own ``snakemake`` process (wall time, and peak RSS of that process from
``getrusage(RUSAGE_CHILDREN)`` of a one-shot wrapper):

- **plan**: ``snakemake -n`` with every day manifest and year listing present and nothing else done: the plan
  of ~10,600 granule jobs per year. Ungrouped, and with the SLURM profile's groups (20 granules per group).
- **run**: the same DAG executed with trivial jobs: a cluster-like executor (``benchnoop``, written by this
  script) that forms groups and counts resources as the SLURM executor does, but whose jobs only create their
  output files at once: no process, no queue, no polling. Settings as in ``profiles/slurm`` (greedy scheduler,
  subsample 200, ``gportal=4``, ``serial=1`` local). Ungrouped vs 20 granules per group. This is Snakemake's
  scheduling cost, the floor under any real run; SLURM's queueing and the status polling come on top.
- **sealed**: ``snakemake -n`` when every year is complete and archived (placeholder archives, parts folders
  and reports with ordered modification times): what "rerun only missing years" costs when nothing is missing.

Manifests and listings are written without the network by the project's own code: granules from
``amsr2flow.emulator.orbit`` (29-30 per day, realistic ids), rows as the catalogue stage writes them
(``catalogue.manifest_to_csv_bytes``), a settled info file per day, and the year listing from
``stages.catalogue.build_year_listing`` (which fetches nothing when every day is settled). Hooks are off
(``--no-hooks``): the run start-up checks of ``onstart`` need credentials or a running local G-Portal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import yaml

from amsr2flow import atomic
from amsr2flow import config as settings
from amsr2flow.emulator import orbit
from amsr2flow.emulator.store import entry_from_spec
from amsr2flow.formats.archive import archive_name
from amsr2flow.gportal import catalogue
from amsr2flow.layout import Layout, period_tag
from amsr2flow.stages.catalogue import build_year_listing

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
GROUP_SIZE = 20  # granules per group
LOG_LIMIT_BYTES = 500_000_000  # a grouped run whose log passes this has run away (see _groups)
GRANULE_RULES = ("granule_temp_swath", "granule_kept_swath")

#: The executor plugin, written to a temporary folder put on PYTHONPATH (plugins are found by module name).
NOOP_PLUGIN = '''
"""Benchmark executor: cluster-like (groups, resource scopes), jobs only create their outputs at once."""
import os
from pathlib import Path

from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.real import RealExecutor
from snakemake_interface_executor_plugins.settings import CommonSettings, ExecMode

common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=False,
    job_deploy_sources=False,
    pass_envvar_declarations_to_cmd=False,
    auto_deploy_default_storage_provider=False,
)


def _create(path, is_directory):
    p = Path(path)
    if is_directory:
        p.mkdir(parents=True, exist_ok=True)
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "ab"):
        pass
    os.utime(p)


class Executor(RealExecutor):
    def run_job(self, job):
        info = SubmittedJobInfo(job=job)
        for member in (list(job.jobs) if job.is_group() else [job]):
            for f in member.output:
                _create(str(f), f.is_directory)
            for f in member.log:
                _create(str(f), False)
        self.report_job_submission(info)
        self.report_job_success(info)

    def get_exec_mode(self):
        return ExecMode.REMOTE

    def get_python_executable(self):
        raise NotImplementedError

    def cancel(self):
        pass

    def shutdown(self):
        pass

    @property
    def cores(self):
        return "all"
'''

#: Runs one command and prints its wall time and the peak RSS of the largest process it waited for.
WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.monotonic()\n"
    "p = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], 'w'), stderr=subprocess.STDOUT)\n"
    "wall = time.monotonic() - t\n"
    "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(json.dumps({'rc': p.returncode, 'wall_s': wall, 'rss_kb': rss}))\n"
)


# -- inputs ----------------------------------------------------------------------------------------------------
def bench_config(workdir: Path, first_year: int, years: int) -> dict:
    return {
        "start": f"{first_year}-01-01",
        "end": f"{first_year + years - 1}-12-31",
        "source": "emulator",
        "output_dir": str(workdir / "results"),
        "emulator": {"state_file": str(workdir / "no-emulator-state.json")},
    }


def write_manifests(workdir: Path, cfg: dict) -> int:
    """Day manifests (settled) and year listings as the catalogue stage writes them; returns the granule count."""
    full = settings.validate(
        cfg, check_environment=False, schema_path=REPO / "workflow" / "schemas" / "config.schema.yaml"
    )
    layout = Layout.from_config(full)
    fetched = datetime.now(timezone.utc)  # long after every day ended: settled
    total = 0
    for year, (first, after) in settings.year_periods(full).items():
        days = [first + timedelta(days=i) for i in range((after - first).days)]
        for day in days:
            rows = []
            for spec in orbit.granules_beginning_on(day):
                entry = entry_from_spec(spec)
                rows.append(
                    {
                        "granule_id": spec.granule_id,
                        "begin_utc": pd.Timestamp(spec.start_utc),
                        "end_utc": pd.Timestamp(spec.end_utc),
                        "orbit_direction": spec.orbit_direction,
                        "path_number": spec.path_number,
                        "remote_path": entry.current_remote_path,
                        "size_bytes": 22379200,
                        "catalogue_product_version": "2",
                        "dataset_id": entry.dataset_id,
                        "generation": "current",
                    }
                )
            frame = pd.DataFrame(rows, columns=catalogue.MANIFEST_COLUMNS)
            atomic.write_if_changed(layout.day_manifest(day), catalogue.manifest_to_csv_bytes(frame))
            info = {"day": day.isoformat(), "granules": len(frame), "fetched_utc": fetched.isoformat()}
            atomic.write_json(layout.day_manifest_info(day), {**info, "settled": True, "generation": "current"})
            total += len(frame)
        build_year_listing(
            days,
            cfg=full,
            source=None,  # every day is settled: nothing is fetched
            layout=layout,
            listing_path=layout.year_listing(year, period_tag(first, after)),
            now=lambda: fetched,
        )
    return total


def reset_outputs(workdir: Path) -> None:
    """Back to "manifests present, nothing else": no swaths, archives, parts, reports, logs or metadata."""
    results = workdir / "results"
    for sub in ("swaths", "archives", "parts", "reports", "logs", "ledger", ".scratch"):
        shutil.rmtree(results / sub, ignore_errors=True)
    shutil.rmtree(workdir / ".snakemake", ignore_errors=True)


def seal_years(workdir: Path, cfg: dict) -> None:
    """Every year complete and archived: placeholder products, each newer than what it is made from."""
    results = workdir / "results"
    periods = settings.year_periods(cfg)
    # after the newest listing: each product newer than its inputs (a few seconds in the future at most)
    base = max(p.stat().st_mtime for p in (results / "manifests").rglob("granules_*.csv"))
    stamp = {"archive": base + 1, "parts": base + 2, "year_report": base + 3, "run_report": base + 4}

    def touch(path: Path, when: float, folder: bool = False) -> None:
        if folder:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        os.utime(path, (when, when))

    for year, (first, after) in periods.items():
        as_dt = [datetime(d.year, d.month, d.day) for d in (first, after)]
        touch(results / "archives" / archive_name(*as_dt), stamp["archive"])
        touch(results / "parts" / str(year), stamp["parts"], folder=True)
        for ext in ("json", "md"):
            touch(results / "reports" / str(year) / f"report_{period_tag(first, after)}.{ext}", stamp["year_report"])
    first_day = date.fromisoformat(cfg["start"])
    run_tag = period_tag(first_day, periods[max(periods)][1])
    for ext in ("json", "md", "html"):
        touch(results / "reports" / f"run_{run_tag}.{ext}", stamp["run_report"])


# -- measuring --------------------------------------------------------------------------------------------------
def measure(workdir: Path, name: str, args: list[str], env: dict[str, str], limit_s: float | None = None) -> dict:
    log = workdir / f"{name}.out"
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(SNAKEFILE),
        "--configfile",
        str(workdir / "config.yaml"),
        "--workflow-profile",
        "none",
        "--no-hooks",
        *args,
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, str(log), *cmd],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    started = time.monotonic()
    while proc.poll() is None:
        too_long = limit_s is not None and time.monotonic() - started > limit_s
        if too_long or (log.exists() and log.stat().st_size > LOG_LIMIT_BYTES):
            # Snakemake stops cleanly on SIGINT; SIGKILL if it does not within 30 s.
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            stopped = {"rc": None, "wall_s": None, "rss_kb": None, "nothing_to_do": False}
            return {**stopped, "stopped_after_s": time.monotonic() - started, **_groups(log)}
        time.sleep(0.5)
    result = json.loads(proc.stdout.read().strip().splitlines()[-1])
    text = log.read_text(errors="replace")
    result.update(_groups(log))
    if result["rc"] != 0:
        raise RuntimeError(f"{name} failed (exit {result['rc']}); see {log}:\n{text[-3000:]}")
    result["nothing_to_do"] = "Nothing to be done" in text
    return result


def _groups(log: Path) -> dict:
    """Group jobs printed and the largest one (granules per group): shows when groups grow beyond their size."""
    sizes, current = [], None
    with open(log, errors="replace") as fh:
        for line in fh:
            if "Group job" in line:
                if current is not None:
                    sizes.append(current)
                current = 0
            elif current is not None and line.lstrip().startswith("rule granule"):
                current += 1
    if current is not None:
        sizes.append(current)
    return {"group_jobs": len(sizes), "largest_group": max(sizes, default=0)}


GROUP_ARGS = ["--groups", *(f"{r}=granules" for r in GRANULE_RULES), "--group-components", f"granules={GROUP_SIZE}"]
RUN_ARGS = [
    # The run report is a local rule, so it would really run and read the year reports the no-op executor
    # leaves empty; what is measured is scheduling up to the year reports.
    "--omit-from",
    "run_report",
    "--executor",
    "benchnoop",
    "--jobs",
    "50",
    "--scheduler",
    "greedy",
    "--scheduler-subsample",
    "200",
    "--resources",
    "gportal=4",
    "serial=1",
    "--set-resource-scopes",
    "serial=local",
    "--set-resources",
    *(f"{r}:serial=1" for r in GRANULE_RULES),
    "--latency-wait",
    "5",
    "--max-jobs-per-timespan",
    "100000/1s",
]


def bench_years(
    root: Path, years: int, first_year: int, run: bool, grouped: bool, env: dict[str, str], grouped_limit: float
) -> list[dict]:
    workdir = root / f"{years}y"
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = bench_config(workdir, first_year, years)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    t = time.monotonic()
    granules = write_manifests(workdir, cfg)
    print(f"[{years} y] {granules:,} granules: manifests and listings in {time.monotonic() - t:.1f} s", flush=True)
    rows = []

    def record(scenario: str, grouping: str, result: dict) -> None:
        rows.append({"years": years, "granules": granules, "scenario": scenario, "grouping": grouping, **result})
        if result["wall_s"] is None:
            print(f"[{years} y] {scenario:<7} {grouping:<10} stopped after {grouped_limit:.0f} s", end="", flush=True)
        else:
            print(
                f"[{years} y] {scenario:<7} {grouping:<10} {result['wall_s']:8.1f} s"
                f"  {result['rss_kb'] / 1024:7.0f} MB",
                end="",
                flush=True,
            )
        if result["group_jobs"]:
            print(f"  group jobs={result['group_jobs']} largest={result['largest_group']} granules", end="")
        print(flush=True)

    quiet = ["--quiet", "progress"]
    reset_outputs(workdir)
    record("plan", "ungrouped", measure(workdir, "plan-ungrouped", ["-n", "--cores", "1", *quiet], env))
    if grouped:
        plan_args = ["-n", "--cores", "1", *GROUP_ARGS]
        record("plan", "grouped", measure(workdir, "plan-grouped", plan_args, env, grouped_limit))
    if run:
        record("run", "ungrouped", measure(workdir, "run-ungrouped", [*RUN_ARGS, *quiet], env))
        if grouped:
            reset_outputs(workdir)
            run_args = [*RUN_ARGS, *GROUP_ARGS]
            record("run", "grouped", measure(workdir, "run-grouped", run_args, env, grouped_limit))
    reset_outputs(workdir)
    seal_years(workdir, cfg)
    sealed = measure(workdir, "sealed", ["-n", "--cores", "1", *quiet], env)
    if not sealed["nothing_to_do"]:
        raise RuntimeError(f"sealed years still had work: see {workdir / 'sealed.out'}")
    record("sealed", "-", sealed)
    return rows


def _cell(r: dict | None, key: str) -> str:
    if r is None:
        return "-"
    if r["wall_s"] is None:
        return f"stopped at {r['stopped_after_s']:.0f} s" if key == "wall_s" else "-"
    return f"{r['wall_s']:.1f} s" if key == "wall_s" else f"{r['rss_kb'] / 1024:.0f} MB"


def print_table(rows: list[dict]) -> None:
    print("\n| years | granules | scenario | ungrouped wall | ungrouped peak RSS | grouped wall | grouped peak RSS |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    keyed = {(r["years"], r["scenario"], r["grouping"]): r for r in rows}
    for years, scenario in dict.fromkeys((r["years"], r["scenario"]) for r in rows):
        g = keyed.get((years, scenario, "grouped"))
        u = keyed.get((years, scenario, "ungrouped")) or keyed.get((years, scenario, "-"))
        print(
            f"| {years} | {u['granules']:,} | {scenario} | {_cell(u, 'wall_s')} | {_cell(u, 'rss')} | "
            f"{_cell(g, 'wall_s')} | {_cell(g, 'rss')} |"
        )
    for r in rows:
        if r["grouping"] == "grouped":
            print(
                f"  {r['years']} y {r['scenario']} grouped: {r['group_jobs']} group jobs printed, the largest with "
                f"{r['largest_group']} granules (group size {GROUP_SIZE})"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--years", type=int, nargs="+", default=[1, 13], help="record lengths (default 1 13)")
    parser.add_argument("--run-years", type=int, nargs="*", default=[1], help="lengths also run (default 1)")
    parser.add_argument("--grouped-years", type=int, nargs="*", default=[1], help="lengths also grouped (default 1)")
    parser.add_argument("--first-year", type=int, default=2013)
    parser.add_argument("--workdir", type=Path, help="keep inputs and logs here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument(
        "--grouped-limit", type=float, default=300, help="stop a grouped measurement after this many seconds"
    )
    args = parser.parse_args()

    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-snakemake-"))
    root.mkdir(parents=True, exist_ok=True)
    plugin_dir = root / "plugins" / "snakemake_executor_plugin_benchnoop"
    plugin_dir.mkdir(parents=True, exist_ok=True)
    (plugin_dir / "__init__.py").write_text(NOOP_PLUGIN, encoding="utf-8")
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root / "plugins"), os.environ.get("PYTHONPATH")]))
    )
    print(
        f"snakemake {subprocess.run([str(SNAKEMAKE), '--version'], capture_output=True, text=True).stdout.strip()},"
        f" {os.cpu_count()} CPUs; working in {root}",
        flush=True,
    )
    rows = []
    try:
        for years in args.years:
            run, grouped = years in args.run_years, years in args.grouped_years
            rows += bench_years(root, years, args.first_year, run, grouped, env, args.grouped_limit)
    finally:
        if rows:
            print_table(rows)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
