"""How a workflow job ends on Ctrl-C: its log says so and the process ends by SIGINT, promptly, whatever its
other threads hold."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from amsr2flow import joblog

# A job whose session thread holds a lock (as h5py's global lock is held mid-extraction) that interpreter
# finalization needs (h5py frees its objects under that lock then; here an atexit function takes it): Python's
# own ending of an uncaught KeyboardInterrupt finalizes, and hangs there.
JOB = textwrap.dedent(
    """
    import atexit, sys, threading
    from amsr2flow import joblog

    joblog.setup_logging(sys.argv[1])
    lock = threading.Lock()
    atexit.register(lock.acquire)
    held = threading.Event()

    def session():
        lock.acquire()
        held.set()
        threading.Event().wait()

    threading.Thread(target=session, daemon=True).start()
    held.wait()
    raise KeyboardInterrupt
    """
)


def test_an_interrupted_job_ends_by_sigint_even_when_a_thread_holds_a_lock(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    try:
        done = subprocess.run([sys.executable, "-c", JOB, str(log)], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("the interrupted job hung in interpreter finalization") from exc
    assert done.returncode == -signal.SIGINT, done.stderr
    assert "Traceback" not in done.stderr
    assert joblog.INTERRUPTED in log.read_text()
