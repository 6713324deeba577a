"""Short reads: what a 256 KiB request costs against 32 KiB on servers that answer less, side by side.

    .venv/bin/python benchmarks/bench_short_reads.py            # needs root and Debian's openssh-server
    .venv/bin/python benchmarks/bench_short_reads.py --mib 128 --latency-ms 100

Two servers nobody here wrote (tests/independent_sftp.py), each at 0 ms and at ``--latency-ms`` round trip
(the local G-Portal's delay line in front of it):

- ``OpenSSH``: sshd with internal-sftp answers at most 261,120 bytes per read and says so in
  ``limits@openssh.com``, so a session asks for that much instead of 256 KiB;
- ``short, no limit said``: asyncssh answering at most 100,000 bytes per read while its
  ``limits@openssh.com`` says 4 MiB, so the session learns the size from the first short answers (their rest
  asked for behind the requests in flight).

Before this reader (issue 22), every short answer's rest was asked for synchronously: 2.4 MB/s against
80.5 MB/s at 100 ms (33x slower). Goal: any ``sftp_request_kib`` keeps >= 0.9 of the 32 KiB rate at 100 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from independent_sftp import AsyncSSHServer, OpenSSHServer, openssh_available  # noqa: E402

from amsr2flow.emulator.keys import load_or_create_client_key  # noqa: E402
from amsr2flow.emulator.latency import DelayProxy  # noqa: E402
from amsr2flow.gportal import host_keys  # noqa: E402
from amsr2flow.gportal.sftp import Connection  # noqa: E402
from amsr2flow.gportal.source import Link, Source, Timeouts  # noqa: E402

REMOTE = "/data/big.bin"


def rate(
    port: int, pins: list[str], key: Path, user: str, request_kib: int, size: int, work: Path
) -> tuple[float, int]:
    """MB/s of one download over a fresh session (session opening not counted), and the request size used."""
    source = Source("current", "", "127.0.0.1", port, host_keys.parse_pins(pins), user, None, str(key), None)
    connection = Connection(source, Timeouts(10, 10, 10, 60), Link(request_bytes=request_kib << 10))
    with connection.session() as session:
        started = time.perf_counter()
        session.download(REMOTE, work / "copy", size)
        seconds = time.perf_counter() - started
        used = session.request_bytes
    (work / "copy").unlink()
    return size / seconds / 1e6, used


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="file size, MiB (default 64)")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--repeats", type=int, default=2, help="best of N downloads per cell (default 2)")
    args = parser.parse_args()
    why_not = openssh_available()
    if why_not:
        print(f"skipped: {why_not}")
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench_short_reads_"))
    _, key, public = load_or_create_client_key(work)
    data = os.urandom(args.mib << 20)
    size = len(data)
    print(f"file {size / 1e6:.1f} MB (sha256 {hashlib.sha256(data).hexdigest()[:12]}), best of {args.repeats}")
    rows = []
    stop = threading.Event()
    with OpenSSHServer(public) as openssh, AsyncSSHServer(work / "root", public, read_cap=100_000) as short:
        for root in (openssh.root, work / "root"):
            (root / "data").mkdir(parents=True, exist_ok=True)
            (root / REMOTE.lstrip("/")).write_bytes(data)
        servers = [("OpenSSH (limits 261,120)", openssh.port, openssh.pins(), "root")]
        servers.append(("short 100,000, no limit said", short.port, short.pins(), "bench"))
        for name, port, pins, user in servers:
            for latency in (0.0, args.latency_ms):
                proxy = None
                if latency:
                    proxy = DelayProxy(port, latency / 1000, stop)
                    proxy.start()
                cells = {}
                for request_kib in (32, 256):
                    results = [
                        rate(proxy.port if proxy else port, pins, key, user, request_kib, size, work)
                        for _ in range(args.repeats)
                    ]
                    cells[request_kib] = (max(r for r, _ in results), results[-1][1])
                if proxy:
                    proxy.close()
                rows.append((name, latency, cells))
                print(f"  {name:30} {latency:5.0f} ms: {cells[32][0]:7.1f} | {cells[256][0]:7.1f} MB/s", flush=True)
    stop.set()
    print()
    print(f"{'server':30} {'RTT':>6} {'32 KiB':>9} {'256 KiB':>9} {'asked':>9} {'256/32':>7}  goal >= 0.9 at RTT")
    for name, latency, cells in rows:
        ratio = cells[256][0] / cells[32][0]
        verdict = ("met" if ratio >= 0.9 else "MISSED") if latency else ""
        print(
            f"{name:30} {latency:4.0f}ms {cells[32][0]:7.1f}MB/s {cells[256][0]:7.1f}MB/s {cells[256][1]:>9} "
            f"{ratio:7.2f}  {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
