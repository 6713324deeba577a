"""A receive buffer for paramiko channels whose reads cost what they return, not what is queued.

paramiko's ``BufferedPipe`` keeps a channel's received bytes in one ``array.array`` and removes each read from
its front (``del buffer[:n]``), which moves everything still queued. SFTP answers are read 32 KiB at a time, so
with a 16 MiB SSH window full of answers (a fast server, or the next granule's bytes read ahead while this one
is extracted) every read moves megabytes: measured on loopback, 13 s of a 29-granule day job's 24 s went to
that memmove. paramiko has no setting for it (paramiko#2688 is the same pattern in ``BufferedFile``), so a
channel gets this drop-in replacement before its subsystem starts: the received pieces stay as they arrived,
in a queue, and a read joins or slices only the bytes it returns.

The client opened on that channel also keeps the extensions the server announces (paramiko drops them), so
that a session can ask the server how much it answers per read (``limits@openssh.com``).
"""

from __future__ import annotations

import collections
import threading
import time

import paramiko
from paramiko.buffered_pipe import BufferedPipe, PipeTimeout
from paramiko.sftp import CMD_INIT, CMD_VERSION, SFTPError


class ChunkQueuePipe(BufferedPipe):
    """``paramiko.BufferedPipe``'s interface (feed, read with timeout, close, event) over a queue of pieces."""

    def __init__(self) -> None:
        super().__init__()
        self._pieces: collections.deque[bytes] = collections.deque()
        self._head_used = 0  # bytes of the first piece already read
        self._queued = 0

    def set_event(self, event: threading.Event) -> None:
        with self._lock:
            self._event = event
            if self._closed or self._queued:
                event.set()
            else:
                event.clear()

    def feed(self, data: bytes | str) -> None:
        piece = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        with self._lock:
            if self._event is not None:
                self._event.set()
            if piece:
                self._pieces.append(piece)
                self._queued += len(piece)
            self._cv.notify_all()

    def read_ready(self) -> bool:
        with self._lock:
            return self._queued > 0

    def read(self, nbytes: int, timeout: float | None = None) -> bytes:
        with self._lock:
            if not self._queued:
                if self._closed:
                    return b""
                if timeout == 0.0:
                    raise PipeTimeout()
                # Loop: a wake-up may find the bytes taken by another reader, as in paramiko.
                while not self._queued and not self._closed:
                    then = time.time()
                    self._cv.wait(timeout)
                    if timeout is not None:
                        timeout -= time.time() - then
                        if timeout <= 0.0:
                            raise PipeTimeout()
            out = self._take(nbytes)
            if not self._queued and self._event is not None and not self._closed:
                self._event.clear()
            return out

    def _take(self, nbytes: int) -> bytes:
        """Up to ``nbytes`` from the front; the caller holds the lock."""
        parts: list[bytes] = []
        wanted = min(nbytes, self._queued)
        while wanted:
            head = self._pieces[0]
            available = len(head) - self._head_used
            if available <= wanted:
                parts.append(head[self._head_used :] if self._head_used else head)
                self._pieces.popleft()
                self._head_used = 0
                taken = available
            else:
                parts.append(head[self._head_used : self._head_used + wanted])
                self._head_used += wanted
                taken = wanted
            self._queued -= taken
            wanted -= taken
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def empty(self) -> bytes:
        with self._lock:
            out = self._take(self._queued)
            if self._event is not None and not self._closed:
                self._event.clear()
            return out

    def __len__(self) -> int:
        with self._lock:
            return self._queued


class ExtensionsSFTPClient(paramiko.SFTPClient):
    """paramiko's SFTP client, keeping the extensions the server announces in its version packet.

    paramiko reads the server's version packet and drops the extension pairs that follow the version number;
    ``limits@openssh.com`` among them says how many bytes the server answers per read. This is the same
    exchange (SFTP version 3, draft-ietf-secsh-filexfer-02 section 4) with the pairs kept in
    ``server_extensions`` (name -> data)."""

    server_extensions: dict[str, bytes]

    def _send_version(self) -> int:
        request = paramiko.Message()
        request.add_int(3)
        self._send_packet(CMD_INIT, request)
        kind, data = self._read_packet()
        if kind != CMD_VERSION:
            raise SFTPError("Incompatible sftp protocol")
        answer = paramiko.Message(data)
        version = answer.get_int()
        extensions: dict[str, bytes] = {}
        while answer.get_remainder():
            name = answer.get_string().decode("utf-8", "replace")
            extensions[name] = answer.get_string()
        self.server_extensions = extensions
        return version


def open_sftp_client(transport: paramiko.Transport, window_size: int, max_packet_size: int) -> ExtensionsSFTPClient:
    """``SFTPClient.from_transport`` with the channel's receive buffer replaced before any answer arrives."""
    channel = transport.open_session(window_size=window_size, max_packet_size=max_packet_size)
    channel.in_buffer = ChunkQueuePipe()
    channel.invoke_subsystem("sftp")
    return ExtensionsSFTPClient(channel)
