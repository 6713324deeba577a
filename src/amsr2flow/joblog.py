"""Logging for workflow jobs: everything a job says goes to its own log file (one per job, via ``log:``)."""

from __future__ import annotations

import logging


def setup_logging(log_path: str) -> logging.Logger:
    logging.basicConfig(
        filename=log_path,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # paramiko logs every packet-level event at INFO; its warnings are what matters to a user.
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    return logging.getLogger("amsr2flow")
