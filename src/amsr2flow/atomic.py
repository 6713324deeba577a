"""Atomic, deterministic file writes: a temporary name in the same folder, fsync, then rename.

A crash (or SIGKILL) at any instant leaves either the old file or the new one under the final name, never a
half-written one; leftovers carry the ``.tmp-`` marker so the next run can sweep them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TMP_MARKER = ".tmp-"
#: Space kept free on every disk a job writes to, so that the ledger row, the stop flag and the interim report
#: saying the disk is full can still be written.
RESERVE_BYTES = 1 << 20


class NoSpace(RuntimeError):
    """A disk is (about to be) full: fatal for the run. The message names the folder and the space needed."""


def free_bytes(folder: str | os.PathLike[str]) -> int:
    """Free space of the file system holding ``folder`` (or its nearest existing parent)."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_free(folder: str | os.PathLike[str], needed: int, what: str) -> None:
    """Raise :class:`NoSpace` unless ``needed`` bytes (plus the reserve) are free where ``folder`` is."""
    free = free_bytes(folder)
    if free < needed + RESERVE_BYTES:
        raise NoSpace(
            f"no space for {what} in {folder}: it needs about {_mb(needed + RESERVE_BYTES)} and {_mb(free)} are free; "
            "free space there (or point the folder elsewhere) and rerun: nothing done so far is lost"
        )


def is_no_space(exc: BaseException) -> bool:
    """Whether an error is a full disk: ENOSPC/EDQUOT, or numpy's short write ("N requested and M written")."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, OSError) and "requested and" in str(exc) and "written" in str(exc)


def no_space(folder: str | os.PathLike[str], what: str, exc: BaseException) -> NoSpace:
    return NoSpace(
        f"the disk holding {folder} is full ({exc}) while writing {what}; free space there and rerun: "
        "nothing done so far is lost"
    )


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _file_mode() -> int:
    # mkstemp creates 0600; results are ordinary data files, so apply the usual umask to 0666.
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def temporary_beside(final: Path) -> tuple[int, Path]:
    """An open descriptor and path of a new temporary file next to ``final``, named so a sweep finds it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}{TMP_MARKER}", dir=final.parent)
    return fd, Path(name)


def temporary_folder_beside(final: Path) -> Path:
    """A new empty folder next to ``final``, named so a sweep finds it, created with the user's umask
    (``mkdtemp`` makes 0700 folders, which a group sharing the results could not read once renamed)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    while True:
        candidate = final.parent / f".{final.name}{TMP_MARKER}{secrets.token_hex(4)}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate


def commit(tmp: Path, final: Path) -> None:
    """Give the temporary file its final mode and name (it must be flushed and fsynced already)."""
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error removed."""
    final = Path(path)
    fd, tmp = temporary_beside(final)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        commit(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        yield fh


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def json_bytes(obj: Any) -> bytes:
    """Deterministic JSON: sorted keys, fixed separators, trailing newline."""
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_bytes(path, json_bytes(obj))


def write_if_changed(path: str | os.PathLike[str], data: bytes) -> bool:
    """Write only when the content differs, so an unchanged file keeps its mtime (no needless reruns)."""
    p = Path(path)
    if p.is_file() and p.read_bytes() == data:
        return False
    write_bytes(p, data)
    return True


def sweep_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove leftovers of killed writers below ``folder`` (files and staging folders); returns them."""
    root = Path(folder)
    if not root.is_dir():
        return []
    removed = []
    for p in sorted(root.rglob(f"*{TMP_MARKER}*")):
        if not p.exists():  # inside a staging folder removed just before
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        removed.append(p)
    return removed
