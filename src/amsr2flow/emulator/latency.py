"""A delay line in front of the SFTP server: every byte reaches the other side half a round trip late.

``--latency-ms 200`` makes a session on loopback cost what one to Tokyo does: each SSH handshake step, each
SFTP request and each window update waits for the round trip, while bandwidth stays unlimited (the line
buffers whatever is in flight, as a long fat pipe with large TCP windows does). So a session's rate is
bounded by what it keeps in flight per round trip (the SSH window, the read requests outstanding) and the
cost of opening sessions shows, which is what the benchmarks need to compare designs honestly.

No library does this in-process (``tc netem`` needs root and a network namespace): one thread per direction
reads, stamps each chunk with its due time, and a second thread per direction delivers it then.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import socket
import threading
import time

log = logging.getLogger(__name__)

READ_BYTES = 1 << 16


class DelayProxy:
    """Listens on 127.0.0.1 and forwards each connection to ``target_port``, ``round_trip_s / 2`` late each way."""

    def __init__(self, target_port: int, round_trip_s: float, stop: threading.Event) -> None:
        self.target_port = target_port
        self.one_way_s = round_trip_s / 2
        self.stop = stop
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]

    def start(self) -> None:
        threading.Thread(target=self._accept, name="latency-accept", daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError as exc:
                log.warning("latency proxy: cannot reach the SFTP server: %s", exc)
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(None)
            pair = _Pair(client, server)
            _Direction(client, server, self.one_way_s, self.stop, pair).start()
            _Direction(server, client, self.one_way_s, self.stop, pair).start()


class _Pair:
    """The two sockets of one connection, closed when both directions have ended."""

    def __init__(self, *sockets: socket.socket) -> None:
        self.sockets = sockets
        self.open_directions = 2
        self.lock = threading.Lock()

    def direction_done(self) -> None:
        with self.lock:
            self.open_directions -= 1
            last = self.open_directions == 0
        if last:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.close()


class _Direction:
    """Bytes from ``source`` to ``sink``, each chunk delivered ``delay_s`` after it arrived."""

    def __init__(
        self, source: socket.socket, sink: socket.socket, delay_s: float, stop: threading.Event, pair: _Pair
    ) -> None:
        self.source, self.sink, self.delay_s, self.stop, self.pair = source, sink, delay_s, stop, pair
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.ready = threading.Condition()

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._deliver, daemon=True).start()

    def _read(self) -> None:
        try:
            while not self.stop.is_set():
                chunk = self.source.recv(READ_BYTES)
                with self.ready:
                    self.queue.append((time.monotonic() + self.delay_s, chunk))
                    self.ready.notify()
                if not chunk:  # end of stream travels with the same delay
                    return
        except OSError:
            with self.ready:
                self.queue.append((time.monotonic() + self.delay_s, b""))
                self.ready.notify()

    def _deliver(self) -> None:
        try:
            while not self.stop.is_set():
                with self.ready:
                    while not self.queue:
                        self.ready.wait(0.5)
                        if self.stop.is_set():
                            return
                    due, chunk = self.queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # the delay itself, not a synchronisation
                if not chunk:
                    with contextlib.suppress(OSError):
                        self.sink.shutdown(socket.SHUT_WR)
                    return
                self.sink.sendall(chunk)
        except OSError:
            pass
        finally:
            self.pair.direction_done()
