"""SFTP servers nobody here wrote, for the client's tests: asyncssh's (PyPI) and OpenSSH's (Debian's sshd and
its internal-sftp, started per connection in inetd mode behind a socket on port 0).

Both serve a folder as the root of their tree, with the host keys a test asks for, and accept the local
G-Portal's client key; the local G-Portal still answers the catalogue. :func:`serve_granules` lays the
granules out as the current G-Portal does (``/product/Standard/.../YYYY/MM/DD/<file>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncssh

from amsr2flow.emulator.store import scan_mirror_folder

SSHD = Path("/usr/sbin/sshd")


def serve_granules(granules: Path, root: Path) -> dict[str, Path]:
    """Copy the granule files of ``granules`` to their current remote paths under ``root``: remote path ->
    file served."""
    served = {}
    for entry in scan_mirror_folder(granules):
        target = root / entry.current_remote_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(entry.source_path, target)
        served[entry.current_remote_path] = target
    return served


def _family(algorithm: str) -> str:
    return {"ssh-rsa": "RSA", "ssh-ed25519": "ED25519"}.get(algorithm, "ECDSA")


class AsyncSSHServer:
    """asyncssh's SSH and SFTP server on 127.0.0.1, port 0, in a thread of its own.

    ``key_types``: its host keys (``ssh-rsa``, ``ssh-ed25519``, ``ecdsa-sha2-nistp256``). ``read_cap``: answer
    each read with at most this many bytes (a server that answers short while its ``limits@openssh.com`` says
    4 MiB). ``drop_after_reads``: cut the connection at that read, as a crashed server would. ``reads`` counts
    the read requests served; ``closings`` holds, per connection, how it ended (None: an SSH disconnect; an
    exception: the connection broke, e.g. a TCP reset).
    """

    def __init__(
        self,
        root: Path,
        authorized_key_path: Path,
        key_types: Sequence[str] = ("ssh-rsa",),
        read_cap: int | None = None,
    ) -> None:
        self.root = root
        self.authorized_key_path = authorized_key_path
        self.host_keys = [
            asyncssh.generate_private_key(kind, key_size=2048)
            if kind == "ssh-rsa"
            else asyncssh.generate_private_key(kind)
            for kind in key_types
        ]
        self.read_cap = read_cap
        self.drop_after_reads: int | None = None  # the connection is cut (no disconnect) at this read
        self.reads = 0
        self.closings: list[BaseException | None] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="asyncssh-server", daemon=True)
        self._acceptor: Any = None

    def pins(self) -> list[str]:
        """Each host key as ``gportal.host_keys`` pins it: ``RSA SHA256:...``."""
        return [self.pin(index) for index in range(len(self.host_keys))]

    def pin(self, index: int) -> str:
        key = self.host_keys[index]
        return f"{_family(key.get_algorithm())} {key.get_fingerprint('sha256')}"

    def __enter__(self) -> AsyncSSHServer:
        self._thread.start()
        self._acceptor = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        self.port = self._acceptor.get_port()
        return self

    def __exit__(self, *exc_info: object) -> None:
        async def stop() -> None:
            self._acceptor.close()
            await self._acceptor.wait_closed()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> Any:
        owner = self

        class Server(asyncssh.SSHServer):
            def connection_lost(self, exc: Exception | None) -> None:
                owner.closings.append(exc)

        class SFTP(asyncssh.SFTPServer):
            def __init__(self, chan: Any) -> None:
                super().__init__(chan, chroot=str(owner.root).encode())

            def read(self, file_obj: Any, offset: int, size: int) -> bytes:
                owner.reads += 1
                if owner.drop_after_reads is not None and owner.reads >= owner.drop_after_reads:
                    self.connection.abort()
                if owner.read_cap is not None:
                    size = min(size, owner.read_cap)
                return super().read(file_obj, offset, size)

        return await asyncssh.create_server(
            Server,
            "127.0.0.1",
            0,
            server_host_keys=self.host_keys,
            authorized_client_keys=str(self.authorized_key_path),
            sftp_factory=SFTP,
            allow_scp=False,
        )


def openssh_available() -> str | None:
    """Why OpenSSH's server cannot be run here, or None when it can."""
    if not SSHD.is_file():
        return "OpenSSH's sshd is not installed (.ci/install-sftp-servers.sh)"
    if os.geteuid() != 0:
        return "OpenSSH's sshd runs a chrooted SFTP server only as root"
    return None


class OpenSSHServer:
    """OpenSSH's sshd, one process per connection in inetd mode (``sshd -i``) behind a socket this class
    accepts on 127.0.0.1, port 0, serving a chroot folder with internal-sftp to the user root.

    The chroot lives under /srv: sshd refuses a chroot with a group- or world-writable folder on its path,
    which /tmp is. ``log_text()`` is sshd's log (connection resets show there).
    """

    def __init__(self, authorized_key_path: Path, key_types: Sequence[str] = ("rsa", "ed25519")) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="amsr2flow-sshd-", dir="/srv"))
        self.home.chmod(0o755)
        self.root = self.home / "root"
        self.root.mkdir(mode=0o755)
        self.log_path = self.home / "sshd.log"
        keys = []
        for kind in key_types:
            key = self.home / f"host_{kind}"
            subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(key)], check=True)
            keys.append(key)
        self.host_key_files = keys
        authorized = self.home / "authorized_keys"
        shutil.copyfile(authorized_key_path, authorized)
        self.config = self.home / "sshd_config"
        self.config.write_text(
            "".join(f"HostKey {key}\n" for key in keys) + f"AuthorizedKeysFile {authorized}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nPidFile none\nLogLevel VERBOSE\n"
            f"ChrootDirectory {self.root}\nForceCommand internal-sftp\nSubsystem sftp internal-sftp\n",
            encoding="utf-8",
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._children: list[subprocess.Popen[bytes]] = []
        self._thread = threading.Thread(target=self._accept, name="sshd-inetd", daemon=True)

    def pins(self) -> list[str]:
        """Each host key as ``gportal.host_keys`` pins it, read with ssh-keygen (not with our code)."""
        pins = []
        for key in self.host_key_files:
            line = subprocess.run(
                ["ssh-keygen", "-lf", f"{key}.pub"], check=True, capture_output=True, text=True
            ).stdout.split()
            pins.append(f"{line[-1].strip('()')} {line[1]}")
        return pins

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes it
                self._children.append(
                    subprocess.Popen(
                        [str(SSHD), "-i", "-e", "-f", str(self.config)], stdin=conn, stdout=conn, stderr=log
                    )
                )
                log.close()

    def __enter__(self) -> OpenSSHServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.close()
        for child in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(10)
            if child.poll() is None:
                child.kill()
        self._thread.join(5)
        shutil.rmtree(self.home, ignore_errors=True)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def state_pointing_at(state: dict[str, Any], folder: Path, port: int, pins: list[str], username: str = "") -> Path:
    """A copy of the local G-Portal's state file whose SFTP endpoint and host keys are another server's: runs
    read the catalogue from the local G-Portal and fetch the files from that server."""
    import json

    other = {**state, "sftp_port": port, "host_keys": pins, "host_key_sha256": pins[0].split()[-1]}
    if username:
        other["username"] = username
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "state.json"
    path.write_text(json.dumps(other), encoding="utf-8")
    return path
