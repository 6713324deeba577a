"""The SFTP side: a paramiko server over a read-only virtual tree of granules, with faults on demand.

One thread per connection. A connection is refused before the SSH banner when the fault plan draws a banner
failure or when ``max_sessions`` connections are already open (what overloaded SFTP servers do); otherwise
it becomes a *session* until it closes, which is what ``active_sftp_sessions`` and ``peak_sftp_sessions``
count. Both G-Portal trees are served: legacy ``standard/...`` (relative to the login folder ``/`` or
absolute) and current ``/product/Standard/.../YYYY/MM/DD/<file>`` (root and day level as the store's layout
says). Granules offline under the order rule (``drift.OrderBook``) are absent until ordered.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import socket
import stat
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from paramiko.sftp import SFTP_FAILURE, SFTP_NO_SUCH_FILE, SFTP_PERMISSION_DENIED

from .corruption import write_corrupted_copy
from .drift import ABSENT_UNORDERED, OrderBook
from .faults import MID_FILE_FRACTION, FaultPlan
from .stats import Stats
from .store import DirEntry, GranuleEntry, GranuleStore, normalise_remote_path

log = logging.getLogger("amsr2flow.emulator.sftp")

#: What the current G-Portal SFTP server announces.
SERVER_BANNER = "SSH-2.0-AWS_SFTP_1.2"
#: Seconds after a truncated file's handle is closed before the connection is dropped.
TRUNCATION_CLOSE_DELAY_S = 0.2
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
#: Files look processed an hour after observation.
PROCESSING_DELAY_S = 3600


@dataclass
class SftpSettings:
    username: str
    password: str
    host_key: paramiko.PKey
    authorized_keys: list[paramiko.PKey]
    require_publickey: bool = False


#: Lateness of the server thread (its own work between two chunks) that the cap forgives, in seconds.
THROTTLE_SLACK_S = 0.05


class Throttle:
    """Per-connection bandwidth cap: each chunk waits until the connection's byte budget allows it.

    The server thread sleeps, then reads and sends the chunk, one after another. A deadline that restarts
    from "now" whenever the thread is late would charge that work to the link: with 32 KiB chunks at 2 MB/s
    (16 ms each) and ~2 ms of work per chunk, a client that keeps the requests coming got 0.89 of the cap.
    So a lateness of up to ``slack_s`` keeps the schedule (a token bucket of ``rate x slack_s`` bytes, as a
    link's queue or a shaper's burst allows); only a connection idle for longer loses the time.
    """

    def __init__(
        self,
        bytes_per_s: float | None,
        stop: threading.Event,
        slack_s: float = THROTTLE_SLACK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = bytes_per_s
        self._stop = stop
        self._slack_s = slack_s
        self._clock = clock
        self._lock = threading.Lock()
        self._next_free: float | None = None

    def consume(self, n_bytes: int) -> None:
        if not self.rate or n_bytes <= 0:
            return
        with self._lock:
            now = self._clock()
            begins = now if self._next_free is None else max(self._next_free, now - self._slack_s)
            self._next_free = begins + n_bytes / self.rate
            wait = self._next_free - now
        # Waiting after booking the bytes makes a transfer of X bytes last at least X / rate (less the slack).
        if wait > 0:
            self._stop.wait(wait)


@dataclass(eq=False)
class Session:
    """State of one admitted connection."""

    number: int
    transport: paramiko.Transport
    throttle: Throttle
    refuse_auth: bool = False
    auth_refusal_counted: bool = False

    def reset(self) -> None:
        """Drop the connection abruptly (TCP RST), as a mid-transfer reset does."""
        with contextlib.suppress(OSError):
            self.transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.close()

    def close_soon(self, delay: float) -> None:
        timer = threading.Timer(delay, self.transport.close)
        timer.daemon = True
        timer.start()


@dataclass
class SftpContext:
    """Everything the per-connection objects share."""

    store: GranuleStore
    plan: FaultPlan
    stats: Stats
    settings: SftpSettings
    corrupted_dir: Path
    stop: threading.Event
    orders: OrderBook | None = None  # None: every granule is online
    _corrupt_locks: defaultdict[str, threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def corrupted_copy(self, entry: GranuleEntry, original: Path) -> Path:
        target = self.corrupted_dir / entry.file_name
        with self._guard:
            lock = self._corrupt_locks[entry.file_name]
        with lock:
            if not target.exists() or target.stat().st_size != original.stat().st_size:
                self.corrupted_dir.mkdir(parents=True, exist_ok=True)
                write_corrupted_copy(original, target)
        return target


class EmulatorServer(paramiko.ServerInterface):
    """Authentication: password and/or public key, with refusals the fault plan asks for."""

    def __init__(self, ctx: SftpContext, session: Session) -> None:
        self.ctx = ctx
        self.session = session

    def get_allowed_auths(self, username: str) -> str:
        return "publickey" if self.ctx.settings.require_publickey else "password,publickey"

    def check_auth_none(self, username: str) -> int:
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        settings = self.ctx.settings
        ok = (
            not settings.require_publickey
            and hmac.compare_digest(username.encode(), settings.username.encode())
            and hmac.compare_digest(password.encode(), settings.password.encode())
        )
        return self._decide(ok, username, "password")

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        settings = self.ctx.settings
        ok = hmac.compare_digest(username.encode(), settings.username.encode()) and any(
            key.asbytes() == k.asbytes() for k in settings.authorized_keys
        )
        return self._decide(ok, username, "publickey")

    def _decide(self, ok: bool, username: str, method: str) -> int:
        if ok and self.session.refuse_auth:
            if not self.session.auth_refusal_counted:
                self.ctx.stats.fault("auth_refusal")
                self.session.auth_refusal_counted = True
            ok = False
        if not ok:
            self.ctx.stats.add("failed_logins")
            log.info("connection %d: %s login refused for %r", self.session.number, method, username)
            return paramiko.AUTH_FAILED
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


def _file_attributes(entry: GranuleEntry, size: int, name: str | None = None) -> paramiko.SFTPAttributes:
    attrs = paramiko.SFTPAttributes()
    attrs.st_size = size
    attrs.st_uid = attrs.st_gid = 0
    attrs.st_mode = stat.S_IFREG | 0o444
    attrs.st_mtime = attrs.st_atime = int(entry.end_unix) + PROCESSING_DELAY_S
    if name is not None:
        attrs.filename = name
    return attrs


def _dir_attributes(name: str | None = None) -> paramiko.SFTPAttributes:
    attrs = paramiko.SFTPAttributes()
    attrs.st_size = 4096
    attrs.st_uid = attrs.st_gid = 0
    attrs.st_mode = stat.S_IFDIR | 0o555
    attrs.st_mtime = attrs.st_atime = 0
    if name is not None:
        attrs.filename = name
    return attrs


class EmulatorSFTP(paramiko.SFTPServerInterface):
    """Read-only virtual file system over the granule store."""

    def __init__(self, server: EmulatorServer, *args: object, **kwargs: object) -> None:
        super().__init__(server, *args, **kwargs)
        self.ctx = server.ctx
        self.session = server.session

    def session_started(self) -> None:
        self.ctx.stats.add("sftp_sessions")

    def canonicalize(self, path: str) -> str:
        return normalise_remote_path(path)

    def _granule(self, path: str) -> GranuleEntry | int:
        """The granule at ``path``, or an SFTP status code (no such file; offline until ordered; absent by fault)."""
        entry = self.ctx.store.entry_for_path(path)
        if entry is None:
            return SFTP_NO_SUCH_FILE
        if not self._online(entry):
            self.ctx.stats.fault(ABSENT_UNORDERED, entry.granule_id)
            return SFTP_NO_SUCH_FILE
        if self.ctx.plan.is_absent(entry.granule_id):
            self.ctx.stats.fault("absent", entry.granule_id)
            return SFTP_NO_SUCH_FILE
        return entry

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        listing = self.ctx.store.list_dir(path)
        if listing is None:
            return SFTP_NO_SUCH_FILE
        return [a for item in listing if (a := self._listing_attributes(item)) is not None]

    def _listing_attributes(self, item: DirEntry) -> paramiko.SFTPAttributes | None:
        if item.entry is None:
            return _dir_attributes(item.name)
        if self.ctx.plan.is_absent(item.entry.granule_id) or not self._online(item.entry):
            return None
        # Listing a month must not generate ~900 granules: sizes are exact once generated, 0 before.
        return _file_attributes(item.entry, self.ctx.store.known_size(item.entry) or 0, item.name)

    def _online(self, entry: GranuleEntry) -> bool:
        return self.ctx.orders is None or self.ctx.orders.is_online(entry)

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        granule = self._granule(path)
        if isinstance(granule, GranuleEntry):
            try:
                size = self.ctx.store.materialise(granule).stat().st_size
            except Exception:
                log.exception("cannot provide %s", granule.file_name)
                return SFTP_FAILURE
            return _file_attributes(granule, size)
        if self.ctx.store.is_dir(path):
            return _dir_attributes()
        return granule

    lstat = stat

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> paramiko.SFTPHandle | int:
        if flags & WRITE_FLAGS:
            return SFTP_PERMISSION_DENIED
        granule = self._granule(path)
        if not isinstance(granule, GranuleEntry):
            return SFTP_FAILURE if self.ctx.store.is_dir(path) else granule
        try:
            original = self.ctx.store.materialise(granule)
        except Exception:
            log.exception("cannot provide %s", granule.file_name)
            return SFTP_FAILURE
        attempt = self.ctx.stats.file_opened(granule.granule_id)
        fault = self.ctx.plan.fault_for_open(granule.granule_id, attempt)
        if fault is not None:
            self.ctx.stats.fault(fault, granule.granule_id)
            log.info("%s attempt %d: injecting %s", granule.granule_id, attempt, fault)
        served = self.ctx.corrupted_copy(granule, original) if fault == "corrupted" else original
        return GranuleHandle(self.ctx, self.session, granule, served, original.stat().st_size, fault)

    # Everything that would change the tree is refused, as on the read-only G-Portal.
    def remove(self, path: str) -> int:
        return SFTP_PERMISSION_DENIED

    def rename(self, oldpath: str, newpath: str) -> int:
        return SFTP_PERMISSION_DENIED

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return SFTP_PERMISSION_DENIED

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return SFTP_PERMISSION_DENIED

    def rmdir(self, path: str) -> int:
        return SFTP_PERMISSION_DENIED

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return SFTP_PERMISSION_DENIED

    def symlink(self, target_path: str, path: str) -> int:
        return SFTP_PERMISSION_DENIED


class GranuleHandle(paramiko.SFTPHandle):
    """An open granule; applies the transfer fault of this attempt, the bandwidth cap and the counters."""

    def __init__(
        self,
        ctx: SftpContext,
        session: Session,
        entry: GranuleEntry,
        path: Path,
        size: int,
        fault: str | None,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.session = session
        self.entry = entry
        self.size = size
        self.fault = fault
        self.fault_offset = int(size * MID_FILE_FRACTION)
        self._fd = os.open(path, os.O_RDONLY)
        self._served = 0
        self._stalled = False

    def stat(self) -> paramiko.SFTPAttributes:
        return _file_attributes(self.entry, self.size)

    def read(self, offset: int, length: int) -> bytes | int:
        end = offset + length
        if self.fault == "truncated":
            if offset >= self.fault_offset:
                return b""
            length = min(length, self.fault_offset - offset)
        elif self.fault == "connection_reset" and end > self.fault_offset:
            log.info("%s: resetting connection %d at byte %d", self.entry.file_name, self.session.number, offset)
            self.session.reset()
            return SFTP_FAILURE
        elif self.fault == "stall" and not self._stalled and end > self.fault_offset:
            self._stalled = True
            self.ctx.stop.wait(self.ctx.plan.spec.stall_seconds)
        try:
            data = os.pread(self._fd, length, offset)
        except OSError:
            return SFTP_FAILURE
        self.session.throttle.consume(len(data))
        self._served += len(data)
        self.ctx.stats.add("bytes_served", len(data))
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if self._served >= self.size and self.fault in (None, "stall"):
            self.ctx.stats.add("files_served")
        if self.fault == "truncated":
            self.session.close_soon(TRUNCATION_CLOSE_DELAY_S)

    def write(self, offset: int, data: bytes) -> int:
        return SFTP_PERMISSION_DENIED


class SftpServer:
    """Listens on 127.0.0.1 and runs one thread per connection."""

    def __init__(self, ctx: SftpContext, port: int = 0) -> None:
        self.ctx = ctx
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(128)
        self._listener.settimeout(0.2)  # lets the accept loop notice a stop request
        self.port = self._listener.getsockname()[1]
        self._sessions: set[Session] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept_loop, name="sftp-accept", daemon=True)

    def start(self) -> None:
        self._accept_thread.start()

    def stop(self) -> None:
        self.ctx.stop.set()
        self._accept_thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.transport.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def _accept_loop(self) -> None:
        while not self.ctx.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self.ctx.stop.is_set():
                    return
                log.warning("accept failed (%s); retrying", exc)  # e.g. out of file descriptors: keep serving
                self.ctx.stop.wait(0.1)
                continue
            thread = threading.Thread(target=self._serve_connection, args=(conn,), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()

    def _serve_connection(self, conn: socket.socket) -> None:
        conn.settimeout(None)
        stats, plan = self.ctx.stats, self.ctx.plan
        number = stats.connection_accepted()
        fault = plan.connection_fault(number)
        if fault == "ssh_banner":
            stats.fault(fault)
            log.info("connection %d: closing before the banner (ssh_banner fault)", number)
            _abort(conn)
            return
        if not stats.try_admit_session(plan.spec.max_sessions):
            log.info("connection %d: refused, %s sessions already open", number, plan.spec.max_sessions)
            _abort(conn)
            return
        try:
            self._run_session(conn, number, refuse_auth=fault == "auth_refusal")
        finally:
            stats.session_ended()

    def _run_session(self, conn: socket.socket, number: int, refuse_auth: bool) -> None:
        transport = paramiko.Transport(conn)
        transport.local_version = SERVER_BANNER
        transport.add_server_key(self.ctx.settings.host_key)
        session = Session(
            number, transport, Throttle(self.ctx.plan.spec.bandwidth_bytes_per_s, self.ctx.stop), refuse_auth
        )
        transport.set_subsystem_handler("sftp", paramiko.SFTPServer, EmulatorSFTP)
        with self._lock:
            self._sessions.add(session)
        try:
            if self.ctx.stop.is_set():
                return
            transport.start_server(server=EmulatorServer(self.ctx, session))
            while transport.is_active() and not self.ctx.stop.is_set():
                transport.join(0.2)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            log.info("connection %d ended during negotiation: %s", number, exc)
        finally:
            transport.close()
            with self._lock:
                self._sessions.discard(session)


def _abort(conn: socket.socket) -> None:
    """Close a fresh connection without a word (the client waits for a banner that never comes)."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()
