"""What a user sees in a terminal: a run in tmux, read back with capture-pane, as a person would look at it."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from workflow_helpers import SNAKEFILE, SNAKEMAKE, emulator_config

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux missing")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_the_terminal_shows_progress_lines_not_a_block_per_job(emulator, tmp_path: Path) -> None:
    cfg = emulator_config(emulator, tmp_path, report={"progress_interval_s": 1, "figures": False})
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    rc_file = tmp_path / "rc"
    # the default workflow profile applies, as for a user typing `snakemake --cores 2`
    command = f"{SNAKEMAKE} -s {SNAKEFILE} --configfile {config_path} --cores 2; echo $? > {rc_file}"
    session = f"amsr2flow-test-{tmp_path.name}"
    tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", "-c", str(tmp_path), command + "; sleep 600")
    try:
        deadline = time.monotonic() + 300
        while not rc_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)  # polling for the command's end, not synchronising on time
        assert rc_file.is_file(), "the run did not end within 5 minutes"
        screen = tmux("capture-pane", "-p", "-S", "-", "-t", session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert rc_file.read_text().strip() == "0", screen[-3000:]
    lines = [line for line in screen.splitlines() if line.strip()]
    assert any(line.startswith("amsr2flow progress:") and "granules/h" in line for line in lines), screen
    assert "Select jobs to execute" not in screen and "Execute 1 jobs" not in screen
    assert "jobid:" not in screen and "steps (" not in screen  # no rule block, no "N of M steps"
    assert "catalogued granules archived (100.00 %)" in screen
    # ~30 granule jobs and a dozen others: the header, the progress lines and the outcome, not ~15 lines a job
    progress = sum(line.startswith("amsr2flow progress:") for line in lines)
    assert len(lines) - progress < 60, screen
