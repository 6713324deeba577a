"""The emulator as a program: bad input, the state file, clean stops, restarts, served days, mirror mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import gportal
import gportal.http_client
import h5py
import paramiko
import pytest
import requests
from emulator_fixtures import read_json, start_emulator, stop_emulator, wait_for_stats

from amsr2flow import cli as main_cli
from amsr2flow.emulator import orbit, synth
from amsr2flow.emulator.__main__ import main

# fresh_granules: the service generates its own granules here (no pool: emulator_fixtures)
pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_granules")]

CSW = {"service": "CSW", "version": "3.0.0", "request": "GetRecords", "outputFormat": "application/json"}
STATE_KEYS = {
    "catalogue_url",
    "legacy_catalogue_url",
    "legacy_base_url",
    "sftp_host",
    "sftp_port",
    "host_key_sha256",
    "username",
    "password",
    "private_key_path",
    "public_key_path",
    "stats_path",
    "pid",
    "data_root",
    "cache_dir",
    "scans",
    "seed",
    "dataset_ids",
    "fault_spec",
    "generation_default",
}


def records(url: str, start: str, end: str, **params) -> list[dict]:
    response = requests.get(url, params={**CSW, "startTime": start, "endTime": end, **params}, timeout=30)
    response.raise_for_status()
    return response.json()["features"]


def login(state: dict) -> paramiko.SFTPClient:
    transport = paramiko.Transport((state["sftp_host"], state["sftp_port"]))
    transport.connect(username=state["username"], password=state["password"])
    return paramiko.SFTPClient.from_transport(transport)


# -- bad input ------------------------------------------------------------------------------------------------
def test_python_m_rejects_an_unknown_fault_with_exit_2(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "amsr2flow.emulator",
            "--state",
            str(tmp_path / "state.json"),
            "--faults",
            '{"rates": {"meteor": 0.1}}',
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown fault 'meteor'" in result.stderr and "known faults:" in result.stderr
    assert not (tmp_path / "state.json").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--faults", '{"rates": {"stall": 1.5}}'], "a rate must be a number from 0 to 1"),
        (["--start", "2020-01-02", "--end", "2020-01-01"], "--end 2020-01-01 is before --start 2020-01-02"),
        (["--data-dir", "{file}/sub"], "--data-dir"),
        (["--serve-dir", "{tmp}/nowhere"], "is not a folder"),
        (["--password-env", "AMSR2FLOW_NO_SUCH_VARIABLE"], "not set or empty"),
        (["--faults", "{tmp}/missing.yaml"], "neither inline JSON nor an existing file"),
        (["--pregenerate", "--start", "2020-01-01"], "--pregenerate needs --start and --end"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path, capsys, extra, message):
    (tmp_path / "file").write_text("not a folder")
    argv = [a.replace("{file}", str(tmp_path / "file")).replace("{tmp}", str(tmp_path)) for a in extra]
    assert main(["--state", str(tmp_path / "state.json"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("amsr2flow-emulator: error:") and message in err


def test_unwritable_state_folder_exits_2(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main_cli.main(["emulator", "--state", str(tmp_path / "file" / "state.json")]) == 2
    assert "--state folder" in capsys.readouterr().err


def test_the_main_cli_offers_the_emulator(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_cli.main(["emulator", "--help"])
    assert exit_info.value.code == 0
    assert "--faults" in capsys.readouterr().out


# -- life cycle -----------------------------------------------------------------------------------------------
def test_state_file_and_a_clean_stop_on_sigterm(tmp_path):
    proc, state = start_emulator(tmp_path)
    state_path = tmp_path / "state.json"
    assert set(state) >= STATE_KEYS
    assert state["pid"] == proc.pid and state["sftp_host"] == "127.0.0.1"
    assert state["catalogue_url"].endswith("/csw") and state["legacy_catalogue_url"].endswith("/csw/csw")
    assert state["host_key_sha256"].startswith("SHA256:") and not state["host_key_sha256"].endswith("=")
    assert Path(state["private_key_path"]).is_file() and Path(state["public_key_path"]).is_file()
    assert state["password"] not in (tmp_path / "emulator.log").read_text()
    assert os.stat(state_path).st_mode & 0o077 == 0  # it holds the password
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    assert not state_path.exists()
    assert read_json(state["stats_path"])["active_sftp_sessions"] == 0


def test_sigint_also_stops_it_cleanly(tmp_path):
    proc, _ = start_emulator(tmp_path)
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=10) == 0


def test_host_key_and_granule_cache_survive_a_restart(tmp_path):
    data_dir = str(tmp_path / "data")
    window = ("2020-01-01T00:00:00Z", "2020-01-01T01:00:00Z")
    proc, first = start_emulator(tmp_path / "run1", "--data-dir", data_dir)
    try:
        before = records(first["catalogue_url"], *window, datasetId="11001001")
        wait_for_stats(first, lambda s: s["granules_generated"] == len(before))
    finally:
        stop_emulator(proc)
    proc, second = start_emulator(tmp_path / "run2", "--data-dir", data_dir)
    try:
        after = records(second["catalogue_url"], *window, datasetId="11001001")
        assert second["host_key_sha256"] == first["host_key_sha256"]
        assert second["private_key_path"] == first["private_key_path"]
        assert second["password"] != first["password"]  # a fresh password per run
        assert [f["properties"]["product"] for f in after] == [f["properties"]["product"] for f in before]
        assert read_json(second["stats_path"])["granules_generated"] == 0
    finally:
        stop_emulator(proc)


def test_days_outside_start_and_end_are_not_served(tmp_path):
    day = ("--start", "2020-01-01", "--end", "2020-01-01")
    proc, state = start_emulator(tmp_path, *day, "--flavour", "amsr2", "--pregenerate")
    try:
        expected = orbit.granules_beginning_on(date(2020, 1, 1))
        assert {p.name for p in Path(state["cache_dir"]).glob("*.h5")} == {g.file_name for g in expected}
        matched = requests.get(
            state["catalogue_url"],
            params={**CSW, "startTime": "2019-12-31T22:00:00Z", "endTime": "2020-01-02T02:00:00Z", "count": 0},
            timeout=30,
        ).json()["properties"]["numberOfRecordsMatched"]
        assert matched == len(expected)
        starts = [
            f["properties"]["beginPosition"]
            for page in (1, 11, 21)
            for f in records(
                state["catalogue_url"], "2019-12-31T22:00:00Z", "2020-01-02T02:00:00Z", count=10, startIndex=page
            )
        ]
        assert starts and all(s.startswith("2020-01-01") for s in starts)
        assert state["dataset_ids"] == ["11001001"] and state["start"] == state["end"] == "2020-01-01"
        outside = orbit.granules_beginning_on(date(2019, 12, 31))[-1]
        client = login(state)
        try:
            with pytest.raises(FileNotFoundError):
                client.stat(outside.legacy_remote_path)
            assert client.listdir("/standard/GCOM-W/GCOM-W.AMSR2/L1B/2") == ["2020"]
            assert client.listdir("/product/Standard/GCOM-W/GCOM-W.AMSR2/L1B/2/2020/01") == ["01"]
        finally:
            client.get_channel().get_transport().close()
    finally:
        stop_emulator(proc)


# -- mirror mode ----------------------------------------------------------------------------------------------
def test_serves_a_folder_of_existing_files_as_they_are(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "sub").mkdir(parents=True)
    specs = orbit.granules_beginning_on(date(2021, 3, 4))[:3]
    files = [mirror / specs[0].file_name, mirror / specs[1].file_name, mirror / "sub" / specs[2].file_name]
    for spec, path in zip(specs, files, strict=True):
        synth.write_granule(path, spec, seed=7, n_scans=12)
    (mirror / "notes.h5").write_bytes(b"not a granule")

    proc, state = start_emulator(tmp_path / "run", "--serve-dir", str(mirror))
    try:
        assert state["mode"] == "mirror" and state["dataset_ids"] == ["11001001"]
        monkeypatch.setattr(gportal.http_client, "BASE_URL", state["legacy_base_url"])
        search = gportal.search(["11001001"], start_time="2021-03-04T00:00:00", end_time="2021-03-05T00:00:00")
        products = list(search.products())
        assert [p.id for p in products] == [s.granule_id for s in specs]
        for product, spec, path in zip(products, specs, files, strict=True):
            assert product["product"]["size"] == path.stat().st_size
            with h5py.File(path, "r") as h5:
                begin = h5.attrs["ObservationStartDateTime"][0]
            begin = begin.decode() if isinstance(begin, bytes) else begin
            assert product.get_as_datetime("beginPosition") == datetime.fromisoformat(begin.replace("Z", "+00:00"))
            assert product.data_path == spec.legacy_remote_path
        client = login(state)
        try:
            local = tmp_path / "down.h5"
            gportal.SFTP(client).download(products[2], str(tmp_path))
            client.get(specs[2].current_remote_path, str(local))
        finally:
            client.get_channel().get_transport().close()
        assert local.read_bytes() == (tmp_path / specs[2].file_name).read_bytes() == files[2].read_bytes()
        assert "skipping" in (tmp_path / "run" / "emulator.log").read_text()
        empty = records(state["catalogue_url"], "2021-03-05T00:00:00Z", "2021-03-06T00:00:00Z")
        assert empty == []
    finally:
        stop_emulator(proc)


def test_mirror_records_keep_their_own_times(tmp_path):
    """Without the HDF5 attributes the times come from the file name."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    name = "GW1AM2_202107010304_123A_L1SGBTBR_2220220.h5"
    with h5py.File(mirror / name, "w") as h5:
        h5["x"] = [1, 2, 3]
    proc, state = start_emulator(tmp_path / "run", "--serve-dir", str(mirror))
    try:
        (feature,) = records(state["catalogue_url"], "2021-07-01T03:00:00Z", "2021-07-01T03:10:00Z")
        props = feature["properties"]
        assert props["beginPosition"] == "2021-07-01T03:04:00.000Z"
        assert props["product"]["size"] == str((mirror / name).stat().st_size)
        assert props["wrsLongitudeGrid"] == "123" and props["gpp"]["orbitDirection"] == "Ascending"
        assert json.loads(json.dumps(props)) == props
    finally:
        stop_emulator(proc)


def test_generated_week_is_consistent_with_the_orbit_model(tmp_path):
    """The catalogue's count for a week equals the orbit model's (count=0: nothing is generated)."""
    proc, state = start_emulator(tmp_path)
    try:
        start = datetime(2024, 2, 26, tzinfo=timezone.utc)
        end = start + timedelta(days=7)
        response = requests.get(
            state["catalogue_url"],
            params={
                **CSW,
                "datasetId": "11001001",
                "startTime": start.isoformat(),
                "endTime": end.isoformat(),
                "count": 0,
            },
            timeout=30,
        )
        assert response.json()["properties"]["numberOfRecordsMatched"] == len(orbit.granules_between(start, end))
    finally:
        stop_emulator(proc)


def test_the_shared_fixtures_start_and_stop_emulators(emulator, emulator_factory):
    assert requests.get(emulator["catalogue_url"], params={**CSW, "startTime": "2020-01-01", "count": 0}).ok
    capped = emulator_factory("--faults", '{"max_sessions": 3}', "--flavour", "amsre")
    assert capped["fault_spec"]["max_sessions"] == 3 and capped["dataset_ids"] == ["25001000"]
    assert capped["pid"] != emulator["pid"]
