"""`amsr2flow doctor`: one line per check, a clear PASS or FAIL with what to do, exit 0 only when all pass.

Run as users run it (the console script) against a local G-Portal over real sockets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import h5py
import numpy as np
import paramiko
import pytest
import yaml
from emulator_fixtures import read_stats, start_emulator, stop_emulator, wait_for_stats
from workflow_helpers import emulator_config, real_service_config

from amsr2flow.emulator import orbit, synth

pytestmark = pytest.mark.timeout(180)

CHECKS = (
    "configuration",
    "credentials",
    "private key",
    "SFTP host key",
    "login",
    "catalogue",
    "remote layout",
    "granules on the server",
)


def _doctor(tmp_path: Path, cfg: dict, *args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return _run_doctor(config_file, *args, env=env)


def _run_doctor(config_file: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    """``amsr2flow doctor --configfile FILE ARGS`` as users run it."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "amsr2flow"), "doctor", "--configfile", str(config_file), *args],
        capture_output=True,
        text=True,
        timeout=150,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """check name -> its status word, from the PASS/WARN/FAIL/SKIP lines."""
    out = {}
    for line in result.stdout.splitlines():
        status, _, rest = line.partition("  ")
        if status in ("PASS", "WARN", "FAIL", "SKIP"):
            out[rest.split(":", 1)[0].strip()] = status
    return out


def test_doctor_passes_on_a_good_setup_and_downloads_one_granule(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator", "--start", "2024-01-01", "--end", "2024-01-02")
    try:
        cfg = emulator_config(state, tmp_path)
        cfg["transfer"].update(sftp_request_kib=64, ssh_window_mib=8)  # the download uses what a run would
        result = _doctor(tmp_path, cfg, "--download")
        stats = wait_for_stats(state, lambda s: s["active_sftp_sessions"] == 0)
    finally:
        stop_emulator(proc)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _lines(result) == dict.fromkeys((*CHECKS, "download and extraction", "catalogue = file name = file"), "PASS")
    assert "catalogue, file name, scan times, file attributes, latitudes agree" in result.stdout
    assert "2024-01-01: 29 granules" in result.stdout
    assert "(= catalogue = stat; reads of 64 KiB, window 8 MiB, packets 32 KiB)" in result.stdout
    assert "extracts" in result.stdout
    assert stats["files_served"] == 1 and stats["sftp_sessions"] == 1
    assert result.stderr == ""


def test_doctor_names_a_layout_no_one_knows_and_what_to_set(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator", "--tree-root", "/data/Standard", "--no-legacy-tree")
    try:
        result = _doctor(tmp_path, emulator_config(state, tmp_path), "--download")
    finally:
        stop_emulator(proc)
    assert result.returncode == 1
    lines = _lines(result)
    assert lines["login"] == "PASS" and lines["remote layout"] == "FAIL"
    assert lines["download and extraction"] == "SKIP"
    assert "remote_path_template" in result.stdout and "holds: data" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_doctor_adapts_to_a_tree_without_day_level(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator", "--no-tree-day-level")
    try:
        result = _doctor(tmp_path, emulator_config(state, tmp_path), "--download")
    finally:
        stop_emulator(proc)
    assert result.returncode == 0, result.stdout
    assert "found by looking" in result.stdout


def _real_service(state: dict, tmp_path: Path, key: str, pin: str | None = None) -> dict:
    cfg = real_service_config(state, tmp_path, host_keys=[pin] if pin else state["host_keys"])
    cfg["credentials"] = {"private_key_path": key, "passphrase_env": "AMSR2FLOW_TEST_PASSPHRASE"}
    return cfg


def test_doctor_stops_at_a_wrong_passphrase_before_connecting(tmp_path: Path) -> None:
    secret = "right-passphrase-" + os.urandom(4).hex()
    key = paramiko.RSAKey.generate(2048)
    key_path = tmp_path / "gportal_rsa"
    key.write_private_key_file(str(key_path), password=secret)
    public = tmp_path / "gportal_rsa.pub"
    public.write_text(f"{key.get_name()} {key.get_base64()}\n", encoding="utf-8")
    proc, state = start_emulator(tmp_path / "emulator", "--require-publickey", "--authorized-key", str(public))
    try:
        env = {"GPORTAL_USERNAME": state["username"]}
        wrong = _doctor(
            tmp_path, _real_service(state, tmp_path, str(key_path)), env={**env, "AMSR2FLOW_TEST_PASSPHRASE": "nope"}
        )
        stats = read_stats(state)
        right = _doctor(
            tmp_path, _real_service(state, tmp_path, str(key_path)), env={**env, "AMSR2FLOW_TEST_PASSPHRASE": secret}
        )
    finally:
        stop_emulator(proc)
    assert wrong.returncode == 1
    assert _lines(wrong)["private key"] == "FAIL" and "bad passphrase" in wrong.stdout
    assert stats["sftp_connections"] == 0  # a local problem costs no connection
    assert right.returncode == 0, right.stdout
    assert secret not in right.stdout + right.stderr + wrong.stdout + wrong.stderr


def test_doctor_refuses_a_changed_host_key_before_any_credential(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator", "--require-publickey")
    try:
        other = "SHA256:" + "A" * 43
        cfg = _real_service(state, tmp_path, state["private_key_path"], pin=other)
        result = _doctor(tmp_path, cfg, env={"GPORTAL_USERNAME": state["username"]})
        stats = wait_for_stats(state, lambda s: s["active_sftp_sessions"] == 0)
    finally:
        stop_emulator(proc)
    assert result.returncode == 1
    lines = _lines(result)
    assert lines["SFTP host key"] == "FAIL" and lines["login"] == "SKIP"
    assert "no credentials were sent" in result.stdout
    assert stats["failed_logins"] == 0 and stats["sftp_sessions"] == 0


def test_doctor_names_a_granule_whose_catalogue_name_and_contents_disagree(tmp_path: Path) -> None:
    """The one granule doctor downloads is checked as every day job checks each: here its file says it goes
    south under a name (and so a catalogue record) that says north."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    specs = orbit.granules_beginning_on(date(2021, 3, 4))
    for spec in specs:
        synth.write_granule(mirror / spec.file_name, spec, n_scans=16)
    probe = specs[-1]  # the day's last granule is the one doctor fetches
    opposite = "Ascending" if probe.orbit_direction == "D" else "Descending"
    with h5py.File(mirror / probe.file_name, "r+") as h5:
        h5.attrs["OrbitDirection"] = np.array([opposite.encode()], dtype=f"S{len(opposite)}")
    proc, state = start_emulator(tmp_path / "emulator", "--serve-dir", str(mirror))
    try:
        cfg = emulator_config(state, tmp_path, start="2021-03-04", end="2021-03-04")
        result = _doctor(tmp_path, cfg, "--download")
    finally:
        stop_emulator(proc)
    assert result.returncode == 1, result.stdout + result.stderr
    assert _lines(result)["catalogue = file name = file"] == "FAIL"
    assert (
        f"orbit direction disagrees: catalogue {probe.orbit_direction}; file name {probe.orbit_direction}; "
        f"file attribute {opposite[0]}" in result.stdout
    )
    assert "report the granule to G-Portal" in result.stdout


# -- a service that lists granules it does not serve ----------------------------------------------------------
def _recent_days_config(state: dict, tmp_path: Path, days: int = 12) -> dict:
    today = datetime.now(timezone.utc).date()
    start, end = today - timedelta(days=days), today - timedelta(days=1)
    return emulator_config(state, tmp_path, start=start.isoformat(), end=end.isoformat())


def test_doctor_fails_a_service_that_serves_none_of_what_it_lists(tmp_path: Path) -> None:
    """Every granule is catalogued and none is on the server: a run would archive nothing, so doctor must not
    say that all passed (it did: the layout check alone saw the probe granule's folder and passed)."""
    proc, state = start_emulator(tmp_path / "emulator", "--faults", '{"rates": {"absent": 1.0}}')
    try:
        result = _doctor(tmp_path, _recent_days_config(state, tmp_path))
    finally:
        stop_emulator(proc)
    assert result.returncode == 1, result.stdout
    lines = _lines(result)
    assert lines["remote layout"] == "PASS" and lines["granules on the server"] == "FAIL"
    assert "none of 5 catalogued granules sampled over the run's days is on the server" in result.stdout
    for meaning in ("remote_path_template", "ordered on the G-Portal web site", "no access"):
        assert meaning in result.stdout
    assert "All checks passed" not in result.stdout and "1 check(s) failed" in result.stdout


def test_doctor_warns_when_older_granules_must_be_ordered_first(tmp_path: Path) -> None:
    """The 2.5-year rule, shortened: granules observed more than 6 days ago are offline until ordered."""
    proc, state = start_emulator(tmp_path / "emulator", "--order-after-days", "6")
    try:
        result = _doctor(tmp_path, _recent_days_config(state, tmp_path))
    finally:
        stop_emulator(proc)
    assert result.returncode == 0, result.stdout
    assert _lines(result)["granules on the server"] == "WARN"
    warned = next(line for line in result.stdout.splitlines() if line.startswith("WARN"))
    absent = int(warned.split("granules on the server: ")[1].split(" of ")[0])
    assert 1 <= absent < 5, warned  # the sampled days older than 6 days, not the recent ones
    assert "ordered on the G-Portal web site" in result.stdout
    assert "All checks passed" not in result.stdout
    assert "No check failed, with 1 warning(s) to read first (granules on the server)" in result.stdout


def test_doctor_download_of_an_absent_granule_says_to_order_it_not_to_retry(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator", "--start", "2024-01-01", "--end", "2024-01-01")
    try:
        from workflow_helpers import day_listing

        from amsr2flow import config as settings
        from amsr2flow.run.connection import source_from

        cfg = settings.validate(emulator_config(state, tmp_path), check_environment=False)
        probe = day_listing(source_from(cfg), 40).iloc[-1]["granule_id"]  # the granule doctor downloads
    finally:
        stop_emulator(proc)
    spec = json.dumps({"granules": {probe: ["absent"]}})
    proc, state = start_emulator(
        tmp_path / "emulator", "--start", "2024-01-01", "--end", "2024-01-01", "--faults", spec
    )
    try:
        result = _doctor(tmp_path, emulator_config(state, tmp_path), "--download")
    finally:
        stop_emulator(proc)
    assert result.returncode == 1
    assert _lines(result)["download and extraction"] == "FAIL"
    assert "order it on the G-Portal web site" in result.stdout
    assert "overloaded" not in result.stdout


def test_doctor_with_the_local_gportal_stopped_says_to_start_it(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator")
    stop_emulator(proc)  # its state file is left behind or removed: either way nothing answers
    result = _doctor(tmp_path, emulator_config(state, tmp_path))
    assert result.returncode == 1
    assert "start the local G-Portal" in result.stdout or "is the local G-Portal running?" in result.stdout
    assert "export the variables named" not in result.stdout


def test_doctor_names_a_mistyped_key_in_one_sentence(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator")
    try:
        result = _doctor(tmp_path, {**emulator_config(state, tmp_path), "chanels": ["36.5H"]})
    finally:
        stop_emulator(proc)
    line = next(line for line in result.stdout.splitlines() if line.startswith("FAIL  configuration"))
    assert "configuration: chanels: unknown key; known keys here are" in line, line
    assert ":;" not in line


def test_doctor_names_the_key_of_an_unquoted_impossible_day(tmp_path: Path) -> None:
    """YAML itself cannot read ``start: 2024-02-30`` as a date; doctor reads days as text and says which key."""
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        f"start: 2024-02-30\nend: 2024-03-01\nsource: emulator\noutput_dir: {tmp_path / 'results'}\n", encoding="utf-8"
    )
    result = _run_doctor(config_file)
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if line.startswith("FAIL  configuration"))
    assert "start: '2024-02-30'" in line and "YAML" not in line, line
