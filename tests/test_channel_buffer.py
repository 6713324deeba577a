"""The channel receive buffer: paramiko's BufferedPipe semantics, without moving the queued bytes on each read."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from emulator_fixtures import start_emulator, stop_emulator
from paramiko.buffered_pipe import BufferedPipe, PipeTimeout
from workflow_helpers import emulator_config

from amsr2flow import config as settings
from amsr2flow.gportal.channel_buffer import ChunkQueuePipe
from amsr2flow.gportal.sftp import GPortalSFTP
from amsr2flow.gportal.source import Timeouts
from amsr2flow.run.connection import source_from


def test_reads_return_what_paramikos_pipe_returns_for_any_feeds_and_read_sizes() -> None:
    rng = random.Random(7)
    ours, theirs = ChunkQueuePipe(), BufferedPipe()
    for _ in range(2000):
        if rng.random() < 0.5:
            piece = rng.randbytes(rng.choice((0, 1, 5, 4096, 32768, 40000)))
            ours.feed(piece)
            theirs.feed(piece)
        elif len(theirs):
            wanted = rng.choice((1, 4, 13, 4096, 32768, 100_000))
            assert ours.read(wanted, timeout=0.0) == theirs.read(wanted, timeout=0.0)
        assert len(ours) == len(theirs)
        assert ours.read_ready() == theirs.read_ready()
    assert ours.empty() == theirs.empty()
    assert len(ours) == 0


def test_a_read_takes_only_the_bytes_it_returns() -> None:
    pipe = ChunkQueuePipe()
    pieces = [bytes([n]) * 32768 for n in range(100)]
    for piece in pieces:
        pipe.feed(piece)
    assert pipe.read(4) == b"\x00" * 4
    assert pipe.read(32768) == b"\x00" * 32764 + b"\x01" * 4
    # the 98 pieces behind the front one are the very objects fed: nothing queued was copied or moved
    assert all(queued is fed for queued, fed in zip(list(pipe._pieces)[1:], pieces[2:], strict=True))


def test_an_empty_pipe_waits_for_a_feed_and_times_out_without_one() -> None:
    pipe = ChunkQueuePipe()
    with pytest.raises(PipeTimeout):
        pipe.read(10, timeout=0.0)
    with pytest.raises(PipeTimeout):
        pipe.read(10, timeout=0.01)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read(10, timeout=30)))
    reader.start()
    pipe.feed(b"answer")
    reader.join(timeout=30)
    assert got == [b"answer"]


def test_closing_keeps_what_is_queued_then_reads_end() -> None:
    pipe = ChunkQueuePipe()
    event = threading.Event()
    pipe.set_event(event)
    assert not event.is_set()
    pipe.feed(b"last bytes")
    assert event.is_set()
    pipe.close()
    assert pipe.read(4) == b"last"
    assert pipe.read(100) == b" bytes"
    assert pipe.read(100) == b""  # closed and drained: end of stream, no wait
    assert event.is_set()


def test_the_event_is_cleared_once_the_pipe_is_drained() -> None:
    pipe = ChunkQueuePipe()
    event = threading.Event()
    pipe.feed(b"abc")
    pipe.set_event(event)
    assert event.is_set()
    assert pipe.read(3) == b"abc"
    assert not event.is_set()


def test_sessions_receive_through_it(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator")
    try:
        source = source_from(settings.validate(emulator_config(state, tmp_path), check_environment=False))
        with GPortalSFTP(source, Timeouts(10, 10, 10, 30)) as session:
            assert session.sftp is not None
            assert isinstance(session.sftp.get_channel().in_buffer, ChunkQueuePipe)
            assert session.list_names("/") is not None
    finally:
        stop_emulator(proc)
