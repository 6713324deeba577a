"""Where the emulator's granules come from: generated on demand from the orbit model, or a folder of files.

Both stores answer the same questions: which granules intersect a time window (the catalogue), which granule
a remote path names and what a remote folder holds (SFTP), and where the granule's bytes are on disk.

Synthetic granules are generated lazily, on the first catalogue page or SFTP request that needs them, into a
cache folder keyed by seed, scan count, byte order and generator version; a small size index next to the
files lets a restarted service reuse them without regenerating.

Where the current tree lives (its root, whether it has a day level) is the store's :class:`TreeLayout`; the
legacy tree ``/standard/<product dir>/YYYY/MM/<file>`` never moves.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import math
import multiprocessing
import posixpath
import threading
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import CancelledError, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from ..formats import l1b
from ..mission import Mission
from . import orbit
from .stats import Stats, write_json_atomically

log = logging.getLogger("amsr2flow.emulator.store")

LEGACY_ROOT = "/standard"
CURRENT_ROOT = "/product/Standard"
#: Top-level folders of the legacy service (only ``standard`` holds anything here).
LEGACY_TOP_FOLDERS = ("nrt", "order", "process", "standard")


@dataclass(frozen=True)
class ProductKind:
    """A G-Portal dataset: its id and where its files live below the tree roots."""

    dataset_id: str
    satellite: str
    sensor: str
    platform: str
    level: str

    def product_dir(self, product_version: str) -> str:
        return f"{self.satellite}/{self.satellite}.{self.sensor}/{self.level}/{product_version[0]}"


#: (name prefix, the three letters of the product kind after "L1SG") -> dataset.
PRODUCT_KINDS: dict[tuple[str, str], ProductKind] = {
    ("GW1AM2", "BTB"): ProductKind("11001001", "GCOM-W", "AMSR2", "GCOM-W1", "L1B"),
    ("GW1AM2", "RTB"): ProductKind("11001002", "GCOM-W", "AMSR2", "GCOM-W1", "L1R"),
    ("A2ES1M", "BTB"): ProductKind("25001000", "Aqua", "AMSR-E", "Aqua", "L1B"),
    ("A2ES1M", "RTB"): ProductKind("25001001", "Aqua", "AMSR-E", "Aqua", "L1R"),
}


@dataclass(frozen=True)
class GranuleEntry(orbit.UtcSpan):
    """One catalogued granule, whichever store it comes from."""

    granule_id: str
    file_name: str
    dataset_id: str
    platform: str
    sensor: str
    level: str
    product_version: str
    product_dir: str
    start_unix: float
    end_unix: float
    orbit_direction: str  # "A" or "D" ("U" possible for mirrored files)
    path_number: int
    orbit_number: int | None
    spec: orbit.GranuleSpec | None = None  # synthetic granules
    source_path: Path | None = None  # mirrored files
    ring: tuple[tuple[float, float], ...] | None = None  # (lon, lat) footprint outline of mirrored files

    @property
    def day(self) -> date:
        return self.start_utc.date()

    @property
    def legacy_remote_path(self) -> str:
        """Absolute legacy path, ``/standard/<product dir>/YYYY/MM/<file>``."""
        s = self.start_utc
        return f"{LEGACY_ROOT}/{self.product_dir}/{s:%Y}/{s:%m}/{self.file_name}"

    @property
    def current_remote_path(self) -> str:
        """Current path, ``/product/Standard/<product dir>/YYYY/MM/DD/<file>``."""
        s = self.start_utc
        return f"{CURRENT_ROOT}/{self.product_dir}/{s:%Y}/{s:%m}/{s:%d}/{self.file_name}"


@dataclass(frozen=True)
class TreeLayout:
    """Where the current SFTP tree serves files: ``<root>/<product dir>/YYYY/MM[/DD]/<file>``."""

    root: str = CURRENT_ROOT
    day_level: bool = True
    legacy_tree: bool = True  # the legacy /standard tree is served beside it

    @property
    def root_parts(self) -> list[str]:
        return [p for p in self.root.split("/") if p]

    def path(self, entry: GranuleEntry) -> str:
        s = entry.start_utc
        day = f"/{s:%d}" if self.day_level else ""
        return f"{self.root}/{entry.product_dir}/{s:%Y}/{s:%m}{day}/{entry.file_name}"


def entry_from_spec(spec: orbit.GranuleSpec) -> GranuleEntry:
    f = spec.flavour
    return GranuleEntry(
        granule_id=spec.granule_id,
        file_name=spec.file_name,
        dataset_id=f.dataset_id,
        platform=f.platform,
        sensor=f.sensor,
        level="L1B",
        product_version=f.product_version,
        product_dir=f.remote_product_dir,
        start_unix=spec.start_unix,
        end_unix=spec.end_unix,
        orbit_direction=spec.orbit_direction,
        path_number=spec.path_number,
        orbit_number=spec.orbit_number,
        spec=spec,
    )


def normalise_remote_path(path: str) -> str:
    """Absolute, normalised form of a client's path; relative paths start at the login folder ``/``."""
    text = path if isinstance(path, str) else path.decode("utf-8", "replace")
    return posixpath.normpath("/" + text.lstrip("/")) if text not in ("", ".") else "/"


@dataclass(frozen=True)
class DirEntry:
    """A name in a remote folder: a sub-folder (``entry`` is None) or a granule file."""

    name: str
    entry: GranuleEntry | None = None


class GranuleStore:
    """What both stores share: the remote folder tree built from product folders and days."""

    dataset_ids: tuple[str, ...] = ()
    layout: TreeLayout = TreeLayout()

    # -- to be provided by the concrete stores --------------------------------------------------------------
    def entries_between(self, start: datetime, end: datetime, dataset_ids: Iterable[str]) -> list[GranuleEntry]:
        raise NotImplementedError

    def product_dirs(self) -> list[str]:
        raise NotImplementedError

    def served_days(self, product_dir: str) -> list[date]:
        raise NotImplementedError

    def entries_on(self, product_dir: str, day: date) -> list[GranuleEntry]:
        raise NotImplementedError

    def entry_for_file(self, file_name: str) -> GranuleEntry | None:
        raise NotImplementedError

    def materialise(self, entry: GranuleEntry) -> Path:
        """Path of the granule's file on disk, generating it if needed."""
        raise NotImplementedError

    def known_size(self, entry: GranuleEntry) -> int | None:
        """Size if known without generating anything."""
        raise NotImplementedError

    def sizes(self, entries: list[GranuleEntry]) -> dict[str, int]:
        """Exact sizes of several granules (generating the missing ones), by granule id."""
        return {e.granule_id: self.materialise(e).stat().st_size for e in entries}

    def close(self) -> None:
        """Release workers; the default store has none."""

    # -- the tree ---------------------------------------------------------------------------------------------
    def current_path(self, entry: GranuleEntry) -> str:
        """Where the current tree serves the granule (follows the layout's root and day level)."""
        return self.layout.path(entry)

    def entry_for_path(self, path: str) -> GranuleEntry | None:
        """The granule a remote path names, in either tree, or None."""
        norm = normalise_remote_path(path)
        entry = self.entry_for_file(posixpath.basename(norm))
        if entry is None:
            return None
        if norm == self.current_path(entry) or (self.layout.legacy_tree and norm == entry.legacy_remote_path):
            return entry
        return None

    def list_dir(self, path: str) -> list[DirEntry] | None:
        """Names in a remote folder, or None if there is no such folder.

        Both trees are looked up; where they share a folder (a current tree rooted at ``/standard``), its
        listing is the union of both, the legacy names first.
        """
        parts = [p for p in normalise_remote_path(path).split("/") if p]
        listings = [x for x in (self._list_legacy(parts), self._list_current(parts)) if x is not None]
        if not listings:
            return None
        merged: dict[str, DirEntry] = {}
        for listing in listings:
            for item in listing:
                merged.setdefault(item.name, item)
        return list(merged.values())

    def _list_legacy(self, parts: list[str]) -> list[DirEntry] | None:
        if not self.layout.legacy_tree:
            return [] if not parts else None
        if not parts:
            return [DirEntry(n) for n in LEGACY_TOP_FOLDERS]
        if parts[0] in ("nrt", "order", "process") and len(parts) == 1:
            return []
        if parts[0] == "standard":
            return self._list_below_root(parts[1:], with_day_level=False)
        return None

    def _list_current(self, parts: list[str]) -> list[DirEntry] | None:
        root = self.layout.root_parts
        if len(parts) < len(root):
            return [DirEntry(root[len(parts)])] if parts == root[: len(parts)] else None
        if parts[: len(root)] == root:
            return self._list_below_root(parts[len(root) :], with_day_level=self.layout.day_level)
        return None

    def is_dir(self, path: str) -> bool:
        return self.list_dir(path) is not None

    def _list_below_root(self, parts: list[str], with_day_level: bool) -> list[DirEntry] | None:
        for product_dir in self.product_dirs():
            pd_parts = product_dir.split("/")
            depth = len(parts)
            if depth < len(pd_parts) and parts == pd_parts[:depth]:
                names = {p.split("/")[depth] for p in self.product_dirs() if p.split("/")[:depth] == parts}
                return [DirEntry(n) for n in sorted(names)]
            if parts[: len(pd_parts)] == pd_parts:
                return self._list_dates(product_dir, parts[len(pd_parts) :], with_day_level)
        return None

    def _list_dates(self, product_dir: str, rest: list[str], with_day_level: bool) -> list[DirEntry] | None:
        days = self.served_days(product_dir)
        if not rest:
            return [DirEntry(y) for y in sorted({f"{d:%Y}" for d in days})]
        month_days = [d for d in days if f"{d:%Y}" == rest[0]]
        if len(rest) == 1:
            return [DirEntry(m) for m in sorted({f"{d:%m}" for d in month_days})] if month_days else None
        days_in_month = [d for d in month_days if f"{d:%m}" == rest[1]]
        if not days_in_month:
            return None
        if len(rest) == 2:
            if with_day_level:
                return [DirEntry(f"{d:%d}") for d in days_in_month]
            return [DirEntry(e.file_name, e) for d in days_in_month for e in self.entries_on(product_dir, d)]
        if len(rest) == 3 and with_day_level:
            day = [d for d in days_in_month if f"{d:%d}" == rest[2]]
            return [DirEntry(e.file_name, e) for e in self.entries_on(product_dir, day[0])] if day else None
        return None


def _daterange(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


class SyntheticStore(GranuleStore):
    """Granules of the orbit model, written by ``amsr2flow.synth`` into a cache folder on first use."""

    def __init__(
        self,
        cache_root: Path,
        stats: Stats,
        *,
        seed: int = 0,
        scans: int | None = None,
        dataset_ids: Iterable[str] = tuple(orbit.FLAVOUR_BY_DATASET),
        first_day: date | None = None,
        last_day: date | None = None,
        workers: int = 2,
        big_endian: bool = False,
    ) -> None:
        self.flavours = {i: orbit.FLAVOUR_BY_DATASET[i] for i in dataset_ids}
        self.dataset_ids = tuple(self.flavours)
        self.seed = seed
        self.scans = scans
        self.first_day = first_day
        self.last_day = last_day
        self.stats = stats
        # The generator's fingerprint is part of the folder name: granules from an older generator are not
        # served after an upgrade (their bytes and sizes would disagree with freshly generated ones).
        # Big-endian granules get their own folder: the two byte orders must never mix in one cache.
        self.big_endian = big_endian
        variant = f"seed{seed}-scans{scans if scans else 'full'}-gen{generator_fingerprint()}"
        if big_endian:
            variant += "-big-endian"
        self.cache_dir = cache_root / variant
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.cache_dir.glob(".*.part"):  # from a generation killed by a previous stop
            leftover.unlink(missing_ok=True)
        self._index_path = self.cache_dir / "sizes.json"
        self._sizes: dict[str, int] = self._load_index()
        self._index_lock = threading.Lock()
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self.workers = workers
        # Threads fan a page's missing granules out; the generation itself runs in worker processes because
        # HDF5 writes hold a global lock (threads do not speed it up) and would starve the servers' threads.
        self._fan_out = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="generate")
        self._processes: ProcessPoolExecutor | None = None
        self._processes_lock = threading.Lock()
        self._closed = False

    # -- served days and entries ---------------------------------------------------------------------------
    def _is_served(self, day: date, flavour: Mission) -> bool:
        if self.first_day and day < self.first_day:
            return False
        if self.last_day and day > self.last_day:
            return False
        return day >= flavour.first_day and (flavour.last_day is None or day <= flavour.last_day)

    def entries_between(self, start: datetime, end: datetime, dataset_ids: Iterable[str]) -> list[GranuleEntry]:
        out = []
        for dataset_id in dataset_ids:
            flavour = self.flavours.get(dataset_id)
            if flavour is None:
                continue
            specs = orbit.granules_between(start, end, flavour)
            out.extend(entry_from_spec(s) for s in specs if self._is_served(s.start_utc.date(), flavour))
        return sorted(out, key=lambda e: (e.start_unix, e.granule_id))

    def product_dirs(self) -> list[str]:
        return [f.remote_product_dir for f in self.flavours.values()]

    def served_days(self, product_dir: str) -> list[date]:
        flavour = next(f for f in self.flavours.values() if f.remote_product_dir == product_dir)
        first = max(d for d in (flavour.first_day, self.first_day) if d)
        last = self.last_day or datetime.now(timezone.utc).date()
        if flavour.last_day:
            last = min(last, flavour.last_day)
        return _daterange(first, last) if first <= last else []

    def entries_on(self, product_dir: str, day: date) -> list[GranuleEntry]:
        flavour = next(f for f in self.flavours.values() if f.remote_product_dir == product_dir)
        if not self._is_served(day, flavour):
            return []
        return [entry_from_spec(s) for s in orbit.granules_beginning_on(day, flavour)]

    def entry_for_file(self, file_name: str) -> GranuleEntry | None:
        if not file_name.endswith(".h5"):
            return None
        try:
            parsed = l1b.parse_granule_name(file_name)
        except ValueError:
            return None
        for flavour in self.flavours.values():
            if flavour.name_prefix != parsed.platform:
                continue
            spec = orbit.granule_by_id(parsed.granule_id, flavour)
            if spec is not None and self._is_served(spec.start_utc.date(), flavour):
                return entry_from_spec(spec)
        return None

    # -- generation ------------------------------------------------------------------------------------------
    def _load_index(self) -> dict[str, int]:
        try:
            raw = json.loads(self._index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def _lock_for(self, file_name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[file_name]

    def known_size(self, entry: GranuleEntry) -> int | None:
        size = self._sizes.get(entry.file_name)
        if size is not None and (self.cache_dir / entry.file_name).is_file():
            return size
        return None

    def materialise(self, entry: GranuleEntry) -> Path:
        path = self.cache_dir / entry.file_name
        with self._lock_for(entry.file_name):
            size = self._sizes.get(entry.file_name)
            if size is not None and path.is_file() and path.stat().st_size == size:
                return path
            assert entry.spec is not None
            size = self._generate(path, entry.spec)
            with self._index_lock:
                self._sizes[entry.file_name] = size
                write_json_atomically(self._index_path, self._sizes)
        self.stats.add("granules_generated")
        return path

    def _generate(self, path: Path, spec: orbit.GranuleSpec) -> int:
        log.info("generating %s", path.name)
        job = (write_synthetic_granule, path, spec, self.seed, self.scans, self.big_endian)
        if self.workers == 0:
            return job[0](*job[1:])
        try:
            return self._worker_pool().submit(*job).result()
        except BrokenProcessPool:
            if self._closed:
                raise CancelledError from None
            log.warning("a generator process died; starting new ones and retrying %s", path.name)
            with self._processes_lock:
                self._processes = None
            return self._worker_pool().submit(*job).result()

    def _worker_pool(self) -> ProcessPoolExecutor:
        """Started on first use, so a service that only answers from its cache never spawns processes."""
        with self._processes_lock:
            if self._closed:
                raise CancelledError
            if self._processes is None:
                context = multiprocessing.get_context("spawn")  # forking a threaded server is unsafe
                self._processes = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
            return self._processes

    def sizes(self, entries: list[GranuleEntry]) -> dict[str, int]:
        """Exact sizes, generating missing granules on the worker pool (one page of records at a time)."""
        known = {e.granule_id: s for e in entries if (s := self.known_size(e)) is not None}
        missing = [e for e in entries if e.granule_id not in known]
        paths = list(self._fan_out.map(self.materialise, missing))
        known.update({e.granule_id: p.stat().st_size for e, p in zip(missing, paths, strict=True)})
        return known

    def close(self) -> None:
        self._fan_out.shutdown(wait=False, cancel_futures=True)
        with self._processes_lock:
            self._closed = True
            if self._processes is not None:
                _stop_worker_processes(self._processes)


def generator_fingerprint() -> str:
    """Short hash of the generator's source (read, not imported: importing it is the workers' job)."""
    spec = importlib.util.find_spec("amsr2flow.emulator.synth")
    if spec is None or spec.origin is None:
        raise RuntimeError("amsr2flow.emulator.synth is missing: synthetic granules cannot be generated")
    return hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()[:8]


def _stop_worker_processes(executor: ProcessPoolExecutor) -> None:
    """Cancel queued work and end running generations now: a stop must not wait for a 2-second granule.

    ``ProcessPoolExecutor`` has no public way to end running workers before Python 3.14; the partial file a
    killed worker leaves is a hidden ``.part`` file, removed when the next store opens the cache.
    """
    workers = list(getattr(executor, "_processes", {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        with contextlib.suppress(Exception):
            process.terminate()


def write_synthetic_granule(
    path: Path, spec: orbit.GranuleSpec, seed: int, scans: int | None, big_endian: bool = False
) -> int:
    """Generate one granule (run in a worker process); returns its size."""
    from . import synth  # imported late: only a service that generates needs it

    return int(synth.write_granule(path, spec, seed=seed, n_scans=scans, big_endian=big_endian))


class MirrorStore(GranuleStore):
    """A folder of existing granule files, served as they are; records come from the files themselves."""

    def __init__(self, folder: Path, dataset_ids: Iterable[str] | None = None) -> None:
        self.folder = folder
        wanted = set(dataset_ids) if dataset_ids else None
        entries = [e for e in scan_mirror_folder(folder) if wanted is None or e.dataset_id in wanted]
        self._by_file = {e.file_name: e for e in entries}
        self._entries = sorted(self._by_file.values(), key=lambda e: (e.start_unix, e.granule_id))
        self._by_day: defaultdict[tuple[str, date], list[GranuleEntry]] = defaultdict(list)
        for e in self._entries:
            self._by_day[(e.product_dir, e.day)].append(e)
        self.dataset_ids = tuple(sorted({e.dataset_id for e in entries}))

    @property
    def entries(self) -> list[GranuleEntry]:
        return list(self._entries)

    def entries_between(self, start: datetime, end: datetime, dataset_ids: Iterable[str]) -> list[GranuleEntry]:
        wanted = set(dataset_ids)
        t0, t1 = start.timestamp(), end.timestamp()
        return [e for e in self._entries if e.dataset_id in wanted and e.end_unix >= t0 and e.start_unix <= t1]

    def product_dirs(self) -> list[str]:
        return sorted({e.product_dir for e in self._entries})

    def served_days(self, product_dir: str) -> list[date]:
        return sorted({day for (pd, day) in self._by_day if pd == product_dir})

    def entries_on(self, product_dir: str, day: date) -> list[GranuleEntry]:
        return list(self._by_day.get((product_dir, day), []))

    def entry_for_file(self, file_name: str) -> GranuleEntry | None:
        return self._by_file.get(file_name)

    def known_size(self, entry: GranuleEntry) -> int | None:
        assert entry.source_path is not None
        return entry.source_path.stat().st_size

    def materialise(self, entry: GranuleEntry) -> Path:
        assert entry.source_path is not None
        return entry.source_path


def scan_mirror_folder(folder: Path) -> list[GranuleEntry]:
    """Entries for every ``*.h5`` below ``folder`` whose name parses; others are skipped with a warning."""
    entries = []
    for path in sorted(folder.rglob("*.h5")):
        try:
            entries.append(entry_from_file(path))
        except ValueError as exc:
            log.warning("mirror: skipping %s: %s", path, exc)
    log.info("mirror: %d granule files in %s", len(entries), folder)
    return entries


def entry_from_file(path: Path) -> GranuleEntry:
    """Catalogue facts of an existing granule: the name, then the file's own attributes where present."""
    name = l1b.parse_granule_name(path.name)
    kind = PRODUCT_KINDS.get((name.platform, name.product_kind[4:7]))
    if kind is None:
        raise ValueError(f"no G-Portal dataset known for {name.platform} {name.product_kind}")
    attrs = _read_file_facts(path)
    start = attrs.get("start") or name.start_minute_utc.timestamp()
    end = attrs.get("end") or start + orbit.HALF_ORBIT_S
    return GranuleEntry(
        granule_id=name.granule_id,
        file_name=path.name,
        dataset_id=kind.dataset_id,
        platform=kind.platform,
        sensor=kind.sensor,
        level=kind.level,
        product_version=name.product_version,
        product_dir=kind.product_dir(name.product_version),
        start_unix=float(start),
        end_unix=float(end),
        orbit_direction=name.orbit_direction,
        path_number=name.path_number,
        orbit_number=attrs.get("orbit"),
        source_path=path,
        ring=attrs.get("ring"),
    )


def _read_file_facts(path: Path) -> dict:
    """Observation times, orbit number and footprint outline from an HDF5 granule; {} if unreadable."""
    import h5py

    facts: dict = {}
    try:
        with h5py.File(path, "r") as h5:
            facts["start"] = _attr_time(h5.attrs, "ObservationStartDateTime")
            facts["end"] = _attr_time(h5.attrs, "ObservationEndDateTime")
            orbit_text = _attr_text(h5.attrs, "StartOrbitNumber")
            facts["orbit"] = int(orbit_text) if orbit_text and orbit_text.strip().isdigit() else None
            if l1b.LATITUDE_89A in h5 and l1b.LONGITUDE_89A in h5:
                facts["ring"] = _edge_ring(h5[l1b.LATITUDE_89A], h5[l1b.LONGITUDE_89A])
    except (OSError, ValueError, KeyError) as exc:
        log.warning("mirror: %s: cannot read attributes (%s); using the file name", path.name, exc)
    return {k: v for k, v in facts.items() if v is not None}


def _attr_text(attrs, name: str) -> str | None:
    if name not in attrs:
        return None
    value = attrs[name]
    if hasattr(value, "shape") and getattr(value, "shape", ()) != ():
        value = value[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def _attr_time(attrs, name: str) -> float | None:
    text = _attr_text(attrs, name)
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _edge_ring(lat_ds, lon_ds, samples: int = 12) -> tuple[tuple[float, float], ...] | None:
    """Outline of a swath from its first and last footprint columns, at a few rows."""
    rows = lat_ds.shape[0]
    if rows == 0:
        return None
    idx = sorted({round(i * (rows - 1) / (samples - 1)) for i in range(samples)})
    lat, lon = lat_ds[idx, :], lon_ds[idx, :]
    left = [(float(lon[i, 0]), float(lat[i, 0])) for i in range(len(idx))]
    right = [(float(lon[i, -1]), float(lat[i, -1])) for i in range(len(idx))]
    ring = left + right[::-1]
    ring = [p for p in ring if all(math.isfinite(v) and v > l1b.GEO_ABNORMAL_MAX for v in p)]
    return (*ring, ring[0]) if len(ring) >= 3 else None
