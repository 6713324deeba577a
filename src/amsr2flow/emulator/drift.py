"""Ways the local G-Portal can differ from our picture of the real one ("drift"), and the order book.

The defaults are the picture the product is built on: the current SFTP tree under ``/product/Standard`` with a
day level, the catalogue's ``product.fileName`` with a day level, every granule online, little-endian files.
Each option moves one of these facts, so that the workflow can be tested against a service that changed:

- ``tree_root``: where the current SFTP tree lives (the catalogue's ``fileName`` does not follow it);
- ``tree_day_level`` / ``catalogue_day_level``: whether the tree and the ``fileName`` have the ``DD`` folder;
- ``legacy_tree``: whether SFTP also serves the legacy ``/standard`` tree (the real current service may not);
- ``order_after_days``: the "2.5-year rule": granules observed more than N days before today are offline
  (absent from SFTP, still in the catalogue) until ordered through ``GET /order``;
- ``big_endian``: synthetic granules store every multi-byte dataset big-endian;
- ``bbox_lat_lon``: the catalogue reads ``bbox`` as latmin,lonmin,latmax,lonmax (OGC's axis order of EPSG:4326,
  which some CSW servers follow) instead of the lonmin,latmin,lonmax,latmax ``gportal`` sends.

:class:`OrderBook` keeps the ordered granules, persisted in the data folder so a restarted service keeps them.
"""

from __future__ import annotations

import json
import logging
import posixpath
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from .stats import Stats, write_json_atomically
from .store import CURRENT_ROOT, GranuleEntry

log = logging.getLogger("amsr2flow.emulator.drift")

#: File in the data folder holding the ordered granule ids.
ORDERS_FILE = "orders.json"
#: Fault kind counted (``faults_injected``) when SFTP refuses a granule that is offline until ordered.
ABSENT_UNORDERED = "absent_unordered"


@dataclass(frozen=True)
class Drift:
    """The active drift options; the defaults change nothing."""

    tree_root: str = CURRENT_ROOT
    tree_day_level: bool = True
    legacy_tree: bool = True
    catalogue_day_level: bool = True
    order_after_days: int | None = None
    big_endian: bool = False
    bbox_lat_lon: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "tree_root": self.tree_root,
            "tree_day_level": self.tree_day_level,
            "legacy_tree": self.legacy_tree,
            "catalogue_day_level": self.catalogue_day_level,
            "order_after_days": self.order_after_days,
            "big_endian": self.big_endian,
            "bbox_lat_lon": self.bbox_lat_lon,
        }


def normalise_tree_root(text: str) -> str:
    """``/a/b`` form of a tree root; raises ValueError for relative paths, ``/``, ``.`` and ``..`` parts."""
    if not text.startswith("/"):
        raise ValueError(f"--tree-root {text!r} is not absolute; write it like /product/Standard")
    parts = [p for p in text.split("/") if p]
    if not parts:
        raise ValueError("--tree-root / would put the tree beside the login folder's own folders; name a folder")
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"--tree-root {text!r} has '.' or '..' in it; write the folder path plainly")
    return posixpath.join("/", *parts)


def today_utc() -> date:
    return datetime.now(timezone.utc).date()


class OrderBook:
    """Which granules are online: all of them without the rule; with it, recent ones and ordered ones."""

    def __init__(self, path: Path | None, order_after_days: int | None, stats: Stats) -> None:
        self.path = path
        self.order_after_days = order_after_days
        self.stats = stats
        self._lock = threading.Lock()
        self._ordered: set[str] = self._load()

    def _load(self) -> set[str]:
        if self.path is None or not self.path.exists():
            return set()
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(i) for i in raw["ordered"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("orders: cannot read %s (%s); starting with no ordered granules", self.path, exc)
            return set()

    def needs_order(self, entry: GranuleEntry, today: date | None = None) -> bool:
        """Whether the rule puts the granule offline (observation start day more than N days before today)."""
        if self.order_after_days is None:
            return False
        return ((today or today_utc()) - entry.day).days > self.order_after_days

    def is_ordered(self, granule_id: str) -> bool:
        with self._lock:
            return granule_id in self._ordered

    def is_online(self, entry: GranuleEntry) -> bool:
        return not self.needs_order(entry) or self.is_ordered(entry.granule_id)

    def order(self, granule_ids: Iterable[str]) -> list[str]:
        """Order granules (idempotent); returns the ids ordered for the first time, and persists them."""
        with self._lock:
            new = [i for i in dict.fromkeys(granule_ids) if i not in self._ordered]
            if not new:
                return []
            self._ordered.update(new)
            if self.path is not None:
                write_json_atomically(self.path, {"ordered": sorted(self._ordered)})
        self.stats.add("granules_ordered", len(new))
        log.info("ordered %d granules", len(new))
        return new

    @property
    def ordered(self) -> list[str]:
        with self._lock:
            return sorted(self._ordered)
