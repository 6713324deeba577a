"""SFTP CPU per byte (issue 22): our session against OpenSSH's ``sftp`` on one OpenSSH server, side by side.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_sftp_cpu.py                  # ~5 minutes on 2 cores
    PYTHONPATH=src .venv/bin/python benchmarks/bench_sftp_cpu.py --only gcm       # rows naming gcm, quicker
    PYTHONPATH=src:/tmp/extra .venv/bin/python benchmarks/bench_sftp_cpu.py       # + libssh2's row, after
        .venv/bin/python -m pip install --target /tmp/extra ssh2-python

The server is OpenSSH's own (``apt-get install openssh-server``): ``sshd -i`` per connection behind a listener on
127.0.0.1 (own config, host key and client key made in a temporary folder under /dev/shm), serving files of
random bytes through ``/usr/lib/openssh/sftp-server``; its CPU per connection (sshd and sftp-server) comes from
wait4. The 100 ms round trip is ``amsr2flow.emulator.latency.DelayProxy`` in its own process (``tc netem`` is not
available in this container). Each client runs in its own process: ours builds ``GPortalSFTP`` as the product
does and calls ``download()`` (SHA-256 and all), its CPU is its process's user+sys over the downloads;
OpenSSH's ``sftp -b`` is measured by wait4 (with its ``ssh``) less an empty session. Every download is checked
against the served file's SHA-256. Rows run interleaved, ``--rounds`` times; the table gives medians and the CPU
the rest of the machine used meanwhile ("others", in cores): this machine is shared, read rows with a high
"others" with care.

Rows: the client as it was before issue 22 (``BEFORE``: paramiko's cipher order, AES-CTR first with an HMAC per
packet; Nagle's algorithm on; one write per 32 KiB read request) and as it is (AES-GCM first, TCP_NODELAY, read
requests written in batches), then one change at a time, sizes, the window, a receive buffer in paramiko's
packetizer (measured, not adopted), and asyncssh and libssh2 (ssh2-python, when importable) as other data paths.
The "before" and the receive buffer are patches applied in the child only (``PATCHES``).

What it showed when the three changes were prototyped (two full runs, 1-1.3 cores of the machine busy with
other work; see issue 22): with the old client, on loopback, our receive path fell behind sshd, whose CPU per
byte then grew ~10x (sshd + sftp-server 1.85 s per 100 MB against 0.2 for OpenSSH's client; perf: memmove and
page faults) and took the second core: 0.13-0.16 of OpenSSH's rate at 0.51-0.57 s CPU per 100 MB against its
0.25. With the three: 0.80-1.00 of OpenSSH's rate at 0.30-0.32 s; at 100 ms ~7x OpenSSH's sftp (its 2 MiB
window). The receive buffer saved nothing measurable on top; etm MACs nothing; bigger packets little (OpenSSH's
sshd sends ~32 KiB packets whatever the client allows); asyncssh about our CPU after the changes but half our
rate at 100 ms; libssh2 no gain. docs/performance.md has the adopted product's numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")


# -- the server ------------------------------------------------------------------------------------------------
class Server:
    """OpenSSH's sshd in inetd mode (``sshd -i``, one per connection) behind a listener on 127.0.0.1, serving
    ``served/`` to one key. Each connection's server CPU (sshd and its sftp-server) is read from wait4."""

    def __init__(self, work: Path, files: int, file_mb: int) -> None:
        self.work = work
        self.served = work / "served"
        self.served.mkdir(parents=True, exist_ok=True)
        self.files: list[tuple[str, int]] = []
        for i in range(files):
            path = self.served / f"granule_{i:02d}.h5"
            size = file_mb * 1_000_000 + 4321 * i  # not a multiple of any request size
            with open(path, "wb") as out:
                left = size
                while left:
                    out.write(os.urandom(min(left, 1 << 22)))
                    left -= min(left, 1 << 22)
            self.files.append((str(path), size))
        self.host_key = work / "ssh_host_ed25519_key"
        self.client_key = work / "client_ed25519"
        for key in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        shutil.copy(f"{self.client_key}.pub", work / "authorized_keys")
        listed = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{self.host_key}.pub"], capture_output=True, text=True
        )
        self.fingerprint = listed.stdout.split()[1]
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.config = work / "sshd_config"
        self.config.write_text(
            f"HostKey {self.host_key}\nPidFile none\nAuthorizedKeysFile {work}/authorized_keys\nStrictModes no\n"
            "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            f"PermitRootLogin prohibit-password\nLogLevel ERROR\nSubsystem sftp {SFTP_SERVER}\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # the privilege separation folder (Debian makes it at boot)
        checked = subprocess.run([str(SSHD), "-t", "-f", str(self.config)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"sshd -t: {checked.stderr.strip()}")
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.finished: list[tuple[float, float]] = []  # (user, sys) of each connection's server, as they end
        self.changed = threading.Condition()
        self.log = open(work / "sshd.log", "ab")  # noqa: SIM115 (open as long as the server)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            proc = subprocess.Popen(
                [str(SSHD), "-i", "-e", "-f", str(self.config)], stdin=conn, stdout=conn, stderr=self.log
            )
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        with self.changed:
            self.finished.append((ru.ru_utime, ru.ru_stime))
            self.changed.notify_all()

    def wait_finished(self, count: int, timeout: float = 30.0) -> list[tuple[float, float]]:
        """The CPU of the connections that ended after the first ``count``, once there are more than ``count``."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.finished) > count, timeout)
            return self.finished[count:]

    def close(self) -> None:
        self.listener.close()
        self.log.close()


class Proxy:
    """``amsr2flow.emulator.latency.DelayProxy`` in front of the server, in its own process (its CPU is not the
    client's): every byte half a round trip late each way, bandwidth unlimited."""

    def __init__(self, target_port: int, round_trip_ms: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--proxy", str(target_port), str(round_trip_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def run_proxy(target_port: int, round_trip_ms: float) -> None:
    import signal
    import threading

    from amsr2flow.emulator.latency import DelayProxy

    stop = threading.Event()
    proxy = DelayProxy(target_port, round_trip_ms / 1000, stop)
    proxy.start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    print(proxy.port, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    stop.set()
    proxy.close()


# -- one measurement, in its own process ------------------------------------------------------------------------
def child(spec: dict) -> dict:
    """Runs in the child: connect, then time the downloads; CPU is this process's (all threads) over them."""
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    client = spec["client"]
    if client == "ours":
        return child_ours(spec, out)
    if client == "asyncssh":
        return child_asyncssh(spec, out)
    if client == "ssh2":
        return child_ssh2(spec, out)
    raise ValueError(client)


def _usage() -> tuple[float, float, float, dict[str, float]]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), ru.ru_utime, ru.ru_stime, _thread_cpu()


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by thread name."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid, name in names.items():
        try:
            out[name] = process_cpu_s(tid, "/proc/self/task/{}/stat")
        except OSError:
            continue
    return out


def _result(before: tuple[float, float, float, dict[str, float]], nbytes: int, extra: dict | None = None) -> dict:
    after = _usage()
    threads = {name: cpu - before[3].get(name, 0.0) for name, cpu in after[3].items()}
    return {
        "seconds": after[0] - before[0],
        "user": after[1] - before[1],
        "sys": after[2] - before[2],
        "bytes": nbytes,
        "threads": threads,
        **(extra or {}),
    }


def child_ours(spec: dict, out: Path) -> dict:
    import paramiko

    from amsr2flow.gportal.host_keys import parse_pins
    from amsr2flow.gportal.sftp import GPortalSFTP
    from amsr2flow.gportal.source import Link, Source, Timeouts

    if spec.get("cipher"):
        paramiko.Transport._preferred_ciphers = (spec["cipher"],)
    if spec.get("mac"):
        paramiko.Transport._preferred_macs = (spec["mac"],)
    if spec.get("rekey_bytes"):  # paramiko rekeys after 512 MB: a day job's session does, every ~13 granules
        paramiko.packet.Packetizer.REKEY_BYTES = spec["rekey_bytes"]
    for name in spec.get("patches", ()):
        PATCHES[name]()
    source = Source(
        generation="current",
        catalogue_url="http://127.0.0.1:9/unused",
        sftp_host="127.0.0.1",
        sftp_port=spec["port"],
        host_keys=parse_pins([spec["fingerprint"]]),
        username=spec["user"],
        password=None,
        private_key_path=spec["key"],
        passphrase=None,
    )
    link = Link(
        window_bytes=spec.get("window", Link.window_bytes),
        max_packet_bytes=spec.get("packet", Link.max_packet_bytes),
        request_bytes=spec.get("request", Link.request_bytes),
    )
    with GPortalSFTP(source, Timeouts(30, 60, 60, 120), link) as session:
        assert session.transport is not None
        cipher = session.transport.remote_cipher
        mac = session.transport.remote_mac
        packetizer = session.transport.packetizer
        packets = packetizer._Packetizer__received_packets  # type: ignore[attr-defined]
        before = _usage()
        nbytes = 0
        files = spec["files"]
        for i, (remote, size) in enumerate(files):
            then = files[i + 1][0] if i + 1 < len(files) else None
            done = session.download(remote, out / Path(remote).name, size, then=then)
            nbytes += done.size_bytes
        packets = packetizer._Packetizer__received_packets - packets  # type: ignore[attr-defined]
        extra = {"cipher": cipher, "mac": "(aead)" if "gcm" in cipher else mac}
        if not spec.get("rekey_bytes"):  # the count starts again at each rekey
            extra["packets"] = packets
        result = _result(before, nbytes, extra)
    return result


def child_asyncssh(spec: dict, out: Path) -> dict:
    import asyncio

    import asyncssh

    async def run() -> dict:
        options = {}
        if spec.get("cipher"):
            options["encryption_algs"] = [spec["cipher"]]
        if spec.get("mac"):
            options["mac_algs"] = [spec["mac"]]
        async with (
            asyncssh.connect(
                "127.0.0.1",
                spec["port"],
                username=spec["user"],
                client_keys=[spec["key"]],
                known_hosts=None,
                window=spec.get("window", 16 << 20),
                max_pktsize=spec.get("packet", 32768),
                **options,
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            before = _usage()
            nbytes = 0
            for remote, size in spec["files"]:
                await sftp.get(
                    remote,
                    str(out / Path(remote).name),
                    block_size=spec.get("request", -1),
                    max_requests=spec.get("requests", -1),
                )
                nbytes += size
            cipher = conn.get_extra_info("recv_cipher")
            mac = conn.get_extra_info("recv_mac")
            return _result(before, nbytes, {"cipher": str(cipher), "mac": str(mac)})

    return asyncio.run(run())


def child_ssh2(spec: dict, out: Path) -> dict:
    """libssh2 through ssh2-python: its SFTP file reads pipeline by themselves (no request size or depth to set)."""
    from ssh2 import session as ssh2_session
    from ssh2.sftp import LIBSSH2_FXF_READ

    sock = socket.create_connection(("127.0.0.1", spec["port"]))
    session = ssh2_session.Session()
    if spec.get("cipher"):
        session.method_pref(ssh2_session.LIBSSH2_METHOD_CRYPT_CS, spec["cipher"])
        session.method_pref(ssh2_session.LIBSSH2_METHOD_CRYPT_SC, spec["cipher"])
    session.handshake(sock)
    session.userauth_publickey_fromfile(spec["user"], spec["key"])
    sftp = session.sftp_init()
    before = _usage()
    nbytes = 0
    for remote, _ in spec["files"]:
        with sftp.open(remote, LIBSSH2_FXF_READ, 0) as remote_file, open(out / Path(remote).name, "wb") as local:
            for rc, data in remote_file:
                if rc < 0:
                    raise OSError(f"ssh2 read failed: {rc}")
                local.write(data)
                nbytes += len(data)
    cipher = session.methods(ssh2_session.LIBSSH2_METHOD_CRYPT_SC)
    mac = session.methods(ssh2_session.LIBSSH2_METHOD_MAC_SC)
    return _result(before, nbytes, {"cipher": cipher, "mac": mac})


# -- the client as it was before issue 22, and a change not adopted (applied in the child only) -----------------
def patch_ctr_first() -> None:
    """paramiko's own cipher order (AES-CTR first, with an HMAC per packet), as before AES-GCM came first."""
    from amsr2flow.gportal import sftp

    sftp.AEAD_CIPHERS = ()  # type: ignore[misc]


def patch_nagle() -> None:
    """The session's socket without TCP_NODELAY: small request packets wait for the previous segment's
    acknowledgement (Nagle's algorithm), as before."""
    from amsr2flow.gportal import sftp

    class NagleSocket(socket.socket):
        def setsockopt(self, level: int, option: int, value: object) -> None:  # type: ignore[override]
            if (level, option) != (socket.IPPROTO_TCP, socket.TCP_NODELAY):
                super().setsockopt(level, option, value)  # type: ignore[call-overload]

    def create_connection(address: tuple[str, int], timeout: float | None = None) -> socket.socket:
        sock = NagleSocket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
        return sock

    sftp.socket.create_connection = create_connection  # type: ignore[assignment]


def patch_one_write_per_request() -> None:
    """Each read request built and written by paramiko's ``_async_request`` on its own (one SSH packet and one
    ``send`` per 32 KiB request), as before requests went out in batches."""
    import paramiko

    from amsr2flow.gportal.sftp import RemoteRead

    def _ask(self: RemoteRead, ranges: list[tuple[int, int]]) -> None:
        for offset, length in ranges:
            number = self.client._async_request(
                self.answers, paramiko.sftp.CMD_READ, self.handle, paramiko.sftp.int64(offset), length
            )
            self.pending.append((number, offset, length))

    def _request_more(self: RemoteRead, limit: int | None = None) -> None:
        limit = self.in_flight if limit is None else limit
        while self.next_offset < self.size and len(self.pending) < limit:
            length = min(self.request_bytes, self.size - self.next_offset)
            self._ask([(self.next_offset, length)])
            self.next_offset += length

    RemoteRead._ask = _ask  # type: ignore[method-assign]
    RemoteRead._request_more = _request_more  # type: ignore[method-assign]


def patch_receive_buffer() -> None:
    """``Packetizer.read_all`` reading the socket in 256 KiB pieces into a buffer that packets are cut from, instead
    of one ``recv`` per packet part grown by ``out += x``: fewer system calls and copies per SSH packet (measured,
    not adopted: no gain on top of the others, and it patches paramiko's name-mangled packetizer state)."""

    import errno

    from paramiko import packet

    def read_all(self: packet.Packetizer, n: int, check_rekey: bool = False) -> bytes:
        state = self.__dict__
        buf = state.get("_rx")
        if buf is None:
            buf = state["_rx"] = bytearray(self._Packetizer__remainder)  # type: ignore[attr-defined]
            self._Packetizer__remainder = b""  # type: ignore[attr-defined]
            state["_rx_pos"] = 0
        pos = state["_rx_pos"]
        sock = self._Packetizer__socket  # type: ignore[attr-defined]
        while len(buf) - pos < n:
            if self.handshake_timed_out():
                raise EOFError()
            try:
                got = sock.recv(max(n, 1 << 18))
            except TimeoutError:
                got = None
            except OSError as exc:
                if exc.errno != errno.EAGAIN:
                    if self._Packetizer__closed:  # type: ignore[attr-defined]
                        raise EOFError() from exc
                    raise
                got = None
            if got is None:
                if self._Packetizer__closed:  # type: ignore[attr-defined]
                    raise EOFError()
                if check_rekey and len(buf) == pos and self._Packetizer__need_rekey:  # type: ignore[attr-defined]
                    raise packet.NeedRekeyException()
                self._check_keepalive()
                continue
            if not got:
                raise EOFError()
            if pos:
                del buf[:pos]  # what is left is less than one packet part
                pos = 0
            buf += got
        with memoryview(buf) as view:
            out = bytes(view[pos : pos + n])
        pos += n
        if pos == len(buf):
            buf.clear()
            pos = 0
        state["_rx_pos"] = pos
        return out

    packet.Packetizer.read_all = read_all  # type: ignore[method-assign]


PATCHES = {
    "ctr_first": patch_ctr_first,
    "nagle": patch_nagle,
    "one_write_per_request": patch_one_write_per_request,
    "receive_buffer": patch_receive_buffer,
}


# -- measuring -------------------------------------------------------------------------------------------------
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all cores have been busy since boot (``/proc/stat``)."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def process_cpu_s(pid: int, stat_path: str = "/proc/{}/stat") -> float:
    with open(stat_path.format(pid)) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def wait_quiet(cores: float = 0.3, patience_s: float = 5.0) -> float:
    """Wait (up to ``patience_s``) until the other processes of the machine use less than ``cores``; returns
    what they used over the last half second."""
    deadline = time.monotonic() + patience_s
    while True:
        before = machine_busy_s()
        time.sleep(0.5)
        used = (machine_busy_s() - before) / 0.5
        if used < cores or time.monotonic() > deadline:
            return used


class Bench:
    """The server, its delay line, the files' hashes; runs one client configuration and checks what it wrote."""

    def __init__(self, work: Path, files: int, file_mb: int, round_trip_ms: float) -> None:
        self.work = work
        self.server = Server(work, files, file_mb)
        self.proxy = Proxy(self.server.port, round_trip_ms) if round_trip_ms > 0 else None
        self.hashes = {Path(remote).name: _sha256(Path(remote)) for remote, _ in self.server.files}
        self.connect_cost: dict[str, dict] = {}

    def port(self, link: str) -> int:
        if link == "loopback":
            return self.server.port
        assert self.proxy is not None
        return self.proxy.port

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
        self.server.close()

    def run(self, client: str, link: str, options: dict) -> dict:
        """One measurement: client CPU (its process, all threads), server CPU (sshd and sftp-server of the
        connection), what else ran on the machine meanwhile (cores), rate; the downloads are checked."""
        out = self.work / "downloads"
        shutil.rmtree(out, ignore_errors=True)
        options = dict(options)
        files = self.server.files[: options.pop("files", len(self.server.files))]
        quiet = wait_quiet()
        count = len(self.server.finished)
        busy, proxy_cpu = machine_busy_s(), self._proxy_cpu()
        if client == "openssh":
            result = run_openssh(self.server, self.port(link), files, out, options.get("args", []))
        else:
            spec = {
                "client": client,
                "port": self.port(link),
                "fingerprint": self.server.fingerprint,
                "user": self.server.user,
                "key": str(self.server.client_key),
                "files": files,
                "out": str(out),
                **options,
            }
            result = run_python_child(spec)
        server = self.server.wait_finished(count)
        busy, proxy_cpu = machine_busy_s() - busy, self._proxy_cpu() - proxy_cpu
        result["server"] = sum(u + s for u, s in server)
        result["proxy"] = proxy_cpu
        # what the rest of the machine used while the client ran, in cores (the others, not this benchmark)
        used = result["wall"]
        result["others"] = max(0.0, busy - result["whole"] - result["server"] - proxy_cpu) / used
        result["quiet_before"] = quiet
        for name, size in ((Path(remote).name, size) for remote, size in files):
            got = out / name
            if got.stat().st_size != size or _sha256(got) != self.hashes[name]:
                raise RuntimeError(f"{client} {options}: {name} arrived wrong")
        shutil.rmtree(out, ignore_errors=True)
        return result

    def _proxy_cpu(self) -> float:
        return process_cpu_s(self.proxy.proc.pid) if self.proxy is not None else 0.0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def run_python_child(spec: dict) -> dict:
    """A Python client in its own process; ``whole`` is its process's CPU from wait4 (with start-up and
    connect), ``user``/``sys`` its CPU over the downloads alone, as it measured them."""
    errors = Path(spec["out"]).parent / "child.err"
    started = time.perf_counter()
    with open(errors, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", json.dumps(spec)], stdout=subprocess.PIPE, stderr=err
        )
        assert proc.stdout is not None
        stdout = proc.stdout.read().decode()
        proc.stdout.close()
        _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"child {spec['client']} failed: {errors.read_text()[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["wall"] = wall
    result["whole"] = ru.ru_utime + ru.ru_stime
    return result


def run_openssh(server: Server, port: int, files: list[tuple[str, int]], out: Path, options: list[str]) -> dict:
    """OpenSSH's ``sftp`` in batch mode; its CPU (with its ``ssh``'s, which it reaps) from wait4. The connect-only
    cost (an empty batch) is subtracted by the caller."""
    out.mkdir(parents=True, exist_ok=True)
    batch = out.parent / "batch"
    batch.write_text("".join(f"get {remote} {out / Path(remote).name}\n" for remote, _ in files) or "pwd\n")
    command = [
        "sftp",
        "-q",
        "-b",
        str(batch),
        "-i",
        str(server.client_key),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        *options,
        "-P",
        str(port),
        f"{server.user}@127.0.0.1",
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    error = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"sftp failed: {error}")
    cpu = ru.ru_utime + ru.ru_stime
    return {
        "seconds": seconds,
        "user": ru.ru_utime,
        "sys": ru.ru_stime,
        "bytes": sum(s for _, s in files),
        "wall": seconds,
        "whole": cpu,
    }


# -- the rows ---------------------------------------------------------------------------------------------------
GCM128, GCM256 = "aes128-gcm@openssh.com", "aes256-gcm@openssh.com"
MAX_READ = 261120  # the most OpenSSH's sftp-server answers per read (SFTP_MAX_MSG_LENGTH - 1024)
BEFORE = ["ctr_first", "nagle", "one_write_per_request"]  # the client before issue 22's three changes

LOOPBACK_ROWS: list[tuple[str, str, dict]] = [
    ("OpenSSH sftp: defaults (-B 32768 -R 64)", "openssh", {}),
    ("OpenSSH sftp: -B 261120 -R 64", "openssh", {"args": ["-B", str(MAX_READ)]}),
    ("ours: before (ctr first, Nagle, a write per request)", "ours", {"patches": BEFORE}),
    ("ours: product defaults (gcm, nodelay, batched)", "ours", {}),
    ("ours: defaults, aes128-ctr only", "ours", {"cipher": "aes128-ctr"}),
    ("ours: defaults, aes256-gcm only", "ours", {"cipher": GCM256}),
    ("ours: defaults, Nagle", "ours", {"patches": ["nagle"]}),
    ("ours: defaults, a write per request", "ours", {"patches": ["one_write_per_request"]}),
    ("ours: defaults + receive buffer", "ours", {"patches": ["receive_buffer"]}),
    ("ours: defaults, window 2 MiB", "ours", {"window": 2 << 20}),
    ("ours: defaults, packet 64 KiB + request 64 KiB", "ours", {"packet": 64 << 10, "request": 64 << 10}),
    ("ours: defaults, packet 256 KiB + request 256 KiB", "ours", {"packet": 256 << 10, "request": 256 << 10}),
    ("ours: defaults, rekeyed every 8 MB (a check)", "ours", {"rekey_bytes": 8 << 20}),
    ("asyncssh: defaults (chacha20, 255 KiB x 16, 2 MiB)", "asyncssh", {"window": 2 << 20}),
    ("asyncssh: aes128-gcm, 255 KiB x 64, 16 MiB", "asyncssh", {"cipher": GCM128, "requests": 64}),
    ("asyncssh: aes128-gcm, 32 KiB x 512, 16 MiB", "asyncssh", {"cipher": GCM128, "request": 32768, "requests": 512}),
    ("ssh2-python (libssh2): defaults", "ssh2", {}),
]
DELAYED_ROWS: list[tuple[str, str, dict]] = [
    ("OpenSSH sftp: defaults (-B 32768 -R 64)", "openssh", {}),
    ("ours: before (ctr first, Nagle, a write per request)", "ours", {"patches": BEFORE}),
    ("ours: product defaults (gcm, nodelay, batched)", "ours", {}),
    ("ours: defaults, packet 256 KiB + request 256 KiB", "ours", {"packet": 256 << 10, "request": 256 << 10}),
    ("asyncssh: aes128-gcm, 255 KiB x 64, 16 MiB", "asyncssh", {"cipher": GCM128, "requests": 64}),
]


def available(client: str) -> bool:
    if client == "ssh2":
        try:
            import ssh2.session  # noqa: F401
        except ImportError:
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--proxy", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--files", type=int, default=3, help="files fetched on loopback (default 3)")
    parser.add_argument("--file-mb", type=int, default=40, help="size of each (default 40 MB, a granule's)")
    parser.add_argument("--delayed-files", type=int, default=2, help="files fetched at --latency-ms (default 2)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="round trip of the delay line (0: none)")
    parser.add_argument("--rounds", type=int, default=3, help="each row this many times, interleaved (median)")
    parser.add_argument("--only", default="", help="rows whose label contains this text (and OpenSSH's defaults)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if args.proxy:
        run_proxy(int(args.proxy[0]), float(args.proxy[1]))
        return 0
    tools = ((SSHD, "openssh-server"), (SFTP_SERVER, "openssh-sftp-server"), (Path("/usr/bin/sftp"), "openssh-client"))
    for tool, package in tools:
        if not tool.exists():
            print(f"{tool} is missing: apt-get install {package}")
            return 2
    return run(args)


def run(args: argparse.Namespace) -> int:
    import statistics

    work = Path(tempfile.mkdtemp(prefix="bench_sftp_cpu_", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    links = [("loopback", LOOPBACK_ROWS, args.files)]
    if args.latency_ms > 0:
        links.append((f"{args.latency_ms:g} ms", DELAYED_ROWS, args.delayed_files))
    plan = [
        (link, label, client, options, files)
        for link, rows, files in links
        for label, client, options in rows
        if available(client) and (args.only in label or label == rows[0][0])
    ]
    print(versions())
    print(
        f"{args.files} files of {args.file_mb} MB served by OpenSSH's sshd + sftp-server on 127.0.0.1; "
        f"{len(plan)} rows x {args.rounds} rounds; the others' CPU (cores) is what the rest of the machine used"
    )
    bench = Bench(work, args.files, args.file_mb, args.latency_ms)
    results: dict[tuple[str, str], list[dict]] = {}
    errors: dict[tuple[str, str], str] = {}
    try:
        for round_number in range(args.rounds):
            connect = {}
            for link, _, _ in links:  # what an empty sftp session costs, subtracted from OpenSSH's rows
                connect[link] = bench.run("openssh", bench_link(link), {"files": 0})
            for link, label, client, options, files in plan:
                key = (link, label)
                if key in errors:
                    continue
                try:
                    got = bench.run(client, bench_link(link), {**options, "files": files})
                except Exception as exc:  # a row that cannot run is reported, the others go on
                    errors[key] = str(exc).strip().splitlines()[-1][:100]
                    continue
                base = connect[link]
                got["server"] = max(0.0, got["server"] - base["server"])
                if client == "openssh":
                    got["seconds"] -= base["wall"]
                    got["user"] -= base["user"]
                    got["sys"] -= base["sys"]
                results.setdefault(key, []).append(got)
                print(
                    f"  round {round_number + 1} {link:9s} {label:50s} {mb_s(got):6.0f} MB/s "
                    f"{cpu_per_100mb(got):5.2f} s/100MB server {got['server'] * 1e8 / got['bytes']:5.2f} "
                    f"others {got['others']:4.2f}",
                    flush=True,
                )
    finally:
        bench.close()
        shutil.rmtree(work, ignore_errors=True)
    print()
    header = (
        f"{'link':9s} {'configuration':50s} {'MB/s':>6s} {'best':>6s} {'x sftp':>6s} {'CPU s/100MB':>11s} "
        f"{'x sftp':>6s} {'main/other':>10s} {'server':>6s} {'others':>6s} {'KB/pkt':>6s}  negotiated"
    )
    print(header)
    print("-" * len(header))
    reference: dict[str, tuple[float, float]] = {}
    ratios: dict[tuple[str, str], float] = {}
    for link, label, _, _, _ in plan:
        key = (link, label)
        if key in errors:
            print(f"{link:9s} {label:50s} failed: {errors[key]}")
            continue
        runs = results[key]
        rate = statistics.median(mb_s(r) for r in runs)
        best = max(mb_s(r) for r in runs)
        cpu = statistics.median(cpu_per_100mb(r) for r in runs)
        server = statistics.median(r["server"] * 1e8 / r["bytes"] for r in runs)
        others = max(r["others"] for r in runs)
        reference.setdefault(link, (rate, cpu))
        ref_rate, ref_cpu = reference[link]
        ratios[key] = rate / ref_rate
        negotiated = " ".join(x for x in (runs[0].get("cipher", ""), runs[0].get("mac", "")) if x)
        split = ""
        if all("threads" in r for r in runs):  # the main thread's CPU / the other threads' (paramiko's transport)
            main = statistics.median(r["threads"].get("MainThread", 0.0) * 1e8 / r["bytes"] for r in runs)
            other = statistics.median(
                sum(v for k, v in r["threads"].items() if k != "MainThread") * 1e8 / r["bytes"] for r in runs
            )
            split = f"{main:.2f}/{other:.2f}"
        packet = (
            f"{statistics.median(r['bytes'] / r['packets'] for r in runs) / 1e3:6.1f}" if "packets" in runs[0] else ""
        )
        print(
            f"{link:9s} {label:50s} {rate:6.0f} {best:6.0f} {rate / ref_rate:6.2f} {cpu:11.2f} {cpu / ref_cpu:6.2f} "
            f"{split:>10s} {server:6.2f} {others:6.2f} {packet:>6s}  {negotiated}"
        )
    print(
        "\nMB/s: median over the rounds (best: the fastest); x sftp: against OpenSSH's sftp defaults on the same link; "
        "CPU: user+sys of the client's process over the downloads (OpenSSH: sftp with its ssh, less an empty session); "
        "main/other: the Python client's main thread / its other threads (paramiko's transport), s/100MB; "
        "server: sshd + sftp-server of the connection, less an empty session's; others: the most CPU (cores) the rest "
        "of the machine used during a run of the row; KB/pkt: data bytes per SSH packet received (paramiko)."
    )
    delayed = [link for link, _, _ in links if link != "loopback"]
    print("\nIssue 22's goal (>= 0.5 of OpenSSH's loopback rate, median; ahead of it at the delayed link):")
    for (link, label), ratio in ratios.items():
        if link == "loopback" and label.startswith("ours"):
            ahead = [ratios.get((d, label)) for d in delayed]
            there = ", ".join(f"{d}: {r:.1f}x" for d, r in zip(delayed, ahead, strict=True) if r is not None)
            met = ratio >= 0.5 and all(r is None or r > 1 for r in ahead)
            print(f"  {'met    ' if met else 'not met'} {label} (loopback {ratio:.2f}{'; ' + there if there else ''})")
    return 1 if errors and not results else 0


def bench_link(link: str) -> str:
    return "loopback" if link == "loopback" else "delayed"


def mb_s(result: dict) -> float:
    return result["bytes"] / 1e6 / max(result["seconds"], 1e-9)


def cpu_per_100mb(result: dict) -> float:
    return (result["user"] + result["sys"]) * 1e8 / max(result["bytes"], 1)


def versions() -> str:
    import importlib.metadata

    found = []
    for name in ("paramiko", "asyncssh", "ssh2-python", "cryptography"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    openssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    return f"Python {sys.version.split()[0]}; {', '.join(found)}; {openssh} (client and server); {os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main())
