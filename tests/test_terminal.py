"""What a user sees in a terminal: a run in tmux, read back with capture-pane, as a person would look at it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from emulator_fixtures import wait_for
from workflow_helpers import SNAKEFILE, SNAKEMAKE, emulator_config

from amsr2flow.cli import demo

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


@pytest.mark.slow
def test_ctrl_c_in_the_demo_says_how_to_continue_without_a_traceback(tmp_path: Path) -> None:
    """Ctrl-C in `make demo` while granules download: Snakemake's lines and the interim report, then the demo's
    own end, which used to be a bare KeyboardInterrupt traceback (and the day jobs' tracebacks above it)."""
    folder, rc_file = tmp_path / "demo", tmp_path / "rc"
    # A tmux server of the test's own whose panes stay after their command ends, to be read back.
    server = ["-L", f"amsr2flow-test-{tmp_path.name}"]
    tmux(*server, "new-session", "-d", "-s", "demo", "-x", "200", "-y", "50", "-c", str(tmp_path), "sleep 600")
    try:
        tmux(*server, "set-option", "-g", "remain-on-exit", "on")
        # full-size granules, one day: ~29 downloads in a row, so Ctrl-C lands with most of them to go
        command = f"{sys.executable} -m amsr2flow.cli.demo --dir {folder} --days 1; echo $? > {rc_file}"
        tmux(*server, "new-window", "-t", "demo", "-n", "run", command)
        swaths = folder / "results" / "swaths"
        wait_for(lambda: any(swaths.rglob("*.npy")), 300, interval=0.2, what="the demo's first swath")
        tmux(*server, "send-keys", "-t", "demo:run", "C-c")
        try:
            wait_for(lambda: tmux(*server, "display", "-p", "-t", "demo:run", "#{pane_dead}").strip() == "1", 300)
        finally:
            screen = tmux(*server, "capture-pane", "-p", "-J", "-S", "-", "-t", "demo:run")
            print(screen[-5000:])  # shown by pytest when the stop never comes: what the run was doing
    finally:
        subprocess.run(["tmux", *server, "kill-server"], check=False)
    assert "the run stopped early" in screen and "Interim report" in screen, screen[-3000:]  # stopped mid-run
    assert "Traceback" not in screen and "KeyboardInterrupt" not in screen, screen[-5000:]
    assert "local G-Portal stopped" in screen
    lines = [line for line in screen.splitlines() if line.strip() and not line.startswith("Pane is dead")]
    assert lines[-1] == demo.INTERRUPTED, screen[-1000:]  # the last word: how to continue
    assert rc_file.read_text().strip() == str(demo.INTERRUPTED_EXIT)
    granule_logs = "".join(p.read_text() for p in (folder / "results" / "logs" / "granules").rglob("*.log"))
    assert "interrupted (Ctrl-C" in granule_logs  # the day job says it in its log instead
