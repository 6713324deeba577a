"""Link benchmark: one SFTP session's download rate over a modelled long link, old reader vs new, side by side.

    .venv/bin/python benchmarks/bench_link.py                  # 200 ms round trip, 4 full-size granules
    .venv/bin/python benchmarks/bench_link.py --latency-ms 50

The local G-Portal runs with ``--latency-ms`` (a delay line in front of its SFTP server: every byte half a
round trip late each way, bandwidth unlimited), so what bounds a session is what it keeps in flight per round
trip. Measured on the same granules in one run:

- ``prefetch, 2 MiB``: the reader before this change, paramiko's ``prefetch`` with its default SSH window;
- ``pipelined, 2 MiB``: the new reader (``gportal.sftp.RemoteRead``) with paramiko's window;
- ``pipelined, 16 MiB``: the new reader with the new default window (``transfer.ssh_window_mib``), and 64 MiB;
- ``64 KiB requests+packets``: ``transfer.sftp_request_kib`` and ``ssh_packet_kib`` at 64 instead of 32;
- ``one session``: a day job's way, all granules over one session, each stat then download, one by one or
  with the next granule's read started ahead (``GPortalSFTP.download(then=...)``);
- ``session open``: opening a session (TCP, SSH handshake, host key, login, SFTP), the cost a job pays per
  granule when sessions are not reused.

Bytes served by the service are compared with the bytes of the files (duplicate reads show as > 1.00).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from emulator_fixtures import read_stats, start_emulator, stop_emulator, wait_for_stats  # noqa: E402
from workflow_helpers import day_listing, emulator_config  # noqa: E402


def prefetch_download(session, remote_path: str, size: int) -> None:  # type: ignore[no-untyped-def]
    """The reader as it was: paramiko's prefetch, then reads of 1 MiB."""
    digest = hashlib.sha256()
    with session.sftp.open(remote_path, "rb") as remote:
        remote.prefetch(size)
        while chunk := remote.read(1 << 20):
            digest.update(chunk)


def main() -> int:
    from amsr2flow import config as settings
    from amsr2flow.gportal.sftp import GPortalSFTP
    from amsr2flow.gportal.source import Link, Timeouts
    from amsr2flow.run.connection import source_from

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--granules", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_link_"))
    proc, state = start_emulator(work / "emulator", "--latency-ms", str(args.latency_ms), scans=None)
    try:
        cfg = settings.validate(emulator_config(state, work), check_environment=False)
        source = source_from(cfg)
        listing = day_listing(source, args.granules)
        timeouts = Timeouts(30, 60, 60, 120)
        rows = []
        for label, link, reader in (
            ("prefetch, 2 MiB window", Link(window_bytes=2 << 20), "prefetch"),
            ("pipelined, 2 MiB window", Link(window_bytes=2 << 20), "pipelined"),
            ("pipelined, 16 MiB window", Link(), "pipelined"),
            ("pipelined, 64 MiB window", Link(window_bytes=64 << 20), "pipelined"),
            ("16 MiB, 64 KiB requests+packets", Link(max_packet_bytes=64 << 10, request_bytes=64 << 10), "pipelined"),
            ("one session, one by one", Link(), "session"),
            ("one session, next started ahead", Link(), "ahead"),
        ):
            served_before = read_stats(state)["bytes_served"]
            total_bytes, total_s, opens = 0, 0.0, []
            if reader in ("session", "ahead"):
                # a day job's way: one session for all, stat then download, the next read started ahead or not
                paths = [str(p) for p in listing["remote_path"]]
                with GPortalSFTP(source, timeouts, link) as session:
                    began = time.perf_counter()
                    for i, path in enumerate(paths):
                        then = paths[i + 1] if reader == "ahead" and i + 1 < len(paths) else None
                        session.download(path, work / "granule.h5", session.remote_size(path), then=then)
                    total_s = time.perf_counter() - began
                total_bytes = int(listing["size_bytes"].astype(int).sum())
            for _, row in listing.iterrows() if reader not in ("session", "ahead") else ():
                started = time.perf_counter()
                with GPortalSFTP(source, timeouts, link) as session:
                    opens.append(time.perf_counter() - started)
                    began = time.perf_counter()
                    if reader == "prefetch":
                        prefetch_download(session, row["remote_path"], int(row["size_bytes"]))
                    else:
                        session.download(row["remote_path"], work / "granule.h5", int(row["size_bytes"]))
                    total_s += time.perf_counter() - began
                total_bytes += int(row["size_bytes"])
            # the service writes its counters lazily: wait until this reader's bytes are all counted
            counted = wait_for_stats(state, lambda s, b=served_before, t=total_bytes: s["bytes_served"] - b >= t, 30)
            served = counted["bytes_served"] - served_before
            opened = sum(opens) / len(opens) if opens else float("nan")
            rows.append((label, total_bytes / total_s / 1e6, served / total_bytes, opened))
    finally:
        stop_emulator(proc)
    base = rows[0][1]
    print(f"{args.granules} full-size granules, {args.latency_ms:g} ms round trip (local G-Portal delay line)")
    print(f"{'reader':34s} {'MB/s':>7s} {'vs before':>10s} {'served/file':>12s} {'session open':>13s}")
    for label, rate, served, opened in rows:
        print(f"{label:34s} {rate:7.1f} {rate / base:10.2f} {served:12.3f} {opened:11.2f} s")
    print("(the one-session rows include each granule's stat; the others time the download alone)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
