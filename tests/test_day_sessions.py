"""A day job over several SFTP sessions: a run with fewer day jobs than ``gportal=N`` shares the cap among
them (``run.sessions``), each job's sessions take the day's granules in time order (``DayClaims``), and the
outputs are the bytes one session makes (killed runs of four sessions resume to the archives of one session:
tests/test_resilience.py)."""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

import pytest
from emulator_fixtures import read_stats, start_emulator, stop_emulator
from workflow_helpers import day_job, day_listing, day_tasks, emulator_config, run_workflow

from amsr2flow import atomic
from amsr2flow import config as settings
from amsr2flow.emulator import orbit
from amsr2flow.gportal.catalogue import manifest_to_csv_bytes
from amsr2flow.plan import Layout
from amsr2flow.run.sessions import CAP_VARIABLE, SHARE_VARIABLE, SessionShare, day_job_share
from amsr2flow.stages import granule

DAY = "2024-01-01"
#: ~0.5 s per 16-scan granule (~1 MB) and session: the sessions of one day overlap for seconds.
CAPPED = json.dumps({"bandwidth_bytes_per_s": 2_000_000})


# -- the share of the cap ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cap", "pending", "share"),
    [
        (4, 1, 4),  # following the mission: yesterday alone gets the whole cap
        (4, 2, 2),
        (4, 3, 1),  # the remainder is not handed out: the run ends with its slowest day all the same
        (4, 4, 1),
        (4, 4800, 1),  # the full record: one session per job, as always
        (8, 3, 2),
        (1, 1, 1),
        (4, 0, 1),  # nothing foreseen (a recheck, a changed manifest): jobs side by side, one session each
        (0, 1, 1),  # a cap of 0 holds every job back anyway
    ],
)
def test_a_day_jobs_share_of_the_cap(cap: int, pending: int, share: int) -> None:
    assert day_job_share(cap, pending) == share
    assert share * min(pending, max(cap, 1)) <= max(cap, 1)  # jobs running at once never exceed the cap together


def test_a_jobs_own_parse_takes_the_main_processes_cap_and_share() -> None:
    main = SessionShare.planned(2, 1)
    assert main == SessionShare(2, 2)
    assert main.environ() == {CAP_VARIABLE: "2", SHARE_VARIABLE: "2"}
    # a cluster job's parse: its default cap (4) is not the run's (2)
    assert SessionShare.inherited(main.environ(), 4) == SessionShare(2, 2)
    assert SessionShare.inherited({}, 4) == SessionShare(4, 1)  # nothing passed on: one session
    assert SessionShare.inherited({CAP_VARIABLE: "2", SHARE_VARIABLE: "3"}, 4) == SessionShare(4, 1)
    assert SessionShare.inherited({CAP_VARIABLE: "x", SHARE_VARIABLE: "1"}, 4) == SessionShare(4, 1)


# -- the claims of a day's granules -------------------------------------------------------------------------------
def _tasks(count: int) -> list[granule.GranuleTask]:
    return [granule.GranuleTask(f"G{n:02d}", DAY, f"/g/{n}", 1) for n in range(count)]


def test_claims_keep_time_order_and_leave_the_last_granules_to_whoever_is_free() -> None:
    claims = granule.DayClaims(_tasks(7), workers=3)
    a, a_next = claims.next(), claims.after()  # a worker takes a granule and the one after it (read ahead)
    b, b_next = claims.next(), claims.after()
    c = claims.next()
    assert [t.granule_id for t in (a, a_next, b, b_next, c)] == ["G00", "G01", "G02", "G03", "G04"]
    assert claims.after() is None  # 2 wait for 3 workers: none is bound to a busy worker
    assert [claims.next().granule_id, claims.next().granule_id, claims.next()] == ["G05", "G06", None]
    alone = granule.DayClaims(_tasks(2), workers=1)  # one session: each granule and the next, as always
    assert [alone.next().granule_id, alone.after().granule_id, alone.after(), alone.next()] == [
        "G00",
        "G01",
        None,
        None,
    ]


def test_an_unexpected_error_of_one_worker_stops_the_claims_and_is_raised() -> None:
    claims = granule.DayClaims(_tasks(20), workers=2)
    taken: list[str] = []
    both_busy = threading.Barrier(2, timeout=10)

    def work() -> None:
        while (task := claims.next()) is not None:
            taken.append(task.granule_id)
            if len(taken) <= 2:
                both_busy.wait()
            if task.granule_id == "G00":
                raise OSError("a bug")
            claims.aborted.wait(10)  # the other worker, busy until the first one fails

    with pytest.raises(OSError, match="a bug"):
        granule._run_workers(2, work, claims)
    assert claims.aborted.is_set() and claims.next() is None
    assert sorted(taken) == ["G00", "G01"]  # once one worker failed, no granule was taken


# -- in one process, against the local G-Portal --------------------------------------------------------------------
def test_sessions_of_a_day_are_summed_and_a_stop_flag_stops_every_one(tmp_path: Path) -> None:
    granules = orbit.granules_beginning_on(date(2024, 1, 1))
    reset = granules[5].granule_id
    proc, state = start_emulator(
        tmp_path / "emulator", "--faults", json.dumps({"granules": {reset: ["connection_reset"]}})
    )
    try:
        job = day_job(state, tmp_path)
        tasks = day_tasks(job, 12)
        stopped_job = day_job(state, tmp_path / "stopped")
        stopped_job.stop_flag.parent.mkdir(parents=True)
        stopped_job.stop_flag.write_text("G-Portal looks down\n")
        stopped = granule.collect_day(tasks, stopped_job, sessions=4)
        result = granule.collect_day(tasks, job, sessions=4)
    finally:
        stop_emulator(proc)
    assert (stopped.outcomes, stopped.sessions_opened, sorted(stopped.failed)) == (
        {},
        0,
        sorted(t.granule_id for t in tasks),
    )
    assert "G-Portal looks down" in stopped.stopped
    assert result.outcomes == dict.fromkeys((t.granule_id for t in tasks), "archived") and not result.failed
    assert result.sessions_opened == 5  # four sessions, one of them opened again after the reset
    stats = read_stats(state)
    assert stats["sftp_sessions"] == 5 and stats["peak_sftp_sessions"] <= 4
    # each granule read once; the reset one twice, and perhaps the one whose transfer the reset cut (when it was
    # read ahead) and the one read ahead behind it
    extra = {g: n - 1 for g, n in stats["opens_by_granule"].items() if n > 1}
    assert extra[reset] == 1 and set(extra.values()) == {1} and len(extra) <= 3, extra


# -- a run of one day with gportal=4 -------------------------------------------------------------------------------
def _day_outputs(results: Path) -> dict[str, bytes]:
    """The day's swaths and sidecars, and its day record, by name."""
    folder = results / "swaths" / "2024"
    files = [*sorted((folder / DAY).iterdir()), folder / f"{DAY}.json"]
    return {p.name: p.read_bytes() for p in files}


def _one_session_day(state: dict, folder: Path) -> dict[str, bytes]:
    """The day as a gportal=1 run's day job collects it (one session), from the same configuration."""
    cfg = settings.validate(emulator_config(state, folder), check_environment=False)
    job = granule.DayJob.from_config(cfg, cfg["channels"], cfg["geolocation"])
    manifest = job.layout.day_manifest(date(2024, 1, 1))
    manifest.parent.mkdir(parents=True)
    manifest.write_bytes(manifest_to_csv_bytes(day_listing(job.connection.source, 100)))
    result = granule.collect_day(granule.read_day_tasks(manifest, DAY, job.template), job, sessions=1)
    assert not result.failed and result.sessions_opened == 1
    atomic.write_json(job.layout.day_record(DAY), result.record(DAY))  # as workflow/scripts/granules.py does
    return _day_outputs(job.layout.root)


@pytest.mark.slow
def test_one_day_uses_the_whole_cap_and_makes_the_bytes_of_one_session(tmp_path: Path) -> None:
    data = tmp_path / "emulator-data"  # one granule cache for both services
    proc, state = start_emulator(tmp_path / "emulator", "--data-dir", str(data))
    try:
        expected = _one_session_day(state, tmp_path / "one-session")
    finally:
        stop_emulator(proc)
    proc, state = start_emulator(tmp_path / "capped", "--data-dir", str(data), "--faults", CAPPED)
    try:
        run = run_workflow(tmp_path / "run", emulator_config(state, tmp_path / "run"), "--resources", "gportal=4")
    finally:
        stop_emulator(proc)
    assert run.returncode == 0, run.stdout[-3000:]
    stats = read_stats(state)
    # the preflight login, then the day job's four sessions, at most four at once
    assert stats["sftp_sessions"] == 5 and 2 <= stats["peak_sftp_sessions"] <= 4, stats
    assert stats["files_served"] == 29  # no granule read twice: a session reads ahead only its own next granule
    results = tmp_path / "run" / "results"
    log = Layout(results, results / ".scratch").day_job_log(2024, DAY).read_text()
    assert "29 granules to collect over 4 sessions" in log and "4 session(s) opened for 29 granules" in log
    assert _day_outputs(results) == expected
