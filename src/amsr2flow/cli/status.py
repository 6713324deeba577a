"""``amsr2flow status --configfile FILE [--json] [--watch SECONDS]``: where a run stands, during or after it.

Reads what the run writes (listings, swaths, archives, ledger, progress marks), never Snakemake's internals,
so it works while a run goes on (from another terminal, or a login node), after a crash and after the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--configfile", type=Path, required=True, help="the configuration file the run uses")
    parser.add_argument("--json", action="store_true", help="print the status as JSON (for scripts)")
    parser.add_argument(
        "--watch", type=float, metavar="SECONDS", help="print the status again every SECONDS until interrupted"
    )


def load_config(path: Path) -> dict:
    """The run's configuration, validated as the workflow does; SystemExit(2) with one line if it is not usable."""
    from .. import config as settings

    try:
        return settings.validate(settings.read_config_file(path), check_environment=False)
    except settings.ConfigError as exc:
        raise SystemExit(f"amsr2flow status: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from .. import status

    try:
        cfg = load_config(args.configfile)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.watch is not None and args.watch <= 0:
        print("amsr2flow status: --watch needs a positive number of seconds", file=sys.stderr)
        return 2
    while True:
        current = status.collect_status(cfg)
        print(status.status_json(current) if args.json else status.format_status(current), flush=True)
        if args.watch is None:
            return 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0
        print(flush=True)
