"""The client against SFTP servers nobody here wrote: asyncssh's, and OpenSSH's sshd with internal-sftp.

Our local G-Portal is paramiko like the client and shares its habits; these servers do not. They check what
the issue found against them: short answers to reads (OpenSSH answers at most 261,120 bytes, and says so in
``limits@openssh.com``), servers with several host keys, sessions that end with an SSH disconnect instead of
a TCP reset, transport errors that carry their cause; and a whole run whose files come from asyncssh.
"""

from __future__ import annotations

import hashlib
import math
import os
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from emulator_fixtures import start_emulator, stop_emulator
from independent_sftp import AsyncSSHServer, OpenSSHServer, openssh_available, serve_granules, state_pointing_at
from workflow_helpers import emulator_config, run_workflow

from amsr2flow.emulator import orbit, synth
from amsr2flow.emulator.keys import load_or_create_client_key
from amsr2flow.gportal import host_keys
from amsr2flow.gportal.sftp import Connection, HostKeyMismatch, TransientTransferError
from amsr2flow.gportal.source import Link, Source, Timeouts

FILE_BYTES = 6 * (1 << 20) + 12345  # not a multiple of any request size
REMOTE = "/product/Standard/test/big.bin"


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    _, private_path, public_path = load_or_create_client_key(tmp_path_factory.mktemp("client"))
    return private_path, public_path


def _big_file(root: Path, name: str = REMOTE) -> tuple[str, bytes]:
    data = os.urandom(FILE_BYTES)
    path = root / name.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return name, data


def _connection(port: int, pins: list[str], key: Path, *, request_kib: int = 32, user: str = "test") -> Connection:
    source = Source("current", "", "127.0.0.1", port, host_keys.parse_pins(pins), user, None, str(key), None)
    return Connection(source, Timeouts(5, 5, 5, 10), Link(request_bytes=request_kib << 10))


def _fetch(connection: Connection, remote: str, destination: Path, then: str | None = None) -> tuple[str, int]:
    """Download ``remote``; the SHA-256 and the request size the session ended with."""
    with connection.session() as session:
        size = session.remote_size(remote)
        result = session.download(remote, destination, size, then=then)
        return result.sha256, session.request_bytes


# -- asyncssh ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("request_kib", [32, 256])
def test_a_download_from_asyncssh_asks_for_each_byte_once(tmp_path: Path, client_key, request_kib: int) -> None:
    root = tmp_path / "root"
    remote, data = _big_file(root)
    with AsyncSSHServer(root, client_key[1]) as server:
        sha, _ = _fetch(
            _connection(server.port, server.pins(), client_key[0], request_kib=request_kib), remote, tmp_path / "f"
        )
    assert sha == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "f").read_bytes() == data
    assert server.reads == math.ceil(FILE_BYTES / (request_kib << 10))  # no byte asked for twice


def test_short_answers_are_asked_again_behind_the_window_and_teach_the_size(tmp_path: Path, client_key) -> None:
    """A server that answers at most 100,000 bytes per read while its limits@openssh.com says 4 MiB: every
    answer to the first window of 256 KiB requests is short, its rest is asked for like any request, and the
    session then asks for what the server answers."""
    root = tmp_path / "root"
    remote, data = _big_file(root)
    cap = 100_000
    with AsyncSSHServer(root, client_key[1], read_cap=cap) as server:
        connection = _connection(server.port, server.pins(), client_key[0], request_kib=256)
        sha, learned = _fetch(connection, remote, tmp_path / "f")
        first_reads = server.reads
        sha_again, _ = _fetch(connection, remote, tmp_path / "g")
    assert sha == sha_again == hashlib.sha256(data).hexdigest()
    assert learned == cap
    window = connection.link.window_bytes // (256 << 10)
    # each request of the first window needs its rest asked once or twice more; afterwards one read per answer
    assert first_reads <= math.ceil(FILE_BYTES / cap) + 2 * window
    assert server.reads - first_reads <= math.ceil(FILE_BYTES / (256 << 10)) * 3  # a new session learns again


def test_a_server_with_several_host_keys_shows_the_pinned_type(tmp_path: Path, client_key) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with AsyncSSHServer(root, client_key[1], key_types=("ssh-rsa", "ssh-ed25519")) as server:
        rsa, ed25519 = server.pins()
        seen = {}
        for pins in ([rsa], [ed25519], ["RSA SHA256:" + "A" * 43, ed25519]):  # the last: a key rotation
            with _connection(server.port, pins, client_key[0]).session() as session:
                seen[pins[-1]] = session.verify_host_key()
        assert seen == {rsa: rsa, ed25519: ed25519}

        untyped = rsa.split()[1]  # the old host_key_sha256: paramiko prefers the Ed25519 key
        with pytest.raises(HostKeyMismatch) as refused:
            _connection(server.port, [untyped], client_key[0]).session().connect()
        assert f"is {ed25519}, not a pinned one ({untyped})" in str(refused.value)
        assert f"write it with its type (e.g. 'RSA {untyped}')" in str(refused.value)

        with pytest.raises(HostKeyMismatch) as none_of_them:
            _connection(server.port, ["ECDSA SHA256:" + "B" * 43], client_key[0]).session().connect()
    message = str(none_of_them.value)
    assert "offers host keys of the algorithms" in message and "ssh-ed25519" in message and "rsa-sha2-256" in message
    assert "none of the pinned types (ECDSA SHA256:" in message and host_keys.HOW_TO_READ in message
    # the three sessions accepted and the one refused after seeing the key ended with a disconnect; the last
    # one ended in the key exchange
    assert server.closings[:4] == [None] * 4 and len(server.closings) == 5


def test_a_session_ends_with_a_disconnect_even_with_answers_in_flight(tmp_path: Path, client_key) -> None:
    """The next file's read is started behind this one (``then=``) and never taken: its answers are on the way
    when the session closes, which is when closing the socket at once resets the connection."""
    root = tmp_path / "root"
    remote, _ = _big_file(root)
    other, _ = _big_file(root, "/product/Standard/test/other.bin")
    with AsyncSSHServer(root, client_key[1]) as server:
        _fetch(_connection(server.port, server.pins(), client_key[0]), remote, tmp_path / "f", then=other)
    assert server.closings == [None]


def test_a_dropped_connection_says_why(tmp_path: Path, client_key) -> None:
    root = tmp_path / "root"
    remote, _ = _big_file(root)
    with AsyncSSHServer(root, client_key[1]) as server:
        connection = _connection(server.port, server.pins(), client_key[0])
        with connection.session() as session:
            size = session.remote_size(remote)
            server.drop_after_reads = server.reads + 20
            with pytest.raises(TransientTransferError) as broke:
                session.download(remote, tmp_path / "f", size)
    message = str(broke.value)
    assert "transfer broke after" in message and not message.rstrip().endswith(":")
    assert "without an SSH disconnect" in message or "Error" in message, message
    assert not (tmp_path / "f").exists()


# -- OpenSSH -----------------------------------------------------------------------------------------------
needs_openssh = pytest.mark.skipif(openssh_available() is not None, reason=str(openssh_available()))


@needs_openssh
def test_openssh_says_how_much_it_answers_and_a_256_kib_request_fits_it(tmp_path: Path, client_key) -> None:
    with OpenSSHServer(client_key[1]) as server:
        remote, data = _big_file(server.root)
        pins = server.pins()
        connection = _connection(server.port, pins, client_key[0], request_kib=256, user="root")
        with connection.session() as session:
            assert session.server_read_limit == 261_120  # what OpenSSH's limits@openssh.com says
            assert session.request_bytes == 261_120
            size = session.remote_size(remote)
            result = session.download(remote, tmp_path / "f", size)
        log = server.log_text()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert "Connection reset" not in log and "Received disconnect" in log, log


@needs_openssh
def test_openssh_with_rsa_and_ed25519_keys_accepts_each_pinned_type(tmp_path: Path, client_key) -> None:
    with OpenSSHServer(client_key[1]) as server:
        rsa, ed25519 = server.pins()  # as ssh-keygen -lf prints them
        assert rsa.startswith("RSA ") and ed25519.startswith("ED25519 ")
        for pin in (rsa, ed25519):
            with _connection(server.port, [pin], client_key[0], user="root").session() as session:
                assert session.verify_host_key() == pin
        log = server.log_text()
    assert "Connection reset" not in log, log


# -- a run -------------------------------------------------------------------------------------------------
def test_a_run_fetches_its_granules_from_asyncssh(tmp_path: Path, client_key) -> None:
    """Catalogue from the local G-Portal, files from asyncssh with two host keys, the RSA one pinned: the
    swaths record the checksums of the files served, and every session ended with a disconnect."""
    day = date(2024, 1, 1)
    granules = tmp_path / "granules"
    granules.mkdir()
    for spec in orbit.granules_beginning_on(day)[:3]:
        synth.write_granule(granules / spec.file_name, spec, n_scans=16)
    root = tmp_path / "root"
    served = serve_granules(granules, root)
    proc, state = start_emulator(tmp_path / "emulator", "--serve-dir", str(granules))
    try:
        with AsyncSSHServer(root, Path(state["public_key_path"]), key_types=("ssh-rsa", "ssh-ed25519")) as server:
            state_file = state_pointing_at(state, tmp_path / "other", server.port, server.pins()[:1])
            cfg = emulator_config(state, tmp_path, emulator={"state_file": str(state_file)})
            run = run_workflow(tmp_path / "run", cfg, timeout=240)
    finally:
        stop_emulator(proc)
    assert run.returncode == 0, run.stdout[-3000:]
    expected = sorted(hashlib.sha256(path.read_bytes()).hexdigest() for path in served.values())
    (archive,) = (tmp_path / "results" / "archives").glob("*.npz")
    with np.load(archive, allow_pickle=False) as members:
        recorded = sorted(str(sha) for sha in members["index"]["source_sha256"])
    assert recorded == expected
    assert server.reads > 0 and server.closings and all(closing is None for closing in server.closings)
