"""One job per day over its SFTP sessions (collect_day over one here; the workflow runs, one day at the default
cap, over four; more in test_day_sessions.py): granules still end one by one (swath, tombstone, ledger), a failed
granule does not stop its day, and a rerun fetches only what is not done."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
from emulator_fixtures import read_stats, start_emulator, stop_emulator
from workflow_helpers import day_job, day_tasks, emulator_config, run_workflow

from amsr2flow.emulator import orbit
from amsr2flow.formats import swath
from amsr2flow.formats.swath import ExtractionSpec
from amsr2flow.stages import granule
from amsr2flow.stages.catalogue import read_listing


def test_a_day_shares_one_session_and_opens_a_new_one_after_a_failure(tmp_path: Path) -> None:
    granules = orbit.granules_beginning_on(date(2024, 1, 1))
    reset = granules[2].granule_id
    faults = {"granules": {reset: ["connection_reset"]}}
    proc, state = start_emulator(tmp_path / "emulator", "--faults", json.dumps(faults))
    try:
        job = day_job(state, tmp_path)
        tasks = day_tasks(job, 5)
        first = granule.collect_day(tasks, job)
        again = granule.collect_day(tasks, job)  # everything done already: no session at all
    finally:
        stop_emulator(proc)
    assert first.outcomes == dict.fromkeys((t.granule_id for t in tasks), "archived") and not first.failed
    assert first.sessions_opened == 2  # one for the day, one more after the reset
    assert (again.reused, again.sessions_opened) == (5, 0)
    stats = read_stats(state)
    assert stats["sftp_sessions"] == 2
    # The reset granule is opened again; so may be the one after it, whose open went out behind the reset
    # granule's reads (read ahead) and may have been answered before the connection dropped.
    following = granules[3].granule_id
    assert stats["opens_by_granule"][reset] == 2 and stats["opens_by_granule"][following] in (1, 2)
    assert {g: n for g, n in stats["opens_by_granule"].items() if g not in (reset, following)} == dict.fromkeys(
        (t.granule_id for t in tasks if t.granule_id not in (reset, following)), 1
    )
    # the retried granule's history is in its ledger entry
    assert json.loads(job.layout.ledger_entry("2024-01-01", reset).read_text())["status"] == "resolved"


def test_finished_outcome_counts_only_swaths_of_the_configured_channels(tmp_path: Path) -> None:
    made = swath.make_swath(
        "GW1AM2_202401010000_001A_L1SGBTBR_2220220",
        "A",
        {"36.5H": np.ones((4, 243), np.uint16), "18.7V": np.ones((4, 243), np.uint16)},
        scale_factors=(0.01, 0.01),
    )
    npy = swath.write_swath(made, tmp_path / "a.npy")
    assert granule.finished_outcome(npy, ExtractionSpec(("36.5H", "18.7V"))) == "archived"
    assert granule.finished_outcome(npy, ExtractionSpec(("36.5H",))) is None  # channels changed: extract again
    assert granule.finished_outcome(npy, ExtractionSpec(("36.5H", "18.7V"), True)) is None  # positions asked for
    swath.sidecar_path(npy).unlink()
    assert granule.finished_outcome(npy, ExtractionSpec(("36.5H", "18.7V"))) is None  # half-written
    tomb = tmp_path / "b.npy"
    swath.write_tombstone(tomb, "G", "/x", reason_class="invalid", error="unreadable", n_pixels=243)
    assert granule.finished_outcome(tomb, ExtractionSpec(("36.5H",))) == "invalid"


def test_a_failed_granule_fails_its_day_after_the_others_and_only_it_is_fetched_again(tmp_path: Path) -> None:
    granules = orbit.granules_beginning_on(date(2024, 1, 1))
    failing = granules[5].granule_id
    # four resets: every attempt of this run (transfer.attempts is 4); the next run's attempt succeeds
    faults = {"granules": {failing: ["connection_reset"] * 4}}
    proc, state = start_emulator(tmp_path / "emulator", "--faults", json.dumps(faults))
    try:
        cfg = emulator_config(state, tmp_path)
        first = run_workflow(tmp_path, cfg)
        assert first.returncode != 0
        assert "1 of 29 granules not done" in first.stdout, first.stdout[-3000:]
        assert "Traceback" not in first.stdout
        results = tmp_path / "results"
        record = results / "swaths" / "2024" / "2024-01-01.json"
        assert not record.exists()
        swaths = sorted(p.stem for p in (results / "swaths" / "2024" / "2024-01-01").glob("*.npy"))
        assert len(swaths) == 28 and failing not in swaths
        ledger = json.loads((results / "ledger" / "2024" / f"{failing}.json").read_text())
        assert ledger["status"] == "failed"
        served = read_stats(state)["opens_by_granule"]

        second = run_workflow(tmp_path, cfg)
        assert second.returncode == 0, second.stdout[-3000:]
    finally:
        stop_emulator(proc)
    opens = read_stats(state)["opens_by_granule"]
    assert {g: n - served.get(g, 0) for g, n in opens.items() if n != served.get(g, 0)} == {failing: 1}
    listing = read_listing(next((results / "manifests" / "2024").glob("granules_*.csv")))
    assert json.loads(record.read_text())["granules"] == dict.fromkeys(sorted(listing["granule_id"]), "archived")


def test_swaths_deleted_by_hand_are_fetched_again_after_one_clear_message(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator")
    try:
        cfg = emulator_config(state, tmp_path)
        assert run_workflow(tmp_path, cfg).returncode == 0
        results = tmp_path / "results"
        (lost,) = sorted((results / "swaths" / "2024" / "2024-01-01").glob("*.npy"))[3:4]
        lost.unlink()
        served = read_stats(state)["opens_by_granule"]
        # extending the period rebuilds the archive, which finds the swath gone
        extended = dict(cfg, end="2024-01-02")
        failed = run_workflow(tmp_path, extended)
        assert failed.returncode != 0
        assert "1 swath(s) of 1 day(s) are missing" in failed.stdout and "rerun the same command" in failed.stdout
        assert not (results / "swaths" / "2024" / "2024-01-01.json").exists()
        between = read_stats(state)["opens_by_granule"]
        again = run_workflow(tmp_path, extended)
        assert again.returncode == 0, again.stdout[-3000:]
    finally:
        stop_emulator(proc)
    # the failed run fetched the new day only; the rerun fetched the lost granule alone
    new_day = {g for g, n in between.items() if n != served.get(g, 0)}
    assert new_day and all(g.startswith("GW1AM2_20240102") for g in new_day)
    opens = read_stats(state)["opens_by_granule"]
    assert {g for g, n in opens.items() if n != between.get(g, 0)} == {lost.stem}
    assert lost.is_file()
