"""Repair metadata amsr2flow wrote wrongly, without downloading: archives, parts and swath sidecars, in place.

The one repair so far is the **orbit type**. amsr2flow 0.1.0 stored ``U`` for every swath extracted with
``variables:`` set (the extraction took the orbit type from the last variable's name instead of the file's).
The orbit direction is in the granule id, so it is set from there wherever the stored one contradicts it.

An archive or part is written anew beside itself and renamed over it (``ArchiveWriter``): its index carries
the corrected metadata, its swaths' compressed members are copied byte for byte (every array byte unchanged,
as in partitioning), and its provenance gains a ``repairs`` entry. A sidecar is rewritten atomically with the
same formatting. Files already right are not touched, so a second repair changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from .. import __version__, atomic
from . import facts
from .archive import (
    Archive,
    ArchiveError,
    ArchiveWriter,
    compression_of,
    detect_format,
    meta_array_names,
    read_raw_member,
)
from .swath import SWATH_FORMAT, sidecar_path

ORBIT_TYPE_REPAIR = "orbit_type set from the granule id"


@dataclass(frozen=True)
class Repair:
    """What a repair changed (or, in a dry run, would change) in one file."""

    path: Path
    kind: str  # "archive" (archives and parts) or "sidecar"
    changes: dict[str, int]  # e.g. {"U -> A": 44, "U -> D": 44}

    @property
    def swaths(self) -> int:
        return sum(self.changes.values())

    def line(self) -> str:
        what = ", ".join(f"{change} x{n}" for change, n in sorted(self.changes.items()))
        return f"{self.path}: orbit type of {self.swaths} swath(s) set from the granule id ({what})"


def orbit_fix(granule_id: str, stored: str) -> str | None:
    """The orbit type the granule id gives, when the stored one contradicts it; None when there is nothing to fix
    (they agree, or the name does not say)."""
    named = facts.direction_from_name(granule_id)
    return named if named is not None and stored != named else None


def repair_archive(path: Path, *, dry_run: bool = False) -> Repair | None:
    """Set every swath's orbit type from its granule id where they disagree; None when nothing needed it."""
    with Archive(path) as source, open(path, "rb") as raw_file:
        metas = [source.metadata(i) for i in range(len(source))]
        fixes = {i: fix for i, meta in enumerate(metas) if (fix := orbit_fix(meta.granule_id, meta.orbit_type))}
        if not fixes:
            return None
        repair = Repair(path, "archive", dict(Counter(f"{metas[i].orbit_type} -> {fix}" for i, fix in fixes.items())))
        if dry_run:
            return repair
        provenance = dict(source.provenance)
        provenance["repairs"] = [
            *provenance.get("repairs", []),
            {"repair": ORBIT_TYPE_REPAIR, "swaths": len(fixes), "software": f"amsr2flow {__version__}"},
        ]
        atomic.check_free(path.parent, path.stat().st_size, f"the repaired {path.name}")
        with ArchiveWriter(
            path, period=source.period, provenance=provenance, compression=compression_of(source.provenance)
        ) as writer:
            for i, meta in enumerate(metas):
                members = {}
                for name in meta_array_names(meta):
                    info = source.member_info(i, name)
                    members[name] = (info, read_raw_member(raw_file, info))
                writer.add_compressed(replace(meta, orbit_type=fixes[i]) if i in fixes else meta, members)
    return repair


def repair_sidecar(path: Path, *, dry_run: bool = False) -> Repair | None:
    """A swath sidecar's orbit type from its granule id where they disagree (tombstones and other JSON: None)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != SWATH_FORMAT:
        return None
    stored = str(data.get("orbit_type", ""))
    fix = orbit_fix(str(data.get("granule_id", "")), stored)
    if fix is None:
        return None
    if not dry_run:
        data["orbit_type"] = fix
        # the formatting of swath.metadata_json: the repaired sidecar is what the extraction writes now
        atomic.write_bytes(path, (json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n").encode())
    return Repair(path, "sidecar", {f"{stored} -> {fix}": 1})


def files_to_repair(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Archives and parts (``*.npz``), then swath sidecars (the ``.json`` beside each ``.npy``), of the given
    files and folders (searched recursively). Archives come before parts, so a part folder ends up newer than
    its archive and the workflow does not rebuild the parts."""
    archives: list[Path] = []
    sidecars: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            archives += [p for p in given.rglob("*.npz") if not p.name.startswith(".")]
            sidecars += [sidecar_path(p) for p in given.rglob("*.npy") if sidecar_path(p).is_file()]
        elif given.suffix == ".json":
            sidecars.append(given)
        else:
            archives.append(given)
    yield from sorted(set(archives), key=lambda p: ("_part_" in p.name, str(p)))
    yield from sorted(set(sidecars))


def is_archive(path: Path) -> bool:
    """An amsr2flow archive (legacy pickled ones hold what the legacy system wrote and are left alone)."""
    return detect_format(path) == "archive"


def contradicting_swaths(archive_paths: Iterable[Path], checked_path: Path | None = None) -> dict[Path, int]:
    """Archives whose index stores orbit types their granule ids contradict, with how many (index only).

    For the check at the start of a run: with ``checked_path`` (a JSON file of archive name -> size and mtime),
    an archive found right is not read again until it changes, so an up-to-date rerun stays fast.
    """
    try:
        checked = json.loads(checked_path.read_text(encoding="utf-8")) if checked_path else {}
    except (OSError, ValueError):
        checked = {}
    found, now_checked = {}, {}
    for path in archive_paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
        if checked.get(path.name) == stamp:
            now_checked[path.name] = stamp
            continue
        try:
            with Archive(path) as archive:
                table = archive.table
                count = sum(
                    orbit_fix(str(g), str(o)) is not None
                    for g, o in zip(table["granule_id"], table["orbit_type"], strict=True)
                )
        except (ArchiveError, OSError, ValueError, KeyError, zipfile.BadZipFile):
            continue  # damaged archives are the year report's and `amsr2flow verify`'s to report
        if count:
            found[path] = count
        else:
            now_checked[path.name] = stamp
    if checked_path is not None and now_checked != checked:
        with contextlib.suppress(OSError):  # a cache: the next run reads the archives again
            atomic.write_json(checked_path, dict(sorted(now_checked.items())))
    return found


def contradiction_message(found: dict[Path, int], results: Path) -> str:
    """Why a run does not start over archives that store contradicted orbit types, and what to do."""
    first, count = next(iter(found.items()))
    more = f" (and {len(found) - 1} more archive(s))" if len(found) > 1 else ""
    return (
        f"{count} swath(s) of {first}{more} store an orbit type their granule id contradicts (amsr2flow 0.1.0 "
        "stored U for swaths extracted with `variables:` set). Run `amsr2flow repair "
        f"{results}` (no download, seconds per archive), then this command again: it rebuilds the grids, "
        "figures, maps and reports made from the wrong metadata"
    )
