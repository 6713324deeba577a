"""`amsr2flow status`: counts, rate and ETA from what a run writes, during a real run and after it was killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import SNAKEFILE, SNAKEMAKE, emulator_config

from amsr2flow import config as settings
from amsr2flow import status
from amsr2flow.plan import Layout
from amsr2flow.run import progress
from amsr2flow.run.lock import RunLock

NOW = datetime(2024, 3, 1, 12, 30, tzinfo=timezone.utc)
AMSR2FLOW = Path(sys.executable).parent / "amsr2flow"


def granule(day: str, n: int, direction: str = "A") -> str:
    return f"GW1AM2_{day.replace('-', '')}{n:02d}00_{n:03d}{direction}_L1SGBTBR_2220220"


def write_state(tmp_path: Path) -> tuple[dict, Layout, list[str]]:
    """A run of 2024-01-01..02 halfway through: a listing of 6 granules, 2 swaths, 1 failed, 1 absent."""
    cfg = settings.validate(
        {"start": "2024-01-01", "end": "2024-01-02", "output_dir": str(tmp_path / "results")}, check_environment=False
    )
    layout = Layout.from_config(cfg)
    ids = [granule("2024-01-01", n) for n in range(3)] + [granule("2024-01-02", n, "D") for n in range(3)]
    listing = layout.year_listing(2024, "20240101-20240103")
    listing.parent.mkdir(parents=True)
    pd.DataFrame(
        {
            "granule_id": ids,
            "day": ["2024-01-01"] * 3 + ["2024-01-02"] * 3,
            "orbit_direction": ["A"] * 3 + ["D"] * 3,
            "size_bytes": [1_000_000] * 6,
        }
    ).to_csv(listing, index=False)
    for gid, day in ((ids[0], "2024-01-01"), (ids[1], "2024-01-01")):
        swath = layout.swath(day, gid)
        swath.parent.mkdir(parents=True, exist_ok=True)
        swath.write_bytes(b"")
        swath.with_suffix(".json").write_text("{}")
    ledger = layout.ledger_dir(2024)
    ledger.mkdir(parents=True)
    for gid, state, reason, when in (
        (ids[2], "failed", "stall", "2024-03-01T12:20:00+00:00"),
        (ids[3], "absent", "absent", "2024-03-01T12:25:00+00:00"),
    ):
        entry = {"granule_id": gid, "status": state, "reason_class": reason, "last_attempt_utc": when}
        (ledger / f"{gid}.json").write_text(json.dumps(entry | {"last_error": f"{reason} on the way"}))
    progress.mark_finished(layout, ids[0], "archived", NOW - timedelta(minutes=50))
    progress.mark_finished(layout, ids[1], "archived", NOW - timedelta(minutes=5))
    progress.mark_finished(layout, ids[3], "absent", NOW - timedelta(minutes=5))
    progress.mark_finished(layout, "GW1AM2_202401010000_000A_L1SGBTBR_2220220", "archived", NOW - timedelta(hours=2))
    return cfg, layout, ids


def test_counts_rate_and_eta_come_from_the_files_a_run_writes(tmp_path: Path) -> None:
    cfg, _, ids = write_state(tmp_path)
    current = status.collect_status(cfg, NOW)
    (year,) = current.years
    assert (year.listed, year.archived, year.failed, year.absent, year.pending) == (6, 2, 1, 1, 2)
    assert year.state == "collecting" and year.listed_days == year.expected_days == 2
    # three marks in the last hour (the one two hours old is not counted), 2 MB of archived downloads, over the
    # hour up to the last of them (5 minutes ago): no run holds the folder, and none is said to have started
    assert current.rate_granules_per_hour == pytest.approx(3 * 60 / 55, abs=0.1)
    assert current.rate_mb_per_s == pytest.approx(2e6 / (55 * 60) / 1e6, abs=1e-3)
    assert current.eta_hours == pytest.approx(2 / (3 * 60 / 55), abs=0.01)
    assert [e["granule_id"] for e in current.last_errors] == [ids[3], ids[2]]
    assert current.running is None
    text = status.format_status(current)
    assert "ETA for the 2 pending: 37 min" in text and "stall on the way" in text
    assert json.loads(status.status_json(current))["totals"]["pending"] == 2


def test_a_run_younger_than_the_window_is_rated_over_its_own_age(tmp_path: Path) -> None:
    cfg, layout, _ = write_state(tmp_path)
    lock = RunLock(layout.state_dir())
    lock.acquire(layout.root)
    try:
        holder = json.loads(lock.holder_path.read_text())
        started = datetime.fromisoformat(holder["started_utc"])
        now = started + timedelta(minutes=10)
        layout_marks = progress.progress_root(layout)
        for folder in layout_marks.iterdir():
            for item in folder.iterdir():
                item.unlink()
        progress.mark_finished(layout, granule("2024-01-02", 1, "D"), "archived", started + timedelta(minutes=5))
        current = status.collect_status(cfg, now)
        assert current.running and str(os.getpid()) in current.running
        assert current.rate_granules_per_hour == pytest.approx(6.0, abs=0.1)  # 1 in 10 minutes
    finally:
        lock.release()
    assert status.collect_status(cfg, now).running is None


def _clear_marks(layout: Layout) -> None:
    for folder in progress.progress_root(layout).iterdir():
        for item in folder.iterdir():
            item.unlink()


def test_a_finished_run_is_rated_over_its_own_work_not_the_quiet_around_it(tmp_path: Path) -> None:
    """A run that moved 28 granules in 24 minutes was reported at the hour's average after it (and an earlier
    run's marks counted as its own)."""
    cfg, layout, _ = write_state(tmp_path)
    _clear_marks(layout)
    lock = RunLock(layout.state_dir())
    lock.acquire(layout.root)
    lock.release()  # the run has ended; its holder record stays
    started = lock.started_utc()
    assert started is not None
    progress.mark_finished(layout, granule("2024-01-01", 90), "archived", started - timedelta(minutes=5))  # earlier
    for n in range(28):
        progress.mark_finished(
            layout, granule("2024-01-02", n, "D"), "archived", started + timedelta(minutes=n * 24 / 27)
        )
    after = status.collect_status(cfg, started + timedelta(minutes=50))
    assert after.running is None
    assert after.rate_granules_per_hour == pytest.approx(28 * 60 / 24, abs=0.5)  # 70/h, not 28 in 50 minutes
    assert "over the last run's 24 min of work, up to its last granule at" in status.format_status(after)


def test_the_first_progress_line_of_a_run_says_no_granule_finished_yet(tmp_path: Path) -> None:
    cfg, layout, _ = write_state(tmp_path)
    _clear_marks(layout)
    lock = RunLock(layout.state_dir())
    lock.acquire(layout.root)
    try:
        started = lock.started_utc()
        assert started is not None
        line = status.progress_line(status.collect_status(cfg, started + timedelta(seconds=30)))
    finally:
        lock.release()
    assert line.endswith("ETA unknown (no granule finished yet)"), line  # not "nothing ... in the last hour"


def test_days_not_listed_yet_are_counted_from_their_manifests(tmp_path: Path) -> None:
    cfg = settings.validate(
        {"start": "2024-01-01", "end": "2024-01-03", "output_dir": str(tmp_path / "results")}, check_environment=False
    )
    layout = Layout.from_config(cfg)
    manifest = layout.day_manifest(datetime(2024, 1, 2).date())
    manifest.parent.mkdir(parents=True)
    pd.DataFrame({"granule_id": [granule("2024-01-02", 1)], "size_bytes": [5]}).to_csv(manifest, index=False)
    (year,) = status.collect_status(cfg, NOW).years
    assert (year.listed_days, year.expected_days, year.listed, year.state) == (1, 3, 1, "listing")
    assert "2 day(s) not listed yet" in status.format_status(status.collect_status(cfg, NOW))


def test_old_progress_folders_are_pruned(tmp_path: Path) -> None:
    _, layout, _ = write_state(tmp_path)
    progress.prune_marks(layout, NOW, keep=timedelta(hours=1))
    names = sorted(p.name for p in progress.progress_root(layout).iterdir())
    assert names == [(NOW - timedelta(minutes=50)).strftime(progress.HOUR_FORMAT), NOW.strftime(progress.HOUR_FORMAT)]


def test_the_command_refuses_a_bad_configuration_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("start: 2024-13-01\nend: 2024-01-02\n")
    result = subprocess.run([AMSR2FLOW, "status", "--configfile", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "start: '2024-13-01' is not a real calendar date; write it as YYYY-MM-DD" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 2  # the heading, the problem
    missing = subprocess.run(
        [AMSR2FLOW, "status", "--configfile", str(tmp_path / "nope.yaml")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def _status(config_path: Path) -> dict:
    result = subprocess.run(
        [AMSR2FLOW, "status", "--configfile", str(config_path), "--json"], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


@pytest.mark.slow
def test_status_during_a_real_run_and_after_it_is_killed(emulator_factory, tmp_path: Path) -> None:
    # A slow link (one session, 250 kB/s) so that the run lasts long enough to be watched.
    state = emulator_factory("--faults", json.dumps({"bandwidth_bytes_per_s": 250_000}))
    cfg = emulator_config(
        state, tmp_path, report={"progress_interval_s": 2, "figures": False}, transfer={"stall_timeout_s": 60}
    )
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    cmd = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "--configfile", str(config_path), "--workflow-profile", "none"]
    cmd += ["--cores", "2", "--resources", "gportal=1"]
    out = (tmp_path / "snakemake.out").open("w")
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    seen: list[dict] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            current = _status(config_path)
            seen.append(current)
            if current["totals"]["archived"] >= 3 and current["eta_hours"]:
                break
            time.sleep(0.5)  # polling a condition, not synchronising on time
        assert proc.poll() is None, "the run ended before status saw it progress"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        out.close()
    during = seen[-1]
    assert during["running"] and during["totals"]["listed"] > 0
    assert during["totals"]["pending"] > 0 and during["eta_hours"] > 0 and during["rate_granules_per_hour"] > 0
    archived = [s["totals"]["archived"] for s in seen]
    assert archived == sorted(archived) and archived[-1] > archived[0]
    log = (tmp_path / "snakemake.out").read_text()
    assert "amsr2flow progress:" in log and "granules/h" in log

    after = _status(config_path)
    assert after["running"] is None
    totals = after["totals"]
    assert totals["archived"] >= during["totals"]["archived"]
    assert sum(totals[k] for k in ("archived", "failed", "absent", "invalid", "pending")) == totals["listed"]
    text = subprocess.run(
        [AMSR2FLOW, "status", "--configfile", str(config_path)], capture_output=True, text=True, check=True
    ).stdout
    assert "run: none running" in text and "pending" in text
