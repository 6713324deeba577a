"""The record: every archived swath of a run once, AMSR-E and AMSR2 alike, in one transactional Zarr store.

Why Icechunk (transactional Zarr v3 on the local file system), over plain Zarr v3 with a commit protocol of our
own: an append touches every array (each channel, positions, scan times, the index), and a reader must never
see some arrays grown and others not. Plain Zarr keeps each array's shape in its own ``zarr.json``, so no
rename makes an append of ~20 arrays atomic; our own protocol would need readers to go through our code (a
commit pointer they honour), which ``xarray.open_zarr`` does not. Icechunk writes chunks and metadata of a
session aside and makes them visible by one conditional update of the branch reference: a kill at any
instant leaves the last commit as it was, readable by anyone; a rerun appends what is not in it. What it
costs: readers need the ``icechunk`` package (``open_record`` or ``xarray.open_zarr(session.store)``), not
plain ``zarr``; a kill leaves the unreferenced chunks of the lost session on disk (up to an archive's worth),
which the next append collects (a marker says an append was cut short); each commit adds a snapshot and a
manifest (kilobytes); one process writes at a time (a lock file; the local file system cannot arbitrate two
committers).

Layout (docs/formats.md#the-record): the same CF variables as the exports (``formats.dataset``), dimensions
``(swath, scan, pixel | pixel_89 | ...)``, raw values with their scale factors and fills, one swath per chunk
(``SCAN_CHUNK`` rows: a whole granule), and a per-swath index: ``time``, ``time_end``, ``granule_id``,
``orbit_direction``, ``sensor``, ``n_scans``, ``first_scan``, ``region``, ``region_key``, ``source_sha256``,
``archive``. Swaths are in the order they were appended: each archive's new swaths in time order, one commit
per archive. A granule that arrives late (an absent one found on a recheck) is appended at the end: no chunk
of the record is rewritten, and ``time_order`` (rewritten with each commit, 8 bytes per swath) lists the
positions in time order. The same appends give the same array bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import JAXA_ACKNOWLEDGEMENT, __version__
from . import l1b
from .archive import Archive
from .swath import index_times

# icechunk logs a warning on every open of a local repository ("not safe for concurrent commits"): we hold a
# lock for that, and a user should not read it on every job
os.environ.setdefault("ICECHUNK_LOG", "error")

RECORD_FORMAT = 1
BRANCH = "main"
#: Rows per chunk along ``scan``: a granule's non-overlap scans (1974-1984) fit in one, so a swath is one chunk
#: per variable. Longer swaths (never seen) take a second chunk along ``scan``.
SCAN_CHUNK = 2048
#: Swaths per chunk of the index arrays. An append rewrites the last chunk of each, and Icechunk keeps the old
#: one for the commits before: small chunks keep a daily append's cost (and history) small, ~18 chunks per
#: array for 13 years keep an open quick.
INDEX_CHUNK = 8192
#: Swaths written per call (bounded memory: ~1 MB per swath and channel).
WRITE_BATCH = 32
LOCK_NAME = "append.lock"
#: Beside the store while an append runs: found at the start of the next one, it says the last was cut short
#: and left unreferenced chunks, which are then collected.
CUT_SHORT_NAME = "append.unfinished"
#: Swath times are whole milliseconds (the index's precision), kept exact as integers; NaT is the fill.
TIME_UNITS = "milliseconds since 1970-01-01 00:00:00"
NO_TIME = np.iinfo(np.int64).min  # NaT's integer

#: The per-swath index: name -> (dtype, fill, attributes). Strings are variable-length UTF-8.
INDEX_VARIABLES: dict[str, tuple[Any, Any, dict[str, Any]]] = {
    "time": (
        np.int64,
        NO_TIME,
        {
            "standard_name": "time",
            "long_name": "first scan",
            "units": TIME_UNITS,
            "calendar": "proleptic_gregorian",
            "_FillValue": int(NO_TIME),
        },
    ),
    "time_end": (
        np.int64,
        NO_TIME,
        {"long_name": "last scan", "units": TIME_UNITS, "calendar": "proleptic_gregorian", "_FillValue": int(NO_TIME)},
    ),
    "granule_id": (str, "", {"long_name": "JAXA granule id"}),
    "orbit_direction": (
        str,
        "",
        {"long_name": "half-orbit", "flag_meanings": "A: ascending, D: descending, U: unknown"},
    ),
    "sensor": (str, "", {"long_name": "sensor of the swath (AMSR2 on GCOM-W, AMSR-E on Aqua), from the granule id"}),
    "n_scans": (np.int32, 0, {"long_name": "rows of the swath that are real"}),
    "first_scan": (
        np.int64,
        0,
        {"long_name": "row of the source granule that is the swath's first row (cropped to a region)"},
    ),
    "region": (str, "", {"long_name": "region the swath was cropped to (empty: the whole granule)"}),
    "region_key": (str, "", {"long_name": "what identifies the crop (region fingerprint and margin)"}),
    "source_sha256": (str, "", {"long_name": "SHA-256 of the granule file the swath was extracted from"}),
    "archive": (str, "", {"long_name": "the archive the swath was appended from"}),
}
TIME_ORDER = "time_order"
#: What a training source's index holds (amsr2flow.training.SwathSource); the others are read when asked for.
SOURCE_COLUMNS = ("time", "time_end", "granule_id", "orbit_direction", "sensor", "n_scans")


RECORD_NOTE = (
    "Every archived swath of a run once, in the order of its appends (each archive's new swaths in time order; "
    "a late granule at the end): `time_order` lists the positions in time order. Channels are aligned by "
    "frequency and polarisation; a channel a sensor does not measure (AMSR-E has no 7.3 GHz) is fill in its "
    "swaths, and AMSR-E's 89.0A channels are fill after its A horn failed in November 2004, as in the granules. "
    "The per-swath `sensor` says which instrument each swath is from; no inter-calibration is applied."
)


class RecordError(ValueError):
    """A record that cannot be opened or appended to as asked; the message names the problem and the fix."""


#: The process that first used Icechunk here. Icechunk runs on a Rust (tokio) runtime whose threads do not
#: survive a fork: a process forked after it was used hangs on its first call (a PyTorch DataLoader forks its
#: workers by default on Linux). Such a child is told so at once instead.
_ICECHUNK_PROCESS: int | None = None
FORKED_CHILD = (
    "the record cannot be read in a process forked after the record was opened in its parent (Icechunk's "
    "runtime does not survive a fork, so it would hang): start the workers with 'spawn' or 'forkserver' "
    "(PyTorch: DataLoader(..., multiprocessing_context='forkserver'); multiprocessing.get_context('spawn'))"
)


def _icechunk() -> Any:
    global _ICECHUNK_PROCESS
    if _ICECHUNK_PROCESS is not None and os.getpid() != _ICECHUNK_PROCESS:
        raise RecordError(FORKED_CHILD)
    try:
        import icechunk
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise RecordError("the record needs the icechunk package: pip install icechunk") from exc
    _ICECHUNK_PROCESS = os.getpid()
    return icechunk


def is_record(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a record (an Icechunk repository folder)."""
    p = Path(path)
    return p.is_dir() and (p / "refs").is_dir() and (p / "snapshots").is_dir()


def _repository(path: Path, *, create: bool = False) -> Any:
    icechunk = _icechunk()
    storage = icechunk.local_filesystem_storage(str(path))
    if is_record(path):
        return icechunk.Repository.open(storage)
    if not create:
        raise RecordError(f"{path} is not a record (no Icechunk repository there); build one with `record: true`")
    if path.exists() and any(path.iterdir()):
        raise RecordError(f"{path} exists and is not a record; move it aside or choose another record path")
    # Repository.create writes the first snapshot, then the branch reference: a kill between them would leave a
    # folder that is neither empty nor a record, refused by every rerun. Create it beside the record (under the
    # append lock) and rename it into place: rename(2) replaces the empty folder the lock made, or none.
    creating = path.parent / f".{path.name}.creating"
    shutil.rmtree(creating, ignore_errors=True)  # left by a creation that was killed
    icechunk.Repository.create(icechunk.local_filesystem_storage(str(creating)))
    os.replace(creating, path)
    return icechunk.Repository.open(storage)


# -- reading -----------------------------------------------------------------------------------------------
def open_record(path: str | os.PathLike[str], *, chunks: Any = None, **decode: Any) -> Any:
    """The record as a lazy ``xarray.Dataset`` of its last commit (CF-decoded: Kelvin, times); ``chunks``
    as ``xarray.open_zarr`` takes it (default: dask arrays of one swath per chunk)."""
    import xarray as xr

    session = _repository(Path(path)).readonly_session(branch=BRANCH)
    if not _has_swaths_group(session.store):
        raise RecordError(f"{path} holds no commit with swaths yet; run the workflow with `record: true`")
    kwargs = {"chunks": chunks} if chunks is not None else {}
    dataset = xr.open_zarr(session.store, consolidated=False, **kwargs, **decode)
    # the per-swath index in memory (a few MB for 13 years): selections such as `ds.sensor == "AMSR2"` need
    # values, not dask arrays
    for name in (*INDEX_VARIABLES, TIME_ORDER):
        if name in dataset.variables:
            dataset[name] = dataset[name].load()
    return _scaled_as_float32(dataset)


def _scaled_as_float32(dataset: Any) -> Any:
    """Scaled 16-bit raw values as float32 (lazily), as the exports decode them: xarray decodes them to float64
    because a JSON scale factor has no float32 type, which would double every array's memory for nothing
    (16-bit values with a 0.01 scale need no more than float32)."""
    for name, var in dataset.data_vars.items():
        raw = var.encoding.get("dtype")
        if (
            raw is not None
            and np.dtype(raw).itemsize <= 2
            and "scale_factor" in var.encoding
            and var.dtype == np.float64
        ):
            dataset[name] = var.astype(np.float32)
            dataset[name].encoding = var.encoding
    return dataset


def _has_swaths_group(store: Any) -> bool:
    import zarr

    try:
        group = zarr.open_group(store, mode="r")
    except (FileNotFoundError, ValueError):
        return False
    return "granule_id" in group.array_keys()


def _decode_times(values: np.ndarray) -> np.ndarray:
    """Milliseconds since 1970 as datetime64[ns] (``NO_TIME`` is NaT's own integer, so it stays NaT)."""
    return values.astype(np.int64).view("datetime64[ms]").astype("datetime64[ns]")


def _encode_times(stamps: Iterable[str]) -> np.ndarray:
    """The index's ISO times as milliseconds since 1970 (``NO_TIME``, NaT's integer, when unknown)."""
    return index_times(stamps).astype("datetime64[ms]").view(np.int64)


class RecordSource:
    """The last commit of a record as a source of swaths for :mod:`amsr2flow.training` (raw values, one swath
    read at a time). Opens lazily in each process (a DataLoader worker forks or pickles it)."""

    def __init__(self, path: str | os.PathLike[str], snapshot: str | None = None) -> None:
        self.path = Path(path)
        if not is_record(self.path):
            raise RecordError(f"{self.path} is not a record (no Icechunk repository there)")
        self._snapshot = snapshot or _repository(self.path).lookup_branch(BRANCH)
        self._group: Any = None
        self._arrays: dict[str, Any] = {}
        self._index: dict[str, np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_snapshot": self._snapshot, "_group": None, "_arrays": {}, "_index": self._index}

    @property
    def snapshot(self) -> str:
        """The commit read (a later commit is not seen: a training run reads one version)."""
        return self._snapshot

    @property
    def group(self) -> Any:
        if _ICECHUNK_PROCESS is not None and os.getpid() != _ICECHUNK_PROCESS:
            raise RecordError(FORKED_CHILD)  # an open group of the parent would hang here
        if self._group is None:
            import zarr

            session = _repository(self.path).readonly_session(snapshot_id=self._snapshot)
            self._group = zarr.open_group(session.store, mode="r")
        return self._group

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(json.loads(self.group.attrs.get("channels", "[]")))

    def __len__(self) -> int:
        return int(self.group["granule_id"].shape[0])

    def index(self, columns: Sequence[str] = SOURCE_COLUMNS) -> dict[str, np.ndarray]:
        """The index columns asked for (by default those of a training source), read once each."""
        if self._index is None:
            self._index = {}
        for name in columns:
            if name not in self._index:
                self._index[name] = self._column(name)
        return {name: self._index[name] for name in columns}

    def _column(self, name: str) -> np.ndarray:
        array = self.group[name]
        if INDEX_VARIABLES[name][0] is str:
            return np.array(_strings(array), dtype=str)
        values = np.asarray(array[:])
        return _decode_times(values) if name in ("time", "time_end") else values

    def scale_factor(self, channel: str) -> float:
        return float(self.group[variable_name(channel)].attrs["scale_factor"])

    def read_raw(self, position: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        rows = int(self.index(("n_scans",))["n_scans"][position])
        return {name: np.asarray(self._array(_array_name(name))[position, :rows]) for name in names}

    def _array(self, name: str) -> Any:
        """An array of the record, opened once (each ``group[name]`` reads its metadata again)."""
        group = self.group
        if name not in self._arrays:
            self._arrays[name] = group[name]
        return self._arrays[name]


def variable_name(channel: str) -> str:
    """``tb_36_5H`` for channel ``36.5H`` (the exports' name)."""
    from .dataset import variable_name as name

    return name(channel)


def _array_name(name: str) -> str:
    """The record's array of a channel ("36.5H") or of another variable ("latitude", "scan_time")."""
    return variable_name(name) if name[:1].isdigit() else name


# -- appending ----------------------------------------------------------------------------------------------
@dataclass
class AppendResult:
    """What one archive added to the record."""

    archive: str
    added: int = 0
    already: int = 0
    snapshot: str = ""
    swaths: int = 0  # the record's swaths after this append
    granule_ids: list[str] = field(default_factory=list)  # those appended, in record order
    granule_ids_in_archive: list[str] = field(default_factory=list)  # every swath of the archive


@dataclass
class _Template:
    """The record's variables as the archive's Dataset describes them (raw): dims, dtype, fill, attributes."""

    dims: dict[str, tuple[str, ...]] = field(default_factory=dict)
    dtypes: dict[str, np.dtype] = field(default_factory=dict)
    fills: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _raw_template(dataset: Any) -> _Template:
    """Every per-scan variable of an archive's raw Dataset (``mask_and_scale=False, decode_times=False``)."""
    template = _Template()
    for name, var in dataset.variables.items():
        if var.dims[:2] != ("swath", "scan"):
            continue
        attrs = dict(var.attrs)
        fill = attrs.pop("_FillValue", None)
        dtype = np.dtype(var.dtype)
        if fill is None:
            fill = np.nan if dtype.kind == "f" else 0
        template.dims[str(name)] = tuple(str(d) for d in var.dims)
        template.dtypes[str(name)] = dtype
        template.fills[str(name)] = fill
        template.attrs[str(name)] = _json_attrs(attrs)
    return template


def _json_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, np.float32):  # 0.01, not float32's 0.009999999776482582 widened
            value = float(str(value))
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


@contextlib.contextmanager
def _append_lock(path: Path) -> Iterator[None]:
    from filelock import FileLock, Timeout

    path.mkdir(parents=True, exist_ok=True)
    path = path.resolve()  # two names of one folder (a symlink) share one lock
    lock = FileLock(str(path.parent / f".{path.name}.{LOCK_NAME}"))
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        raise RecordError(
            f"another process is appending to {path} (lock {lock.lock_file}); wait for it to end, or remove the "
            "lock file if no such process is running"
        ) from exc
    try:
        yield
    finally:
        lock.release()


def append_archives(
    record_path: str | os.PathLike[str], archive_paths: Sequence[str | os.PathLike[str]], log: Any = None
) -> list[AppendResult]:
    """Append the swaths of each archive that the record does not hold, one commit per archive (archives in
    time order), creating the record on the first append. A swath already in the record is checked to be the
    same granule extraction (its source file and crop); a different one is refused."""

    path = Path(record_path)
    results = []
    with _append_lock(path):
        repo = _repository(path, create=True)
        marker = path.parent / f".{path.name}.{CUT_SHORT_NAME}"
        if marker.exists():
            _collect_garbage(repo, log)
        marker.touch()
        opened = [Archive(p) for p in archive_paths]
        try:
            opened.sort(key=_archive_start)
            for archive in opened:
                result = _append_archive(repo, archive)
                results.append(result)
                if log is not None:
                    log.info(
                        "%s: %d swath(s) appended, %d already in the record (%d in all)",
                        result.archive,
                        result.added,
                        result.already,
                        result.swaths,
                    )
        finally:
            for archive in opened:
                archive.close()
        marker.unlink()  # not on an error: the next append collects what this one may have left
    return results


def _collect_garbage(repo: Any, log: Any) -> None:
    """Delete the chunks and manifests of appends that were cut short (no commit references them). We hold
    the lock, so no session of ours is writing: everything unreferenced now is garbage."""
    from datetime import datetime, timezone

    summary = repo.garbage_collect(datetime.now(timezone.utc))
    if log is not None:
        log.info(
            "the last append was cut short: %d unreferenced chunk(s) (%d bytes) of it deleted",
            summary.chunks_deleted,
            summary.bytes_deleted,
        )


def _archive_start(archive: Any) -> str:
    starts = [s for s in archive.table["scan_start_utc"].tolist() if s]
    return min(starts) if starts else archive.period


def _append_archive(repo: Any, archive: Any) -> AppendResult:
    import zarr

    result = AppendResult(archive=archive.path.name, granule_ids_in_archive=archive.table["granule_id"].tolist())
    session = repo.writable_session(BRANCH)
    store = session.store
    existing = _has_swaths_group(store)
    group = zarr.open_group(store, mode="r+") if existing else zarr.open_group(store, mode="w", zarr_format=3)
    held = _held_swaths(group) if existing else {}
    table = archive.table
    new_positions = []
    for i, row in enumerate(table):
        granule_id = str(row["granule_id"])
        if granule_id in held:
            _check_same_extraction(held[granule_id], row, archive.path)
            result.already += 1
        else:
            new_positions.append(i)
    start = int(group["granule_id"].shape[0]) if existing else 0
    result.swaths = start
    if not new_positions:
        return result
    times = _encode_times(str(table["scan_start_utc"][i]) for i in new_positions)
    # each archive's new swaths in time order (unknown times last, in archive order)
    new_positions = [new_positions[k] for k in np.argsort(_unknown_last(times), kind="stable")]
    dataset = archive.to_xarray(mask_and_scale=False, decode_times=False)
    template = _raw_template(dataset)
    scans = max(int(table["n_scans"][i]) for i in new_positions)
    _prepare_arrays(group, template, archive, dict(dataset.sizes), start, len(new_positions), scans)
    _write_swaths(group, template, dataset, table, new_positions, start)
    _write_index(group, archive, new_positions, start)
    _write_time_order(group)
    _update_attrs(group, archive)
    result.added = len(new_positions)
    result.granule_ids = [str(table["granule_id"][i]) for i in new_positions]
    result.swaths = start + len(new_positions)
    result.snapshot = session.commit(
        f"append {result.added} swath(s) of {archive.path.name}",
        metadata={"archive": archive.path.name, "added": result.added, "swaths": result.swaths},
    )
    return result


def _strings(array: Any) -> list[str]:
    """A string array of the record as Python strings (zarr returns numpy's variable-width StringDType)."""
    return [str(v) for v in np.asarray(array[:]).tolist()]


def _held_swaths(group: Any) -> dict[str, tuple[str, str, int]]:
    ids = _strings(group["granule_id"])
    sha = _strings(group["source_sha256"])
    keys = _strings(group["region_key"])
    scans = np.asarray(group["n_scans"][:]).tolist()
    return {g: (s, k, int(n)) for g, s, k, n in zip(ids, sha, keys, scans, strict=True)}


def _check_same_extraction(held: tuple[str, str, int], row: np.void, archive_path: Path) -> None:
    sha, key, scans = held
    names = row.dtype.names or ()
    row_key = str(row["region_key"]) if "region_key" in names else ""
    if sha != str(row["source_sha256"]) or key != row_key or scans != int(row["n_scans"]):
        granule_id = str(row["granule_id"])
        raise RecordError(
            f"{granule_id} is in the record as another extraction than in {archive_path.name} (source file, region "
            f"crop or scans differ: record {key or 'whole granule'}, {scans} scans; archive "
            f"{row_key or 'whole granule'}, {int(row['n_scans'])} scans). A record holds each granule once: after a "
            "change of region or a re-extraction, move the record aside and let the next run build a new one"
        )


def _prepare_arrays(
    group: Any, template: _Template, archive: Any, sizes: Mapping[str, int], start: int, count: int, scans: int
) -> None:
    """Create what is new (the index, a variable first seen), then grow every array to hold ``count`` more
    swaths and, when a swath is longer than any before, more scans."""
    n = start + count
    for name, (dtype, fill, attrs) in INDEX_VARIABLES.items():
        if name not in group.array_keys():
            _create(group, name, ("swath",), (INDEX_CHUNK,), np.dtype(object) if dtype is str else dtype, fill, attrs)
    if TIME_ORDER not in group.array_keys():
        attrs = {"long_name": "positions of the swaths in time order (the record is in the order of appends)"}
        _create(group, TIME_ORDER, ("swath",), (INDEX_CHUNK,), np.dtype(np.int64), -1, attrs)
    current_scans = int(group.attrs.get("scans", 0))
    scans = max(scans, current_scans)
    for name, dims in template.dims.items():
        if name in group.array_keys():
            _check_compatible(group[name], name, template, archive)
            continue
        shape = (start, current_scans or scans, *(int(sizes[d]) for d in dims[2:]))
        chunks = (1, SCAN_CHUNK, *shape[2:])
        attrs = dict(template.attrs[name])
        if _json_fill(template.fills[name]) is not None:  # NaN fills need no attribute (and JSON has no NaN)
            attrs["_FillValue"] = _json_fill(template.fills[name])
        _create(group, name, dims, chunks, template.dtypes[name], template.fills[name], attrs, shape=shape)
    for name in group.array_keys():
        array = group[name]
        shape = list(array.shape)
        shape[0] = n
        if len(shape) > 1:
            shape[1] = scans
        array.resize(tuple(shape))
    group.attrs["scans"] = scans
    _link_coordinates(group)


#: Per-scan arrays that are coordinates (as in the exports), not data.
PER_SCAN_COORDINATES = ("latitude", "longitude", "scan_time")


def _link_coordinates(group: Any) -> None:
    """Name the index and the positions as coordinates of every data variable (the CF ``coordinates``
    attribute, which xarray reads), so that selecting swaths selects their index too."""
    names = set(group.array_keys())
    linked = " ".join([n for n in (*INDEX_VARIABLES, *PER_SCAN_COORDINATES) if n in names])
    for name in sorted(names - set(INDEX_VARIABLES) - set(PER_SCAN_COORDINATES) - {TIME_ORDER}):
        array = group[name]
        if array.attrs.get("coordinates") != linked:
            array.attrs["coordinates"] = linked


def _json_fill(fill: Any) -> Any:
    value = fill.item() if isinstance(fill, np.generic) else fill
    return None if isinstance(value, float) and np.isnan(value) else value


def _check_compatible(array: Any, name: str, template: _Template, archive: Any) -> None:
    theirs = template.attrs[name].get("scale_factor")
    ours = array.attrs.get("scale_factor")
    if theirs is not None and ours is not None and not np.isclose(float(theirs), float(ours), rtol=1e-6, atol=0):
        raise RecordError(
            f"{archive.path.name}: {name} has scale factor {theirs}, the record {ours}; a record has one scale "
            "factor per variable: keep that archive out of the record (a record per scale factor)"
        )
    if np.dtype(array.dtype) != template.dtypes[name]:
        raise RecordError(
            f"{archive.path.name}: {name} is {template.dtypes[name]}, the record's is {array.dtype}; move the "
            "record aside to build a new one"
        )


def _create(
    group: Any,
    name: str,
    dims: tuple[str, ...],
    chunks: tuple[int, ...],
    dtype: np.dtype,
    fill: Any,
    attrs: Mapping[str, Any],
    shape: tuple[int, ...] | None = None,
) -> Any:
    import zarr

    kwargs: dict[str, Any] = {}
    if dtype == np.dtype(object):  # variable-length UTF-8 strings: the zarr v3 "string" data type
        dtype = zarr.dtype.VariableLengthUTF8()  # type: ignore[attr-defined]
        kwargs["fill_value"] = ""
    else:
        kwargs["fill_value"] = fill
    return group.create_array(
        name,
        shape=shape or (0,) * len(dims),
        chunks=chunks,
        dtype=dtype,
        dimension_names=dims,
        attributes=dict(attrs),
        **kwargs,
    )


def _write_swaths(
    group: Any, template: _Template, dataset: Any, table: np.ndarray, positions: Sequence[int], start: int
) -> None:
    """Every per-scan variable of the new swaths, ``WRITE_BATCH`` swaths per write (zarr writes their chunks
    concurrently); rows past a swath's ``n_scans`` stay fill and are not stored."""
    for b in range(0, len(positions), WRITE_BATCH):
        batch = positions[b : b + WRITE_BATCH]
        rows = max(int(table["n_scans"][i]) for i in batch)
        first = start + b
        for name in template.dims:
            var = dataset[name].variable
            block = np.stack([np.asarray(var[i, :rows].values) for i in batch])
            group[name][first : first + len(batch), :rows] = block


def _write_index(group: Any, archive: Any, positions: Sequence[int], start: int) -> None:
    table = archive.table
    names = table.dtype.names or ()
    sel = np.asarray(positions)
    n = len(sel)

    def column(name: str, default: Any) -> np.ndarray:
        return table[name][sel] if name in names else np.full(n, default)

    ids = table["granule_id"][sel].astype(str)
    values: dict[str, np.ndarray] = {
        "time": _encode_times(table["scan_start_utc"][sel].astype(str)),
        "time_end": _encode_times(table["scan_end_utc"][sel].astype(str)),
        "granule_id": ids.astype(object),
        "orbit_direction": table["orbit_type"][sel].astype(str).astype(object),
        "sensor": np.array([l1b.sensor_of(g) for g in ids], dtype=object),
        "n_scans": table["n_scans"][sel].astype(np.int32),
        "first_scan": column("first_scan", 0).astype(np.int64),
        "region": column("region", "").astype(str).astype(object),
        "region_key": column("region_key", "").astype(str).astype(object),
        "source_sha256": table["source_sha256"][sel].astype(str).astype(object),
        "archive": np.full(n, archive.path.name, dtype=object),
    }
    for name, data in values.items():
        group[name][start : start + n] = data


def _unknown_last(times: np.ndarray) -> np.ndarray:
    return np.where(times == NO_TIME, np.iinfo(np.int64).max, times)


def _write_time_order(group: Any) -> None:
    order = np.argsort(_unknown_last(np.asarray(group["time"][:])), kind="stable").astype(np.int64)
    group[TIME_ORDER][:] = order


def _update_attrs(group: Any, archive: Any) -> None:
    from .dataset import CF_CONVENTIONS

    attrs = dict(group.attrs)
    channels = list(json.loads(attrs.get("channels", "[]")))
    channels += [c for c in archive.channels if c not in channels]
    archives = sorted({*json.loads(attrs.get("archives", "[]")), archive.path.name})
    sensors = {l1b.sensor_of(str(g)) for g in archive.table["granule_id"]} | set(json.loads(attrs.get("sensors", "[]")))
    group.attrs.update(
        {
            "Conventions": CF_CONVENTIONS,
            "title": f"{' and '.join(sorted(sensors)) or 'AMSR2'} L1B brightness temperatures (swaths): the record",
            "source": "JAXA G-Portal L1B granules, collected by amsr2flow",
            "institution": "JAXA (data); amsr2flow (collection)",
            "acknowledgement": JAXA_ACKNOWLEDGEMENT,
            "comment": RECORD_NOTE,
            "amsr2flow_record_format": RECORD_FORMAT,
            "amsr2flow_version": __version__,
            # JSON strings: zarr attributes are JSON already, but xarray shows lists of strings badly
            "channels": json.dumps(channels),
            "archives": json.dumps(archives),
            "sensors": json.dumps(sorted(sensors)),
        }
    )


# -- describing ------------------------------------------------------------------------------------------
def record_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What ``amsr2flow info`` says of a record: its last commit, swaths per sensor and orbit direction, the
    span of its scans, channels, the archives it holds, and its commits (newest first)."""
    repo = _repository(Path(path))
    source = RecordSource(path)
    index = source.index()
    times = index["time"][~np.isnat(index["time"])]
    ends = index["time_end"][~np.isnat(index["time_end"])]
    group = source.group
    commits = [
        {"id": c.id, "written_at": c.written_at.isoformat(timespec="seconds"), "message": c.message}
        for c in repo.ancestry(branch=BRANCH)
    ]
    return {
        "path": str(path),
        "snapshot": source.snapshot,
        "swaths": len(source),
        "sensors": _counts(index["sensor"]),
        "orbit_types": _counts(index["orbit_direction"]),
        "first_scan_utc": str(times.min()) if len(times) else "",
        "last_scan_utc": str(ends.max()) if len(ends) else "",
        "channels": list(source.channels),
        "variables": sorted(set(group.array_keys()) - set(INDEX_VARIABLES) - {TIME_ORDER}),
        "archives": json.loads(group.attrs.get("archives", "[]")),
        "in_time_order": bool(np.array_equal(np.asarray(group[TIME_ORDER][:]), np.arange(len(source)))),
        "commits": commits,
    }


def _counts(values: np.ndarray) -> dict[str, int]:
    kinds, counts = np.unique(values, return_counts=True)
    return {str(k): int(n) for k, n in zip(kinds, counts, strict=True)}


# -- checking against the archives ------------------------------------------------------------------------
@dataclass
class RecordCheck:
    """``verify_record``: every archived swath once in the record, with equal bytes."""

    path: Path
    swaths: int = 0
    checked: int = 0
    missing: list[str] = field(default_factory=list)  # in an archive, not in the record
    extra: list[str] = field(default_factory=list)  # in the record, in no archive given
    duplicated: list[str] = field(default_factory=list)  # more than once in the record
    different: list[str] = field(default_factory=list)  # "granule_id: what differs"

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.duplicated or self.different)

    def lines(self) -> list[str]:
        head = f"{self.path}: {self.swaths} swath(s) in the record; {self.checked} compared with the archives: " + (
            "every archived swath once, equal bytes" if self.ok else "PROBLEMS"
        )
        out = [head]
        for label, items in (
            ("missing from the record", self.missing),
            ("in the record but in no archive", self.extra),
            ("more than once in the record", self.duplicated),
            ("different from the archive", self.different),
        ):
            if items:
                out.append(f"  {len(items)} {label}: {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}")
        return out


def verify_record(
    record_path: str | os.PathLike[str],
    archive_paths: Sequence[str | os.PathLike[str]],
    *,
    data: bool = True,
    granule_ids: set[str] | None = None,
) -> RecordCheck:
    """Compare the record's last commit with archives: each archived swath once, the same index values and
    (with ``data``) the same bytes in every variable; swaths of the record in no archive are listed too.
    ``granule_ids``: only these swaths (the record job's read-back of what it appended)."""

    source = RecordSource(record_path)
    check = RecordCheck(path=Path(record_path), swaths=len(source))
    index = source.index()
    positions: dict[str, int] = {}
    for position, granule_id in enumerate(index["granule_id"].tolist()):
        if granule_id in positions:
            check.duplicated.append(granule_id)
        positions[granule_id] = position
    seen: set[str] = set()
    for archive_path in archive_paths:
        with Archive(archive_path) as archive:
            dataset = archive.to_xarray(mask_and_scale=False, decode_times=False)
            names = list(_raw_template(dataset).dims)
            for i, row in enumerate(archive.table):
                granule_id = str(row["granule_id"])
                seen.add(granule_id)
                if granule_ids is not None and granule_id not in granule_ids:
                    continue
                if granule_id not in positions:
                    check.missing.append(granule_id)
                    continue
                problem = _difference(source, positions[granule_id], row, dataset, names, i, data)
                check.checked += 1
                if problem:
                    check.different.append(f"{granule_id}: {problem}")
    check.extra = [] if granule_ids is not None else [g for g in positions if g not in seen]
    return check


def _difference(
    source: RecordSource, position: int, row: np.void, dataset: Any, names: Sequence[str], i: int, data: bool
) -> str:
    index = source.index(tuple(INDEX_VARIABLES))
    rows = int(row["n_scans"])
    if int(index["n_scans"][position]) != rows:
        return f"{index['n_scans'][position]} scans in the record, {rows} in the archive"
    if str(index["source_sha256"][position]) != str(row["source_sha256"]):
        return "another source file"
    if str(index["orbit_direction"][position]) != str(row["orbit_type"]):
        return "another orbit direction"
    columns = row.dtype.names or ()
    if "region_key" in columns and str(index["region_key"][position]) != str(row["region_key"]):
        return "another crop (region_key)"
    if "first_scan" in columns and int(index["first_scan"][position]) != int(row["first_scan"]):
        return "another first scan of the granule"
    if index["time"][position] != _decode_times(_encode_times([str(row["scan_start_utc"])]))[0]:
        return "another first scan time"
    if not data:
        return ""
    for name in names:
        theirs = np.asarray(dataset[name].variable[i, :rows].values)
        ours = np.asarray(source.group[name][position, :rows])
        if theirs.tobytes() != ours.tobytes():
            return f"{name} differs"
    return ""
