"""Start the local G-Portal in a subprocess for tests: ``start_emulator``/``stop_emulator`` and fixtures.

The service runs as ``python -m amsr2flow.emulator --state <dir>/state.json ...`` exactly as users run it;
the helpers wait for its state file (polling with a deadline, no fixed sleeps) and stop it with SIGTERM.

    proc, state = start_emulator(tmp_path, "--scans", "16", "--faults", json.dumps(spec))
    ...
    stop_emulator(proc)

Granules a service generated are kept in a pool of the test process (one per pytest-xdist worker) when it stops,
and hard-linked into the cache of every later service before it starts: generation is deterministic (the cache
folder is named by seed, scans, byte order and generator version) and costs ~0.14 s of CPU per 16-scan granule,
~4 s per day, which every test starting a service paid again in its first catalogue request. conftest.py turns
the pool on for the session; the tests of the service itself (test_emulator_*.py: its generation, its cache) turn
it off for their module (``fresh_granules``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

#: Small granules keep tests fast; pass other ``--scans`` explicitly to override.
DEFAULT_SCANS = 16
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
SIZES_INDEX = "sizes.json"  # the cache's size index (emulator/store.py), one per cache folder

#: The granule pool (see the module's docstring), or None: services generate their own granules.
_granule_pool: Path | None = None
#: The cache folder of each running service started with the pool, by PID: harvested when it stops.
_caches: dict[int, Path] = {}


@contextmanager
def granule_pool(pool: Path | None) -> Iterator[None]:
    """Use ``pool`` (None: no pool) for the services started inside the block."""
    global _granule_pool
    before, _granule_pool = _granule_pool, pool
    try:
        yield
    finally:
        _granule_pool = before


@pytest.fixture(scope="module")
def fresh_granules() -> Iterator[None]:
    """No pool for a module (``pytestmark = pytest.mark.usefixtures("fresh_granules")``, set up before its other
    fixtures): each of its services generates its own granules."""
    with granule_pool(None):
        yield


def _read_sizes(folder: Path) -> dict[str, int]:
    try:
        raw = json.loads((folder / SIZES_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def _write_sizes(folder: Path, sizes: dict[str, int]) -> None:
    tmp = folder / f".{SIZES_INDEX}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(sizes, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, folder / SIZES_INDEX)


def _link_granules(source: Path, target: Path) -> None:
    """Hard-link the granules ``source``'s index lists (whole files of the listed size) into ``target`` and add
    them to its index; granules ``target`` has already are left as they are."""
    offered = _read_sizes(source)
    held = _read_sizes(target)
    new = {}
    for name, size in offered.items():
        if name in held or (target / name).exists():
            continue
        try:
            if (source / name).stat().st_size != size:
                continue
            target.mkdir(parents=True, exist_ok=True)
            os.link(source / name, target / name)
        except (FileNotFoundError, FileExistsError):
            continue
        new[name] = size
    if new:
        _write_sizes(target, {**held, **new})


def _folders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


def _data_dir(tmp: Path, args: list[str]) -> Path:
    """The service's data folder, as the service resolves it (its working folder is ``tmp``)."""
    if "--data-dir" in args:
        return tmp / args[args.index("--data-dir") + 1]
    return tmp / "emulator-data"


def read_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.02, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; raise TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        return read_json(path)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def start_emulator(
    tmp_dir: str | Path, *extra_args: str, scans: int | None = DEFAULT_SCANS, timeout: float = START_TIMEOUT_S
):
    """Start the emulator writing its state into ``tmp_dir``; returns ``(Popen, state dict)``.

    ``--scans <scans>`` (16: small, fast granules) is added unless ``scans`` is None (full-size granules) or
    ``extra_args`` has ``--scans`` or ``--serve-dir``; ``--log`` goes to ``tmp_dir/emulator.log`` unless given.
    The process's stdout/stderr go to ``tmp_dir/emulator.out``.
    """
    tmp = Path(tmp_dir)
    tmp.mkdir(parents=True, exist_ok=True)
    state_path = tmp / "state.json"
    state_path.unlink(missing_ok=True)
    args = list(extra_args)
    if scans is not None and "--scans" not in args and "--serve-dir" not in args:
        args += ["--scans", str(scans)]
    if "--log" not in args:
        args += ["--log", str(tmp / "emulator.log")]
    cache = None
    if _granule_pool is not None and "--serve-dir" not in args:
        cache = _data_dir(tmp, args) / "cache"
        for variant in _folders(_granule_pool):
            _link_granules(variant, cache / variant.name)
    out = open(tmp / "emulator.out", "wb")  # noqa: SIM115 - the child owns it for its lifetime
    proc = subprocess.Popen(
        [sys.executable, "-m", "amsr2flow.emulator", "--state", str(state_path), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )
    out.close()
    if cache is not None:
        _caches[proc.pid] = cache
    deadline = time.monotonic() + timeout
    while (state := _read_state(state_path)) is None:
        if proc.poll() is not None:
            output = (tmp / "emulator.out").read_text(errors="replace")
            raise RuntimeError(f"emulator exited with {proc.returncode} before writing its state:\n{output}")
        if time.monotonic() > deadline:
            stop_emulator(proc)
            raise TimeoutError(f"emulator wrote no state file within {timeout} s")
        time.sleep(0.02)
    return proc, state


def stop_emulator(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM, wait (killing it if it does not stop in time); returns the exit code."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    cache = _caches.pop(proc.pid, None)
    if cache is not None and _granule_pool is not None and cache.is_dir():
        for variant in _folders(cache):
            _link_granules(variant, _granule_pool / variant.name)
    return proc.returncode


def read_stats(state: dict[str, Any]) -> dict[str, Any]:
    return read_json(state["stats_path"])


def wait_for_stats(state: dict[str, Any], predicate: Callable[[dict], bool], timeout: float = 5.0) -> dict:
    """Stats once ``predicate(stats)`` holds (the file is rewritten at most every 0.2 s)."""

    def check() -> dict | None:
        try:
            stats = read_stats(state)
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return stats if predicate(stats) else None

    return wait_for(check, timeout, what="emulator stats")


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A fault-free emulator with small granules; yields its state dict."""
    proc, state = start_emulator(tmp_path / "emulator")
    try:
        yield state
    finally:
        stop_emulator(proc)


@pytest.fixture
def emulator_factory(tmp_path: Path) -> Iterator[Callable[..., dict[str, Any]]]:
    """Start emulators with extra arguments: ``state = emulator_factory("--faults", spec)``; all stop at teardown."""
    procs: list[subprocess.Popen] = []

    def start(*extra_args: str) -> dict[str, Any]:
        proc, state = start_emulator(tmp_path / f"emulator{len(procs)}", *extra_args)
        procs.append(proc)
        return state

    try:
        yield start
    finally:
        for proc in procs:
            stop_emulator(proc)
