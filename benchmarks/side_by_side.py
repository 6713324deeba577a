"""What the before/after benchmarks share: the before commit as a git worktree, the ``snakemake`` command a
design runs, and the other processes on the machine (a measurement needs them quiet).

Used by bench_day_jobs.py and bench_snakemake_overhead.py; each keeps its own policy of when the machine is
quiet enough, built on :func:`process_table` and :func:`descendants`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


# -- the before design ----------------------------------------------------------------------------------------
@contextmanager
def worktree_of(rev: str, parent: Path | None = None) -> Iterator[Path]:
    """A detached git worktree of ``rev`` in a temporary folder, removed afterwards (also on failure)."""
    path = Path(tempfile.mkdtemp(prefix="before-", dir=parent))
    path.rmdir()
    done = subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), rev], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"git worktree add {rev} failed: {done.stderr.strip()}")
    try:
        yield path
    finally:
        removed = subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], capture_output=True, text=True
        )
        if removed.returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], capture_output=True)


def snakemake_command(snakefile: Path, workdir: Path, *args: str) -> list[str]:
    """``snakemake`` as users run it, with the benchmark's config and no workflow profile."""
    return [
        str(SNAKEMAKE),
        "-s",
        str(snakefile),
        "--configfile",
        str(workdir / "config.yaml"),
        "--workflow-profile",
        "none",
        *args,
    ]


def stop_snakemake(proc: subprocess.Popen, grace_s: float) -> None:
    """Stop a snakemake started with ``start_new_session=True``, its jobs included: SIGINT, on which Snakemake
    stops cleanly (it ignores SIGTERM while jobs run), then SIGKILL if it is not gone within ``grace_s``."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- other processes ------------------------------------------------------------------------------------------
def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks used by the process and its reaped children), from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                table[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
            except (OSError, IndexError, ValueError):
                continue
    return table


def descendants(table: dict[int, tuple[int, int]], roots: set[int]) -> set[int]:
    """The roots and every process below them."""
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def family(table: dict[int, tuple[int, int]], pid: int) -> set[int]:
    """The process, its ancestors (below init) and its descendants."""
    found, p = descendants(table, {pid}), pid
    while p in table and table[p][0] > 1:
        p = table[p][0]
        found.add(p)
    return found


def what_runs(pid: int, pattern: str) -> str:
    """ "pid (word)": the word of ``pattern`` a process's command line matches, never the whole line (it may hold
    secrets)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"{pid} (gone)"
    found = re.search(pattern, cmdline)
    return f"{pid} ({found[0] if found else '?'})"
