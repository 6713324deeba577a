"""The failure ledger: one JSON file per granule that ever failed (or whose sources disagreed), under
``<output_dir>/ledger/YYYY/``.

Granule jobs write it (each outcome of each run appended as history); reports read it to say why a
catalogued granule is not archived. A granule archived after failing keeps its entry, marked ``resolved``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from . import atomic

#: A ledger entry is read, extended and written again: one writer at a time in a process (the sessions of a
#: day job are threads; each granule is collected by one of them, jobs of other days write other entries).
_WRITERS = threading.Lock()


class GranuleRef(Protocol):
    """What the ledger records about a granule besides its outcome."""

    granule_id: str
    day: str
    remote_path: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def update_ledger(
    path: Path,
    task: GranuleRef,
    *,
    status: str,
    reason_class: str,
    error: str,
    attempts: int,
    disagreements: list[dict[str, Any]] | None = None,
) -> None:
    """Record this run's outcome for a granule; earlier runs' rows are kept as history.

    ``disagreements`` (``formats.facts.Disagreement.to_json``) replace the entry's facts that disagree when
    given (``[]`` clears them: the granule was extracted again and its sources agree); None keeps them.
    """
    with _WRITERS:
        _update_entry(path, task, status, reason_class, error, attempts, disagreements)


def _update_entry(
    path: Path,
    task: GranuleRef,
    status: str,
    reason_class: str,
    error: str,
    attempts: int,
    disagreements: list[dict[str, Any]] | None,
) -> None:
    entry: dict[str, Any] = {}
    if path.is_file():
        with contextlib.suppress(ValueError, OSError):
            entry = json.loads(path.read_text(encoding="utf-8"))
    runs = list(entry.get("runs", []))
    runs.append(
        {"time_utc": _now(), "status": status, "reason_class": reason_class, "error": error, "attempts": attempts}
    )
    if status == "resolved" and not error:
        # Archived at the first try of this run after failing in an earlier one: keep why it had failed.
        reason_class, error = entry.get("reason_class", ""), entry.get("last_error", "")
    entry.update(
        granule_id=task.granule_id,
        day=task.day,
        remote_path=task.remote_path,
        remote_layout=getattr(task, "template", ""),  # the key's old name: entries of earlier runs use it
        status=status,
        reason_class=reason_class,
        last_error=error,
        attempts=sum(r["attempts"] for r in runs),
        last_attempt_utc=runs[-1]["time_utc"],
        retryable=status == "failed",
        runs=runs,
    )
    if disagreements is not None:
        entry["disagreements"] = disagreements
    atomic.write_json(path, entry)


def read_ledger(ledger_dir: Path) -> dict[str, dict[str, Any]]:
    """The latest ledger entry of every granule with one, by granule id."""
    out: dict[str, dict[str, Any]] = {}
    if not ledger_dir.is_dir():
        return out
    for path in sorted(ledger_dir.glob("*.json")):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        out[entry.get("granule_id", path.stem)] = entry
    return out


def is_due_for_recheck(entry: Mapping[str, Any], now: datetime, after_hours: float) -> bool:
    """A granule recorded as absent whose last look is at least ``after_hours`` old."""
    if entry.get("status") != "absent":
        return False
    stamp = entry.get("last_checked_utc") or entry.get("last_attempt_utc")
    try:
        last = datetime.fromisoformat(str(stamp))
    except ValueError:
        return True
    return (now - last).total_seconds() >= after_hours * 3600


def due_for_recheck(ledger_dir: Path, now: datetime, after_hours: float) -> dict[str, dict[str, Any]]:
    """The granules of a year's ledger recorded as absent whose last look is at least ``after_hours`` old."""
    return {gid: e for gid, e in read_ledger(ledger_dir).items() if is_due_for_recheck(e, now, after_hours)}


def record_recheck(path: Path, *, found: bool, remote_path: str) -> None:
    """Note a cheap look for an absent granule: still absent (time of the look), or back on the server."""
    entry = json.loads(path.read_text(encoding="utf-8"))
    entry["last_checked_utc"] = _now()
    if found:
        entry["runs"] = [
            *entry.get("runs", []),
            {"time_utc": _now(), "status": "reappeared", "reason_class": "reappeared", "error": "", "attempts": 0},
        ]
        entry.update(status="reappeared", reason_class="reappeared", remote_path=remote_path, retryable=True)
        entry["last_error"] = f"{remote_path} is on the SFTP server again; it is fetched by this run or the next"
    atomic.write_json(path, entry)
