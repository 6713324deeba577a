"""One SFTP session against the local G-Portal: every byte requested once, and the delay line that models the
round trip to Tokyo."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import date
from pathlib import Path

import pytest
from emulator_fixtures import read_stats, start_emulator, stop_emulator
from workflow_helpers import day_listing, emulator_config

from amsr2flow import config as settings
from amsr2flow.gportal.sftp import GPortalSFTP
from amsr2flow.gportal.source import Link, Timeouts
from amsr2flow.run.connection import source_from


@pytest.mark.parametrize("latency_ms", [0, 60])
def test_a_download_requests_each_byte_once_and_keeps_the_window_full(tmp_path: Path, latency_ms: int) -> None:
    """Before: paramiko's prefetch thread raced its reader, which then read the rest again one synchronous
    request at a time (16 % more bytes served on loopback, one round trip per 32 KiB over a long link)."""
    proc, state = start_emulator(tmp_path / "emulator", "--latency-ms", str(latency_ms))
    try:
        source = source_from(settings.validate(emulator_config(state, tmp_path), check_environment=False))
        rows = day_listing(source, 2)
        before = read_stats(state)["bytes_served"]  # 0: nothing was downloaded yet
        # a small window (64 KiB: two requests in flight) and a large one give the same bytes
        for link in (Link(window_bytes=64 << 10), Link()):
            for _, row in rows.iterrows():
                with GPortalSFTP(source, Timeouts(10, 10, 10, 30), link) as session:
                    target = tmp_path / f"{row['granule_id']}.h5"
                    download = session.download(row["remote_path"], target, int(row["size_bytes"]))
                assert download.size_bytes == int(row["size_bytes"]) == target.stat().st_size
                assert download.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    finally:
        stop_emulator(proc)  # its counters are final once it stopped (while it runs they are written lazily)
    served = read_stats(state)["bytes_served"] - before
    assert served == 2 * int(rows["size_bytes"].sum())  # no byte twice


def test_the_delay_line_costs_round_trips_not_bytes(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator", "--latency-ms", "150")
    try:
        assert state["latency_ms"] == 150
        source = source_from(settings.validate(emulator_config(state, tmp_path), check_environment=False))
        (row,) = (r for _, r in day_listing(source, 1).iterrows())
        started = time.monotonic()
        with GPortalSFTP(source, Timeouts(10, 10, 10, 30)) as session:
            opened = time.monotonic() - started
            session.download(row["remote_path"], tmp_path / "g.h5", int(row["size_bytes"]))
    finally:
        stop_emulator(proc)
    # TCP, the SSH key exchange, the login and the SFTP channel each wait for the round trip
    assert opened >= 4 * 0.150
    assert (tmp_path / "g.h5").stat().st_size == int(row["size_bytes"])


def test_the_next_file_read_started_ahead_gives_the_same_bytes_once(tmp_path: Path) -> None:
    """A day job starts the next granule's read when the current one is received (open, stat and a window of
    reads in flight while it extracts): every file arrives whole, each byte is served once, and a read started
    ahead that is not asked for next (a retry came first; the file is absent) costs nothing but its window."""
    from amsr2flow.emulator import orbit
    from amsr2flow.gportal.sftp import GranuleAbsent

    absent = orbit.granules_beginning_on(date(2024, 1, 1))[3].granule_id
    proc, state = start_emulator(
        tmp_path / "emulator", "--latency-ms", "20", "--faults", json.dumps({"granules": {absent: ["absent"]}})
    )
    try:
        source = source_from(settings.validate(emulator_config(state, tmp_path), check_environment=False))
        rows = [row for _, row in day_listing(source, 5).iterrows()]
        paths = [str(r["remote_path"]) for r in rows]
        with GPortalSFTP(source, Timeouts(10, 10, 10, 30)) as session:
            got = {}
            for i in (0, 1, 2):  # each started by the previous one; the third starts the absent fourth
                size = session.remote_size(paths[i])
                got[i] = session.download(paths[i], tmp_path / f"{i}.h5", size, then=paths[i + 1])
            with pytest.raises(GranuleAbsent):
                session.remote_size(paths[3])
            # a retry of the third file drops the read started for the fifth; the fifth is read afresh
            size = session.remote_size(paths[4])
            session.download(paths[4], tmp_path / "4.h5", size, then=paths[0])
            again = session.download(paths[2], tmp_path / "2b.h5", session.remote_size(paths[2]))
            fifth = session.download(paths[4], tmp_path / "4b.h5", size)
    finally:
        stop_emulator(proc)
    for i in (0, 1, 2):
        assert got[i].size_bytes == int(rows[i]["size_bytes"])
        assert got[i].sha256 == hashlib.sha256((tmp_path / f"{i}.h5").read_bytes()).hexdigest()
    assert (
        again.sha256 == got[2].sha256 and fifth.sha256 == hashlib.sha256((tmp_path / "4.h5").read_bytes()).hexdigest()
    )
    stats = read_stats(state)
    sizes = [int(r["size_bytes"]) for r in rows]
    # files 0-2 once, 4 twice (both asked for), 2 again; the read started for 0 at the end and dropped
    # served at most its window (the whole small file here)
    asked = sizes[0] + sizes[1] + 2 * sizes[2] + 2 * sizes[4]
    assert asked <= stats["bytes_served"] <= asked + sizes[0]
    assert stats["sftp_sessions"] == 1
