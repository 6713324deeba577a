"""Snakemake's own overhead with this project's Snakefile, before and after the day jobs, side by side (no network).

    .venv/bin/python benchmarks/bench_snakemake_overhead.py                      # 1 and 13 years, both run (~17 min)
    .venv/bin/python benchmarks/bench_snakemake_overhead.py --years 1 --run-years 1   # one year only (~2.5 min)
    .venv/bin/python benchmarks/bench_snakemake_overhead.py --before-rev 7e1a46a --run-limit 150

Two designs of the granule stage, each measured with its own Snakefile and its own ``amsr2flow`` package:

- **before**: a temporary ``git worktree`` of ``--before-rev`` (default ``7e1a46a``: one job per granule, rules
  ``granule_temp_swath``/``granule_kept_swath``), run as ``snakemake -s <worktree>/workflow/Snakefile`` with
  ``PYTHONPATH=<worktree>/src``. The worktree is removed at the end, also on failure.
- **after**: this checkout's working tree as it is (one job per day, rules ``day_temp_swaths``/``day_kept_swaths``),
  with ``PYTHONPATH=<this checkout>/src``.

Both read the same inputs, written once per record length by the current code without the network (the
formats did not change): granules from ``amsr2flow.emulator.orbit`` (29-30 per day, realistic ids), day
manifests as the catalogue stage writes them (``catalogue.manifest_to_csv_bytes``), a settled info file per day,
and the year listings from ``stages.catalogue.build_year_listing`` (which fetches nothing when every day is
settled). Between designs everything else is reset (``reset_outputs``). Hooks are off (``--no-hooks``): the run
start-up checks of ``onstart`` need credentials or a running local G-Portal.

What is measured, each in its own ``snakemake`` process (wall time, and peak RSS of that process from
``getrusage(RUSAGE_CHILDREN)`` of a one-shot wrapper), for each record length and design:

- **plan**: ``snakemake -n`` with every day manifest and year listing present and nothing else done.
- **run** ("scheduling"): the same DAG executed with trivial jobs by a cluster-like executor (``benchnoop``,
  written by this script) whose jobs only create their outputs at once: no process, no queue, no polling.
  Settings as in ``profiles/slurm`` of each design (greedy scheduler, subsample 200, ``gportal=4``, its per-rule
  runtime and memory); the progress lines are kept (``--quiet rules`` only) to count finished jobs. This is
  Snakemake's scheduling cost, the floor under any real run; SLURM's queueing and status polling come on top.
  Reported per granule (wall / granules) and per job (wall / jobs). A run still going ``--run-limit`` seconds
  after its first finished job (default 150 s; the before design would need 40 min or more for 13 years) is
  stopped, and its wall time is extrapolated from the jobs finished so far: the time to its first finished job
  plus the rest at the rate seen since (printed as extrapolated).
- **sealed**: ``snakemake -n`` when every year is complete and archived (placeholder archives, parts folders
  and reports with ordered modification times): what "rerun only missing years" costs when nothing is missing.

Then the goals of issue 14 (goal 4) for 13 years: plan <= 20 s and <= 0.5 GB, scheduling <= 5 ms per granule.

Measurements wait for a quiet machine: until ``pgrep -f "pytest|snakemake|bench_"`` finds nothing outside this
process's own tree (polled every 10 s; processes blocked on the lock below, or whose process tree used no CPU
for 30 s, do not count), and while holding an exclusive ``flock`` on ``/tmp/amsr2flow-bench.lock`` (other
benchmarks take it too; this waits for it). Times are on a 2-CPU VM, without that wait. Heavy processes that
start anyway during a measurement (not every tool takes the lock) are named beside it, as "disturbed".
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml
from side_by_side import (
    REPO,
    SNAKEMAKE,
    descendants,
    family,
    process_table,
    snakemake_command,
    stop_snakemake,
    what_runs,
    worktree_of,
)

from amsr2flow import atomic
from amsr2flow import config as settings
from amsr2flow.emulator import orbit
from amsr2flow.emulator.store import entry_from_spec
from amsr2flow.gportal import catalogue
from amsr2flow.plan import RunPlan
from amsr2flow.stages.catalogue import build_year_listing

LOCK_FILE = Path("/tmp/amsr2flow-bench.lock")
BUSY_PATTERN = "pytest|snakemake|bench_"
WHAT_RUNS = r"bench_\w+\.py|pytest|snakemake|bench_\w+"  # the word shown for a busy process
POLL_S = 10
IDLE_POLLS = 3  # a matching process tree without CPU use for this many polls does not count as heavy
NO_FIRST_JOB_LIMIT_S = 1800  # a run that finished no job after this long is stopped as well
PLAN_GOAL_S, PLAN_GOAL_GB, SCHEDULING_GOAL_MS = 20.0, 0.5, 5.0  # issue 14, goal 4 (13 years)


@dataclass(frozen=True)
class Design:
    name: str  # "before" or "after"
    label: str  # what it is, for the tables
    snakefile: Path
    src: Path  # put first on PYTHONPATH: the amsr2flow its Snakefile imports
    granule_rules: tuple[str, ...]  # the rules that fetch granules (one granule or one day per job)
    runtime_min: int  # the granule rules' runtime in that design's profiles/slurm


def before_design(worktree: Path, rev: str) -> Design:
    return Design(
        "before",
        f"before ({rev})",
        worktree / "workflow" / "Snakefile",
        worktree / "src",
        ("granule_temp_swath", "granule_kept_swath"),
        10,
    )


AFTER = Design(
    "after",
    "after (working tree)",
    REPO / "workflow" / "Snakefile",
    REPO / "src",
    ("day_temp_swaths", "day_kept_swaths"),
    180,
)

#: The executor plugin, written to a temporary folder put on PYTHONPATH (plugins are found by module name).
NOOP_PLUGIN = '''
"""Benchmark executor: cluster-like (remote, resource scopes), jobs only create their outputs at once."""
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
        for f in job.output:
            _create(str(f), f.is_directory)
        for f in job.log:
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

#: Runs one command and prints its wall time and the peak RSS of the largest process it waited for. It lets
#: SIGINT through to the command (a handler, not SIG_IGN: handlers are not inherited) and still reports.
WRAPPER = (
    "import json, resource, signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGINT, lambda *a: None)\n"
    "t = time.monotonic()\n"
    "p = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], 'w'), stderr=subprocess.STDOUT)\n"
    "wall = time.monotonic() - t\n"
    "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(json.dumps({'rc': p.returncode, 'wall_s': wall, 'rss_kb': rss}))\n"
)


# -- a quiet machine ------------------------------------------------------------------------------------------
def _lock_waiters() -> set[int]:
    """Processes blocked waiting for the benchmark lock (they wait for us; not heavy)."""
    try:
        inode = LOCK_FILE.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return set()
    waiters = set()
    for line in lines:
        parts = line.split()
        if "->" in parts and len(parts) >= 8:
            at = parts.index("->")
            if parts[at + 5].endswith(f":{inode}"):
                waiters.add(int(parts[at + 4]))
    return waiters


class OtherProcesses:
    """pytest, snakemake and benchmark processes outside this process's own tree that use CPU: the outermost
    of each busy tree. Processes blocked on the benchmark lock (they wait for us) do not count, nor do those
    whose process tree used no CPU for IDLE_POLLS polls in a row."""

    def __init__(self) -> None:
        self.idle: dict[int, int] = {}  # pid -> consecutive polls without CPU use by its tree
        self.ticks: dict[int, int] = {}

    def busy(self) -> list[int]:
        found = subprocess.run(["pgrep", "-f", BUSY_PATTERN], capture_output=True, text=True).stdout.split()
        procs = process_table()
        ignore = family(procs, os.getpid())
        for waiter in _lock_waiters():
            ignore |= family(procs, waiter)
        busy = []
        for pid in sorted(int(p) for p in found if int(p) not in ignore and int(p) in procs):
            ticks = sum(procs[p][1] for p in descendants(procs, {pid}))
            seen_idle = pid in self.ticks and ticks - self.ticks[pid] <= 2  # <= 0.02 s of CPU since last poll
            self.idle[pid] = self.idle.get(pid, 0) + 1 if seen_idle else 0
            self.ticks[pid] = ticks
            if self.idle[pid] < IDLE_POLLS:
                busy.append(pid)
        # the outermost ones (a test session, not each of its servers)
        return [p for p in busy if not (family(procs, p) - descendants(procs, {p})) & set(busy)]


def wait_for_quiet_machine(others: OtherProcesses) -> None:
    """Poll until no other pytest, snakemake or benchmark works."""
    waiting_since, shown, shown_at = time.monotonic(), None, 0.0
    while busy := others.busy():
        if set(busy) != shown or time.monotonic() - shown_at > 600:
            print(
                f"waiting for other heavy processes to end ({time.monotonic() - waiting_since:.0f} s so far,"
                f" checking every {POLL_S} s): {', '.join(what_runs(p, WHAT_RUNS) for p in busy)}",
                flush=True,
            )
            shown, shown_at = set(busy), time.monotonic()
        time.sleep(POLL_S)
    if shown is not None:
        print(f"the machine is quiet after {time.monotonic() - waiting_since:.0f} s: measuring", flush=True)


_DISTURBANCE: DisturbanceWatch | None = None  # set while measuring


class DisturbanceWatch:
    """Notes, while measuring, other heavy processes that started anyway (not every tool takes the lock)."""

    def __init__(self, others: OtherProcesses) -> None:
        self.others, self.seen, self.stop = others, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(POLL_S):
            self.seen.extend((time.monotonic(), what_runs(p, WHAT_RUNS)) for p in self.others.busy())

    def since(self, started: float) -> list[str]:
        return sorted({what for when, what in list(self.seen) if when >= started})


@contextmanager
def bench_lock():
    """An exclusive flock on the shared benchmark lock, for the whole measurement."""
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {LOCK_FILE} (another benchmark holds it)", flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


# -- inputs ----------------------------------------------------------------------------------------------------
def bench_config(workdir: Path, first_year: int, years: int) -> dict:
    return {
        "start": f"{first_year}-01-01",
        "end": f"{first_year + years - 1}-12-31",
        "source": "emulator",
        "output_dir": str(workdir / "results"),
        "emulator": {"state_file": str(workdir / "no-emulator-state.json")},
    }


def validated(cfg: dict) -> dict:
    """The configuration with its defaults, as the workflow sees it."""
    return settings.validate(
        cfg, check_environment=False, schema_path=REPO / "workflow" / "schemas" / "config.schema.yaml"
    )


def write_manifests(workdir: Path, cfg: dict) -> int:
    """Day manifests (settled) and year listings as the catalogue stage writes them; returns the granule count."""
    full = validated(cfg)
    plan = RunPlan.from_config(full)
    layout = plan.layout
    fetched = datetime.now(timezone.utc)  # long after every day ended: settled
    total = 0
    for year, year_plan in plan.years.items():
        days = year_plan.days
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
            listing_path=layout.year_listing(year, year_plan.period),
            now=lambda: fetched,
        )
    return total


def reset_outputs(workdir: Path) -> None:
    """Back to "manifests present, nothing else": no swaths, archives, parts, reports, logs or metadata."""
    results = workdir / "results"
    for sub in ("swaths", "archives", "parts", "reports", "logs", "ledger", "downloads", ".scratch", ".state"):
        shutil.rmtree(results / sub, ignore_errors=True)
    shutil.rmtree(workdir / ".snakemake", ignore_errors=True)


def seal_years(workdir: Path, cfg: dict) -> None:
    """Every year complete and archived: placeholder products, each newer than what it is made from."""
    results = workdir / "results"
    plan = RunPlan.from_config(validated(cfg))
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

    for year, year_plan in plan.years.items():
        touch(plan.archive(year), stamp["archive"])
        touch(plan.layout.parts_dir(year), stamp["parts"], folder=True)
        for ext in (".json", ".md"):
            touch(plan.layout.year_report(year, year_plan.period, ext), stamp["year_report"])
    for ext in (".json", ".md", ".html"):
        touch(plan.layout.run_report(plan.run_tag, ext), stamp["run_report"])


# -- measuring --------------------------------------------------------------------------------------------------
PROGRESS = re.compile(r"(\d+) of (\d+) steps \(")
FINISHED = re.compile(r"Finished jobid: \d+ \(Rule: (\w+)\)")
JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")


class LogWatch:
    """Follows a Snakemake log while it is written: when each progress line ("N of M steps") first appeared."""

    def __init__(self, path: Path, started: float) -> None:
        self.path, self.started, self.offset, self.rest = path, started, 0, b""
        self.first: tuple[float, int] | None = None  # (seconds after start, jobs done) at the first progress line
        self.last: tuple[float, int] | None = None
        self.total = 0

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return
        if not chunk:
            return
        now = time.monotonic() - self.started
        self.offset += len(chunk)
        lines = (self.rest + chunk).split(b"\n")
        self.rest = lines.pop()
        for line in reversed(lines):
            if (m := PROGRESS.search(line.decode(errors="replace"))) is not None:
                done, self.total = int(m.group(1)), int(m.group(2))
                self.first = self.first or (now, done)
                self.last = (now, done)
                break

    def seconds_since_first(self) -> float | None:
        return None if self.first is None else time.monotonic() - self.started - self.first[0]


def measure(
    workdir: Path, name: str, design: Design, args: list[str], env: dict[str, str], run_limit: float | None = None
) -> dict:
    """One snakemake process; a run (run_limit given) is followed and stopped run_limit s after its first job."""
    log = workdir / f"{design.name}-{name}.out"
    cmd = snakemake_command(design.snakefile, workdir, "--no-hooks", *args)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, str(log), *cmd],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    watch = LogWatch(log, started)
    stopped_after = None
    while proc.poll() is None:
        if run_limit is not None:
            watch.poll()
            since_first = watch.seconds_since_first()
            if (since_first is not None and since_first > run_limit) or (
                since_first is None and time.monotonic() - started > NO_FIRST_JOB_LIMIT_S
            ):
                stopped_after = time.monotonic() - started
                stop_snakemake(proc, grace_s=60)  # the wrapper lets SIGINT through
                break
        time.sleep(0.25)
    out = proc.stdout.read().strip().splitlines() if proc.stdout else []
    result = {"rc": None, "wall_s": None, "rss_kb": None}
    if out:
        result.update(json.loads(out[-1]))
    text = log.read_text(errors="replace")
    if stopped_after is None and result["rc"] != 0:
        raise RuntimeError(f"{design.name} {name} failed (exit {result['rc']}); see {log}:\n{text[-3000:]}")
    result["nothing_to_do"] = "Nothing to be done" in text
    result["stopped_after_s"] = stopped_after
    result["meanwhile"] = _DISTURBANCE.since(started) if _DISTURBANCE is not None else []
    lines = text.splitlines()
    if run_limit is None:  # a dry run prints every planned job once: "rule NAME:"
        planned = [m.group(1) for line in lines if (m := JOB_HEADER.match(line.strip()))]
        result["jobs"] = len(planned)
        result["granule_jobs"] = sum(r in design.granule_rules for r in planned)
        return result
    finished = [m.group(1) for line in lines if (m := FINISHED.search(line))]
    progress = [m for line in lines if (m := PROGRESS.search(line))]
    result["done"] = int(progress[-1].group(1)) if progress else 0
    result["jobs"] = int(progress[-1].group(2)) if progress else watch.total
    result["granule_jobs_done"] = sum(r in design.granule_rules for r in finished)
    watch.poll()
    if stopped_after is None:
        result["extrapolated"] = False
        if watch.first is not None and watch.last is not None and watch.last[1] > watch.first[1]:
            result["executing_ms_per_job"] = 1000 * (watch.last[0] - watch.first[0]) / (watch.last[1] - watch.first[1])
        return result
    # Stopped: the time to the first finished job, then the remaining jobs at the rate seen since.
    result["extrapolated"] = True
    result["wall_s"] = None
    if watch.first is not None and watch.last is not None and watch.last[1] > watch.first[1]:
        (t0, d0), (t1, d1) = watch.first, watch.last
        per_job = (t1 - t0) / (d1 - d0)
        result["executing_ms_per_job"] = 1000 * per_job
        result["wall_s"] = t0 + per_job * (result["jobs"] - d0)
    return result


def run_args(design: Design) -> list[str]:
    return [
        # The year pages and the run report are local rules, so they would really run and read the year reports
        # the no-op executor leaves empty; what is measured is scheduling up to the year reports.
        "--omit-from",
        "year_page",
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
        "--set-resources",
        *(f"{r}:{k}" for r in design.granule_rules for k in (f"runtime={design.runtime_min}", "mem_mb=1000")),
        "--latency-wait",
        "5",
        "--max-jobs-per-timespan",
        "100000/1s",
        # the progress lines stay: they count the finished jobs of a run that is stopped
        "--quiet",
        "rules",
    ]


PLAN_ARGS = ["-n", "--cores", "1", "--quiet", "progress"]


def bench_years(
    root: Path, years: int, first_year: int, run: bool, designs: list[Design], plugins: Path, run_limit: float
) -> dict:
    workdir = root / f"{years}y"
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = bench_config(workdir, first_year, years)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    t = time.monotonic()
    granules = write_manifests(workdir, cfg)
    print(f"[{years} y] {granules:,} granules: manifests and listings in {time.monotonic() - t:.1f} s", flush=True)
    out: dict = {"years": years, "granules": granules, "designs": {}}
    for design in designs:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(design.src), str(plugins)])))
        results: dict = {}
        out["designs"][design.name] = results

        def show(scenario: str, r: dict, design: Design = design) -> None:
            head = f"[{years} y] {design.name:<6} {scenario:<7}"
            if r["wall_s"] is None:
                print(f"{head} stopped after {r['stopped_after_s']:.0f} s, before any job finished", flush=True)
                return
            rss = f"{r['rss_kb'] / 1024:6.0f} MB" if r["rss_kb"] else "     - MB"
            extra = ""
            if scenario == "run":
                done = (
                    f", stopped after {r['stopped_after_s']:.0f} s with {r['done']:,} done" if r["extrapolated"] else ""
                )
                mark = " (extrapolated)" if r["extrapolated"] else ""
                extra = (
                    f"  {r['jobs']:,} jobs{done}: {1000 * r['wall_s'] / granules:.2f} ms/granule,"
                    f" {1000 * r['wall_s'] / r['jobs']:.2f} ms/job{mark}"
                )
            elif "granule_jobs" in r and scenario == "plan":
                extra = f"  {r['jobs']:,} jobs ({r['granule_jobs']:,} {'/'.join(design.granule_rules)})"
            meanwhile = f"  [also running meanwhile: {', '.join(r['meanwhile'])}]" if r["meanwhile"] else ""
            print(f"{head} {r['wall_s']:8.1f} s  {rss}{extra}{meanwhile}", flush=True)

        reset_outputs(workdir)
        results["plan"] = measure(workdir, "plan", design, PLAN_ARGS, env)
        show("plan", results["plan"])
        if run:
            results["run"] = measure(workdir, "run", design, run_args(design), env, run_limit)
            show("run", results["run"])
        reset_outputs(workdir)
        seal_years(workdir, cfg)
        sealed = measure(workdir, "sealed", design, PLAN_ARGS, env)
        if not sealed["nothing_to_do"]:
            raise RuntimeError(
                f"{design.name}: sealed years still had work: see {workdir / f'{design.name}-sealed.out'}"
            )
        results["sealed"] = sealed
        show("sealed", sealed)
        reset_outputs(workdir)
    return out


# -- reporting --------------------------------------------------------------------------------------------------
def _wall(r: dict | None) -> float | None:
    return None if r is None else r.get("wall_s")


def _rss_mb(r: dict | None) -> float | None:
    return None if r is None or not r.get("rss_kb") else r["rss_kb"] / 1024


def _per_ms(r: dict | None, n: int | None) -> float | None:
    return None if _wall(r) is None or not n else 1000 * r["wall_s"] / n


def _ratio(before: float | None, after: float | None) -> str:
    return "-" if before is None or after is None or before == 0 else f"{after / before:.3f}"


def _metrics(granules: int) -> list[tuple[str, str, object, str]]:
    """(row label, scenario, value of a result, format) for the table."""
    return [
        ("plan (`-n`): wall", "plan", _wall, "{:.1f} s"),
        ("plan: peak RSS", "plan", _rss_mb, "{:.0f} MB"),
        ("plan: jobs", "plan", lambda r: r["jobs"], "{:,}"),
        ("plan: granule-stage jobs", "plan", lambda r: r["granule_jobs"], "{:,}"),
        ("run (trivial jobs): wall", "run", _wall, "{:.1f} s"),
        ("run: ms per granule", "run", lambda r: _per_ms(r, granules), "{:.2f}"),
        ("run: ms per job", "run", lambda r: _per_ms(r, r["jobs"]), "{:.2f}"),
        ("run: ms per job once executing", "run", lambda r: r.get("executing_ms_per_job"), "{:.2f}"),
        ("run: peak RSS", "run", _rss_mb, "{:.0f} MB"),
        ("sealed (`-n`, nothing to do): wall", "sealed", _wall, "{:.1f} s"),
        ("sealed: peak RSS", "sealed", _rss_mb, "{:.0f} MB"),
    ]


def print_tables(record: dict, designs: list[Design]) -> None:
    years, granules = record["years"], record["granules"]
    results = [record["designs"].get(d.name, {}) for d in designs]
    print(f"\n{years} year{'s' if years > 1 else ''}, {granules:,} granules")
    print(f"| | {designs[0].label} | {designs[1].label} | after/before |")
    print("|---|---:|---:|---:|")
    for label, scenario, value_of, fmt in _metrics(granules):
        if not any(scenario in r for r in results):
            continue
        values, cells = [], []
        for r in results:
            value = value_of(r[scenario]) if scenario in r else None
            values.append(value)
            cell = "-" if value is None else fmt.format(value)
            if value is not None and r[scenario].get("extrapolated") and "RSS" not in label:
                cell += " (extrapolated)"
            elif value is not None and r[scenario].get("extrapolated"):
                cell += " (until stopped)"
            cells.append(cell)
        print(f"| {label} | {cells[0]} | {cells[1]} | {_ratio(*values)} |")
    for design, r in zip(designs, results, strict=True):
        for scenario, result in r.items():
            if result.get("meanwhile"):
                print(
                    f"  {design.name} {scenario}: disturbed, other heavy processes ran meanwhile:"
                    f" {', '.join(result['meanwhile'])}"
                )
        run = r.get("run")
        if run is not None and run.get("stopped_after_s") is not None:
            print(
                f"  {design.name}: the run was stopped after {run['stopped_after_s']:.0f} s with {run['done']:,} of"
                f" {run['jobs']:,} jobs done ({run['granule_jobs_done']:,} {'/'.join(design.granule_rules)});"
                " its wall time is extrapolated: the time to its first finished job, then the rest at the rate since"
            )


def print_goals(records: list[dict], designs: list[Design]) -> None:
    print("\nIssue 14, goal 4 (13 years in the DAG):")
    full = next((r for r in records if r["years"] == 13), None)
    if full is None:
        print("  not measured (run with --years 13)")
        return
    before, after = (full["designs"].get(d.name, {}) for d in designs)
    granules = full["granules"]
    goals = [
        ("plan wall", "plan", lambda r: _wall(r), PLAN_GOAL_S, "s"),
        ("plan peak RSS", "plan", lambda r: None if _rss_mb(r) is None else _rss_mb(r) / 1024, PLAN_GOAL_GB, "GB"),
        ("scheduling", "run", lambda r: _per_ms(r, granules), SCHEDULING_GOAL_MS, "ms per granule"),
    ]
    for what, scenario, value_of, limit, unit in goals:
        rb, ra = before.get(scenario), after.get(scenario)
        vb, va = (None if r is None else value_of(r) for r in (rb, ra))
        if va is None:
            print(f"  {what} <= {limit:g} {unit}: not measured")
            continue

        def shown(value: float | None, r: dict | None, unit: str = unit) -> str:
            text = "-" if value is None else f"{value:.2f} {unit}"
            return text + (" (extrapolated)" if value is not None and r.get("extrapolated") else "")

        verdict = "met" if va <= limit else "NOT met"
        print(
            f"  {what} <= {limit:g} {unit}: before {shown(vb, rb)}, after {shown(va, ra)},"
            f" after/before {_ratio(vb, va)}: {verdict}"
        )


def main() -> int:
    global _DISTURBANCE
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--years", type=int, nargs="+", default=[1, 13], help="record lengths (default 1 13)")
    parser.add_argument("--run-years", type=int, nargs="*", default=[1, 13], help="lengths also run (default 1 13)")
    parser.add_argument("--before-rev", default="7e1a46a", help="the 'before' revision (default 7e1a46a)")
    parser.add_argument(
        "--run-limit",
        type=float,
        default=150,
        help="stop a run this many seconds after its first finished job and extrapolate (default 150)",
    )
    parser.add_argument("--first-year", type=int, default=2013)
    parser.add_argument("--workdir", type=Path, help="keep inputs and logs here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    # SIGTERM ends like Ctrl-C: the finally clauses remove the worktree and the temporary folder.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-snakemake-"))
    root.mkdir(parents=True, exist_ok=True)
    plugins = root / "plugins"
    (plugins / "snakemake_executor_plugin_benchnoop").mkdir(parents=True, exist_ok=True)
    (plugins / "snakemake_executor_plugin_benchnoop" / "__init__.py").write_text(NOOP_PLUGIN, encoding="utf-8")
    records: list[dict] = []
    try:
        with bench_lock():
            others = OtherProcesses()
            wait_for_quiet_machine(others)
            _DISTURBANCE = DisturbanceWatch(others)
            with worktree_of(args.before_rev, root) as worktree:
                rev = subprocess.run(
                    ["git", "-C", str(worktree), "log", "-1", "--format=%h %s"], capture_output=True, text=True
                ).stdout.strip()
                designs = [before_design(worktree, rev.split()[0]), AFTER]
                version = subprocess.run([str(SNAKEMAKE), "--version"], capture_output=True, text=True).stdout.strip()
                print(
                    f"snakemake {version}, {os.cpu_count()} CPUs; working in {root}\n"
                    f"before: {rev[:100]}\nafter: the working tree of {REPO}",
                    flush=True,
                )
                try:
                    for years in args.years:
                        run = years in args.run_years
                        records.append(bench_years(root, years, args.first_year, run, designs, plugins, args.run_limit))
                finally:  # what was measured, also when a later length failed
                    for record in records:
                        print_tables(record, designs)
                    if records:
                        print_goals(records, designs)
    finally:
        if args.json:
            args.json.write_text(json.dumps(records, indent=1), encoding="utf-8")
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
