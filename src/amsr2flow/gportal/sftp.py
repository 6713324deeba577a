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
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from . import host_keys
from .channel_buffer import ExtensionsSFTPClient, open_sftp_client
from .source import Link, Source, Timeouts

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
#: SSH_DISCONNECT_BY_APPLICATION (RFC 4253 section 11.1): the session ends because its work is done.
DISCONNECT_BY_APPLICATION = 11
#: How long a closing session waits for the server to close its end after our disconnect message.
CLOSE_WAIT_S = 2.0
#: A short answer teaches the session the server's read size only when it is at least this long: shorter
#: answers are taken as the server's momentary choice, not its limit.
SMALLEST_LEARNED_READ = 4096
#: Ciphers tried first: AES-GCM encrypts and authenticates in one pass, where AES-CTR needs an HMAC object per
#: packet besides (benchmarks/bench_sftp_cpu.py: client CPU 0.57 -> 0.34 s per 100 MB). Every AWS Transfer
#: Family security policy offers both; a server without them gets paramiko's own order.
AEAD_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
#: Read requests go out in writes of at least this many (one channel write and one SSH packet for many
#: requests): paramiko writes each 32 KiB request on its own, thousands of system calls per granule.
REQUEST_BATCH = 16


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


class _Transport(paramiko.Transport):
    """paramiko's transport, keeping the host-key algorithms the server offers (paramiko reads them from the
    server's key-exchange message and drops them), so that a refusal can name them."""

    offered_host_key_algorithms: tuple[str, ...] = ()

    def _really_parse_kex_init(self, m: paramiko.Message, ignore_first_byte: bool = False) -> dict:
        parsed = super()._really_parse_kex_init(m, ignore_first_byte)
        if not ignore_first_byte and not self.server_mode:  # the server's message, not a copy of our own
            self.offered_host_key_algorithms = tuple(parsed.get("server_key_algo_list", ()))
        return parsed


def cause_of(exc: BaseException, transport: paramiko.Transport | None = None) -> str:
    """What broke, in words, also when paramiko's own text is empty (``Server connection dropped: ``): the
    socket error the transport saw, or that the server closed the connection without an SSH disconnect."""
    text = str(exc).strip()
    if text and not text.endswith(":"):
        return text
    saved = getattr(transport, "saved_exception", None) if transport is not None else None
    if saved is not None and saved is not exc and str(saved).strip():
        detail = f"{type(saved).__name__}: {str(saved).strip()}"
    elif isinstance(exc, EOFError) or "dropped" in text:
        detail = "the server closed the connection without an SSH disconnect message"
    else:
        detail = type(exc).__name__
    return f"{text} {detail}" if text else detail


class GPortalSFTP:
    """One authenticated SFTP session with G-Portal (or the local G-Portal). Use as a context manager."""

    def __init__(self, source: Source, timeouts: Timeouts, link: Link | None = None):
        self.source = source
        self.timeouts = timeouts
        self.link = link or Link()
        self.transport: _Transport | None = None
        self.sftp: ExtensionsSFTPClient | None = None
        self._ahead: RemoteRead | None = None  # the next file's read, started before it is asked for
        # Bytes per read request: the configured size, within what the server says it answers (read from
        # limits@openssh.com when it is offered) or, failing that, what it answered when it answered short.
        self.request_bytes = self.link.request_bytes
        self.server_read_limit: int | None = None

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
        # Requests leave at once rather than waiting for the previous segment's acknowledgement (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = _Transport(sock)
        transport.banner_timeout = t.banner_s
        transport.auth_timeout = t.auth_s
        transport.handshake_timeout = t.banner_s + t.auth_s
        options = transport.get_security_options()
        first = tuple(cipher for cipher in AEAD_CIPHERS if cipher in options.ciphers)
        options.ciphers = first + tuple(cipher for cipher in options.ciphers if cipher not in first)
        wanted = host_keys.negotiable(src.host_keys, options.key_types)
        if wanted:
            options.key_types = wanted  # the server shows the key of a pinned type, not the one paramiko prefers
        self.transport = transport
        try:
            transport.start_client(timeout=t.banner_s + t.auth_s)
        except paramiko.ssh_exception.IncompatiblePeer as exc:
            offered = transport.offered_host_key_algorithms
            self.close()
            if "host key" in str(exc) and offered:
                raise HostKeyMismatch(
                    f"{src.sftp_host}:{src.sftp_port} offers host keys of the algorithms {', '.join(offered)}, "
                    f"none of the pinned types ({host_keys.pins_text(src.host_keys)}); no credentials were sent. "
                    f"Read its keys with `{host_keys.HOW_TO_READ}`, check them against the fingerprints JAXA "
                    "publishes, and pin the right one in host_keys"
                ) from exc
            raise TransientTransferError(
                f"SSH handshake with {src.sftp_host}:{src.sftp_port} failed: {cause_of(exc, transport)}"
            ) from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            raise TransientTransferError(
                f"SSH handshake with {src.sftp_host}:{src.sftp_port} failed: {cause_of(exc, transport)}"
            ) from exc

    def verify_host_key(self) -> str:
        """The server's key (``RSA SHA256:...``), if it is a pinned one; no credential has been sent yet."""
        src = self.source
        assert self.transport is not None
        key = self.transport.get_remote_server_key()
        seen = host_keys.describe(key)
        if not host_keys.matches(key, src.host_keys):
            self.close()
            untyped = [pin for pin in src.host_keys if pin.key_type is None]
            hint = (
                f" A pin that names no key type ({host_keys.pins_text(untyped)}) cannot steer the handshake: if it "
                f"is this server's key of another type, write it with its type (e.g. 'RSA {untyped[0].fingerprint}')."
                if untyped
                else ""
            )
            raise HostKeyMismatch(
                f"host key of {src.sftp_host}:{src.sftp_port} is {seen}, not a pinned one "
                f"({host_keys.pins_text(src.host_keys)}); no credentials were sent.{hint} If JAXA changed its key, "
                f"read the new one with `{host_keys.HOW_TO_READ}`, check it against the fingerprint JAXA publishes "
                "and add it to host_keys"
            )
        return seen

    def open_client(self) -> None:
        src = self.source
        assert self.transport is not None
        try:
            client = open_sftp_client(self.transport, self.link.window_bytes, self.link.max_packet_bytes)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            cause = cause_of(exc, self.transport)
            self.close()
            raise TransientTransferError(f"SFTP subsystem refused on {src.sftp_host}: {cause}") from exc
        assert client is not None
        client.get_channel().settimeout(self.timeouts.stall_s)
        self.sftp = client
        self.server_read_limit = self._read_limit(client)
        if self.server_read_limit:
            self.request_bytes = min(self.link.request_bytes, self.server_read_limit)

    def _read_limit(self, client: ExtensionsSFTPClient) -> int | None:
        """The most bytes the server answers per read, when it says (``limits@openssh.com``: OpenSSH answers
        at most 261,120 bytes, less than a 256 KiB request); None when it does not."""
        if "limits@openssh.com" not in client.server_extensions:
            return None
        try:
            kind, answer = client._request(paramiko.sftp.CMD_EXTENDED, "limits@openssh.com")
            if kind != paramiko.sftp.CMD_EXTENDED_REPLY:
                return None
            max_packet, max_read = answer.get_int64(), answer.get_int64()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            log.debug("limits@openssh.com not answered: %s", exc)
            return None
        if max_read:
            return int(max_read)
        return int(max_packet) - 1024 if max_packet > 1024 else None  # room for the answer's header

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
            cause = cause_of(exc, transport)
            self.close()
            raise TransientTransferError(f"connection to {src.sftp_host} dropped during login: {cause}") from exc

    def close(self) -> None:
        """End the session as SSH asks: the SFTP channel closed, a disconnect message, the server's end closed
        before ours. Closing the socket at once would leave the server a TCP reset (a closed socket with
        unread answers in its buffer resets), which its logs count as a dropped connection."""
        self._ahead = None
        if self.sftp is not None:
            try:
                self.sftp.close()
            except Exception:
                log.debug("closing SFTP client failed", exc_info=True)
            self.sftp = None
        transport, self.transport = self.transport, None
        if transport is None:
            return
        if transport.is_active():
            with contextlib.suppress(Exception):  # a broken connection cannot say goodbye: closed below
                message = paramiko.Message()
                message.add_byte(paramiko.common.cMSG_DISCONNECT)
                message.add_int(DISCONNECT_BY_APPLICATION)
                message.add_string("session finished")
                message.add_string("")
                transport._send_user_message(message)
                transport.join(CLOSE_WAIT_S)  # the transport's thread ends when the server closes its end
        transport.close()

    # -- operations ----------------------------------------------------------------------------------------
    def remote_size(self, remote_path: str) -> int:
        assert self.sftp is not None
        try:
            ahead = self._started(remote_path)
            if ahead is not None:
                return ahead.stat_size()
            return int(self.sftp.stat(remote_path).st_size or 0)
        except FileNotFoundError as exc:
            raise GranuleAbsent(f"{remote_path} is in the catalogue but not on the SFTP server") from exc
        except OSError as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                raise GranuleAbsent(f"{remote_path} is in the catalogue but not on the SFTP server") from exc
            raise TransientTransferError(f"stat {remote_path} failed: {cause_of(exc, self.transport)}") from exc
        except (paramiko.SSHException, EOFError, TimeoutError) as exc:
            raise TransientTransferError(f"stat {remote_path} failed: {cause_of(exc, self.transport)}") from exc

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
            raise TransientTransferError(f"listing {folder} failed: {cause_of(exc, self.transport)}") from exc
        except (paramiko.SSHException, EOFError, TimeoutError) as exc:
            raise TransientTransferError(f"listing {folder} failed: {cause_of(exc, self.transport)}") from exc

    def _started(self, remote_path: str) -> RemoteRead | None:
        """The read of ``remote_path`` started ahead, if that is the one (another one is dropped)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead.remote_path != remote_path:
            ahead.close()  # a retry came first: the file is asked for again when its turn comes
            ahead = None
        self._ahead = ahead
        return ahead

    def open_ahead(self, remote_path: str) -> None:
        """Ask for the open and the stat of ``remote_path`` now, without waiting for the answers: they arrive
        while the current file's last requests are answered. :meth:`remote_size` and :meth:`download` of the
        same path continue it; another path drops it. Any failure shows again when the file is asked for."""
        assert self.sftp is not None
        if self._ahead is not None:
            self._ahead.close()
        self._ahead = self._new_read(remote_path, stat=True)

    @property
    def requests_in_flight(self) -> int:
        """Read requests outstanding: as many as fill the SSH window at this session's request size."""
        return max(1, self.link.window_bytes // self.request_bytes)

    def _new_read(self, remote_path: str, *, stat: bool) -> RemoteRead:
        assert self.sftp is not None
        return RemoteRead(self.sftp, remote_path, self.requests_in_flight, self.request_bytes, stat=stat)

    def _learn(self, read: RemoteRead) -> None:
        """Adopt the request size a read learned from a short answer, for the files that follow."""
        if read.request_bytes < self.request_bytes:
            log.info(
                "%s answers reads of at most %d bytes; asking for that much from now on",
                self.source.sftp_host,
                read.request_bytes,
            )
            self.request_bytes = read.request_bytes

    def _read_ahead(self) -> None:
        """Put the first window of reads of the file opened ahead in flight: its bytes come while the caller
        writes and extracts the current one (best effort, as :meth:`open_ahead`)."""
        if self._ahead is not None:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                self._ahead.start(self._ahead.stat_size())

    def download(self, remote_path: str, destination: Path, expected_size: int, *, then: str | None = None) -> Download:
        """Fetch ``remote_path`` to ``destination`` via a temporary name; check the size; return the SHA-256.

        ``then``: the file asked for next. Its open and stat go out behind this file's first window of reads,
        its reads fill the window as this file's last ones are answered, and the rest of its first window
        goes out once this file is received (see :class:`RemoteRead`), so that its round trips overlap this
        file's bytes and the caller's work on them.
        """
        assert self.sftp is not None and self.transport is not None
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + f".part-{os.getpid()}")
        digest = hashlib.sha256()
        received = 0
        started = time.monotonic()
        watchdog = _StallWatchdog(self.transport, self.timeouts.stall_s)
        read: RemoteRead | None = None
        try:
            read = self._started(remote_path)
            self._ahead = None
            if read is not None and read.handle is not None and read.size != expected_size:
                read.close()  # started for another size (the caller checks the stat first: never, in practice)
                read = None
            if read is None:
                read = self._new_read(remote_path, stat=False)
            if read.handle is None:
                read.start(expected_size)  # raises the open's refusal of a read started ahead, too
            if then is not None:
                # Now, behind this file's first window: the server answers requests in order, so an open sent
                # once every read of this file is asked for is answered after them, and the next file's reads
                # would go out only when this one has arrived, a round trip of idle link per granule.
                self.open_ahead(then)
            with open(partial, "wb") as local:
                watchdog.start()
                for block in read.blocks():
                    watchdog.progress()
                    digest.update(block)
                    local.write(block)
                    received += len(block)
                    if self._ahead is not None:
                        # and keep the window full with it as this file's last answers come in
                        self._ahead.fill(self.requests_in_flight - len(read.pending))
                read.close()
                self._learn(read)
                if received == expected_size:
                    self._read_ahead()  # its bytes arrive while this file is written and extracted
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
            raise TransientTransferError(
                f"{remote_path}: transfer broke after {received} bytes: {cause_of(exc, self.transport)}"
            ) from exc
        except (paramiko.SSHException, EOFError) as exc:
            _remove(partial)
            if watchdog.fired:
                raise StallError(f"{remote_path}: no data for {self.timeouts.stall_s:g} s; transfer aborted") from exc
            raise TransientTransferError(
                f"{remote_path}: transfer broke after {received} bytes: {cause_of(exc, self.transport)}"
            ) from exc
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


class _Answers:
    """Receives the answers to asynchronous requests by request number (paramiko hands each answer to
    ``_async_response`` of the object the request was made for)."""

    def __init__(self) -> None:
        self.got: dict[int, tuple[int, paramiko.Message]] = {}

    def _async_response(self, kind: int, msg: paramiko.Message, number: int) -> None:
        self.got[number] = (kind, msg)


def _status_error(msg: paramiko.Message, what: str) -> OSError:
    """An SFTP error status as the OSError paramiko's synchronous calls raise (ENOENT for a missing file)."""
    code = msg.get_int()
    text = msg.get_text() if msg.get_remainder() else ""
    if code == paramiko.sftp.SFTP_NO_SUCH_FILE:
        return FileNotFoundError(errno.ENOENT, text or "no such file", what)
    if code == paramiko.sftp.SFTP_PERMISSION_DENIED:
        return PermissionError(errno.EACCES, text or "permission denied", what)
    return OSError(f"{what}: SFTP status {code}{': ' + text if text else ''}")


class RemoteRead:
    """One remote file read with up to ``in_flight`` read requests outstanding, from one thread.

    Why not paramiko's ``prefetch``: its background thread issues the requests while this thread reads the
    answers, and when the answers catch up with the requests it decides that prefetching is over
    (paramiko/paramiko#2418, #2519). The rest of the file is then read one synchronous request per 32 KiB,
    one round trip each (about 160 kB/s over a 200 ms link), while the thread goes on requesting what is read
    again: on loopback 16 % more bytes were served than the files hold. Here one loop keeps the window full
    and takes the answers in order, so each byte is requested once and the link stays busy.

    A read can be *started* before it is consumed: its open, its stat and its first window of read requests
    go out at once, and the server's answers wait in the SSH channel (at most the SSH window) until
    :meth:`blocks` takes them. A day job opens the next granule this way behind the current one's first
    window, and puts its reads in flight as the current one's last answers come, so that the extraction and
    the next file's round trips overlap the transfer. It uses paramiko's request and response primitives
    (``_async_request``, ``_read_response``, and for reads in batches the request numbering behind them:
    ``_lock``, ``request_number``, ``_expecting``, ``_write_all``), unchanged since paramiko 1.x; paramiko is
    pinned below 4.
    """

    def __init__(
        self, client: paramiko.SFTPClient, remote_path: str, in_flight: int, request_bytes: int, *, stat: bool
    ) -> None:
        self.client, self.remote_path = client, remote_path
        self.in_flight, self.request_bytes = in_flight, request_bytes
        self.answers = _Answers()
        path = client._adjust_cwd(remote_path)
        flags = paramiko.sftp.SFTP_FLAG_READ
        self._open: int | None = client._async_request(
            self.answers, paramiko.sftp.CMD_OPEN, path, flags, paramiko.SFTPAttributes()
        )
        self._stat = client._async_request(self.answers, paramiko.sftp.CMD_STAT, path) if stat else None
        self.handle: bytes | None = None
        self.size: int | None = None  # what the read is for: the stat's size, or the caller's
        self._failure: OSError | None = None  # the open's or the stat's refusal, raised again when asked
        self._stat_size: int | None = None
        self.pending: collections.deque[tuple[int, int, int]] = collections.deque()  # (number, offset, length)
        self.next_offset = 0
        self.closed = False

    def _answer(self, number: int) -> tuple[int, paramiko.Message]:
        while number not in self.answers.got:
            self.client._read_response()  # dispatches one answer to whichever object asked
        return self.answers.got.pop(number)

    def stat_size(self) -> int:
        """The size the server's ``stat`` gave (raises FileNotFoundError and the like)."""
        if self._stat is not None:
            kind, msg = self._answer(self._stat)
            self._stat = None
            if kind == paramiko.sftp.CMD_STATUS:
                self._failure = self._failure or _status_error(msg, self.remote_path)
            else:
                self._stat_size = int(paramiko.SFTPAttributes._from_msg(msg).st_size or 0)
        if self._stat_size is None:
            raise self._failure or OSError(f"{self.remote_path}: no stat was asked for")
        return self._stat_size

    def start(self, size: int, limit: int | None = None) -> None:
        """Wait for the handle, then ask for ``size`` bytes, up to ``limit`` requests (the window) outstanding."""
        if self.handle is None:
            if self._failure is None and self._open is not None:
                kind, msg = self._answer(self._open)
                self._open = None
                if kind == paramiko.sftp.CMD_STATUS:
                    self._failure = _status_error(msg, self.remote_path)
                else:
                    self.handle = msg.get_binary()
            if self.handle is None:
                raise self._failure or OSError(f"{self.remote_path}: not opened")
        self.size = size
        self._request_more(limit)

    def fill(self, limit: int) -> None:
        """Ask for more of this file, up to ``limit`` requests outstanding, if its open and stat are answered
        already (never waits, never raises: what failed shows when the file is asked for)."""
        for number in (self._open, self._stat):
            if number is not None and number not in self.answers.got:
                return
        try:
            self.start(self.stat_size(), limit)  # answered already: does not wait
        except OSError:
            return

    def _request_more(self, limit: int | None = None) -> None:
        assert self.handle is not None and self.size is not None
        limit = self.in_flight if limit is None else limit
        room, left = limit - len(self.pending), self.size - self.next_offset
        if room <= 0 or left <= 0:
            return
        if room < min(REQUEST_BATCH, max(1, limit // 4)) and left > room * self.request_bytes:
            return  # a few answers more, and a batch is worth a write
        ranges = []
        while self.next_offset < self.size and len(ranges) < room:
            length = min(self.request_bytes, self.size - self.next_offset)
            ranges.append((self.next_offset, length))
            self.next_offset += length
        self._ask(ranges)

    def _ask(self, ranges: list[tuple[int, int]]) -> None:
        """Read requests for ``(offset, length)`` ranges, behind those in flight (answers are taken in the order
        asked), in one write to the channel: ``_async_request`` builds and writes each request on its own. The
        request is SSH_FXP_READ of SFTP version 3 (draft-ietf-secsh-filexfer-02 section 6.4), numbered and
        registered as paramiko's own are."""
        assert self.handle is not None
        client = self.client
        handle = struct.pack(">I", len(self.handle)) + self.handle
        packets = []
        with client._lock:
            for offset, length in ranges:
                number = client.request_number
                client.request_number += 1
                client._expecting[number] = self.answers
                body = struct.pack(">I", number) + handle + struct.pack(">QI", offset, length)
                packets.append(struct.pack(">IB", len(body) + 1, paramiko.sftp.CMD_READ) + body)
                self.pending.append((number, offset, length))
        client._write_all(b"".join(packets))

    def blocks(self) -> Iterator[bytes]:
        """The file's bytes in order (a short file ends early: the caller reports the truncation).

        Any server may answer a read with fewer bytes than asked, at any size (OpenSSH answers at most
        261,120 bytes, less than a 256 KiB request). The rest of a short answer is asked for at once, behind
        the requests in flight, like any request: the window stays full and no round trip is spent waiting
        for it. Answers after the gap wait in ``arrived`` (at most a window's worth) until it is filled. A
        short answer in the middle of the file also teaches the read the server's size: later requests ask
        for that much (:attr:`request_bytes`), so that one answer each suffices.
        """
        assert self.handle is not None and self.size is not None
        arrived: dict[int, bytes] = {}
        delivered = 0
        end_of_file: int | None = None  # where the server said the file ends, when before ``size``
        while True:
            while delivered in arrived:
                block = arrived.pop(delivered)
                delivered += len(block)
                yield block
            if (end_of_file is not None and delivered >= end_of_file) or not self.pending:
                return
            number, offset, length = self.pending.popleft()
            kind, msg = self._answer(number)
            if kind == paramiko.sftp.CMD_STATUS:
                code = msg.get_int()
                if code != paramiko.sftp.SFTP_EOF:
                    text = msg.get_text() if msg.get_remainder() else ""
                    raise OSError(f"SFTP read refused (status {code}{': ' + text if text else ''})")
                end_of_file = offset if end_of_file is None else min(end_of_file, offset)
                continue
            block = msg.get_string()
            if len(block) > length:
                raise OSError(f"SFTP read answered {len(block)} bytes for a request of {length}")
            if not block:
                end_of_file = offset if end_of_file is None else min(end_of_file, offset)
                continue
            arrived[offset] = block
            if len(block) < length:
                self._ask([(offset + len(block), length - len(block))])
                if SMALLEST_LEARNED_READ <= len(block) < self.request_bytes:
                    # the same window in flight, in requests the server answers whole
                    window = self.in_flight * self.request_bytes
                    self.request_bytes = len(block)
                    self.in_flight = max(1, window // self.request_bytes)
            self._request_more()

    def close(self) -> None:
        """Close the handle without waiting for the answer (nor for reads still outstanding, when dropped)."""
        if self.closed:
            return
        self.closed = True
        if self.handle is None and self._open is not None:  # the open's answer has not been taken yet
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                kind, msg = self._answer(self._open)
                self._open = None
                if kind == paramiko.sftp.CMD_HANDLE:
                    self.handle = msg.get_binary()
        if self.handle is not None:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                self.client._async_request(type(None), paramiko.sftp.CMD_CLOSE, self.handle)


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


@dataclass(frozen=True)
class Connection:
    """Everything a session needs: where (``source``), how long to wait (``timeouts``) and how much to keep in
    flight (``link``). Built once per job; every session of the run (jobs, preflight, doctor) opens from one."""

    source: Source
    timeouts: Timeouts = field(default_factory=Timeouts)
    link: Link = field(default_factory=Link)

    def session(self) -> GPortalSFTP:
        """A new session, not yet connected (``connect()`` logs in)."""
        return GPortalSFTP(self.source, self.timeouts, self.link)
