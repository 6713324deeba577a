"""Day jobs vs granule jobs: the granule stage before and after "one job per day", side by side in one run.

    .venv/bin/python benchmarks/bench_day_jobs.py                  # goals 1-3, ~20 min on 2 cores (idle)
    .venv/bin/python benchmarks/bench_day_jobs.py --goals 1        # one goal
    .venv/bin/python benchmarks/bench_day_jobs.py --quick          # 1 day of 16-scan granules: a smoke test

**before** is the design of commit ``--before-rev`` (default 7e1a46a): one Snakemake job per granule (rule
``granule_kept_swath``), each opening its own SFTP session. It runs from a temporary ``git worktree`` of that
commit (``-s <worktree>/workflow/Snakefile``, ``PYTHONPATH=<worktree>/src``; removed at the end). **after** is
this working tree: one job per day (rule ``day_kept_swaths``) collecting the day's ~29 granules over one shared
session. Both run the ``snakemake`` command as users do (``--workflow-profile none --scheduler greedy``, the
config written as YAML as tests/workflow_helpers.py does, a fresh output folder each) against the same local
G-Portal instance, started from this tree. Each design's catalogue runs first (``--until catalogue``, not
timed); then the granule stage alone is timed, asked for by its outputs as targets: every granule's swath
``.npy`` (before, rule ``granule_kept_swath``) or every day record (after, rule ``day_kept_swaths``).
(``--until granule_kept_swath`` / ``--until day_kept_swaths`` would be the natural spelling, but Snakemake 9.27
plans nothing with it once the catalogue checkpoint is done: "Nothing to be done"; ``--omit-from`` alike.)
**raw** is its wall time, **net** the raw time minus the start-up cost of a ``-n`` dry run of the same command
(parsing, the DAG; the real run's preflight login stays in net). The service's counters (delta over the
stage) give the SFTP sessions it counted, the files it served and the bytes. Before anything is timed, the
script waits until no other pytest, snakemake, benchmark or local G-Portal process works (``pgrep -f``; this
script's own children aside, and those using < 2 % of a core, such as a hung run); a measurement during which one
worked is repeated in a fresh folder (``--repeat-disturbed``, 2), and marked if it still was.

Goal 1, per-granule overhead on loopback without a cap: stage net wall / work floor, jobs serial
(``--cores 1 --resources gportal=1``), 2 days of full-size granules (~58). The work floor is measured in this
process for the same granules: one ``GPortalSFTP`` session, then for each granule ``remote_size`` +
``download`` to a temporary file + ``extract_swath`` + ``write_swath`` (the channels of the config), summed.
It is measured before and after the two stages, and their mean is used. Goal: <= 1.1.

Goal 2, aggregate rate with a per-connection cap: a second service instance with
``--faults '{"bandwidth_bytes_per_s": CAP}'`` (a cap per SFTP connection: emulator/sftp_server.py ``Throttle``),
N sessions (``--cores N --resources gportal=N``), 8 days of 400-scan granules (two day jobs per session in the
after design: a run of N days would measure mostly its start and its longest day, a week-long run neither).
Rate = bytes served during the stage / stage net wall; ratio = rate / (N x CAP). Goal: >= 0.95.

Goal 3, the real link: one session over the link as the model has it, measured, then the full record modelled.
Two service instances with a cap of one session's share of the link (``--faults '{"bandwidth_bytes_per_s":
SHARE}'``, SHARE = link / N, 31.25 MB/s), one without and one with ``--latency-ms L`` (200; a delay line in
front of SFTP); 1 day of full-size granules, jobs serial. A granule's cost beyond its bytes = net stage wall per
granule at L minus its bytes at the share: the round trips (net at L minus net at 0, scaled to the model's RTT by
RTT / L) and the local work the design does not overlap with the transfer (granule jobs: a session, a process;
day jobs: the job's start-up over its day). The full record is then modelled, per design with its SSH window W
(before: paramiko's 2 MiB; after: 16 MiB, the ``transfer.ssh_window_mib`` default):

    per-session rate   r       = min(link / N, W / RTT)
    modelled wall              = granules / N x (cost beyond the bytes + granule bytes / r)
    allowed wall               = granules x granule bytes / min(link, N x W / RTT)
    ratio                      = modelled / allowed   (= 1 + cost x r / granule bytes)

with 143,600 granules of 35 MB (5 TB), a 1 Gbit/s link (125e6 B/s), N = 4, RTT 0.2 s. Goal: ratio <= 1.3. The
commit 7e1a46a itself already configures the 16 MiB window; a line under the table models it with that window.
(Full-size granules matter here: a granule smaller than the window arrives in one round trip, so the next one's
read, started ahead, cannot hide that round trip the way it does for granules of real size.)
Every instance shares one ``--data-dir``, so each granule size is generated once.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from side_by_side import (
    REPO,
    SNAKEMAKE,
    descendants,
    family,
    process_table,
    snakemake_command,
    stop_snakemake,
    worktree_of,
)

sys.path.insert(0, str(REPO / "tests"))

from emulator_fixtures import start_emulator, stop_emulator, wait_for_stats
from workflow_helpers import emulator_config, job_counts

OTHERS = r"pytest|snakemake|benchmarks/bench_|amsr2flow\.emulator"  # test suites, workflows, benchmarks, services
MIB = 1 << 20
STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.0f} s] {message}", file=sys.stderr, flush=True)


# -- other processes ----------------------------------------------------------------------------------------
def other_processes() -> dict[int, tuple[str, int]]:
    """test/workflow/benchmark processes not of this benchmark (neither its ancestors nor its descendants): pid ->
    (the word matched, CPU ticks of its whole process tree). Never their command lines: they may hold secrets."""
    found = subprocess.run(["pgrep", "-af", OTHERS], capture_output=True, text=True).stdout
    table = process_table()
    ours = family(table, os.getpid())
    others = {}
    for line in found.splitlines():
        pid_text, _, cmdline = line.partition(" ")
        word = re.search(OTHERS, cmdline)
        if pid_text.isdigit() and int(pid_text) not in ours and word:
            tree = descendants(table, {int(pid_text)})
            others[int(pid_text)] = (word[0], sum(table[p][1] for p in tree if p in table))
    return others


def busy_others(interval: float = 2.0) -> tuple[list[str], list[str]]:
    """(busy, idle) other test/workflow/benchmark processes as "pid (word)": busy ones appeared or their process tree
    used 2 % of a core or more within ``interval`` seconds; idle ones less (a hung run does not disturb a
    measurement)."""
    first = other_processes()
    time.sleep(interval)
    second = other_processes()
    # A process polling a child now and then uses a tick a minute: busy means 2 % of a core or more.
    least = max(2, 0.02 * interval * os.sysconf("SC_CLK_TCK"))
    busy, idle = [], []
    for pid, (word, ticks) in sorted(second.items()):
        (busy if pid not in first or abs(ticks - first[pid][1]) >= least else idle).append(f"{pid} ({word})")
    return busy, idle


def wait_until_quiet(max_wait_s: float) -> bool:
    """Block until no other test/workflow/benchmark process works; False if we gave up after ``max_wait_s``."""
    others, idle = busy_others()
    if idle:
        progress(f"ignoring {len(idle)} idle test/workflow/benchmark process(es) (< 2 % CPU): {', '.join(idle[:6])}")
    if not others:
        return True
    started = time.monotonic()
    progress(f"waiting for {len(others)} other test/workflow/benchmark process(es) to end: {', '.join(others[:6])}")
    last_note = started
    while others:
        if time.monotonic() - started > max_wait_s:
            progress(f"still {len(others)} after {max_wait_s:.0f} s; measuring anyway (marked as disturbed)")
            return False
        others, _ = busy_others()
        if others and time.monotonic() - last_note > 60:
            progress(f"still waiting ({time.monotonic() - started:.0f} s): {len(others)} process(es)")
            last_note = time.monotonic()
    progress(f"no other busy test/workflow/benchmark process after {time.monotonic() - started:.0f} s of waiting")
    return True


class Watch:
    """Notes whether another test/workflow/benchmark process worked at some point during a measurement."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and not self.seen:
            self.seen = busy_others()[0]

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- the service's counters ---------------------------------------------------------------------------------
def _poke(state: dict[str, Any]) -> None:
    """One cheap catalogue request (count=0): a change the service's stats writer must flush."""
    query = "datasetId=11001001&startTime=2024-01-01T00:00:00Z&endTime=2024-01-01T00:00:01Z&count=0"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{state['catalogue_url']}?{query}", timeout=30) as answer:
        answer.read()


def settled_stats(state: dict[str, Any]) -> dict[str, Any]:
    """The counters once everything before this call is counted (the file is written lazily): after a request
    made now, a file written after now with no session open holds every earlier transfer."""
    now = datetime.now(timezone.utc)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the file's times are in milliseconds
    _poke(state)

    def settled(stats: dict[str, Any]) -> bool:
        written = datetime.fromisoformat(stats["updated_at"].replace("Z", "+00:00"))
        return written >= now and stats["active_sftp_sessions"] == 0

    return wait_for_stats(state, settled, timeout=60)


# -- the two designs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Design:
    name: str
    tree: Path
    stage_rule: str
    per_granule: bool  # the stage's outputs: a swath per granule (True) or a record per day

    @property
    def snakefile(self) -> Path:
        return self.tree / "workflow" / "Snakefile"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.tree / "src")}


@dataclass
class Stage:
    """One design's granule stage against one service instance."""

    design: str
    label: str
    granules: int
    jobs: int
    dry_s: float
    raw_s: float
    sessions: int
    files: int
    bytes: int
    disturbed: list[str] = field(default_factory=list)

    @property
    def net_s(self) -> float:
        return self.raw_s - self.dry_s


def run_snakemake(design: Design, workdir: Path, name: str, args: list[str], timeout: float) -> tuple[float, str]:
    """``snakemake ARGS`` for the design in ``workdir``; (wall seconds, output). Output kept in ``name.out``."""
    cmd = snakemake_command(design.snakefile, workdir, "--scheduler", "greedy", *args)
    log_path = workdir / f"{name}.out"
    with open(log_path, "w", encoding="utf-8") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=design.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=timeout)
        except BaseException:
            stop_snakemake(proc, grace_s=30)
            raise
        wall = time.monotonic() - started
    text = log_path.read_text(encoding="utf-8", errors="replace")
    if rc != 0:
        raise RuntimeError(f"{design.name}: {name} failed (exit {rc}); end of {log_path}:\n{text[-4000:]}")
    return wall, text


def stage_targets(design: Design, cfg: dict[str, Any]) -> tuple[list[str], int]:
    """The stage's outputs for the design (from the day manifests the catalogue wrote), and the granule count."""
    from amsr2flow import config as settings
    from amsr2flow.plan import RunPlan

    plan = RunPlan.from_config(settings.validate(cfg, check_environment=False))
    layout = plan.layout
    swaths, records = [], []
    for day in plan.days:
        with open(layout.day_manifest(day), newline="", encoding="utf-8") as fh:
            ids = [row["granule_id"] for row in csv.DictReader(fh)]
        swaths += [str(layout.swath(day.isoformat(), gid)) for gid in ids]
        if ids:
            records.append(str(layout.day_record(day.isoformat())))
    return (swaths if design.per_granule else records), len(swaths)


def run_design(
    design: Design,
    state: dict[str, Any],
    workdir: Path,
    args: argparse.Namespace,
    *,
    days: int,
    sessions: int,
    label: str,
) -> tuple[Stage, dict[str, Any]]:
    """:func:`measure_design`, again in a fresh folder (at most ``--repeat-disturbed`` times) while another
    test/workflow/benchmark process worked during the measurement; the last measurement and its config."""
    for attempt in range(1 + args.repeat_disturbed):
        folder = workdir if attempt == 0 else workdir.with_name(f"{workdir.name}-again{attempt}")
        cfg = bench_config(state, folder, args.start, days)
        result = measure_design(
            design,
            state,
            folder,
            cfg,
            sessions=sessions,
            timeout=args.timeout_s,
            max_wait_s=args.max_wait_s,
            label=label,
        )
        if not result.disturbed:
            break
        if attempt < args.repeat_disturbed:
            progress(f"{label} {design.name}: disturbed; measuring again in a fresh folder")
    return result, cfg


def measure_design(
    design: Design,
    state: dict[str, Any],
    workdir: Path,
    cfg: dict[str, Any],
    *,
    sessions: int,
    timeout: float,
    max_wait_s: float,
    label: str,
) -> Stage:
    """Catalogue (untimed), dry run of the stage (start-up), the stage itself (timed), the service's deltas."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    common = ["--cores", str(sessions), "--resources", f"gportal={sessions}"]
    progress(f"{label} {design.name}: catalogue")
    run_snakemake(design, workdir, "catalogue", [*common, "--until", "catalogue"], timeout)
    targets, granules = stage_targets(design, cfg)
    stage = [*targets, *common]  # targets first: --resources takes every word after it
    quiet = wait_until_quiet(max_wait_s)
    with Watch() as watch:
        dry_s, dry_text = run_snakemake(design, workdir, "stage-dry-run", ["-n", *stage], timeout)
        jobs = job_counts(dry_text).get(design.stage_rule, 0)
        before = settled_stats(state)
        progress(f"{label} {design.name}: granule stage, {granules} granules in {jobs} jobs (start-up {dry_s:.1f} s)")
        raw_s, _ = run_snakemake(design, workdir, "stage", stage, timeout)
        after = settled_stats(state)
    result = Stage(
        design=design.name,
        label=f"{label} {design.name}",
        granules=granules,
        jobs=jobs,
        dry_s=dry_s,
        raw_s=raw_s,
        sessions=after["sftp_sessions"] - before["sftp_sessions"],
        files=after["files_served"] - before["files_served"],
        bytes=after["bytes_served"] - before["bytes_served"],
        disturbed=watch.seen + ([] if quiet else ["(gave up waiting)"]),
    )
    progress(
        f"{label} {design.name}: {raw_s:.1f} s raw, {result.net_s:.1f} s net; {result.sessions} SFTP sessions, "
        f"{result.files} files, {result.bytes / 1e6:.1f} MB served"
        + (f"  [disturbed: {', '.join(result.disturbed[:4])}]" if result.disturbed else "")
    )
    if result.files < granules:
        progress(f"{label} {design.name}: WARNING the service served {result.files} files for {granules} granules")
    return result


def bench_config(state: dict[str, Any], workdir: Path, start: date, days: int) -> dict[str, Any]:
    end = start + timedelta(days=days - 1)
    return emulator_config(state, workdir, start=start.isoformat(), end=end.isoformat())


# -- the work floor -----------------------------------------------------------------------------------------
def work_floor(cfg: dict[str, Any]) -> tuple[float, int]:
    """Seconds of stat + download + extract + write for the run's granules, in one session in this process."""
    from amsr2flow import config as settings
    from amsr2flow.formats.swath import extract_swath, write_swath
    from amsr2flow.plan import RunPlan
    from amsr2flow.run.connection import connection_from
    from amsr2flow.run.preflight import run_template
    from amsr2flow.stages.granule import read_day_tasks

    full = settings.validate(cfg, check_environment=False)
    plan = RunPlan.from_config(full)
    layout = plan.layout
    template = run_template(layout.template_choice_file(), full.get("remote_path_template"))
    tasks = [t for d in plan.days for t in read_day_tasks(layout.day_manifest(d), d.isoformat(), template)]
    channels, geolocation = tuple(full["channels"]), bool(full["geolocation"])
    variables = settings.extra_variables(full)
    total = 0.0
    with (
        tempfile.TemporaryDirectory(prefix="bench_floor_") as tmp,
        connection_from(full).session() as session,
    ):
        h5, npy = Path(tmp) / "granule.h5", Path(tmp) / "swath.npy"
        for task in tasks:
            began = time.perf_counter()
            size = session.remote_size(task.remote_path)
            download = session.download(task.remote_path, h5, size)
            extracted = extract_swath(
                h5,
                channels,
                geolocation,
                extra_variables=variables,
                sha256=download.sha256,
                source_size=download.size_bytes,
            )
            write_swath(extracted, npy)
            total += time.perf_counter() - began
            for leftover in Path(tmp).iterdir():
                leftover.unlink()
    return total, len(tasks)


# -- tables -------------------------------------------------------------------------------------------------
def table(title: str, rows: list[tuple[str, str, str, str]]) -> None:
    print(f"\n{title}")
    width = max(len(r[0]) for r in rows)
    print(f"  {'':{width}s} {'before':>12s} {'after':>12s}   goal")
    for label, before, after, goal in rows:
        print(f"  {label:{width}s} {before:>12s} {after:>12s}   {goal}".rstrip())


def cells(stages: dict[str, Stage], fmt: Any) -> tuple[str, str]:
    return fmt(stages["before"]), fmt(stages["after"])


def common_rows(stages: dict[str, Stage]) -> list[tuple[str, str, str, str]]:
    return [
        ("stage jobs", *cells(stages, lambda s: str(s.jobs)), ""),
        ("granules", *cells(stages, lambda s: str(s.granules)), ""),
        ("start-up (dry run), s", *cells(stages, lambda s: f"{s.dry_s:.1f}"), ""),
        ("stage wall, raw, s", *cells(stages, lambda s: f"{s.raw_s:.1f}"), ""),
        ("stage wall, net, s", *cells(stages, lambda s: f"{s.net_s:.1f}"), ""),
    ]


def service_rows(stages: dict[str, Stage]) -> list[tuple[str, str, str, str]]:
    return [
        ("SFTP sessions (service)", *cells(stages, lambda s: str(s.sessions)), "incl. the run's preflight login"),
        ("files served (service)", *cells(stages, lambda s: str(s.files)), ""),
        ("MB served (service)", *cells(stages, lambda s: f"{s.bytes / 1e6:.1f}"), ""),
    ]


def disturbed_note(stages: list[Stage]) -> None:
    for s in stages:
        if s.disturbed:
            print(f"  ! {s.label}: other test/workflow/benchmark processes ran during it: {', '.join(s.disturbed[:6])}")


def verdict(value: float, goal: float, at_most: bool) -> str:
    return "met" if (value <= goal if at_most else value >= goal) else "NOT met"


# -- goals --------------------------------------------------------------------------------------------------
def measure_floor(args: argparse.Namespace, cfg: dict[str, Any], label: str) -> tuple[float, int, list[str]]:
    """:func:`work_floor`, again (at most ``--repeat-disturbed`` times) while others worked meanwhile."""
    for _attempt in range(1 + args.repeat_disturbed):
        quiet = wait_until_quiet(args.max_wait_s)
        progress(f"goal 1: work floor {label} (one session, in this process)")
        with Watch() as watch:
            floor_s, floor_n = work_floor(cfg)
        disturbed = watch.seen + ([] if quiet else ["(gave up waiting)"])
        progress(
            f"goal 1: work floor {label}: {floor_s:.1f} s for {floor_n} granules"
            + (f"  [disturbed: {', '.join(disturbed[:4])}]" if disturbed else "")
        )
        if not disturbed:
            break
    return floor_s, floor_n, disturbed


def goal_1(args: argparse.Namespace, designs: list[Design], root: Path, data_dir: Path) -> dict[str, Any]:
    scans = args.scans1
    days = args.days1
    progress(f"goal 1: {days} day(s) of {'full-size' if scans is None else f'{scans}-scan'} granules, serial")
    proc, state = start_emulator(root / "g1-emulator", "--data-dir", str(data_dir), scans=scans)
    try:
        # The floor is measured before and after the two stages (its own catalogue, this tree's code), and
        # their mean used: a machine that changes pace between the measurements shows as two different floors.
        floor_dir = root / "g1-floor"
        floor_dir.mkdir(parents=True)
        floor_cfg = bench_config(state, floor_dir, args.start, days)
        (floor_dir / "config.yaml").write_text(yaml.safe_dump(floor_cfg), encoding="utf-8")
        progress("goal 1: catalogue for the work floor")
        common = ["--cores", "1", "--resources", "gportal=1", "--until", "catalogue"]
        run_snakemake(designs[-1], floor_dir, "catalogue", common, args.timeout_s)
        floors = [measure_floor(args, floor_cfg, "before the stages")]
        stages = {}
        for design in designs:
            stages[design.name], _ = run_design(
                design, state, root / f"g1-{design.name}", args, days=days, sessions=1, label="goal 1"
            )
        floors.append(measure_floor(args, floor_cfg, "after the stages"))
    finally:
        stop_emulator(proc)
    floor_s, floor_n = sum(f[0] for f in floors) / len(floors), floors[0][1]
    size = "full-size" if scans is None else f"{scans}-scan"
    rows = common_rows(stages)
    rows += [
        ("overhead per granule, s", *cells(stages, lambda s: f"{(s.net_s - floor_s) / s.granules:.2f}"), ""),
        ("raw / floor", *cells(stages, lambda s: f"{s.raw_s / floor_s:.2f}"), ""),
        ("net / floor", *cells(stages, lambda s: f"{s.net_s / floor_s:.2f}"), f"<= {args.goal1:g}"),
        *service_rows(stages),
    ]
    table(
        f"Goal 1: per-granule overhead, loopback, no cap ({days} day(s), {floor_n} {size} granules, "
        f"--cores 1 --resources gportal=1)\n  work floor (one session in-process: stat + download + extract + "
        f"write): {floor_s:.1f} s, {floor_s / floor_n:.3f} s per granule\n  (the mean of {floors[0][0]:.1f} s before "
        f"and {floors[1][0]:.1f} s after the stages)",
        rows,
    )
    disturbed_note(list(stages.values()))
    for (_, _, disturbed), when in zip(floors, ("before", "after"), strict=True):
        if disturbed:
            print(
                f"  ! goal 1 work floor {when}: other test/workflow/benchmark processes ran during it: "
                + ", ".join(disturbed[:6])
            )
    if abs(floors[0][0] - floors[1][0]) > 0.15 * floor_s:
        print("  ! the two floors differ by more than 15 %: the machine's pace changed, ratios are uncertain")
    ratios = {k: s.net_s / floor_s for k, s in stages.items()}
    return {"name": "per-granule overhead, net / floor", "values": ratios, "goal": args.goal1, "at_most": True}


def goal_2(args: argparse.Namespace, designs: list[Design], root: Path, data_dir: Path) -> dict[str, Any]:
    n, cap, days, scans = args.sessions, args.cap_bytes_per_s, args.days2, args.scans2
    progress(f"goal 2: {days} day(s) of {scans}-scan granules, {n} sessions, cap {cap / 1e6:g} MB/s each")
    faults = json.dumps({"bandwidth_bytes_per_s": cap})
    proc, state = start_emulator(root / "g2-emulator", "--faults", faults, "--data-dir", str(data_dir), scans=scans)
    try:
        stages = {}
        for design in designs:
            workdir = root / f"g2-{design.name}"
            stages[design.name], _ = run_design(design, state, workdir, args, days=days, sessions=n, label="goal 2")
    finally:
        stop_emulator(proc)
    ceiling = n * cap
    rows = common_rows(stages)
    rows += [
        ("rate (served / net), MB/s", *cells(stages, lambda s: f"{s.bytes / s.net_s / 1e6:.2f}"), ""),
        ("rate / (N x cap), raw", *cells(stages, lambda s: f"{s.bytes / s.raw_s / ceiling:.3f}"), ""),
        ("rate / (N x cap), net", *cells(stages, lambda s: f"{s.bytes / s.net_s / ceiling:.3f}"), f">= {args.goal2:g}"),
        *service_rows(stages),
    ]
    table(
        f"Goal 2: aggregate rate, cap {cap / 1e6:g} MB/s per connection, N = {n} ({days} day(s), "
        f"{stages['after'].granules} {scans}-scan granules, --cores {n} --resources gportal={n}); "
        f"N x cap = {ceiling / 1e6:g} MB/s",
        rows,
    )
    disturbed_note(list(stages.values()))
    ratios = {k: s.bytes / s.net_s / ceiling for k, s in stages.items()}
    return {"name": "aggregate rate / (N x cap)", "values": ratios, "goal": args.goal2, "at_most": False}


@dataclass(frozen=True)
class Model:
    granules: int
    granule_bytes: float
    link_bytes_per_s: float
    sessions: int
    rtt_s: float

    def per_session(self, window: float) -> float:
        return min(self.link_bytes_per_s / self.sessions, window / self.rtt_s)

    def wall_s(self, rt_cost_s: float, window: float) -> float:
        return self.granules / self.sessions * (rt_cost_s + self.granule_bytes / self.per_session(window))

    def allowed_s(self, window: float) -> float:
        return self.granules * self.granule_bytes / min(self.link_bytes_per_s, self.sessions * window / self.rtt_s)


def goal_3(args: argparse.Namespace, designs: list[Design], root: Path, data_dir: Path) -> dict[str, Any]:
    days, scans, latency = args.days3, args.scans3, args.latency_ms
    model = Model(
        args.model_granules,
        args.model_granule_bytes,
        args.model_link_bytes_per_s,
        args.model_sessions,
        args.model_rtt_s,
    )
    # One session's share of the modelled link: what each of the N sessions gets when they fill it together.
    share = args.cap3_bytes_per_s or model.link_bytes_per_s / model.sessions
    size = "full-size" if scans is None else f"{scans}-scan"
    progress(
        f"goal 3: {days} day(s) of {size} granules, serial, a {share / 1e6:g} MB/s share of the link, "
        f"at 0 and {latency:g} ms round trip"
    )
    by_latency: dict[float, dict[str, Stage]] = {}
    for ms in (0.0, latency):
        tag = f"{ms:g}ms"
        extra = ["--faults", json.dumps({"bandwidth_bytes_per_s": share})]
        extra += ["--latency-ms", f"{ms:g}"] if ms else []
        proc, state = start_emulator(root / f"g3-emulator-{tag}", *extra, "--data-dir", str(data_dir), scans=scans)
        try:
            by_latency[ms] = {}
            for design in designs:
                workdir = root / f"g3-{design.name}-{tag}"
                by_latency[ms][design.name], _ = run_design(
                    design, state, workdir, args, days=days, sessions=1, label=f"goal 3 ({tag})"
                )
        finally:
            stop_emulator(proc)
    slow, fast = by_latency[latency], by_latency[0.0]
    # What a granule costs beyond its bytes at the session's share: round trips, and the local work the
    # design does not overlap with the transfer. Measured at L, scaled to the model's round trip by RTT / L.
    beyond = {k: (s.net_s - s.bytes / share) / s.granules for k, s in slow.items()}
    latency_part = {k: slow[k].net_s / slow[k].granules - fast[k].net_s / fast[k].granules for k in slow}
    scale = model.rtt_s / (latency / 1000)
    cost = {k: max(0.0, beyond[k] - latency_part[k]) + latency_part[k] * scale for k in slow}
    windows = {"before": args.before_window_mib * MIB, "after": args.after_window_mib * MIB}
    keys = ("before", "after")
    rows = [
        ("stage jobs", *cells(fast, lambda s: str(s.jobs)), ""),
        ("granules", *cells(fast, lambda s: str(s.granules)), ""),
        ("MB per granule", *cells(slow, lambda s: f"{s.bytes / s.files / 1e6:.1f}"), ""),
        ("bytes / share per granule, s", *cells(slow, lambda s: f"{s.bytes / share / s.granules:.3f}"), ""),
        ("net per granule at 0 ms, s", *cells(fast, lambda s: f"{s.net_s / s.granules:.3f}"), ""),
        (f"net per granule at {latency:g} ms, s", *cells(slow, lambda s: f"{s.net_s / s.granules:.3f}"), ""),
        ("start-up (dry run) 0 / L, s", *(f"{fast[k].dry_s:.1f} / {slow[k].dry_s:.1f}" for k in keys), ""),
        (f"net at {latency:g} ms / bytes at the share", *cells(slow, lambda s: f"{s.net_s * share / s.bytes:.2f}"), ""),
        ("beyond the bytes per granule, s", *(f"{beyond[k]:.3f}" for k in keys), "round trips + local work"),
        ("  of which the round trip, s", *(f"{latency_part[k]:.3f}" for k in keys), "net at L - net at 0"),
        ("  = round trips per granule", *(f"{latency_part[k] / (latency / 1000):.1f}" for k in keys), ""),
        (f"SFTP sessions at {latency:g} ms", *cells(slow, lambda s: str(s.sessions)), "incl. the preflight login"),
        (f"files served at {latency:g} ms", *cells(slow, lambda s: str(s.files)), ""),
    ]
    table(
        f"Goal 3a: one session over the modelled link, measured ({days} day(s), {fast['after'].granules} {size} "
        f"granules, --cores 1 --resources gportal=1, a cap of {share / 1e6:g} MB/s per connection, "
        f"--latency-ms 0 and {latency:g})",
        rows,
    )
    disturbed_note([*fast.values(), *slow.values()])

    def model_cells(key: str, window: float) -> tuple[str, ...]:
        wall, allowed = model.wall_s(cost[key], window), model.allowed_s(window)
        return (
            f"{window / MIB:g}",
            f"{model.per_session(window) / 1e6:.2f}",
            f"{cost[key]:.3f}",
            f"{wall / 86400:.2f}",
            f"{allowed / 3600:.1f}",
            f"{wall / allowed:.2f}",
        )

    labels = [
        "SSH window, MiB",
        "per-session rate, MB/s",
        f"cost beyond the bytes at {model.rtt_s:g} s RTT, s",
        "modelled wall, days",
        "allowed wall, hours",
        "modelled / allowed",
    ]
    before, after = model_cells("before", windows["before"]), model_cells("after", windows["after"])
    as_committed = model_cells("before", windows["after"])
    rows = [(lab, b, a, "") for lab, b, a in zip(labels, before, after, strict=True)]
    rows[-1] = (*rows[-1][:3], f"<= {args.goal3:g}")
    total_tb = model.granules * model.granule_bytes / 1e12
    table(
        f"Goal 3b: the full record, modelled: {model.granules:,} granules of {model.granule_bytes / 1e6:g} MB "
        f"({total_tb:.1f} TB), link {model.link_bytes_per_s * 8 / 1e9:g} Gbit/s, N = {model.sessions}, "
        f"RTT {model.rtt_s:g} s",
        rows,
    )
    print(
        f"  (before with the {args.after_window_mib:g} MiB window that {args.before_rev} already configures: "
        f"{float(as_committed[3]):.2f} days modelled, {float(as_committed[4]):.1f} h allowed, ratio {as_committed[5]})"
    )
    ratios = {k: model.wall_s(cost[k], windows[k]) / model.allowed_s(windows[k]) for k in windows}
    return {"name": "full record, modelled / allowed", "values": ratios, "goal": args.goal3, "at_most": True}


# -- main ---------------------------------------------------------------------------------------------------
def after_revision() -> str:
    """This tree's commit, and whether its code differs from it."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    changed = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "workflow"], capture_output=True, text=True
    ).stdout.strip()
    return f"the working tree at {head.stdout.strip()}" + (" + uncommitted changes in src/workflow" if changed else "")


def check_imports(design: Design) -> None:
    """The design's snakemake (and so its jobs) imports amsr2flow from the design's own tree."""
    where = subprocess.run(
        [sys.executable, "-c", "import amsr2flow; print(amsr2flow.__file__)"],
        env=design.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(design.tree.resolve()):
        raise RuntimeError(f"{design.name}: PYTHONPATH={design.tree / 'src'} imports amsr2flow from {where}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, nargs="+", choices=(1, 2, 3), default=[1, 2, 3])
    parser.add_argument("--before-rev", default="7e1a46a", help="commit of the granule-job design (default 7e1a46a)")
    parser.add_argument("--quick", action="store_true", help="1 day of 16-scan granules for every goal (smoke test)")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1), help="first day (2024-01-01)")
    parser.add_argument("--days1", type=int, default=2, help="goal 1: days (default 2)")
    parser.add_argument("--scans1", type=int, default=None, help="goal 1: scans per granule (default full size)")
    parser.add_argument("--goal1", type=float, default=1.1, help="goal 1: net / floor at most (1.1)")
    parser.add_argument("--days2", type=int, default=8, help="goal 2: days (default 8: two per session)")
    parser.add_argument("--scans2", type=int, default=400, help="goal 2: scans per granule (default 400)")
    parser.add_argument("--sessions", type=int, default=4, help="goal 2: N sessions (default 4)")
    parser.add_argument("--cap-bytes-per-s", type=float, default=2e6, help="goal 2: cap per connection (2e6)")
    parser.add_argument("--goal2", type=float, default=0.95, help="goal 2: rate / (N x cap) at least (0.95)")
    parser.add_argument("--days3", type=int, default=1, help="goal 3: days (default 1)")
    parser.add_argument("--scans3", type=int, default=None, help="goal 3: scans per granule (default full size)")
    parser.add_argument(
        "--cap3-bytes-per-s", type=float, default=None, help="goal 3: the session's share (default link / sessions)"
    )
    parser.add_argument("--latency-ms", type=float, default=200.0, help="goal 3: measured round trip (200)")
    parser.add_argument("--model-granules", type=int, default=143_600)
    parser.add_argument("--model-granule-bytes", type=float, default=35e6)
    parser.add_argument("--model-link-bytes-per-s", type=float, default=125e6, help="1 Gbit/s")
    parser.add_argument("--model-sessions", type=int, default=4)
    parser.add_argument("--model-rtt-s", type=float, default=0.2)
    parser.add_argument("--before-window-mib", type=float, default=2.0, help="paramiko's default window")
    parser.add_argument("--after-window-mib", type=float, default=16.0, help="transfer.ssh_window_mib default")
    parser.add_argument("--goal3", type=float, default=1.3, help="goal 3: modelled / allowed at most (1.3)")
    parser.add_argument("--timeout-s", type=float, default=1800, help="limit per snakemake run")
    parser.add_argument("--max-wait-s", type=float, default=3600, help="longest wait for other processes to end")
    parser.add_argument(
        "--repeat-disturbed",
        type=int,
        default=2,
        help="measure again (at most this often) when others worked meanwhile",
    )
    parser.add_argument("--workdir", type=Path, help="keep outputs and logs here (default: a temporary folder)")
    args = parser.parse_args()
    if args.quick:
        args.days1 = args.days2 = args.days3 = 1
        args.scans1 = args.scans2 = args.scans3 = 16

    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench_day_jobs_"))
    root.mkdir(parents=True, exist_ok=True)
    data_dir = root / "emulator-data"  # one granule cache for every service instance
    summary = []
    try:
        with worktree_of(args.before_rev) as tree:
            designs = [
                Design("before", tree, "granule_kept_swath", per_granule=True),
                Design("after", REPO, "day_kept_swaths", per_granule=False),
            ]
            for design in designs:
                check_imports(design)
            version = subprocess.run([str(SNAKEMAKE), "--version"], capture_output=True, text=True).stdout.strip()
            print(f"before = {args.before_rev} (a git worktree); after = {after_revision()}; snakemake {version}")
            progress(
                f"snakemake {version}, {os.cpu_count()} CPUs; before = {args.before_rev} in {tree}; work in {root}"
            )
            for number, goal in ((1, goal_1), (2, goal_2), (3, goal_3)):
                if number in args.goals:
                    summary.append((number, goal(args, designs, root, data_dir)))
                    sys.stdout.flush()
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    print("\nSummary" + (" (--quick: sizes too small for the goals to mean anything)" if args.quick else ""))
    for number, s in summary:
        sign = "<=" if s["at_most"] else ">="
        values = s["values"]
        print(
            f"  goal {number}  {s['name']:36s} before {values['before']:6.2f}  after {values['after']:6.2f}"
            f"  goal {sign} {s['goal']:g}  after: {verdict(values['after'], s['goal'], s['at_most'])}"
            f" (before: {verdict(values['before'], s['goal'], s['at_most'])})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
