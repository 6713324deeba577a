"""SFTP transfers from G-Portal: bounded waits everywhere, pinned host key, atomic downloads.

``gportal.SFTP.connect`` opens a ``paramiko.Transport`` with no banner, authentication or channel timeouts
and ``download()`` writes straight into the final file name: a stalled server hangs it forever and a broken
transfer leaves a partial file. Here the connection is opened with explicit timeouts, the host key is checked
against a pinned fingerprint before any credential is sent, and a download goes to a temporary name guarded by
a stall watchdog (no bytes for ``stall_timeout`` seconds closes the connection), with its size and SHA-256
checked before the file is renamed into place. The session holds paramiko's ``SFTPClient`` itself:
``gportal.SFTP`` only wraps it (and importing the ``gportal`` package costs a day job ~0.1 s for requests and
its catalogue code, which the catalogue stage uses and transfers do not).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import errno
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko

from .source import Link, Source, Timeouts

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


# -- error classes: what each failure means for the run ---------------------------------------------------------
class TransferError(RuntimeError):
    """Base of transfer failures. ``kind`` is the reason class recorded in the failure ledger."""

    kind = "transfer"


class TransientTransferError(TransferError):
    """Worth retrying: resets, banner errors, stalls, truncated or corrupt downloads, overload."""

    kind = "transient"


class StallError(TransientTransferError):
    kind = "stall"


class TruncatedError(TransientTransferError):
    kind = "truncated"


class GranuleAbsent(TransferError):
    """In the catalogue but not on the SFTP server: permanent for this granule, the run goes on."""

    kind = "absent"


class FatalTransferError(TransferError):
    """No retry can fix it (credentials, host key, disk full): stop the run with one clear message."""

    kind = "fatal"


class AuthenticationRefused(FatalTransferError):
    kind = "auth"


class HostKeyMismatch(FatalTransferError):
    kind = "host_key"


class DiskFull(FatalTransferError):
    kind = "disk_full"


class NetworkUnreachable(TransientTransferError):
    """The host name does not resolve or no route leads there: a problem of this machine's network."""

    kind = "network"


@dataclass(frozen=True)
class Download:
    path: Path
    size_bytes: int
    sha256: str
    seconds: float


def fingerprint_sha256(key: paramiko.PKey) -> str:
    """OpenSSH-style fingerprint: ``SHA256:`` + unpadded base64 of the SHA-256 of the key blob."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class KeyProblem(FatalTransferError):
    """The private key cannot be used as given (unreadable, encrypted without passphrase, wrong passphrase)."""

    kind = "key"


def _is_encrypted_key(text: str) -> bool:
    """Whether a private key file is passphrase-protected, read from its unencrypted header."""
    if "ENCRYPTED" in text:  # PEM: "Proc-Type: 4,ENCRYPTED" or "BEGIN ENCRYPTED PRIVATE KEY"
        return True
    if "BEGIN OPENSSH PRIVATE KEY" in text:
        body = "".join(line for line in text.splitlines() if line and not line.startswith("-----"))
        try:
            blob = base64.b64decode(body)
        except ValueError:
            return False
        magic = b"openssh-key-v1\0"
        if not blob.startswith(magic):
            return False
        length = int.from_bytes(blob[len(magic) : len(magic) + 4], "big")
        cipher = blob[len(magic) + 4 : len(magic) + 4 + length]
        return cipher != b"none"
    return False


def load_private_key(path: str, passphrase: str | None) -> paramiko.PKey:
    """Load and decrypt the private key before any connection, naming the real problem when it fails."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise KeyProblem(f"private key {path} cannot be read: {exc.strerror}") from exc
    encrypted = _is_encrypted_key(text)
    if encrypted and not passphrase:
        raise KeyProblem(
            f"private key {path} is encrypted; export its passphrase in the variable named by "
            "credentials.passphrase_env"
        )
    try:
        return paramiko.PKey.from_path(path, passphrase=passphrase.encode() if passphrase else None)
    except (paramiko.SSHException, ValueError, TypeError) as exc:
        if encrypted:
            raise KeyProblem(
                f"private key {path}: bad passphrase or corrupt key file; check the passphrase in the variable "
                "named by credentials.passphrase_env"
            ) from exc
        raise KeyProblem(f"private key {path} is not a usable Ed25519, ECDSA or RSA private key ({exc})") from exc


def _connect_error(host: str, port: int, timeout: float, exc: OSError) -> TransientTransferError:
    """Say what a failed TCP connect means from here: no name resolution and no route are this machine's
    problem, not G-Portal's."""
    if isinstance(exc, socket.gaierror):
        return NetworkUnreachable(
            f"the host name {host} cannot be resolved from this machine ({exc.strerror or exc}): no DNS or no "
            "internet here? On a cluster, run where the internet is reachable (docs/hpc.md)"
        )
    if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return NetworkUnreachable(
            f"{host}:{port} is unreachable from this machine ({exc.strerror}): no route to the internet here?"
        )
    return TransientTransferError(f"cannot connect to {host}:{port} within {timeout:g} s: {exc}")


class GPortalSFTP:
    """One authenticated SFTP session with G-Portal (or the local G-Portal). Use as a context manager."""

    def __init__(self, source: Source, timeouts: Timeouts, link: Link | None = None):
        self.source = source
        self.timeouts = timeouts
        self.link = link or Link()
        self.transport: paramiko.Transport | None = None
        self.sftp: paramiko.SFTPClient | None = None

    def __enter__(self) -> GPortalSFTP:
        if self.sftp is None:
            self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def connect(self) -> None:
        """Key first (a local problem must cost no connection), then TCP/SSH, host key, login, SFTP."""
        key = (
            load_private_key(self.source.private_key_path, self.source.passphrase)
            if self.source.private_key_path
            else None
        )
        self.open_transport()
        self.verify_host_key()
        self.authenticate(key)
        self.open_client()

    def open_transport(self) -> None:
        """TCP connect and SSH handshake, with bounded waits."""
        src, t = self.source, self.timeouts
        try:
            sock = socket.create_connection((src.sftp_host, src.sftp_port), timeout=t.connect_s)
        except OSError as exc:
            raise _connect_error(src.sftp_host, src.sftp_port, t.connect_s, exc) from exc
        transport = paramiko.Transport(sock)
        transport.banner_timeout = t.banner_s
        transport.auth_timeout = t.auth_s
        transport.handshake_timeout = t.banner_s + t.auth_s
        self.transport = transport
        try:
            transport.start_client(timeout=t.banner_s + t.auth_s)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            raise TransientTransferError(f"SSH handshake with {src.sftp_host}:{src.sftp_port} failed: {exc}") from exc

    def verify_host_key(self) -> str:
        """The server's key fingerprint, if it is the pinned one; no credential has been sent yet."""
        src = self.source
        assert self.transport is not None
        seen = fingerprint_sha256(self.transport.get_remote_server_key())
        if seen != src.host_key_sha256:
            self.close()
            raise HostKeyMismatch(
                f"host key of {src.sftp_host}:{src.sftp_port} is {seen}, not the pinned {src.host_key_sha256}; "
                "no credentials were sent. If JAXA changed its key, verify the new fingerprint and set "
                "host_key_sha256 in the config"
            )
        return seen

    def open_client(self) -> None:
        src = self.source
        assert self.transport is not None
        try:
            client = paramiko.SFTPClient.from_transport(
                self.transport, window_size=self.link.window_bytes, max_packet_size=self.link.max_packet_bytes
            )
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            raise TransientTransferError(f"SFTP subsystem refused on {src.sftp_host}: {exc}") from exc
        assert client is not None
        client.get_channel().settimeout(self.timeouts.stall_s)
        self.sftp = client

    def authenticate(self, key: paramiko.PKey | None = None) -> None:
        src = self.source
        transport = self.transport
        assert transport is not None
        how = "public key" if src.private_key_path else "password"
        try:
            if src.private_key_path:
                transport.auth_publickey(src.username, key or load_private_key(src.private_key_path, src.passphrase))
            else:
                transport.auth_password(src.username, src.password or "")
        except KeyProblem:
            self.close()
            raise
        except paramiko.BadAuthenticationType as exc:
            self.close()
            raise AuthenticationRefused(
                f"{src.sftp_host} does not accept {how} login (it allows {', '.join(exc.allowed_types)}); "
                "the current G-Portal needs a registered public key: set credentials.private_key_path"
            ) from exc
        except paramiko.AuthenticationException as exc:
            self.close()
            raise AuthenticationRefused(
                f"{src.sftp_host} refused the {how} login for user {src.username!r}; check the user name and "
                + ("that this key is registered with your G-Portal account" if src.private_key_path else "password")
            ) from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            raise TransientTransferError(f"connection to {src.sftp_host} dropped during login: {exc}") from exc

    def close(self) -> None:
        if self.sftp is not None:
            try:
                self.sftp.close()
            except Exception:
                log.debug("closing SFTP client failed", exc_info=True)
            self.sftp = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # -- operations ----------------------------------------------------------------------------------------
    def remote_size(self, remote_path: str) -> int:
        assert self.sftp is not None
        try:
            return int(self.sftp.stat(remote_path).st_size or 0)
        except FileNotFoundError as exc:
            raise GranuleAbsent(f"{remote_path} is in the catalogue but not on the SFTP server") from exc
        except OSError as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                raise GranuleAbsent(f"{remote_path} is in the catalogue but not on the SFTP server") from exc
            raise TransientTransferError(f"stat {remote_path} failed: {exc}") from exc
        except (paramiko.SSHException, EOFError, TimeoutError) as exc:
            raise TransientTransferError(f"stat {remote_path} failed: {exc}") from exc

    def exists(self, remote_path: str) -> bool:
        """Whether ``remote_path`` names something on the server (a cheap ``stat``, no download)."""
        try:
            self.remote_size(remote_path)
        except GranuleAbsent:
            return False
        return True

    def list_names(self, folder: str) -> list[str] | None:
        """Names in a remote folder, or ``None`` when there is no such folder."""
        assert self.sftp is not None
        try:
            return list(self.sftp.listdir(folder))
        except (FileNotFoundError, PermissionError):
            return None
        except OSError as exc:
            if getattr(exc, "errno", None) in (errno.ENOENT, errno.EACCES):
                return None
            raise TransientTransferError(f"listing {folder} failed: {exc}") from exc
        except (paramiko.SSHException, EOFError, TimeoutError) as exc:
            raise TransientTransferError(f"listing {folder} failed: {exc}") from exc

    def download(self, remote_path: str, destination: Path, expected_size: int) -> Download:
        """Fetch ``remote_path`` to ``destination`` via a temporary name; check the size; return the SHA-256."""
        assert self.sftp is not None and self.transport is not None
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + f".part-{os.getpid()}")
        digest = hashlib.sha256()
        received = 0
        started = time.monotonic()
        watchdog = _StallWatchdog(self.transport, self.timeouts.stall_s)
        try:
            with self.sftp.open(remote_path, "rb") as remote, open(partial, "wb") as local:
                watchdog.start()
                for block in pipelined_blocks(
                    self.sftp, remote, expected_size, self.link.requests_in_flight, self.link.request_bytes
                ):
                    watchdog.progress()
                    digest.update(block)
                    local.write(block)
                    received += len(block)
                local.flush()
                os.fsync(local.fileno())
        except FileNotFoundError as exc:
            _remove(partial)
            raise GranuleAbsent(f"{remote_path} is in the catalogue but not on the SFTP server") from exc
        except OSError as exc:
            _remove(partial)
            if exc.errno == errno.ENOSPC:
                raise DiskFull(
                    f"no space left on the device holding {destination.parent}; free space and rerun"
                ) from exc
            if watchdog.fired:
                raise StallError(f"{remote_path}: no data for {self.timeouts.stall_s:g} s; transfer aborted") from exc
            raise TransientTransferError(f"{remote_path}: transfer broke after {received} bytes: {exc}") from exc
        except (paramiko.SSHException, EOFError) as exc:
            _remove(partial)
            if watchdog.fired:
                raise StallError(f"{remote_path}: no data for {self.timeouts.stall_s:g} s; transfer aborted") from exc
            raise TransientTransferError(f"{remote_path}: transfer broke after {received} bytes: {exc}") from exc
        except BaseException:
            _remove(partial)
            raise
        finally:
            watchdog.stop()
        if watchdog.fired:
            _remove(partial)
            raise StallError(f"{remote_path}: no data for {self.timeouts.stall_s:g} s; transfer aborted")
        if received != expected_size:
            _remove(partial)
            raise TruncatedError(f"{remote_path}: received {received} bytes, catalogue and stat say {expected_size}")
        os.replace(partial, destination)
        return Download(destination, received, digest.hexdigest(), time.monotonic() - started)


class _Responses:
    """Receives the answers to read requests by request number (paramiko hands them to ``_async_response``)."""

    def __init__(self) -> None:
        self.data: dict[int, bytes] = {}

    def _async_response(self, kind: int, msg: paramiko.Message, number: int) -> None:
        if kind == paramiko.sftp.CMD_DATA:
            self.data[number] = msg.get_string()
        elif kind == paramiko.sftp.CMD_STATUS:
            code = msg.get_int()
            if code != paramiko.sftp.SFTP_EOF:
                text = msg.get_text() if msg.get_remainder() else ""
                raise OSError(f"SFTP read refused (status {code}{': ' + text if text else ''})")
            self.data[number] = b""


def pipelined_blocks(
    client: paramiko.SFTPClient, remote: paramiko.SFTPFile, size: int, in_flight: int, request_bytes: int
) -> Iterator[bytes]:
    """The file's bytes in order, with up to ``in_flight`` read requests outstanding, from this thread alone.

    Why not paramiko's ``prefetch``: its background thread issues the requests while this thread reads the
    answers, and when the answers catch up with the requests it decides that prefetching is over
    (paramiko/paramiko#2418, #2519). The rest of the file is then read one synchronous request per 32 KiB,
    one round trip each (about 160 kB/s over a 200 ms link), while the thread goes on requesting what is read
    again: on loopback 16 % more bytes were served than the files hold. Here one loop keeps the window full
    and takes the answers in order, so each byte is requested once and the link stays busy. It uses paramiko's
    request and response primitives (``_async_request``, ``_read_response``), stable since paramiko 1.x.
    """
    answers = _Responses()
    pending: collections.deque[tuple[int, int, int]] = collections.deque()  # (request number, offset, length)
    next_offset = 0

    def request_more() -> None:
        nonlocal next_offset
        while next_offset < size and len(pending) < in_flight:
            length = min(request_bytes, size - next_offset)
            number = client._async_request(
                answers, paramiko.sftp.CMD_READ, remote.handle, paramiko.sftp.int64(next_offset), length
            )
            pending.append((number, next_offset, length))
            next_offset += length

    request_more()
    while pending:
        number, offset, length = pending.popleft()
        while number not in answers.data:
            client._read_response()  # dispatches one answer to `answers`
        block = answers.data.pop(number)
        if 0 < len(block) < length:  # a short answer (allowed): ask for the rest of this block at once
            remote.seek(offset + len(block))
            block += remote.read(length - len(block))
        if not block:
            return  # the server says end of file before `size`: the caller reports the truncation
        request_more()
        yield block


class _StallWatchdog:
    """Closes the transport when no bytes arrived for ``limit_s`` seconds, so a blocked read returns."""

    def __init__(self, transport: paramiko.Transport, limit_s: float):
        self.transport = transport
        self.limit_s = limit_s
        self.fired = False
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stall-watchdog", daemon=True)

    def start(self) -> None:
        self._last = time.monotonic()
        self._thread.start()

    def progress(self) -> None:
        self._last = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self.limit_s / 4)):
            if time.monotonic() - self._last > self.limit_s:
                self.fired = True
                self.transport.close()
                return


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
