"""Each injected fault is observed by a real client as the fault it is, and counted in the stats."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import gportal
import gportal.http_client
import h5py
import paramiko
import pytest
import requests
from emulator_fixtures import start_emulator, stop_emulator, wait_for, wait_for_stats

from amsr2flow.emulator import orbit
from amsr2flow.emulator.faults import FaultPlan, FaultSpecError, load_fault_spec, parse_fault_spec
from amsr2flow.emulator.sftp_server import Throttle
from amsr2flow.formats import l1b

# fresh_granules: the service generates its own granules here (no pool: emulator_fixtures)
pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_granules")]

DAY = datetime(2020, 1, 1, tzinfo=timezone.utc)
GRANULES = orbit.granules_beginning_on(DAY.date())
ABSENT, TRUNCATED, CORRUPTED, RESET, STALL, TWICE = GRANULES[:6]
STALL_SECONDS = 2
CSW = {"service": "CSW", "version": "3.0.0", "request": "GetRecords", "outputFormat": "application/json"}


def start_with_faults(tmp_path_factory, name: str, spec: dict):
    return start_emulator(tmp_path_factory.mktemp(name), "--faults", json.dumps(spec))


@contextlib.contextmanager
def sftp_session(state: dict):
    transport = paramiko.Transport((state["sftp_host"], state["sftp_port"]))
    try:
        transport.connect(username=state["username"], password=state["password"])
        yield paramiko.SFTPClient.from_transport(transport)
    finally:
        transport.close()


def cached(state: dict, spec: orbit.GranuleSpec) -> Path:
    return Path(state["cache_dir"]) / spec.file_name


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- granule faults -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def granule_faults(tmp_path_factory):
    spec = {
        "seed": 3,
        "stall_seconds": STALL_SECONDS,
        "times": 1,
        "granules": {
            ABSENT.granule_id: ["absent"],
            TRUNCATED.file_name: ["truncated"],
            CORRUPTED.granule_id: ["corrupted"],
            RESET.granule_id: ["connection_reset"],
            STALL.granule_id: ["stall"],
            TWICE.granule_id: ["truncated", "connection_reset"],
        },
    }
    proc, state = start_with_faults(tmp_path_factory, "granule-faults", spec)
    yield state
    stop_emulator(proc)


def test_absent_granule_is_catalogued_but_not_on_sftp(granule_faults):
    body = requests.get(
        granule_faults["catalogue_url"],
        params={
            **CSW,
            "datasetId": "11001001",
            "startTime": DAY.isoformat(),
            "endTime": (DAY + timedelta(days=1)).isoformat(),
        },
        timeout=30,
    ).json()
    assert ABSENT.granule_id in [f["properties"]["identifier"] for f in body["features"]]
    with sftp_session(granule_faults) as client:
        for _ in range(2):  # permanent, unlike the transient faults
            with pytest.raises(FileNotFoundError):
                client.stat(ABSENT.current_remote_path)
        with pytest.raises(FileNotFoundError):
            client.open(ABSENT.legacy_remote_path)
        day_folder = ABSENT.current_remote_path.rsplit("/", 1)[0]
        assert ABSENT.file_name not in client.listdir(day_folder)


def test_truncated_transfer_ends_early_then_the_connection_closes(granule_faults, tmp_path):
    with sftp_session(granule_faults) as client:
        size = client.stat(TRUNCATED.legacy_remote_path).st_size
        with client.open(TRUNCATED.legacy_remote_path) as remote:
            data = remote.read()
        assert 0 < len(data) < size == cached(granule_faults, TRUNCATED).stat().st_size
        transport = client.get_channel().get_transport()
        wait_for(lambda: not transport.is_active(), timeout=5, what="the server to close the connection")
    with sftp_session(granule_faults) as client:  # the retry gets the whole file
        client.get(TRUNCATED.legacy_remote_path, str(tmp_path / "retry.h5"))
    assert (tmp_path / "retry.h5").read_bytes() == cached(granule_faults, TRUNCATED).read_bytes()


def test_corrupted_file_has_the_right_size_but_unreadable_data(granule_faults, tmp_path):
    target = tmp_path / CORRUPTED.file_name
    with sftp_session(granule_faults) as client:
        client.get(CORRUPTED.current_remote_path, str(target))  # paramiko's own size check passes
    original = cached(granule_faults, CORRUPTED).read_bytes()
    damaged = target.read_bytes()
    assert len(damaged) == len(original) and sha256(damaged) != sha256(original)
    with h5py.File(target, "r") as h5:
        assert h5.attrs["PlatformShortName"][0] in (b"GCOM-W1", "GCOM-W1")  # the file still opens
        with pytest.raises(OSError):
            h5[l1b.CHANNEL_DATASETS["36.5H"]][...]
    with sftp_session(granule_faults) as client:
        client.get(CORRUPTED.current_remote_path, str(target))
    assert target.read_bytes() == original


def test_connection_reset_mid_transfer(granule_faults, tmp_path):
    with sftp_session(granule_faults) as client:
        with pytest.raises((EOFError, paramiko.SSHException, OSError)):
            client.get(RESET.legacy_remote_path, str(tmp_path / "partial.h5"))
        transport = client.get_channel().get_transport()
        wait_for(lambda: not transport.is_active(), timeout=5, what="the connection to be gone")
    with sftp_session(granule_faults) as client:
        client.get(RESET.legacy_remote_path, str(tmp_path / "retry.h5"))
    assert (tmp_path / "retry.h5").read_bytes() == cached(granule_faults, RESET).read_bytes()


def test_stall_sends_no_bytes_for_the_stall_time(granule_faults):
    with sftp_session(granule_faults) as client:
        size = client.stat(STALL.legacy_remote_path).st_size
        client.get_channel().settimeout(STALL_SECONDS / 2)  # a client-side read timeout shorter than the stall
        remote = client.open(STALL.legacy_remote_path)
        received = 0
        with pytest.raises(TimeoutError):
            while chunk := remote.read(32768):
                received += len(chunk)
        assert 0 < received < size  # the stall strikes mid-file
    with sftp_session(granule_faults) as client, client.open(STALL.legacy_remote_path) as remote:
        data = remote.read()
    assert data == cached(granule_faults, STALL).read_bytes()


def test_listed_faults_hit_successive_attempts_in_order(granule_faults, tmp_path):
    path = TWICE.current_remote_path
    with sftp_session(granule_faults) as client, client.open(path) as remote:
        assert len(remote.read()) < remote.stat().st_size  # 1st attempt: truncated
    with sftp_session(granule_faults) as client, pytest.raises((EOFError, paramiko.SSHException, OSError)):
        client.get(path, str(tmp_path / "second.h5"))  # 2nd attempt: reset
    with sftp_session(granule_faults) as client:
        client.get(path, str(tmp_path / "third.h5"))  # 3rd attempt: clean
    assert (tmp_path / "third.h5").read_bytes() == cached(granule_faults, TWICE).read_bytes()


def test_granule_faults_are_counted_per_granule(granule_faults):
    expected = {
        TRUNCATED.granule_id: ["truncated"],
        CORRUPTED.granule_id: ["corrupted"],
        RESET.granule_id: ["connection_reset"],
        STALL.granule_id: ["stall"],
        TWICE.granule_id: ["truncated", "connection_reset"],
    }

    def settled(stats: dict) -> bool:
        by_granule = stats["faults_by_granule"]
        opened_thrice = stats["opens_by_granule"].get(TWICE.granule_id) == 3
        return (
            all(by_granule.get(k) == v for k, v in expected.items())
            and len(by_granule.get(ABSENT.granule_id, [])) >= 3
            and opened_thrice
        )

    stats = wait_for_stats(granule_faults, settled)
    assert set(stats["faults_by_granule"][ABSENT.granule_id]) == {"absent"}
    assert stats["faults_injected"]["truncated"] == 2 and stats["faults_injected"]["absent"] >= 3


# -- catalogue faults -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def catalogue_faults(tmp_path_factory):
    rates = {"http_503": 0.15, "html_maintenance": 0.15, "empty_page": 0.15, "duplicate_records": 0.15}
    proc, state = start_with_faults(tmp_path_factory, "catalogue-faults", {"seed": 11, "rates": rates})
    yield state
    stop_emulator(proc)


def classify_gportal_failure(state: dict) -> str | None:
    """Ask the unmodified gportal client for a match count; name the fault it ran into, if any."""
    search = gportal.search(["11001001"], start_time=DAY, end_time=DAY + timedelta(hours=23), count=10)
    try:
        search.matched()
    except requests.HTTPError as exc:
        assert exc.response.status_code == 503
        return "http_503"
    except requests.JSONDecodeError:
        return "html_maintenance"
    return None


def classify_pass(state: dict) -> set[str]:
    """Page through the day by hand (10 per page) and name the paging hazards met."""
    seen, ids = set(), []
    for start_index in (1, 11, 21):
        params = {
            **CSW,
            "datasetId": "11001001",
            "startTime": DAY.isoformat(),
            "count": 10,
            "endTime": (DAY + timedelta(hours=23)).isoformat(),
            "startIndex": start_index,
        }
        response = requests.get(state["legacy_catalogue_url"], params=params, timeout=30)
        if response.status_code != 200 or not response.headers["Content-Type"].startswith("application/json"):
            assert response.status_code == 503 or response.headers["Content-Type"].startswith("text/html")
            continue
        props = response.json()["properties"]
        if props["numberOfRecordsReturned"] == 0 and props["numberOfRecordsMatched"] >= start_index:
            seen.add("empty_page")
        ids += [f["properties"]["identifier"] for f in response.json()["features"]]
    if len(ids) != len(set(ids)):
        seen.add("duplicate_records")
    return seen


def test_catalogue_faults_are_seen_by_clients(catalogue_faults, monkeypatch):
    monkeypatch.setattr(gportal.http_client, "BASE_URL", catalogue_faults["legacy_base_url"])
    seen: set[str] = set()
    for _ in range(60):
        seen.add(classify_gportal_failure(catalogue_faults))
        seen |= classify_pass(catalogue_faults)
        if {"http_503", "html_maintenance", "empty_page", "duplicate_records"} <= seen:
            break
    assert {"http_503", "html_maintenance", "empty_page", "duplicate_records"} <= seen
    stats = wait_for_stats(catalogue_faults, lambda s: len(s["faults_injected"]) == 4)
    assert stats["faults_by_granule"] == {}  # catalogue faults belong to requests, not granules


# -- connection faults ----------------------------------------------------------------------------------------
def test_banner_failures_and_auth_refusals(tmp_path_factory):
    rates = {"ssh_banner": 0.3, "auth_refusal": 0.3}
    proc, state = start_with_faults(tmp_path_factory, "connection-faults", {"seed": 5, "rates": rates})
    try:
        outcomes: list[str] = []
        for _ in range(40):
            transport = paramiko.Transport((state["sftp_host"], state["sftp_port"]))
            try:
                transport.connect(username=state["username"], password=state["password"])  # right credentials
                outcomes.append("ok")
            except paramiko.AuthenticationException:
                outcomes.append("auth_refusal")
            except paramiko.SSHException as exc:
                assert "Error reading SSH protocol banner" in str(exc)
                outcomes.append("ssh_banner")
            finally:
                transport.close()
            if {"ok", "auth_refusal", "ssh_banner"} <= set(outcomes) and len(outcomes) >= 10:
                break
        assert {"ok", "auth_refusal", "ssh_banner"} <= set(outcomes)
        expected = {
            "sftp_connections": len(outcomes),
            "ssh_banner": outcomes.count("ssh_banner"),
            "auth_refusal": outcomes.count("auth_refusal"),
            "failed_logins": outcomes.count("auth_refusal"),
        }

        def counted(stats: dict) -> dict:
            return {
                "sftp_connections": stats["sftp_connections"],
                "ssh_banner": stats["faults_injected"].get("ssh_banner"),
                "auth_refusal": stats["faults_injected"].get("auth_refusal"),
                "failed_logins": stats["failed_logins"],
            }

        wait_for_stats(state, lambda s: counted(s) == expected)
    finally:
        stop_emulator(proc)


# -- caps -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def capped(tmp_path_factory):
    spec = {"bandwidth_bytes_per_s": 1_000_000, "max_sessions": 2}
    proc, state = start_with_faults(tmp_path_factory, "caps", spec)
    yield state
    stop_emulator(proc)


def test_bandwidth_cap_per_connection(capped):
    path = GRANULES[10].legacy_remote_path
    with sftp_session(capped) as client:
        size = client.stat(path).st_size  # generates the granule before the clock starts
        started = time.monotonic()
        with client.open(path) as remote:
            remote.prefetch(size)
            data = remote.read()
        elapsed = time.monotonic() - started
    assert len(data) == size
    assert size / 1_000_000 * 0.95 <= elapsed <= size / 1_000_000 + 3.0


class _FakeClock:
    """Time that passes only when the throttle waits or the test says the server worked."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return False


@pytest.mark.parametrize(("work_s", "expected_s"), [(0.0, 1.0), (0.002, 1.0), (0.2, 0.02 + 49 * 0.2)])
def test_the_cap_does_not_charge_the_servers_own_work_to_the_link(work_s: float, expected_s: float) -> None:
    """50 chunks of 20 kB at 1 MB/s take 1 s when the server's work between chunks fits in the slack (before,
    2 ms of work per chunk made it 1.1 s); work longer than a chunk's time limits by itself, the cap adds nothing."""
    clock = _FakeClock()
    throttle = Throttle(1_000_000, clock, slack_s=0.05, clock=clock)  # type: ignore[arg-type]
    for chunk in range(50):
        if chunk:
            clock.now += work_s  # the server reads and sends the previous chunk
        throttle.consume(20_000)
    assert clock.now - 100.0 == pytest.approx(expected_s, abs=1e-9)


def test_an_idle_connection_gets_no_more_than_the_slack_back() -> None:
    clock = _FakeClock()
    throttle = Throttle(1_000_000, clock, slack_s=0.05, clock=clock)  # type: ignore[arg-type]
    throttle.consume(20_000)
    clock.now += 10.0  # idle
    started = clock.now
    for _ in range(10):
        throttle.consume(20_000)
    assert clock.now - started == pytest.approx(0.2 - 0.05)


def test_sessions_beyond_the_cap_are_refused(capped):
    wait_for_stats(capped, lambda s: s["active_sftp_sessions"] == 0)
    with sftp_session(capped), sftp_session(capped):
        with (
            pytest.raises(paramiko.SSHException, match="Error reading SSH protocol banner"),
            sftp_session(capped),
        ):
            pass
        stats = wait_for_stats(capped, lambda s: s["refused_sessions"] >= 1)
        assert stats["peak_sftp_sessions"] == 2 and stats["active_sftp_sessions"] == 2
    wait_for_stats(capped, lambda s: s["active_sftp_sessions"] == 0)
    with sftp_session(capped) as client:  # capacity is back once sessions close
        assert "standard" in client.listdir("/")


# -- the spec -------------------------------------------------------------------------------------------------
def test_fault_choices_are_deterministic_and_transient_faults_wear_off():
    spec = parse_fault_spec({"seed": 9, "rates": {"stall": 0.5, "absent": 0.2}, "times": 2})
    plan, again = FaultPlan(spec), FaultPlan(parse_fault_spec(spec.to_json()))
    ids = [g.granule_id for g in GRANULES]
    assert [plan.transient_faults(i) for i in ids] == [again.transient_faults(i) for i in ids]
    stalled = [i for i in ids if plan.transient_faults(i) == ("stall",)]
    assert 5 <= len(stalled) <= 25
    assert [plan.fault_for_open(stalled[0], n) for n in (1, 2, 3)] == ["stall", "stall", None]
    assert 1 <= sum(plan.is_absent(i) for i in ids) <= 14


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ('{"rates": {"meteor": 0.1}}', "unknown fault 'meteor'"),
        ('{"rates": {"stall": 1.5}}', "from 0 to 1"),
        ('{"granules": {"GW1AM2_x": ["http_503"]}}', "cannot be used in 'granules'"),
        ('{"speed": 1}', "unknown key"),
        ('{"max_sessions": 0}', ">= 1"),
        ("no-such-file.json", "neither inline JSON nor an existing file"),
    ],
)
def test_bad_fault_specs_are_rejected_with_the_reason(spec, message):
    with pytest.raises(FaultSpecError, match=message):
        load_fault_spec(spec)


def test_yaml_fault_spec_file(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text(
        "seed: 4\nrates:\n  http_503: 0.1\ngranules:\n  GW1AM2_202001010047_189D_L1SGBTBR_2220220: [absent]\n"
    )
    spec = load_fault_spec(str(path))
    assert spec.seed == 4 and spec.rates == {"http_503": 0.1}
    assert FaultPlan(spec).is_absent("GW1AM2_202001010047_189D_L1SGBTBR_2220220")
