"""``amsr2flow verify PATH...``: the legacy ``testOutput.py``-style summary per archive; exit 1 when any is damaged."""

from __future__ import annotations

import argparse
import json
import sys

from ..formats.archive import LegacyPickleRefused
from ..formats.verify import DEFAULT_MIN_SCANS, MAX_PLAUSIBLE_SCANS, VerifyReport, verify_archive


# -- command --------------------------------------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="archives (.npz) to verify")
    parser.add_argument(
        "--trust-legacy-pickle",
        action="store_true",
        help="also verify legacy pickled archives (unpickles them: only for files you trust)",
    )
    parser.add_argument("--min-scans", type=int, default=DEFAULT_MIN_SCANS, help="fewest plausible scans")
    parser.add_argument("--max-scans", type=int, default=MAX_PLAUSIBLE_SCANS, help="most plausible scans")
    parser.add_argument("--json", action="store_true", help="print one JSON object per archive instead")


def report_json(report: VerifyReport) -> str:
    return json.dumps(
        {
            "path": str(report.path),
            "format": report.format,
            "swaths": report.swaths,
            "valid": report.valid,
            "damaged": len(report.damaged),
            "success_rate": round(report.success_rate, 3),
            "ok": report.ok,
            "problems": report.problems(),
            "warnings": report.warnings,
        },
        sort_keys=True,
    )


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every archive is good, 1 when any is damaged, 2 on usage errors (e.g. untrusted legacy)."""
    damaged = False
    for path in args.paths:
        try:
            report = verify_archive(
                path,
                allow_legacy_pickle=args.trust_legacy_pickle,
                min_scans=args.min_scans,
                max_scans=args.max_scans,
            )
        except (LegacyPickleRefused, FileNotFoundError) as exc:
            print(f"amsr2flow verify: {exc}", file=sys.stderr)
            return 2
        print(report_json(report) if args.json else report.summary())
        damaged |= not report.ok
    return 1 if damaged else 0
