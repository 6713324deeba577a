"""``amsr2flow repair PATH...``: set right, in place and without downloading, metadata amsr2flow wrote wrongly.

PATH is an archive, a part, a swath sidecar, or a folder searched for all of them (a whole ``results`` folder
repairs archives, parts and kept swaths at once). What it repairs, and why, is in ``formats.repair``. Exit 0
when every file is right afterwards (or already was), 1 when a file could not be repaired, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections import Counter
from pathlib import Path

from .. import atomic
from ..formats.archive import ArchiveError
from ..formats.repair import files_to_repair, is_archive, repair_archive, repair_sidecar
from ..run.lock import RunLock

#: How far above a given file its results folder (the one holding ``.state``) may be: archives/X.npz,
#: parts/YYYY/X.npz, swaths/YYYY/YYYY-MM-DD/X.json.
RESULTS_DEPTH = 3


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="archives, parts, swath sidecars, or folders holding them"
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would be repaired, change nothing")


def running_in(path: Path) -> str | None:
    """Who runs the workflow on the results folder ``path`` is in (its ``.state`` run lock), or None."""
    for folder in [path.resolve(), *path.resolve().parents][: RESULTS_DEPTH + 1]:
        if (folder / ".state").is_dir():
            return RunLock(folder / ".state").held_by()
    return None


def run(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"amsr2flow repair: {missing[0]}: no such file or folder", file=sys.stderr)
        return 2
    busy = next(((p, who) for p in args.paths if (who := running_in(Path(p)))), None)
    if busy and not args.dry_run:
        print(
            f"amsr2flow repair: a run is using the results folder of {busy[0]} ({busy[1]}); repair after it ends",
            file=sys.stderr,
        )
        return 2
    seen = {"archive": 0, "sidecar": 0}
    repaired = {"archive": 0, "sidecar": 0}
    sidecar_changes: Counter[str] = Counter()
    failed = 0
    would = "would repair " if args.dry_run else ""
    for path in files_to_repair(args.paths):
        try:
            if path.suffix == ".json":
                kind, repair = "sidecar", repair_sidecar(path, dry_run=args.dry_run)
            elif is_archive(path):
                kind, repair = "archive", repair_archive(path, dry_run=args.dry_run)
            else:
                print(f"{path}: a legacy pickled archive: left as it is")
                continue
        except atomic.NoSpace as exc:
            print(f"amsr2flow repair: {exc}", file=sys.stderr)
            return 1
        except (ArchiveError, OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            print(f"{path}: cannot be repaired: {exc}", file=sys.stderr)
            failed += 1
            continue
        seen[kind] += 1
        if repair is None:
            continue
        repaired[kind] += 1
        if kind == "archive":
            print(would + repair.line())  # one line per archive or part
        else:
            sidecar_changes.update(repair.changes)  # one line for all swath sidecars
    if sidecar_changes:
        what = ", ".join(f"{change} x{n}" for change, n in sorted(sidecar_changes.items()))
        print(f"{would}{repaired['sidecar']} swath sidecar(s): orbit type set from the granule id ({what})")
    done = "would be repaired" if args.dry_run else "repaired"
    print(
        f"amsr2flow repair: {repaired['archive']} of {seen['archive']} archive(s) and part(s), "
        f"{repaired['sidecar']} of {seen['sidecar']} swath sidecar(s) {done}; nothing was downloaded."
        + (
            " Rerun the workflow: it rebuilds the grids, figures, maps and reports made from the old metadata."
            if any(repaired.values()) and not args.dry_run
            else ""
        )
    )
    if failed:
        print(f"amsr2flow repair: {failed} file(s) could not be repaired (see above)", file=sys.stderr)
        return 1
    return 0
