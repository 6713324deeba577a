"""Logging for workflow jobs: everything a job says goes to its own log file (one per job, via ``log:``)."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path


def setup_logging(log_path: str) -> logging.Logger:
    logging.basicConfig(
        filename=log_path,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # paramiko logs each failed handshake as an ERROR with a traceback; our own message for it (with the
    # attempt number and what happens next) is the one a user needs.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    sys.excepthook = _no_traceback_for_what_is_not_a_bug
    return logging.getLogger("amsr2flow")


#: A job's log line when Ctrl-C (the terminal signals every process of the run) or Snakemake stopping its jobs
#: interrupts it; Snakemake names the job on the console already ("died with <Signals.SIGINT: 2>").
INTERRUPTED = "interrupted (Ctrl-C, or Snakemake stopping the run); the next run continues from what is written"


def _no_traceback_for_what_is_not_a_bug(kind: type[BaseException], value: BaseException, traceback: object) -> None:
    """What ends a job without a traceback on the user's console (one per job and attempt, under Snakemake's own
    lines): an interrupt says so in the job's log (the job still ends by SIGINT, as Python does), and a
    configuration problem found only now (the local G-Portal's state file gone mid-run, say) is its message,
    one line, as at the start of a run. Anything else is left as it was."""
    from .config import ConfigError

    if issubclass(kind, KeyboardInterrupt):
        logging.getLogger("amsr2flow").warning("%s", INTERRUPTED)
        _end_by_sigint()
    if issubclass(kind, ConfigError):
        logging.getLogger("amsr2flow").error("%s", value)
        sys.stderr.write(f"amsr2flow: {value}\n")
        return
    sys.__excepthook__(kind, value, traceback)  # type: ignore[arg-type]


def _end_by_sigint() -> None:
    """End the process now, by SIGINT as Python does after an uncaught KeyboardInterrupt, but without the
    interpreter's finalization: a day job's session threads may be inside h5py (or any C library with a lock of
    its own) when Ctrl-C comes, and finalization frees objects that need that lock while the thread holding it
    can no longer run, so the job would hang and Snakemake wait for it forever. Every output is written
    atomically (leftover temporaries are swept by the next run), so nothing is lost by skipping it."""
    import os
    import signal

    logging.shutdown()  # the job's log lines reach the file first
    sys.stderr.flush()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


def stop_run(log: logging.Logger, problem: BaseException, stop_flag: Path | None = None) -> None:
    """End a job on a problem that is fatal for the run: one line on stderr, the run's stop flag (so no other
    job starts a download), exit status 1. Writing the flag may fail on a full disk; the message still goes out."""
    log.error("%s", problem)
    if stop_flag is not None:
        with contextlib.suppress(OSError):
            from . import atomic

            atomic.write_bytes(stop_flag, (str(problem) + "\n").encode("utf-8"))
    sys.stderr.write(f"amsr2flow: {problem}\n")
    sys.exit(1)


#: What a day job logs as it starts on a granule; the interim report reads day logs for it (a granule they do
#: not name was not reached: the run stopped first).
REACHED = "{granule_id}: collecting"


def log_reached(log: logging.Logger, granule_id: str) -> None:
    log.info("%s", REACHED.format(granule_id=granule_id))


def was_reached(log_text: str, granule_id: str) -> bool:
    return REACHED.format(granule_id=granule_id) in log_text
