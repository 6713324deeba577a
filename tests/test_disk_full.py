"""A full disk anywhere is fatal for the run and says so: one message naming the folder and the space needed,
the run's stop flag, no further downloads, nothing half-written, nothing done lost.

The disks are real: small tmpfs file systems mounted for the test (root only; skipped where mounting is not
allowed).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from emulator_fixtures import start_emulator, stop_emulator, wait_for_stats
from workflow_helpers import emulator_config, run_workflow

from amsr2flow import atomic
from amsr2flow.formats.swath import read_swath
from amsr2flow.stages import archives


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_numpy_short_write_counts_as_a_full_disk(tmp_path: Path) -> None:
    with (
        small_disk(tmp_path / "disk", "64k") as disk,
        pytest.raises(OSError) as caught,
        open(disk / "x.npy", "wb") as fh,
    ):
        np.save(fh, np.zeros(100_000, dtype=np.uint16))
    assert atomic.is_no_space(caught.value)


def test_an_output_disk_filling_up_stops_the_run_with_one_message(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator", "--scans", "16")
    try:
        with small_disk(tmp_path / "out", "3600k") as disk:  # two sessions: room for two swaths checked
            cfg = emulator_config(state, tmp_path, output_dir=str(disk / "results"), scratch_dir=str(tmp_path / "scr"))
            run = run_workflow(tmp_path, cfg, "--resources", "gportal=2", cores=2)
            stats = wait_for_stats(state, lambda s: s["active_sftp_sessions"] == 0)
            results = disk / "results"
            swaths = sorted((results / "swaths").rglob("*.npy"))
            for npy in swaths:
                read_swath(npy)  # every swath written is whole
            stop_flag = (results / ".state" / "STOP").read_text()
            ledger = [json.loads(p.read_text()) for p in (results / "ledger").rglob("*.json")]
            leftovers = [p for p in results.rglob("*") if atomic.TMP_MARKER in p.name]
            interim = json.loads((results / "reports" / "interim_20240101-20240102.json").read_text())
    finally:
        stop_emulator(proc)
    assert run.returncode == 1, run.stdout[-3000:]
    assert "no space for the swath of" in run.stdout and str(disk / "results" / "swaths") in run.stdout
    assert "Traceback" not in run.stdout
    assert "no space" in stop_flag
    assert 0 < len(swaths) < 29
    assert stats["files_served"] == len(swaths)  # nothing downloaded that could not be kept
    assert {e["reason_class"] for e in ledger} <= {"disk_full", "stopped"} and any(
        e["reason_class"] == "disk_full" for e in ledger
    )
    assert leftovers == []
    # granules after the full disk are said to be stopped (or never attempted), not "silent loss: please report
    # it" (27 of 29 before)
    assert interim["silent_losses"] == 0
    reasons = {m["reason_class"] for m in interim["missing"]}
    assert "disk_full" in reasons and reasons <= {"disk_full", "stopped", "not_attempted"}


def test_an_archive_that_would_not_fit_is_not_started(tmp_path: Path) -> None:
    from test_swath import synthetic_swath

    from amsr2flow.formats.swath import write_swath

    paths = [write_swath(synthetic_swath(i, rows=2000), tmp_path / "swaths" / f"s{i}.npy") for i in range(4)]
    with small_disk(tmp_path / "archives", "1200k") as disk:
        target = disk / "AMSR2_temp_only_20200101_000000_to_20200102_000000.npz"
        with pytest.raises(atomic.NoSpace) as caught:
            archives.build_year_archive(
                paths, target, first_day=date(2020, 1, 1), day_after_last=date(2020, 1, 2), config_digest="x"
            )
        assert str(disk) in str(caught.value) and "MB" in str(caught.value)
        assert list(disk.iterdir()) == []
