"""Nothing lost, nothing hangs: faults, wrong credentials, kills, and secrets, each a real run."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import paramiko
import pytest
import yaml
from emulator_fixtures import read_stats, start_emulator, stop_emulator, wait_for, wait_for_stats
from workflow_helpers import SNAKEFILE, SNAKEMAKE, emulator_config, real_service_config, run_workflow

from amsr2flow.gportal.host_keys import fingerprint_sha256
from amsr2flow.stages.catalogue import read_listing

pytestmark = pytest.mark.slow

DAY = "2024-01-01"
PERIOD = "20240101-20240102"


def _listing(results: Path) -> pd.DataFrame:
    return read_listing(results / "manifests" / "2024" / f"granules_{PERIOD}.csv")


def _report(results: Path) -> dict:
    return json.loads((results / "reports" / f"run_{PERIOD}.json").read_text())


def _ledger(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (results / "ledger" / "2024").glob("*.json")}


def _accounted(results: Path) -> tuple[set[str], dict[str, str]]:
    """(archived granule ids, {not archived id: reason class}) from the run report."""
    report = _report(results)
    missing = {m["granule_id"]: m["reason_class"] for m in report["missing"]}
    listing = _listing(results)
    return set(listing["granule_id"]) - set(missing), missing


# -- faults ----------------------------------------------------------------------------------------------
def test_each_fault_kind_is_handled_as_what_it_is(tmp_path: Path) -> None:
    """Every granule fault kind, each aimed at its own granule of one day, in one run."""
    from amsr2flow.emulator import orbit

    ids = [g.granule_id for g in orbit.granules_beginning_on(pd.Timestamp(DAY).date())]
    targets = {
        ids[1]: ["connection_reset"],
        ids[3]: ["stall"],
        ids[5]: ["truncated"],
        ids[7]: ["corrupted"],
        ids[9]: ["absent"],
        ids[11]: ["truncated", "connection_reset", "corrupted"],
        ids[13]: ["corrupted"] * 8,
    }
    # Banner failures are drawn per connection, so they can hit any granule's attempts: 7 attempts leave room
    # for them (the targeted granules need at most 4 without them).
    spec = {
        "seed": 3,
        "rates": {"ssh_banner": 0.05, "http_503": 0.2, "html_maintenance": 0.1, "empty_page": 0.2},
        "stall_seconds": 4,
        "granules": targets,
    }
    proc, state = start_emulator(tmp_path / "emulator", "--faults", json.dumps(spec))
    try:
        cfg = emulator_config(
            state,
            tmp_path,
            catalogue={"page_size": 10},
            transfer={"stall_timeout_s": 1.5, "attempts": 7},
        )
        started = time.monotonic()
        run = run_workflow(tmp_path, cfg, "--resources", "gportal=8", cores=4)
        elapsed = time.monotonic() - started
        stats = wait_for_stats(state, lambda s: s["active_sftp_sessions"] == 0)
    finally:
        stop_emulator(proc)
    # Finished, but the absent granule is not archived: the documented exit status 3, and last lines saying why.
    assert run.returncode == 3, run.stdout[-4000:]
    last_lines = "\n".join(run.stdout.strip().splitlines()[-3:])
    assert "2 not archived: 1 absent" in last_lines and "1 invalid" in last_lines
    assert "report: " in last_lines and "exit status 3" in last_lines
    results = tmp_path / "results"
    archived, missing = _accounted(results)
    # transient faults are retried until the good file arrives
    for gid in (ids[1], ids[3], ids[5], ids[7], ids[11]):
        assert gid in archived, (gid, missing.get(gid))
    assert {f for fs in stats["faults_by_granule"].values() for f in fs} >= {
        "connection_reset",
        "stall",
        "truncated",
        "corrupted",
    }
    ledger = _ledger(results)
    assert ledger[ids[11]]["status"] == "resolved"
    assert ledger[ids[11]]["attempts"] >= 4
    # permanent: absent on SFTP, and corrupt on every one of the 7 attempts
    assert missing == {ids[9]: "absent", ids[13]: "invalid"}
    assert ledger[ids[9]]["reason_class"] == "absent"
    report = _report(results)
    assert report["silent_losses"] == 0
    assert report["archived_granules"] == len(ids) - 2
    assert "catalogue but not on the SFTP server" in (results / "reports" / f"run_{PERIOD}.md").read_text()
    # the stall watchdog and bounded retries keep the run short (stall_seconds is 4, the watchdog 1.5 s)
    assert elapsed < 240


def test_mixed_faults_at_ten_percent_lose_nothing_silently(tmp_path: Path) -> None:
    """Every fault kind at 10 %, 8 transfers: each granule ends archived or reported, never silently lost.

    A granule can meet a fault on every one of its attempts (11 kinds at 10 % each); it is then in the ledger
    with its reason, the run exits non-zero with an interim report, and running the same command again
    fetches it: that contract, not luck, is what this test checks.
    """
    rates = {
        name: 0.1
        for name in (
            "http_503",
            "html_maintenance",
            "empty_page",
            "duplicate_records",
            "ssh_banner",
            "auth_refusal",
            "connection_reset",
            "stall",
            "truncated",
            "corrupted",
            "absent",
        )
    }
    spec = {"seed": 11, "rates": rates, "stall_seconds": 3, "max_sessions": 6, "bandwidth_bytes_per_s": 20_000_000}
    period = "20240101-20240103"
    transient = {"transient", "stall", "truncated", "corrupt", "auth", "stopped"}
    proc, state = start_emulator(tmp_path / "emulator", "--faults", json.dumps(spec))
    try:
        cfg = emulator_config(
            state,
            tmp_path,
            end="2024-01-02",
            catalogue={"page_size": 10},
            transfer={"stall_timeout_s": 1.5, "attempts": 5},
        )
        results = tmp_path / "results"
        runs = []
        for _ in range(4):
            started = time.monotonic()
            run = run_workflow(tmp_path, cfg, "--resources", "gportal=8", "--keep-going", cores=4, timeout=600)
            runs.append((run.returncode, time.monotonic() - started))
            if run.returncode in (0, 3):  # finished; 3 while absent granules are not archived
                break
            interim = json.loads((results / "reports" / f"interim_{period}.json").read_text())
            assert interim["silent_losses"] == 0, interim["missing"]
            assert {m["reason_class"] for m in interim["missing"]} <= transient | {"absent"}, interim["missing"]
        stats = wait_for_stats(state, lambda s: s["active_sftp_sessions"] == 0)
    finally:
        stop_emulator(proc)
    listing = read_listing(results / "manifests" / "2024" / f"granules_{period}.csv")
    report = json.loads((results / "reports" / f"run_{period}.json").read_text())
    assert report["expected_granules"] == len(listing) >= 58
    assert report["silent_losses"] == 0
    absent = {g.removesuffix(".h5") for g, fs in stats["faults_by_granule"].items() if "absent" in fs}
    missing = {m["granule_id"]: m["reason_class"] for m in report["missing"]}
    assert missing == dict.fromkeys(absent & set(listing["granule_id"]), "absent")
    assert runs[-1][0] == (3 if missing else 0), runs
    assert stats["faults_injected"].get("connection_reset", 0) > 0
    # bound per run: every granule at worst uses all attempts with a stall each, 8 at a time, plus listing
    bound = (len(listing) / 8 + 1) * 5 * (1.5 + 0.5 + 3) + 120
    assert all(elapsed < bound for _, elapsed in runs), runs


# -- credentials and host keys -------------------------------------------------------------------------
def _unregistered_key(tmp_path: Path) -> str:
    path = tmp_path / "unregistered_rsa"
    paramiko.RSAKey.generate(2048).write_private_key_file(str(path))
    return str(path)


@pytest.fixture
def strict_emulator(tmp_path: Path):
    proc, state = start_emulator(tmp_path / "emulator", "--require-publickey")
    yield state
    stop_emulator(proc)


def _assert_fast_clear_stop(run: subprocess.CompletedProcess, state: dict, needle: str, max_connections: int) -> dict:
    assert run.returncode != 0
    assert needle in run.stdout, run.stdout[-3000:]
    assert "Traceback" not in run.stdout
    stats = wait_for_stats(state, lambda s: s["active_sftp_sessions"] == 0)
    assert stats["sftp_connections"] <= max_connections
    assert stats["files_opened"] == 0
    return stats


def test_unregistered_key_stops_at_once(tmp_path: Path, strict_emulator: dict, monkeypatch) -> None:
    monkeypatch.setenv("GPORTAL_USERNAME", strict_emulator["username"])
    cfg = real_service_config(strict_emulator, tmp_path)
    cfg["credentials"] = {"private_key_path": _unregistered_key(tmp_path)}
    started = time.monotonic()
    run = run_workflow(tmp_path, cfg, "--resources", "gportal=4", timeout=120)
    stats = _assert_fast_clear_stop(run, strict_emulator, "refused the public key login", max_connections=2)
    assert stats["failed_logins"] <= 2
    assert time.monotonic() - started < 60


def test_wrong_password_stops_at_once(tmp_path: Path, monkeypatch) -> None:
    proc, state = start_emulator(tmp_path / "emulator")
    try:
        monkeypatch.setenv("GPORTAL_USERNAME", state["username"])
        monkeypatch.setenv("GPORTAL_PASSWORD", "not-the-password")
        cfg = real_service_config(state, tmp_path, legacy=True)
        run = run_workflow(tmp_path, cfg, "--resources", "gportal=4", timeout=120)
        stats = _assert_fast_clear_stop(run, state, "refused the password login", max_connections=2)
        assert stats["failed_logins"] == 2
    finally:
        stop_emulator(proc)


def test_changed_host_key_is_refused_before_credentials_are_sent(
    tmp_path: Path, strict_emulator: dict, monkeypatch
) -> None:
    monkeypatch.setenv("GPORTAL_USERNAME", strict_emulator["username"])
    other = fingerprint_sha256(paramiko.RSAKey.generate(1024))
    cfg = real_service_config(strict_emulator, tmp_path)
    cfg["gportal"]["host_keys"] = [f"RSA {other}"]
    cfg["credentials"] = {"private_key_path": strict_emulator["private_key_path"]}
    run = run_workflow(tmp_path, cfg, timeout=120)
    stats = _assert_fast_clear_stop(run, strict_emulator, "not a pinned one", max_connections=1)
    assert stats["failed_logins"] == 0 and stats["sftp_sessions"] == 0
    assert strict_emulator["host_key_sha256"] in run.stdout and other in run.stdout


# -- secrets ----------------------------------------------------------------------------------------------
def test_no_secret_reaches_any_file(tmp_path: Path, monkeypatch) -> None:
    sentinel = "Sentinel-Pa55-" + os.urandom(6).hex()
    monkeypatch.setenv("AMSR2FLOW_TEST_PASSWORD", sentinel)
    proc, state = start_emulator(tmp_path / "emulator", "--password-env", "AMSR2FLOW_TEST_PASSWORD")
    try:
        assert state["password"] == sentinel
        monkeypatch.setenv("GPORTAL_USERNAME", state["username"])
        monkeypatch.setenv("GPORTAL_PASSWORD", sentinel)
        cfg = real_service_config(state, tmp_path, legacy=True)
        run = run_workflow(tmp_path, cfg, "--resources", "gportal=4")
        assert run.returncode == 0, run.stdout[-3000:]
        assert wait_for_stats(state, lambda s: s["files_served"] >= 29)
    finally:
        stop_emulator(proc)
    assert sentinel not in run.stdout
    hits = []
    for root in (tmp_path / "results", tmp_path / ".snakemake", tmp_path):
        for path in root.rglob("*"):
            if path.is_file() and "emulator" not in path.parts and sentinel.encode() in path.read_bytes():
                hits.append(path)
    assert hits == []


# -- kill and resume ------------------------------------------------------------------------------------
def _start_snakemake(workdir: Path, config_path: Path) -> subprocess.Popen:
    cmd = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "--configfile", str(config_path), "--workflow-profile", "none"]
    cmd += ["--cores", "2", "--resources", "gportal=4", "--rerun-incomplete"]
    out = open(workdir / "killed-run.out", "ab")  # noqa: SIM115 - closed after the child starts
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    return proc


def _outputs(results: Path) -> dict[str, bytes]:
    files = sorted((results / "archives").glob("*.npz")) + sorted((results / "parts").rglob("*.npz"))
    return {p.relative_to(results).as_posix(): p.read_bytes() for p in files}


def test_killed_runs_resume_to_identical_archives(tmp_path: Path) -> None:
    """Runs of one day over four sessions (gportal=4), killed three times, end with the bytes of one session."""
    data_dir = tmp_path / "emulator-data"  # one granule cache for both services
    proc, state = start_emulator(tmp_path / "emulator", "--data-dir", str(data_dir))
    try:
        reference_dir = tmp_path / "reference"
        cfg = emulator_config(state, reference_dir, part_size=10)
        reference = run_workflow(reference_dir, cfg, "--resources", "gportal=1")
        assert reference.returncode == 0, reference.stdout[-3000:]
    finally:
        stop_emulator(proc)
    assert read_stats(state)["peak_sftp_sessions"] == 1
    expected = _outputs(reference_dir / "results")
    assert len(expected) == 4  # one archive, three parts

    # ~0.5 s per granule and session: four sessions still leave granules for each of the three kills
    capped = json.dumps({"bandwidth_bytes_per_s": 2_000_000})
    proc, state = start_emulator(tmp_path / "emulator-capped", "--data-dir", str(data_dir), "--faults", capped)
    try:
        workdir = tmp_path / "killed"
        workdir.mkdir()
        cfg = emulator_config(state, workdir, part_size=10)
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(cfg))
        rng = random.Random(20241121)
        for kill_number in range(3):
            run = _start_snakemake(workdir, config_path)
            # kill at a random moment while granules are being collected
            served_before = read_stats(state)["files_served"]
            target = served_before + rng.randint(1, 6)
            try:
                wait_for(lambda t=target, r=run: read_stats(state)["files_served"] >= t or r.poll() is not None, 120)
                assert run.poll() is None, "the run ended before it could be killed"
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.pid, signal.SIGKILL)
                run.wait()
            subprocess.run(
                [str(SNAKEMAKE), "-s", str(SNAKEFILE), "--configfile", str(config_path), "--unlock", "--cores", "1"],
                cwd=workdir,
                capture_output=True,
                check=True,
            )
            assert not list((workdir / "results" / "archives").glob("*.npz.tmp*")), kill_number
        final = run_workflow(workdir, cfg, "--rerun-incomplete")
        assert final.returncode == 0, final.stdout[-3000:]
    finally:
        stop_emulator(proc)
    assert 2 <= read_stats(state)["peak_sftp_sessions"] <= 4  # the killed day jobs collected over several sessions
    assert _outputs(workdir / "results") == expected
    assert not any(p.name.startswith(".") and ".tmp-" in p.name for p in (workdir / "results").rglob("*"))
    assert not list((workdir / "results" / ".scratch").glob("*"))


def test_failed_run_leaves_an_interim_report_and_the_next_run_retries(tmp_path: Path) -> None:
    from amsr2flow.emulator import orbit

    victim = orbit.granules_beginning_on(pd.Timestamp(DAY).date())[2].granule_id
    spec = {"granules": {victim: ["truncated", "truncated", "truncated"]}}
    proc, state = start_emulator(tmp_path / "emulator", "--faults", json.dumps(spec))
    try:
        cfg = emulator_config(state, tmp_path, transfer={"attempts": 2})
        first = run_workflow(tmp_path, cfg, "--keep-going")
        assert first.returncode != 0
        results = tmp_path / "results"
        interim = json.loads((results / "reports" / f"interim_{PERIOD}.json").read_text())
        assert interim["status"].startswith("interim")
        assert [(m["granule_id"], m["reason_class"], m["retryable"]) for m in interim["missing"]] == [
            (victim, "truncated", True)
        ]
        assert interim["archived_granules"] == interim["expected_granules"] - 1
        assert "Interim report" in first.stdout
        page = (results / "reports" / f"interim_{PERIOD}.html").read_text()
        assert victim in page and "transfers ended early" in page and "class='c-most'" in page

        second = run_workflow(tmp_path, cfg)
        assert second.returncode == 0, second.stdout[-3000:]
    finally:
        stop_emulator(proc)
    final = _report(results)
    assert final["status"] == "complete"
    assert not list((results / "reports").glob("interim_*"))
    entry = _ledger(results)[victim]
    assert entry["status"] == "resolved" and entry["reason_class"] == "truncated"
    assert entry["attempts"] == 4


def test_circuit_breaker_stops_new_transfers_when_the_server_looks_down(tmp_path: Path) -> None:
    # Logins work (the preflight passes) but every transfer is reset: the server is effectively down.
    spec = {"rates": {"connection_reset": 1.0}, "times": 100}
    proc, state = start_emulator(tmp_path / "emulator", "--faults", json.dumps(spec))
    try:
        cfg = emulator_config(state, tmp_path, transfer={"attempts": 3, "circuit_breaker_failures": 5})
        started = time.monotonic()
        run = run_workflow(tmp_path, cfg, "--resources", "gportal=2", "--keep-going")
        elapsed = time.monotonic() - started
        stats = wait_for_stats(state, lambda s: s["active_sftp_sessions"] == 0)
    finally:
        stop_emulator(proc)
    assert run.returncode != 0
    assert "G-Portal looks down: 5 consecutive transient failures" in run.stdout
    # at most the threshold, plus per session of the day job (it holds both of gportal=2) the attempt under way
    # when the breaker tripped and the next granule it opened ahead before its first failure (none after one)
    assert stats["files_opened"] <= 5 + 2 * 2, stats["files_opened"]
    interim = json.loads((tmp_path / "results" / "reports" / f"interim_{PERIOD}.json").read_text())
    reasons = {m["reason_class"] for m in interim["missing"]}
    assert reasons <= {"stopped", "transient"} and "stopped" in reasons
    assert interim["archived_granules"] == 0 and interim["silent_losses"] == 0
    assert elapsed < 120


def test_a_local_gportal_stopped_mid_run_stops_the_run_at_once_with_one_message(tmp_path: Path) -> None:
    """`snakemake --cores 2` (the default profile: keep-going, a retry per job) while the local G-Portal is
    stopped under it. Each day job started after used to fail on its state file with a traceback, twice, and the
    running ones retried their transfers (5 s, 10 s, 20 s apart) until the circuit breaker opened."""
    # 6 days, downloads slow enough (16-scan granules at 1 MB/s) that the run is mid-way when the service stops
    proc, state = start_emulator(tmp_path / "emulator", "--faults", json.dumps({"bandwidth_bytes_per_s": 1_000_000}))
    config_path = tmp_path / "config.yaml"
    cfg = emulator_config(state, tmp_path, end="2024-01-06", transfer={"backoff_initial_s": 5, "backoff_max_s": 120})
    config_path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    with open(tmp_path / "run.out", "wb") as out:
        run = subprocess.Popen(
            [str(SNAKEMAKE), "-s", str(SNAKEFILE), "--configfile", str(config_path), "--cores", "2"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        swaths = tmp_path / "results" / "swaths"
        wait_for(lambda: any(swaths.rglob("*.npy")) or run.poll() is not None, 120, what="the first swath")
        assert run.poll() is None, "the run ended before the local G-Portal was stopped"
        stop_emulator(proc)
        stopped = time.monotonic()
        code = run.wait(timeout=300)
        took = time.monotonic() - stopped
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        stop_emulator(proc)
    output = (tmp_path / "run.out").read_text(encoding="utf-8")
    assert code == 1, output[-3000:]
    assert output.count("amsr2flow: the local G-Portal stopped during the run") == 1, output[-5000:]
    assert "rerun the same command" in output
    assert "Traceback" not in output and "is the local G-Portal running?" not in output, output[-5000:]
    assert took < 45, f"the run went on for {took:.0f} s after the local G-Portal stopped"
    interim = json.loads((tmp_path / "results" / "reports" / f"interim_{PERIOD[:9]}20240107.json").read_text())
    assert interim["silent_losses"] == 0 and 0 < interim["archived_granules"] < interim["expected_granules"]
