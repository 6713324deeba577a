"""The start and end of a run (amsr2flow.run.lifecycle), tested without Snakemake: what the workflow's handlers
do is package code now."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest

from amsr2flow import config as settings
from amsr2flow.plan import RunPlan
from amsr2flow.run import lifecycle
from amsr2flow.run.lock import RunLock


def _plan(tmp_path: Path, **cfg: object) -> tuple[RunPlan, dict]:
    full = settings.validate(
        {"start": "2023-01-01", "end": "2024-01-02", "output_dir": str(tmp_path / "results"), **cfg},
        check_environment=False,
    )
    full["report"]["progress_interval_s"] = 0
    return RunPlan.from_config(full), full


def _start(plan: RunPlan, cfg: dict, **kwargs: object) -> str:
    stream = io.StringIO()
    lock = RunLock(plan.layout.state_dir())
    try:
        lifecycle.start_run(
            plan, cfg, network=False, lock=lock, contradicting=kwargs.pop("contradicting", {}), stream=stream
        )
    finally:
        lock.release()
    return stream.getvalue()


def test_the_start_sweeps_what_killed_jobs_left_and_resets_the_run_wide_state(tmp_path: Path) -> None:
    plan, cfg = _plan(tmp_path)
    layout = plan.layout
    layout.scratch.mkdir(parents=True)
    (layout.scratch / "GW1AM2_x.h5").write_bytes(b"half")  # a whole download of a killed job
    partial = layout.scratch / "2024" / "2024-01-01" / "g.h5.part-1"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"partial")
    kept = layout.scratch / "2024" / "2024-01-01" / "g.h5"  # a split transfer's declared output stays
    kept.write_bytes(b"checked")
    layout.state_dir().mkdir(parents=True)
    layout.stop_flag().write_text("stopped")
    layout.breaker_state().write_text("{}")
    plan.archive(2023).parent.mkdir(parents=True)
    plan.archive(2023).write_bytes(b"")  # 2023 is complete and archived: sealed, its swaths are leftovers
    leftover_swath = layout.swath("2023-05-01", "G")
    leftover_swath.parent.mkdir(parents=True)
    leftover_swath.write_bytes(b"")
    said = _start(plan, cfg)
    assert "removing leftover download" in said and "removing the leftover swaths of archived 2023" in said
    assert not (layout.scratch / "GW1AM2_x.h5").exists() and not partial.exists() and kept.exists()
    assert not layout.stop_flag().exists() and not layout.breaker_state().exists()
    assert not (layout.root / "swaths" / "2023").exists()


def test_the_start_refuses_archives_to_repair_and_a_second_run(tmp_path: Path) -> None:
    plan, cfg = _plan(tmp_path)
    with pytest.raises(lifecycle.RunRefused) as refused:
        _start(plan, cfg, contradicting={plan.archive(2024): 3})
    assert (
        refused.value.line()
        == f"amsr2flow: cannot start: run `amsr2flow repair {plan.layout.root}` first (see the note above)"
    )
    other = RunLock(plan.layout.state_dir())
    other.acquire(plan.layout.root)
    try:
        with pytest.raises(lifecycle.RunRefused, match="another run is using output_dir"):
            _start(plan, cfg)
    finally:
        other.release()


def test_the_start_checks_credentials_only_when_jobs_reach_gportal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan, cfg = _plan(tmp_path, credentials={"username_env": "AMSR2FLOW_TEST_NOBODY"})
    monkeypatch.delenv("AMSR2FLOW_TEST_NOBODY", raising=False)
    _start(plan, cfg)  # redrawing reports needs no account
    lock = RunLock(plan.layout.state_dir())
    with pytest.raises(lifecycle.RunRefused) as refused:
        lifecycle.start_run(plan, cfg, network=True, lock=lock, contradicting={}, stream=io.StringIO())
    lock.release()
    assert refused.value.line().startswith("amsr2flow: cannot start:\n  ")
    assert "AMSR2FLOW_TEST_NOBODY" in str(refused.value)


def test_the_end_owes_the_exit_status_of_the_last_report(tmp_path: Path) -> None:
    plan, _ = _plan(tmp_path)
    assert lifecycle.finish_run(plan, [], io.StringIO()) == 0 and not lifecycle.needs_status_target(plan, {})
    report = plan.layout.run_report(plan.run_tag)
    report.parent.mkdir(parents=True)
    complete = {"archived_granules": 5, "expected_granules": 5, "missing_granules": 0, "success_rate_percent": 100.0}
    report.write_text(json.dumps(complete))
    assert lifecycle.finish_run(plan, [], io.StringIO()) == 0
    missing = {**complete, "archived_granules": 4, "missing_granules": 1, "missing_by_reason": {"absent": 1}}
    report.write_text(json.dumps(missing))
    said = io.StringIO()
    assert lifecycle.finish_run(plan, [], said) == 3 and "1 not archived" in said.getvalue()
    assert lifecycle.finish_run(plan, ["absent"], io.StringIO()) == 0
    assert lifecycle.needs_status_target(plan, {})  # an unchanged rerun must say it again
    assert lifecycle.needs_status_target(_plan(tmp_path / "other")[0], {plan.archive(2024): 1})


def test_a_failed_run_leaves_an_interim_report_of_what_exists(tmp_path: Path) -> None:
    plan, cfg = _plan(tmp_path, start="2024-01-01", end="2024-01-01")
    assert lifecycle.write_interim_report(plan, cfg["start"], cfg["end"], io.StringIO()) is None  # nothing listed
    listing = plan.layout.year_listing(2024, plan[2024].period)
    listing.parent.mkdir(parents=True)
    listing.write_text(
        "day,granule_id,begin_utc,end_utc,orbit_direction,path_number,remote_path,size_bytes\n"
        "2024-01-01,GW1AM2_202401010016_176A_L1SGBTBR_2220220,2024-01-01T00:16:06.777Z,2024-01-01T01:05:31.981Z,"
        "A,176,/p/x.h5,100\n"
    )
    log = plan.layout.day_job_log(2024, "2024-01-01")
    log.parent.mkdir(parents=True)
    log.write_text("... GW1AM2_202401010016_176A_L1SGBTBR_2220220: collecting\n")  # reached, then the job died
    said = io.StringIO()
    page = lifecycle.write_interim_report(plan, cfg["start"], cfg["end"], said)
    assert page == plan.layout.interim_report(plan.run_tag, ".html") and page.is_file()
    interim = json.loads(plan.layout.interim_report(plan.run_tag).read_text())
    assert (
        interim["missing"][0]["reason_class"] == "job_failed" and "0 of 1 listed granules are done" in said.getvalue()
    )


def test_the_local_gportal_watch_stops_the_run_once_its_state_file_is_gone(tmp_path: Path) -> None:
    from amsr2flow.run.service_watch import LocalServiceWatch

    state_file, stop_flag = tmp_path / "emulator" / "state.json", tmp_path / "results" / ".state" / "STOP"
    state_file.parent.mkdir()
    state_file.write_text("{}")
    said: list[str] = []
    gone = threading.Event()
    watch = LocalServiceWatch(state_file, stop_flag, interval_s=0.01, on_gone=gone.set, write=said.append)
    assert watch.check() is False and not stop_flag.exists() and not said
    watch.start()
    state_file.unlink()
    assert gone.wait(10)
    watch.join(10)
    assert not watch.is_alive()  # it said it once and stopped looking
    assert stop_flag.read_text().startswith("the local G-Portal stopped during the run")
    assert len(said) == 1 and "rerun the same command" in said[0] and str(state_file) in said[0]


def test_a_stop_flag_already_written_stays_when_the_local_gportal_goes(tmp_path: Path) -> None:
    from amsr2flow.run.service_watch import LocalServiceWatch

    stop_flag = tmp_path / "STOP"
    stop_flag.write_text("no space left on device\n")
    calls: list[str] = []
    watch = LocalServiceWatch(
        tmp_path / "state.json", stop_flag, on_gone=lambda: calls.append("stop"), write=calls.append
    )
    assert watch.check() is True
    assert stop_flag.read_text() == "no space left on device\n" and calls[-1] == "stop"
