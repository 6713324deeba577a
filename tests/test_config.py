"""Configuration: defaults, and malformed configs that must fail before any network call, naming the key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulator_fixtures import read_stats, start_emulator, stop_emulator
from workflow_helpers import SNAKEFILE, emulator_config, run_workflow, snakemake

from amsr2flow import config as settings
from amsr2flow.gportal.source import Source


def test_defaults_fill_every_documented_key(tmp_path: Path) -> None:
    cfg = settings.validate({"start": "2024-01-01", "end": "2024-01-02"}, check_environment=False)
    assert cfg["source"] == "gportal"
    assert cfg["channels"] == ["36.5H"]
    assert cfg["part_size"] == 500
    assert cfg["geolocation"] is False
    assert cfg["gportal"]["sftp_port"] == 22
    assert cfg["gportal"]["host_keys"] == ["ssh-rsa SHA256:pYLmuMNFi9tQYRAZLXERRuyOszorS0qJQEE/u4Co+xM"]
    assert cfg["transfer"]["stall_timeout_s"] == 120


def test_unquoted_yaml_dates_are_accepted() -> None:
    import datetime

    cfg = settings.validate(
        {"start": datetime.date(2024, 1, 1), "end": datetime.date(2024, 1, 1)}, check_environment=False
    )
    assert cfg["start"] == "2024-01-01"


def test_a_config_file_is_read_with_its_days_as_text(tmp_path: Path) -> None:
    """YAML reads an unquoted 2024-02-30 as a date and fails inside its reader; read as text, validation names
    the key."""
    path = tmp_path / "config.yaml"
    path.write_text("start: 2024-02-30\nend: 2024-03-01\n", encoding="utf-8")
    assert settings.read_config_file(path) == {"start": "2024-02-30", "end": "2024-03-01"}
    with pytest.raises(settings.ConfigError, match=r"start: '2024-02-30' is not a real calendar date"):
        settings.check_days_readable(path)
    path.write_text("start: 2024-02-28\nend: 2024-03-01\n", encoding="utf-8")
    settings.check_days_readable(path)  # a real day, quoted or not, is for Snakemake to read


def test_source_repr_hides_secrets() -> None:
    source = Source("legacy", "u", "h", 1, (), "user", "hunter2-secret", None, "pass-secret")
    assert "hunter2" not in repr(source) and "pass-secret" not in repr(source)


# -- malformed configurations, through the real command --------------------------------------------------------
@pytest.fixture(scope="module")
def live_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    proc, state = start_emulator(tmp_path_factory.mktemp("emulator"), "--scans", "16")
    try:
        yield state
    finally:
        stop_emulator(proc)


def _scratch_is_a_file(tmp: Path) -> dict[str, str]:
    blocker = tmp / "scratch-file"
    blocker.write_text("x")
    return {"scratch_dir": str(blocker)}


def _blocked_output(tmp: Path) -> dict[str, str]:
    # A regular file where a folder must be: unwritable for every user, root included.
    blocker = tmp / "not-a-folder"
    blocker.write_text("x")
    return {"output_dir": str(blocker / "results")}


# (case, overrides or callable(tmp) -> overrides, key the message must name)
BAD_CONFIGS: list[tuple[str, Any, str]] = [
    ("dates reversed", {"start": "2024-01-05", "end": "2024-01-01"}, "end"),
    ("invalid calendar date", {"start": "2024-02-30"}, "start"),
    ("date not ISO", {"start": "01/02/2024"}, "start"),
    ("date as a number", {"end": 20240101}, "end"),
    ("unknown channel", {"channels": ["36.5X"]}, "channels"),
    ("empty channel list", {"channels": []}, "channels"),
    ("duplicate channel", {"channels": ["36.5H", "36.5H"]}, "channels"),
    (
        "7.3 GHz on AMSR-E",
        {"dataset": "amsre-l1b", "start": "2010-01-01", "end": "2010-01-01", "channels": ["7.3H"]},
        "channels",
    ),
    ("part size 0", {"part_size": 0}, "part_size"),
    ("part size not a number", {"part_size": "many"}, "part_size"),
    ("unknown source", {"source": "ftp"}, "source"),
    ("unknown dataset", {"dataset": "amsr3-l1b"}, "dataset"),
    ("before the mission", {"start": "2011-01-01", "end": "2011-01-02"}, "start"),
    ("AMSR-E after its end", {"dataset": "amsre-l1b", "start": "2011-10-01", "end": "2011-12-01"}, "end"),
    ("unknown top-level key", {"chanels": ["36.5H"]}, "chanels"),
    ("unknown transfer key", {"transfer": {"timeout": 5}}, "transfer.timeout"),
    ("negative timeout", {"transfer": {"stall_timeout_s": -1}}, "transfer.stall_timeout_s"),
    ("zero attempts", {"transfer": {"attempts": 0}}, "transfer.attempts"),
    ("geolocation not boolean", {"geolocation": "yes"}, "geolocation"),
    ("bad host key fingerprint", {"gportal": {"host_key_sha256": "MD5:aa:bb"}}, "gportal.host_key_sha256"),
    ("legacy service without pinned host key", {"source": "gportal-legacy"}, "gportal_legacy.host_keys"),
    ("host key pin without a fingerprint", {"gportal": {"host_keys": ["ssh-rsa AAAAB3Nza"]}}, "gportal.host_keys[0]"),
    (
        "host key pin of an unknown type",
        {"gportal": {"host_keys": ["ssh-dss SHA256:" + "A" * 43]}},
        "gportal.host_keys[0]: 'ssh-dss SHA256",
    ),
    ("no host key pinned", {"gportal": {"host_keys": []}}, "gportal.host_keys"),
    ("password in the config file", {"credentials": {"password": "hunter2"}}, "credentials.password"),
    ("missing credentials for the real service", {"source": "gportal"}, "credentials.username_env"),
    (
        "missing key file for the current service",
        {"source": "gportal", "credentials": {"private_key_path": "/nope/key"}},
        "credentials.private_key_path",
    ),
    ("unwritable output folder", _blocked_output, "output_dir"),
    ("emulator state file missing", {"emulator": {"state_file": "/nonexistent/state.json"}}, "emulator.state_file"),
    # found from outside: each of these used to start a run (and its network requests) and crash later
    ("end far in the future", {"end": "2100-01-01"}, "end"),
    ("infinite timeout", {"transfer": {"stall_timeout_s": float("inf")}}, "transfer.stall_timeout_s"),
    ("NaN backoff", {"transfer": {"backoff_initial_s": float("nan")}}, "transfer.backoff_initial_s"),
    ("infinite recheck interval", {"catalogue": {"recheck_absent_after_hours": float("inf")}}, "recheck_absent"),
    ("absurd timeout", {"transfer": {"connect_timeout_s": 10**9}}, "transfer.connect_timeout_s"),
    ("absurd part size", {"part_size": 10**9}, "part_size"),
    ("scratch dir is a file", _scratch_is_a_file, "scratch_dir"),
    ("remote path template without file name", {"remote_path_template": "/x/{product_dir}/{year}"}, "remote_path"),
    ("remote path template with unknown field", {"remote_path_template": "/{root}/{file_name}"}, "remote_path"),
    ("unknown accepted reason", {"accept_missing": ["stall"]}, "accept_missing"),
]


@pytest.mark.parametrize(("case", "overrides", "key"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_fails_before_any_network_call(
    case: str, overrides: Any, key: str, tmp_path: Path, live_emulator: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GPORTAL_USERNAME", raising=False)
    before = read_stats(live_emulator)
    values = overrides(tmp_path) if callable(overrides) else overrides
    cfg = emulator_config(live_emulator, tmp_path, **values)
    run = run_workflow(tmp_path, cfg, timeout=120)
    assert run.returncode != 0, run.stdout[-2000:]
    assert "amsr2flow:" in run.stdout and key in run.stdout, run.stdout[-2000:]
    assert "Traceback" not in run.stdout
    after = read_stats(live_emulator)
    assert after["catalogue_requests"] == before["catalogue_requests"]
    assert after["sftp_connections"] == before["sftp_connections"]
    assert not (tmp_path / "results" / "manifests").exists()


def test_an_unquoted_impossible_day_in_the_config_file_stops_snakemake_with_one_message(
    tmp_path: Path, live_emulator: dict
) -> None:
    """`snakemake` as the README runs it, reading config/config.yaml: YAML's own reading of `start: 2024-02-30`
    used to stop Snakemake with a 60-line traceback before any of the workflow's code ran."""
    text = yaml.safe_dump(emulator_config(live_emulator, tmp_path)).replace("start: '2024-01-01'", "start: 2024-02-30")
    assert "start: 2024-02-30\n" in text
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(text, encoding="utf-8")
    before = read_stats(live_emulator)
    run = snakemake(tmp_path, "-s", str(SNAKEFILE), "--cores", "1", timeout=120)
    after = read_stats(live_emulator)
    assert run.returncode == 2, run.stdout[-3000:]
    assert "amsr2flow: invalid configuration:\n  start: '2024-02-30' is not a real calendar date" in run.stdout
    assert "Traceback" not in run.stdout and len(run.stdout.splitlines()) <= 3, run.stdout  # the profile's line, ours
    assert (after["catalogue_requests"], after["sftp_connections"]) == (
        before["catalogue_requests"],
        before["sftp_connections"],
    )


def test_a_record_refuses_channels_one_sensor_lacks_and_days_in_no_mission() -> None:
    with pytest.raises(settings.ConfigError, match=r"7\.3H not measured by AMSR-E"):
        settings.validate(
            {"start": "2011-10-01", "end": "2012-07-05", "dataset": ["amsre-l1b", "amsr2-l1b"], "channels": ["7.3H"]},
            check_environment=False,
        )
    with pytest.raises(settings.ConfigError, match="holds no day of AMSR-E"):
        settings.validate(
            {"start": "2012-01-01", "end": "2012-02-01", "dataset": ["amsre-l1b", "amsr2-l1b"]}, check_environment=False
        )


def test_daily_grids_need_positions_and_configured_channels() -> None:
    with pytest.raises(settings.ConfigError, match="set `geolocation: true`"):
        settings.validate(
            {"start": "2024-01-01", "end": "2024-01-01", "grid": {"enabled": True}}, check_environment=False
        )
    with pytest.raises(settings.ConfigError, match=r"grid\.channels: 18\.7V not among `channels`"):
        settings.validate(
            {
                "start": "2024-01-01",
                "end": "2024-01-01",
                "geolocation": True,
                "grid": {"enabled": True, "channels": ["18.7V"]},
            },
            check_environment=False,
        )
