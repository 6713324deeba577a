"""``amsr2flow verify PATH...``: the legacy ``testOutput.py``-style summary per archive; exit 1 when any is damaged.

A record (``results/record/swaths.icechunk``) is checked against the archives instead: every archived swath
once, with equal bytes (those of ``--archives``, else the ``archives`` folder of its results tree).

Each swath is also compared with what the catalogue said of it when the run's manifests are at hand: those of
``--manifests DIR``, else the ``manifests`` folder of the results tree the archive lives in.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..formats import facts
from ..formats.archive import Archive, ArchiveError, LegacyPickleRefused, legacy_refusal
from ..formats.l1b import direction_name
from ..formats.record import RecordError, is_record, verify_record
from ..formats.swath import SwathMetadata, swath_file
from ..formats.verify import DEFAULT_MIN_SCANS, MAX_PLAUSIBLE_SCANS, VerifyReport, verify_archive

#: How far above an archive its results tree may start (archives/X.npz, parts/YYYY/X.npz).
RESULTS_DEPTH = 3


# -- command --------------------------------------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="archives (.npz), or a record, to verify")
    parser.add_argument(
        "--archives",
        nargs="+",
        type=Path,
        metavar="ARCHIVE",
        help="a record is compared with these archives (default: results/archives/*.npz beside it)",
    )
    parser.add_argument(
        "--trust-legacy-pickle",
        action="store_true",
        help="also verify legacy pickled archives (unpickles them: only for files you trust)",
    )
    parser.add_argument("--min-scans", type=int, default=DEFAULT_MIN_SCANS, help="fewest plausible scans")
    parser.add_argument("--max-scans", type=int, default=MAX_PLAUSIBLE_SCANS, help="most plausible scans")
    parser.add_argument(
        "--manifests",
        type=Path,
        metavar="DIR",
        help="the run's manifests folder (default: results/manifests beside the archive's folder, if any)",
    )
    parser.add_argument(
        "--time-tolerance",
        type=float,
        default=facts.TIME_TOLERANCE_S,
        metavar="SECONDS",
        help=f"catalogue times vs scan times (default {facts.TIME_TOLERANCE_S} s, the catalogue's precision)",
    )
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
            "catalogue": report.catalogue,
            "disagreements": [d.to_json() for d in report.disagreements],
            "problems": report.problems(),
            "warnings": report.warnings,
        },
        sort_keys=True,
    )


def manifests_beside(archive_path: Path) -> Path | None:
    """The ``manifests`` folder of the results tree an archive or part lives in, if there is one."""
    for parent in list(archive_path.resolve().parents)[:RESULTS_DEPTH]:
        if (parent / "manifests").is_dir():
            return parent / "manifests"
    return None


def catalogue_for(archive_path: Path, manifests_dir: Path | None) -> tuple[dict[str, facts.CatalogueRecord], str]:
    """The catalogue records of the archive's swaths, and where they come from ({} and "" when none)."""
    folder = manifests_dir or manifests_beside(archive_path)
    if folder is None:
        return {}, ""
    try:
        with Archive(archive_path) as archive:
            ids = archive.table["granule_id"].tolist()
    except (ArchiveError, OSError, ValueError):
        return {}, ""  # not an archive this command can read: verify_archive says why
    paths = facts.manifest_paths(folder, ids)
    records = facts.read_catalogue_records(paths)
    return records, f"the catalogue's records in {folder} ({len(paths)} day manifest(s))" if paths else ""


def archives_beside(path: Path) -> Path | None:
    """The ``archives`` folder of the results tree a file lives in (swaths/YYYY/YYYY-MM-DD/<id>.npy), if any."""
    for parent in list(path.resolve().parents)[: RESULTS_DEPTH + 1]:
        if (parent / "archives").is_dir():
            return parent / "archives"
    return None


def not_an_archive(path: Path) -> str | None:
    """What a swath or tombstone file given to verify is, and what to do instead; None for other files."""
    found = swath_file(path) if path.suffix == ".npy" else None
    if found is None:
        return None
    if isinstance(found, SwathMetadata):
        what = (
            f"a swath: granule {found.granule_id} ({found.shape[0]} scans, {direction_name(found.orbit_type)}) "
            "as its day job extracted it"
        )
    else:
        what = (
            f"a tombstone: granule {found.get('granule_id')} is not archived "
            f"({found.get('reason_class')}: {found.get('reason')})"
        )
    archives = archives_beside(path)
    where = f"the archives in {archives}" if archives else "archives (results/archives/*.npz)"
    return f"{path} is not an archive but {what}. `amsr2flow info {path}` describes it; verify checks {where}"


def verify_a_record(path: Path, archives: list[Path] | None) -> int:
    """Compare a record with the archives; 0 when it holds every archived swath once with equal bytes."""
    if archives is None:
        folder = archives_beside(path)
        archives = sorted(folder.glob("*.npz")) if folder else []
    if not archives:
        print(
            f"amsr2flow verify: no archives to compare the record {path} with; give them with --archives",
            file=sys.stderr,
        )
        return 2
    try:
        check = verify_record(path, archives)
    except (RecordError, ArchiveError) as exc:
        print(f"amsr2flow verify: {exc}", file=sys.stderr)
        return 2
    print("\n".join(check.lines()))
    return 0 if check.ok else 1


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every archive is good, 1 when any is damaged, 2 on usage errors (an untrusted legacy archive,
    a swath given for an archive)."""
    if args.manifests is not None and not args.manifests.is_dir():
        print(f"amsr2flow verify: --manifests {args.manifests}: no such folder", file=sys.stderr)
        return 2
    damaged = False
    for path in args.paths:
        if is_record(path):
            status = verify_a_record(Path(path), args.archives)
            if status == 2:
                return 2
            damaged |= status == 1
            continue
        other = not_an_archive(Path(path))
        if other:
            print(f"amsr2flow verify: {other}", file=sys.stderr)
            return 2
        records, source = catalogue_for(Path(path), args.manifests) if Path(path).is_file() else ({}, "")
        try:
            report = verify_archive(
                path,
                allow_legacy_pickle=args.trust_legacy_pickle,
                min_scans=args.min_scans,
                max_scans=args.max_scans,
                catalogue=records if source else None,
                catalogue_source=source,
                time_tolerance_s=args.time_tolerance,
            )
        except LegacyPickleRefused:
            how = f"verify it with `amsr2flow verify --trust-legacy-pickle {path}`"
            print(f"amsr2flow verify: {legacy_refusal(Path(path), how)}", file=sys.stderr)
            return 2
        except FileNotFoundError as exc:
            print(f"amsr2flow verify: {exc}", file=sys.stderr)
            return 2
        manifests = manifests_beside(Path(path)) if Path(path).is_file() else None
        report.repair_target = manifests.parent if manifests is not None else None  # the whole results folder
        print(report_json(report) if args.json else report.summary())
        damaged |= not report.ok
    return 1 if damaged else 0
