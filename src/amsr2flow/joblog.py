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
    # paramiko logs each failed handshake as an ERROR with a traceback; our own message for it (with the
    # attempt number and what happens next) is the one a user needs.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    return logging.getLogger("amsr2flow")
