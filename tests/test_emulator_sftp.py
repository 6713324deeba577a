"""Downloads from the emulator over both G-Portal generations and both login kinds, with the real clients."""

from __future__ import annotations

import contextlib
import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import gportal
import gportal.http_client
import paramiko
import pytest
from emulator_fixtures import start_emulator, stop_emulator, wait_for_stats

from amsr2flow.emulator import orbit
from amsr2flow.gportal.host_keys import fingerprint_sha256

# fresh_granules: the service generates its own granules here (no pool: emulator_fixtures)
pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_granules")]

DAY = datetime(2020, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    proc, state = start_emulator(tmp_path_factory.mktemp("sftp"))
    yield state
    stop_emulator(proc)


@pytest.fixture(scope="module")
def products(state):
    """The day's AMSR2 products, as the unmodified gportal client returns them from the legacy catalogue."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gportal.http_client, "BASE_URL", state["legacy_base_url"])
        search = gportal.search(["11001001"], start_time=DAY, end_time=DAY + timedelta(hours=6), count=100)
        return list(search.products())


@contextlib.contextmanager
def sftp_session(state: dict, *, password: str | None = None, pkey: paramiko.PKey | None = None):
    transport = paramiko.Transport((state["sftp_host"], state["sftp_port"]))
    try:
        transport.connect(username=state["username"], password=password, pkey=pkey)
        client = paramiko.SFTPClient.from_transport(transport)
        yield client
    finally:
        transport.close()


def client_key(state: dict) -> paramiko.PKey:
    return paramiko.Ed25519Key.from_private_key_file(state["private_key_path"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_gportal_download_over_the_legacy_tree_with_a_password(state, products, tmp_path):
    product = products[0]
    with sftp_session(state, password=state["password"]) as client:
        local = gportal.SFTP(client).download(product, str(tmp_path))
        assert client.stat(product.data_path).st_size == product["product"]["size"]
    cached = Path(state["cache_dir"]) / Path(product.data_path).name
    assert Path(local).read_bytes() == cached.read_bytes()
    assert Path(local).stat().st_size == product["product"]["size"]


def test_gportal_download_function_with_its_own_connection(state, products, tmp_path, monkeypatch):
    monkeypatch.setattr(gportal.SFTP, "HOST", state["sftp_host"])
    monkeypatch.setattr(gportal.SFTP, "PORT", state["sftp_port"])
    local = gportal.download(products[3], str(tmp_path), username=state["username"], password=state["password"])
    assert Path(local).stat().st_size == products[3]["product"]["size"]


def test_public_key_download_over_the_current_tree(state, products, tmp_path):
    product = products[1]
    spec = orbit.granule_by_id(product.id)
    with sftp_session(state, pkey=client_key(state)) as client:
        assert client.stat(spec.current_remote_path).st_size == product["product"]["size"]
        client.get(spec.current_remote_path, str(tmp_path / spec.file_name))
    assert sha256(tmp_path / spec.file_name) == sha256(Path(state["cache_dir"]) / spec.file_name)


def test_legacy_tree_is_reachable_relative_and_absolute(state, products):
    product = products[2]
    with sftp_session(state, password=state["password"]) as client:
        relative = client.stat(product.data_path)
        absolute = client.stat("/" + product.data_path)
    assert relative.st_size == absolute.st_size == product["product"]["size"]


def test_host_key_fingerprint_in_the_state_is_what_clients_see(state):
    transport = paramiko.Transport((state["sftp_host"], state["sftp_port"]))
    try:
        transport.start_client(timeout=10)
        key = transport.get_remote_server_key()
        assert transport.remote_version == state["sftp_banner"] == "SSH-2.0-AWS_SFTP_1.2"
    finally:
        transport.close()
    assert key.get_name() == "ssh-rsa"
    assert fingerprint_sha256(key) == state["host_key_sha256"]
    known = paramiko.HostKeys(state["known_hosts_path"])
    assert known.lookup(f"[127.0.0.1]:{state['sftp_port']}")["ssh-rsa"] == key


def test_listings_of_both_trees(state, products):
    month = "standard/GCOM-W/GCOM-W.AMSR2/L1B/2/2020/01"
    day = "/product/Standard/GCOM-W/GCOM-W.AMSR2/L1B/2/2020/01/01"
    with sftp_session(state, password=state["password"]) as client:
        assert {"nrt", "process", "order", "standard"} <= set(client.listdir("/"))
        assert set(client.listdir("/product/Standard")) == {"GCOM-W", "Aqua"}
        assert client.listdir("/standard/GCOM-W/GCOM-W.AMSR2/L1B/2")[0] == "2012"
        in_month = client.listdir(month)
        in_day = client.listdir_attr(day)
    expected_day = [g.file_name for g in orbit.granules_beginning_on(DAY.date())]
    assert [a.filename for a in in_day] == expected_day
    assert set(expected_day) <= set(in_month) and len(in_month) > 800
    sizes = {p.id + ".h5": p["product"]["size"] for p in products}
    for attrs in in_day:  # sizes are exact for granules already generated
        if attrs.filename in sizes:
            assert attrs.st_size == sizes[attrs.filename]


def test_missing_files_and_writes_are_refused(state):
    with sftp_session(state, password=state["password"]) as client:
        with pytest.raises(FileNotFoundError):
            client.stat("standard/GCOM-W/GCOM-W.AMSR2/L1B/2/2020/01/GW1AM2_202001010000_999D_L1SGBTBR_2220220.h5")
        with pytest.raises(FileNotFoundError):
            client.listdir("/standard/GCOM-W/GCOM-W.AMSR2/L1B/2/2001")
        with pytest.raises(PermissionError):
            client.open("/standard/upload.h5", "w")
        with pytest.raises(PermissionError):
            client.mkdir("/standard/new")


def test_wrong_credentials_are_refused_and_counted(state):
    with pytest.raises(paramiko.AuthenticationException), sftp_session(state, password="wrong"):
        pass
    other_key = paramiko.RSAKey.generate(1024)
    with pytest.raises(paramiko.AuthenticationException), sftp_session(state, pkey=other_key):
        pass
    stats = wait_for_stats(state, lambda s: s["failed_logins"] >= 2)
    assert stats["sftp_sessions"] >= 1 and stats["files_served"] >= 1 and stats["bytes_served"] > 0


def test_require_publickey_refuses_passwords_and_accepts_extra_keys(tmp_path, products):
    own_key = paramiko.RSAKey.generate(2048)
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(f"# mine\n{own_key.get_name()} {own_key.get_base64()} me@laptop\n")
    proc, state = start_emulator(tmp_path / "run", "--require-publickey", "--authorized-key", str(authorized))
    try:
        with pytest.raises(paramiko.AuthenticationException), sftp_session(state, password=state["password"]):
            pass
        spec = orbit.granule_by_id(products[0].id)
        for key in (client_key(state), own_key):
            with sftp_session(state, pkey=key) as client:
                assert client.stat(spec.current_remote_path).st_size > 0
        assert wait_for_stats(state, lambda s: s["sftp_sessions"] == 2)["failed_logins"] == 1
    finally:
        stop_emulator(proc)
