"""Archive subcommands: ``info``, ``partition``, ``convert-legacy`` and ``export-legacy``.

``cli.py`` hands ``configure_parser`` the subcommand's own parser (its ``prog`` ends with the subcommand
name) and calls ``run`` with ``args.command`` set to it. Errors print one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ..formats.archive import (
    DEFAULT_PART_SIZE,
    ArchiveError,
    LegacyPickleRefused,
    legacy_refusal,
    parse_utc,
    partition_archive,
    partition_swaths,
    summarise,
)
from ..formats.l1b import direction_name
from ..formats.reader import open_archive
from ..formats.record import is_record, record_summary
from ..formats.swath import SwathError, SwathMetadata, swath_file


def _configure_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="ARCHIVE", help="archives (.npz), swaths (.npy), or a record")
    parser.add_argument(
        "--trust-legacy-pickle", action="store_true", help="also open legacy pickled archives (trusted files only)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _configure_partition(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="one archive (.npz), or swath files (.npy) / folders of them"
    )
    parser.add_argument("-o", "--out-dir", type=Path, required=True, help="folder for the part files")
    parser.add_argument("--size", type=int, default=DEFAULT_PART_SIZE, help="swaths per part (default 500)")
    parser.add_argument(
        "--period", nargs=2, metavar=("START", "END"), help="period of swath-file parts (default: their span)"
    )
    parser.add_argument("--config-digest", default="", help="recorded in the provenance of swath-file parts")


def _configure_convert(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="LEGACY_NPZ")
    parser.add_argument("-o", "--out-dir", type=Path, required=True, help="folder for the converted archives")
    parser.add_argument(
        "--trust-legacy-pickle",
        action="store_true",
        help="required: the legacy files are pickles, and unpickling runs code they carry",
    )


def _configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("archive", metavar="ARCHIVE")
    parser.add_argument("output", type=Path, metavar="LEGACY_NPZ")


_CONFIGURE: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "info": _configure_info,
    "partition": _configure_partition,
    "convert-legacy": _configure_convert,
    "export-legacy": _configure_export,
}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    _CONFIGURE[parser.prog.split()[-1]](parser)


# -- commands -------------------------------------------------------------------------------------------------
def run_info(args: argparse.Namespace) -> int:
    for path in args.paths:
        found = swath_file(path) if Path(path).suffix == ".npy" else None
        if found is not None:
            _swath_info(Path(path), found, as_json=args.json)
            continue
        if is_record(path):
            _record_info(record_summary(path), as_json=args.json)
            continue
        try:
            with open_archive(path, allow_legacy_pickle=args.trust_legacy_pickle) as archive:
                summary = summarise(archive)
        except LegacyPickleRefused:
            how = f"read it with `amsr2flow info --trust-legacy-pickle {path}`"
            raise LegacyPickleRefused(legacy_refusal(Path(path), how)) from None
        size = Path(path).stat().st_size
        if args.json:
            print(json.dumps({**summary.__dict__, "path": str(summary.path), "bytes": size}, sort_keys=True))
            continue
        provenance = summary.provenance
        print(f"{summary.path} ({size / 1e6:.1f} MB, {summary.format})")
        print(f"  swaths:       {summary.swaths}  orbit types: {orbit_types_in_words(summary.orbit_types)}")
        print(f"  period:       {summary.period or '(none)'}")
        print(f"  scans:        {summary.first_scan_utc or '?'} .. {summary.last_scan_utc or '?'}")
        print(f"  channels:     {', '.join(summary.channels)}  coordinates: {'yes' if summary.geolocation else 'no'}")
        print(f"  software:     {provenance.get('software', '?')}  config: {provenance.get('config_digest') or '-'}")
        for note in provenance.get("notes", []):
            print(f"  note:         {note}")
    return 0


def orbit_types_in_words(counts: dict[str, int]) -> str:
    """{'A': 44, 'D': 43, 'U': 1} as "44 ascending (A), 43 descending (D), 1 unknown direction (U)"."""
    order = {"A": 0, "D": 1}
    kinds = sorted(counts, key=lambda kind: (order.get(kind, 2), kind))
    return ", ".join(f"{counts[kind]} {direction_name(kind)} ({kind})" for kind in kinds) or "none"


def _swath_info(path: Path, found: SwathMetadata | dict, *, as_json: bool) -> None:
    """A swath (or tombstone) file, as `info` says an archive: what it is and what it holds."""
    size = path.stat().st_size
    if not isinstance(found, SwathMetadata):  # a tombstone's sidecar
        if as_json:
            print(json.dumps({**found, "kind": "tombstone", "path": str(path), "bytes": size}, sort_keys=True))
            return
        print(f"{path} (a tombstone: granule {found.get('granule_id')} is not archived)")
        print(f"  reason:       {found.get('reason_class')}: {found.get('reason')}")
        print(f"  remote path:  {found.get('remote_path')}")
        return
    if as_json:
        print(json.dumps({**found.to_json_dict(), "kind": "swath", "path": str(path), "bytes": size}, sort_keys=True))
        return
    print(f"{path} ({size / 1e6:.1f} MB, a swath: one granule as its day job extracted it)")
    print(f"  granule:      {found.granule_id}  orbit type: {found.orbit_type} ({direction_name(found.orbit_type)})")
    overlap = f", {found.overlap_scans} overlap rows at each end" if found.overlap_scans >= 0 else ""
    times = f"{found.scan_start_utc or '?'} .. {found.scan_end_utc or '?'}"
    print(f"  scans:        {times} ({found.shape[0]} scans{overlap})")
    print(f"  channels:     {', '.join(found.channels)}  coordinates: {'yes' if found.has_geolocation else 'no'}")
    if found.variables:
        print(f"  variables:    {', '.join(found.variables)}")
    print(f"  source:       {found.source_size} bytes, SHA-256 {found.source_sha256 or '?'}")


def _record_info(summary: dict, *, as_json: bool) -> None:
    """A record, as `info` says an archive."""
    if as_json:
        print(json.dumps(summary, sort_keys=True, default=str))
        return
    commits = summary["commits"]
    print(f"{summary['path']} (the record: commit {summary['snapshot']}, {len(commits)} commit(s))")
    sensors = ", ".join(f"{n} {s}" for s, n in summary["sensors"].items())
    print(
        f"  swaths:       {summary['swaths']} ({sensors})  orbit types: {orbit_types_in_words(summary['orbit_types'])}"
    )
    print(f"  scans:        {summary['first_scan_utc'] or '?'} .. {summary['last_scan_utc'] or '?'}")
    print(f"  channels:     {', '.join(summary['channels'])}")
    print(f"  variables:    {', '.join(summary['variables'])}")
    order = "yes" if summary["in_time_order"] else "no: late granules were appended (time_order gives time order)"
    print(f"  time order:   {order}")
    print(f"  archives:     {', '.join(summary['archives'])}")
    if commits:
        print(f"  last commit:  {commits[0]['written_at']} {commits[0]['message']}")


def _swath_files(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in map(Path, inputs):
        files.extend(sorted(item.glob("*.npy")) if item.is_dir() else [item])
    return files


def run_partition(args: argparse.Namespace) -> int:
    if len(args.inputs) == 1 and args.inputs[0].endswith(".npz"):
        parts = partition_archive(args.inputs[0], args.out_dir, part_size=args.size)
    else:
        period = tuple(parse_utc(t) for t in args.period) if args.period else None
        parts = partition_swaths(
            _swath_files(args.inputs),
            args.out_dir,
            part_size=args.size,
            period=period,  # type: ignore[arg-type]
            config_digest=args.config_digest,
        )
    for part in parts:
        print(part)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from ..formats.legacy import convert_legacy  # the only module that unpickles

    if not args.trust_legacy_pickle:
        raise ArchiveError(
            "legacy archives are pickles and loading them runs code they carry; re-run with "
            "--trust-legacy-pickle if you trust these files"
        )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for path in args.paths:
        print(convert_legacy(path, args.out_dir, trust_legacy_pickle=True))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..formats.legacy import export_legacy

    target = export_legacy(args.archive, args.output)
    print(target)
    print(
        "note: this file is a pickle (legacy layout, np.load(..., allow_pickle=True)); do not share it: "
        "whoever loads it must trust it",
        file=sys.stderr,
    )
    return 0


_RUN: dict[str, Callable[[argparse.Namespace], int]] = {
    "info": run_info,
    "partition": run_partition,
    "convert-legacy": run_convert,
    "export-legacy": run_export,
}


def run(args: argparse.Namespace) -> int:
    try:
        return _RUN[args.command](args)
    except (ArchiveError, SwathError, FileNotFoundError, ValueError) as exc:
        print(f"amsr2flow {args.command}: {exc}", file=sys.stderr)
        return 2
