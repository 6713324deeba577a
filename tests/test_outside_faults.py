"""Faults found by testing from outside, each a real run: two runs on one output folder, the umask of what is
written, a wrong key passphrase, a machine without DNS, and one rule for times."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import paramiko
import pytest
import yaml
from emulator_fixtures import read_stats, start_emulator, stop_emulator, wait_for
from workflow_helpers import SNAKEFILE, SNAKEMAKE, emulator_config, real_service_config, run_workflow

from amsr2flow.formats.reader import open_archive
from amsr2flow.stages.catalogue import read_listing

pytestmark = pytest.mark.slow


def _start(workdir: Path, cfg: dict, *args: str) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    cmd = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "--configfile", "config.yaml", "--workflow-profile", "none", *args]
    return subprocess.Popen(
        cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def test_a_second_run_on_the_same_output_folder_is_refused(tmp_path: Path) -> None:
    """Before: the second run's start-up sweep deleted the first run's downloads (0 of 29 done, tracebacks)."""
    proc, state = start_emulator(tmp_path / "emulator", "--faults", json.dumps({"bandwidth_bytes_per_s": 1_000_000}))
    output = tmp_path / "shared-results"
    first = None
    try:
        # slow transfers, so the second run starts while the first downloads (read in 1 MiB chunks: no stall):
        # 29 granules of ~1 MB over 2 sessions at 1 MB/s, ~15 s, against the ~3 s the second run takes to be refused
        cfg = emulator_config(state, tmp_path, output_dir=str(output), transfer={"stall_timeout_s": 30})
        first = _start(tmp_path / "first", cfg, "--cores", "2", "--resources", "gportal=2")
        wait_for(lambda: list((output / ".scratch").glob("*.part-*")), timeout=120, what="the first run's downloads")
        second = run_workflow(tmp_path / "second", cfg, "--resources", "gportal=2", timeout=120)
        out, _ = first.communicate(timeout=300)
    finally:
        if first is not None and first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        stop_emulator(proc)
    assert second.returncode == 2, second.stdout[-3000:]
    assert "another run is using output_dir" in second.stdout and str(tmp_path / "first") in second.stdout
    assert "Traceback" not in second.stdout
    assert first.returncode == 0, out[-3000:]
    report = json.loads((output / "reports" / "run_20240101-20240102.json").read_text())
    assert report["archived_granules"] == 29


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    # full-speed transfers: the run is killed as soon as its lock exists, before its first download ends
    proc, state = start_emulator(tmp_path / "emulator")
    try:
        cfg = emulator_config(state, tmp_path, transfer={"stall_timeout_s": 30})
        killed = _start(tmp_path, cfg, "--cores", "2")
        wait_for(lambda: (tmp_path / "results" / ".state" / "run.lock.json").is_file(), timeout=120, what="the lock")
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        subprocess.run(
            [
                str(SNAKEMAKE),
                "-s",
                str(SNAKEFILE),
                "--unlock",
                "--configfile",
                "config.yaml",
                "--workflow-profile",
                "none",
            ],
            cwd=tmp_path,
            capture_output=True,
            check=True,
        )
        again = run_workflow(tmp_path, cfg, "--rerun-incomplete", timeout=300)
    finally:
        stop_emulator(proc)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "another run" not in again.stdout


def test_everything_written_follows_the_umask(tmp_path: Path) -> None:
    """Before: parts/<year>/ was 0700 (a temporary folder renamed into place)."""
    proc, state = start_emulator(tmp_path / "emulator")
    old = os.umask(0o002)
    try:
        run = run_workflow(tmp_path, emulator_config(state, tmp_path))
    finally:
        os.umask(old)
        stop_emulator(proc)
    assert run.returncode == 0, run.stdout[-3000:]
    results = tmp_path / "results"
    for path in [results / "parts" / "2024", *results.rglob("*.npz"), *(results / "reports").rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        expected = 0o775 if path.is_dir() else 0o664
        assert mode == expected, (path, oct(mode))


def test_a_wrong_passphrase_is_named_and_costs_no_connection(tmp_path: Path, monkeypatch) -> None:
    """Before: "not a usable Ed25519, ECDSA or RSA key (RSAKey: encountered EC key...)", after 2 connections."""
    key = paramiko.ECDSAKey.generate()
    key_path = tmp_path / "gportal_ecdsa"
    key.write_private_key_file(str(key_path), password="the-right-one")
    proc, state = start_emulator(tmp_path / "emulator", "--require-publickey")
    try:
        monkeypatch.setenv("GPORTAL_USERNAME", state["username"])
        monkeypatch.setenv("GPORTAL_KEY_PASSPHRASE", "a-wrong-one")
        cfg = real_service_config(state, tmp_path)
        cfg["credentials"] = {"private_key_path": str(key_path)}
        run = run_workflow(tmp_path, cfg, timeout=120)
        stats = read_stats(state)
    finally:
        stop_emulator(proc)
    assert run.returncode == 2
    assert "bad passphrase or corrupt key file" in run.stdout and "a-wrong-one" not in run.stdout
    assert stats["sftp_connections"] == 0


def test_a_machine_without_dns_is_told_so(tmp_path: Path, monkeypatch) -> None:
    """Before: "G-Portal may be down or overloaded". The real host name does not resolve here (no DNS)."""
    proc, state = start_emulator(tmp_path / "emulator")
    try:
        monkeypatch.setenv("GPORTAL_USERNAME", state["username"])
        cfg = real_service_config(state, tmp_path, sftp_host="sftp.gportal.invalid")
        cfg["credentials"] = {"private_key_path": state["private_key_path"]}
        run = run_workflow(tmp_path, cfg, timeout=180)
    finally:
        stop_emulator(proc)
    assert run.returncode == 2
    assert "cannot be resolved from this machine" in run.stdout
    assert "may be down or overloaded" not in run.stdout


def test_times_follow_one_rule_and_each_version_has_its_own_name(tmp_path: Path) -> None:
    """Before: begin_utc (sub-millisecond part cut off) and scan_start_utc (rounded) differed by 1 ms; and
    product_version meant "2" in manifests (the catalogue's) and "2220220" in swaths and the index."""
    proc, state = start_emulator(tmp_path / "emulator")
    try:
        run = run_workflow(tmp_path, emulator_config(state, tmp_path))
    finally:
        stop_emulator(proc)
    assert run.returncode == 0, run.stdout[-3000:]
    results = tmp_path / "results"
    listing = read_listing(results / "manifests" / "2024" / "granules_20240101-20240102.csv")
    with open_archive(next((results / "archives").glob("*.npz"))) as archive:
        starts = dict(zip(archive.table["granule_id"], archive.table["scan_start_utc"], strict=True))
        versions = set(archive.table["product_version"])
    assert {g: starts[g] for g in listing["granule_id"]} == dict(
        zip(listing["granule_id"], listing["begin_utc"], strict=True)
    )
    assert "product_version" not in listing.columns
    assert set(listing["catalogue_product_version"]) == {"2"}
    assert versions == {"2220220"}
