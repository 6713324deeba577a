"""Shared by the workflow scripts: logging into the job's own log file."""

from __future__ import annotations

import logging


def setup_logging(log_path: str) -> logging.Logger:
    logging.basicConfig(
        filename=log_path,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    return logging.getLogger("amsr2flow")
