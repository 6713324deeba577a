"""The repository as a Snakemake catalog user meets it: the default profile, the .test case, use as a module.

Each test runs the real ``snakemake`` command against a local G-Portal over sockets.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from emulator_fixtures import read_stats, start_emulator, stop_emulator
from workflow_helpers import REPO, SNAKEFILE, emulator_config, job_counts, snakemake

#: Slow enough transfers (16-scan granules of ~1 MB at 2 MB/s: ~0.5 s each, ~15 s per day job) that the day jobs
#: of four sessions overlap for sure. (At 1 MB/s a day job took 30 s and the fifth, alone after them, 30 more.)
OVERLAPPING_TRANSFERS = {"rates": {}, "bandwidth_bytes_per_s": 2_000_000}
DAYS = 5  # one day job more than the default cap of 4 sessions


@pytest.mark.slow
def test_dot_test_case_with_the_default_profile_caps_sessions_at_4(tmp_path: Path) -> None:
    """`snakemake --cores 8` with no profile flag: the default workflow profile applies and caps sessions at 4."""
    case = tmp_path / "case"
    shutil.copytree(REPO / ".test", case)
    proc, state = _start_for_case(case)
    try:
        run = snakemake(
            tmp_path,
            "-s",
            str(SNAKEFILE),
            "--directory",
            str(case),
            "--configfile",
            str(case / "config" / "config.yaml"),
            "--cores",
            "8",
        )
        stats = read_stats(state)
    finally:
        stop_emulator(proc)
    assert run.returncode == 0, run.stdout[-4000:]
    assert "profiles/default" in run.stdout  # Snakemake says which workflow profile it applied
    assert stats["peak_sftp_sessions"] == 4
    assert stats["files_served"] == stats["files_opened"] >= DAYS * 29
    assert stats["sftp_sessions"] == DAYS + 1  # one per day job, and the preflight's login
    assert list((case / "results" / "archives").glob("AMSR2_temp_only_*.npz"))


def _plan(tmp_path: Path, state: dict, *args: str):
    """`snakemake -n ARGS` as a user types it (the default workflow profile applies), and what the local G-Portal
    saw meanwhile."""
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(emulator_config(state, tmp_path, end="2024-01-02")), encoding="utf-8")
    before = read_stats(state)
    run = snakemake(tmp_path, "-s", str(SNAKEFILE), "--configfile", str(config_path), "-n", *args, timeout=120)
    after = read_stats(state)
    requests = {k: after[k] - before[k] for k in ("catalogue_requests", "sftp_connections")}
    return run, requests


def test_a_dry_run_under_the_default_profile_prints_the_plan(emulator, tmp_path: Path) -> None:
    """The README's `snakemake -n` "prints the plan without touching the network": the profile's
    `quiet: [rules, progress]` once hid it all after "Building DAG of jobs..."."""
    run, requests = _plan(tmp_path, emulator)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "profiles/default" in run.stdout
    counts = job_counts(run.stdout)
    assert counts["catalogue"] == 1 and counts["year_archive"] == 1 and counts["run_report"] == 1, run.stdout
    assert "This was a dry-run" in run.stdout and "checkpoint jobs" in run.stdout  # the day jobs come after it
    assert "jobid:" not in run.stdout  # the profile's quiet rules still hold: counts, not a block per job
    assert requests == {"catalogue_requests": 0, "sftp_connections": 0}


def _see_every_job_options() -> list[list[str]]:
    """The options docs/reports.md gives "to see every job again", each as the words to type."""
    text = " ".join((REPO / "docs" / "reports.md").read_text(encoding="utf-8").split())
    sentence = re.search(r"To see every job again[^.]*\.", text)
    assert sentence, "docs/reports.md no longer says how to see every job"
    options = re.findall(r"`(--[^`]+)`", sentence[0])
    assert len(options) >= 2, sentence[0]
    return [option.split() for option in options]


@pytest.mark.parametrize("option", _see_every_job_options(), ids=" ".join)
def test_the_docs_way_to_see_every_job_works_as_written(emulator, tmp_path: Path, option: list[str]) -> None:
    run, requests = _plan(tmp_path, emulator, *option)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "jobid:" in run.stdout and "checkpoint catalogue:" in run.stdout, run.stdout[-3000:]  # a block per job
    assert requests == {"catalogue_requests": 0, "sftp_connections": 0}


def _start_for_case(case: Path):
    """The local G-Portal with its state file where the .test config expects it (emulator/state.json)."""
    proc, state = start_emulator(case / "emulator", "--faults", json.dumps(OVERLAPPING_TRANSFERS))
    assert Path(state["stats_path"]).parent == case / "emulator"
    return proc, state


HOST_SNAKEFILE = """
configfile: "config.yaml"


module amsr2:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from amsr2 as amsr2_*


rule all:
    default_target: True
    input:
        rules.amsr2_all.input,
"""


def _host_workflow(tmp_path: Path, state: dict, **overrides: object) -> Path:
    host = tmp_path / "host"
    host.mkdir()
    (host / "Snakefile").write_text(HOST_SNAKEFILE.format(snakefile=SNAKEFILE), encoding="utf-8")
    cfg = {
        "start": "2024-01-01",
        "end": f"2024-01-{DAYS:02d}",
        "source": "emulator",
        "output_dir": "results",
        "emulator": {"state_file": str(Path(state["stats_path"]).parent / "state.json")},
        "transfer": {"backoff_initial_s": 0.1, "backoff_max_s": 0.5, "stall_timeout_s": 5},
        **overrides,
    }
    (host / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return host


@pytest.mark.slow
def test_module_run_does_the_start_of_run_work_and_keeps_the_cap(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator", "--faults", json.dumps(OVERLAPPING_TRANSFERS))
    try:
        host = _host_workflow(tmp_path, state)
        # What an earlier, killed run leaves: a stop flag and a half-written archive. The start-of-run work must
        # clear both, or every day job would refuse to start.
        stop_flag = host / "results" / ".state" / "STOP"
        stop_flag.parent.mkdir(parents=True)
        stop_flag.write_text("left over from a killed run\n", encoding="utf-8")
        leftover = host / "results" / "archives" / ".AMSR2_temp_only_x.npz.tmp-abc"
        leftover.parent.mkdir(parents=True)
        leftover.write_bytes(b"partial")
        # No profile and no --resources: the workflow's own default cap must hold.
        run = snakemake(host, "--workflow-profile", "none", "--cores", "8")
        stats = read_stats(state)
    finally:
        stop_emulator(proc)
    assert run.returncode == 0, run.stdout[-4000:]
    assert not stop_flag.exists() and not leftover.exists()
    # One session per day job plus the preflight login, which downloads nothing.
    assert stats["files_served"] == stats["files_opened"] >= DAYS * 29
    assert stats["sftp_sessions"] == DAYS + 1
    assert stats["peak_sftp_sessions"] == 4
    assert len(list((host / "results" / "archives").glob("AMSR2_temp_only_*.npz"))) == 1
    assert list((host / "results" / "reports").glob("run_*.html"))


def test_module_run_that_fails_writes_the_interim_report(tmp_path: Path) -> None:
    # Every open resets ("times": 100): a granule's read started ahead and then dropped also counts as an
    # open at the service, so with one reset each a dropped read-ahead would let the next attempt through.
    faults = {"rates": {"connection_reset": 1.0}, "times": 100}
    proc, state = start_emulator(tmp_path / "emulator", "--faults", json.dumps(faults))
    try:
        host = _host_workflow(
            tmp_path, state, end="2024-01-01", transfer={"attempts": 1, "backoff_initial_s": 0.1, "backoff_max_s": 0.5}
        )
        run = snakemake(host, "--workflow-profile", "none", "--cores", "2")
    finally:
        stop_emulator(proc)
    assert run.returncode != 0
    interim = list((host / "results" / "reports").glob("interim_*.json"))
    assert interim, run.stdout[-4000:]
    report = json.loads(interim[0].read_text(encoding="utf-8"))
    assert report["expected_granules"] == 29 and report["archived_granules"] == 0
    assert "Interim report" in run.stdout
