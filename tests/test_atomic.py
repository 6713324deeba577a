"""Atomic writes: nothing partial under a final name, leftovers findable, ordinary file modes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amsr2flow import atomic


def test_failed_write_leaves_old_content_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic.atomic_open(target) as fh:
        fh.write(b"half")
        raise RuntimeError("crash in the middle")
    assert target.read_bytes() == atomic.json_bytes({"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path: Path) -> None:
    atomic.write_bytes(tmp_path / "f", b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o666 & ~mask


def test_json_is_deterministic() -> None:
    assert atomic.json_bytes({"b": 1, "a": [2, 3]}) == atomic.json_bytes({"a": [2, 3], "b": 1})


def test_write_if_changed_keeps_mtime_of_unchanged_file(tmp_path: Path) -> None:
    target = tmp_path / "m.csv"
    assert atomic.write_if_changed(target, b"a,b\n")
    before = target.stat().st_mtime_ns
    assert not atomic.write_if_changed(target, b"a,b\n")
    assert target.stat().st_mtime_ns == before
    assert atomic.write_if_changed(target, b"a,c\n")


def test_sweep_removes_killed_writers_leftovers_only(tmp_path: Path) -> None:
    fd, leftover = atomic.temporary_beside(tmp_path / "archive.npz")
    os.close(fd)
    staging = tmp_path / "parts" / ".2024.tmp-x1"
    staging.mkdir(parents=True)
    (staging / "p_part_1of1.npz").write_bytes(b"z")
    atomic.write_bytes(tmp_path / "keep.npz", b"k")
    removed = atomic.sweep_temporaries(tmp_path)
    assert set(removed) == {leftover, staging}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["keep.npz", "parts"]
