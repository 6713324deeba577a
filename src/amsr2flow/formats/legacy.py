"""Legacy pickled archives: trusted reading, conversion to the new format, and opt-in export back to them.

The legacy system stores a year (or a part) as an NPZ with ``swath_array`` (an object array of swath
dictionaries, i.e. a pickle) and ``period``. Unpickling runs whatever the file tells it to, so:

- This is the **only** module of amsr2flow that unpickles, and only when the caller passes
  ``trust_legacy_pickle=True`` (``open_archive(..., allow_legacy_pickle=True)``, ``--trust-legacy-pickle``).
- Even then a restricted unpickler resolves only the globals numpy needs to rebuild arrays and scalars
  (defence in depth: a trusted file that was tampered with still cannot import ``os.system``).
- A legacy file must be unpickled whole (its format allows nothing else), so it is held in memory.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from . import l1b, npy
from .archive import (
    LEGACY_MEMBER,
    PERIOD_MEMBER,
    Archive,
    ArchiveError,
    ArchiveWriter,
    LegacyPickleRefused,
    NotAnArchiveError,
    _member_info,
    base_provenance,
    detect_format,
    index_table,
)
from .swath import LATITUDE, LONGITUDE, SCAN_TIME_UTC, TEMPERATURE, Swath, SwathError, atomic_write, make_swath

LEGACY_FORMAT = "legacy-pickled-npz"
CONVERTED_SUFFIX = "_converted"  # ends the name of an archive convert_legacy made from a legacy file
LEGACY_ID_PREFIX = "legacy"
#: Keys this format adds to the legacy metadata dictionary; kept when present (e.g. after ``export_legacy``).
_CARRIED_METADATA = (
    "scan_start_utc",
    "scan_end_utc",
    "overlap_scans",
    "source_size",
    "source_sha256",
    "first_scan",
    "region",
    "region_key",
    "granule_scans",
)


class UnsafeLegacyContent(LegacyPickleRefused):
    """A trusted legacy file asked the unpickler for something other than numpy arrays and plain data."""


class LegacyFormatError(ArchiveError):
    """A legacy file unpickled, but its content is not the legacy swath layout."""


# -- restricted unpickling ------------------------------------------------------------------------------------
def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The only globals a legacy pickle may name: numpy's array/scalar/dtype rebuilders and plain containers.

    numpy pickles name ``numpy.core.multiarray`` (numpy 1) or ``numpy._core.multiarray`` (numpy 2); both
    resolve to the rebuilders of the installed numpy, taken from ``np.ndarray.__reduce__`` itself rather than
    by importing whatever module the file names.
    """
    reconstruct = np.zeros(1).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "tuple"): tuple,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global outside ``_allowed_globals`` (no imports, no callables)."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise UnsafeLegacyContent(
                f"the legacy file's pickle asks for {module}.{name}; only numpy arrays and plain data are "
                "accepted, so it was not loaded (the file is corrupt or was tampered with)"
            )
        return allowed[(module, name)]


def restricted_load_npy(fp: IO[bytes]) -> np.ndarray:
    """Read one ``.npy`` stream; object arrays go through ``RestrictedUnpickler`` (never ``pickle.load``)."""
    shape, fortran, dtype = npy.read_header(fp)
    if not dtype.hasobject:
        count = int(np.prod(shape))
        data = np.frombuffer(fp.read(count * dtype.itemsize), dtype=dtype, count=count)
        return data.reshape(shape, order="F" if fortran else "C")
    loaded = RestrictedUnpickler(fp, encoding="latin1").load()
    if not isinstance(loaded, np.ndarray):
        raise LegacyFormatError(f"expected a pickled numpy array, found {type(loaded).__name__}")
    return loaded


def read_legacy_members(
    path: str | os.PathLike[str], *, trust_legacy_pickle: bool = False
) -> tuple[list[Mapping[str, Any]], str]:
    """The legacy ``swath_array`` (as a list of dictionaries) and ``period`` ("" when absent, as in backups)."""
    path = Path(path)
    if not trust_legacy_pickle:
        raise LegacyPickleRefused(
            f"{path} is a legacy pickled archive: reading it runs code stored in the file. Pass "
            "trust_legacy_pickle=True (command flag --trust-legacy-pickle) only for files you trust"
        )
    if detect_format(path) != "legacy":
        raise NotAnArchiveError(f"{path}: not a legacy pickled archive (no object 'swath_array' member)")
    with zipfile.ZipFile(path) as zf:
        with zf.open(LEGACY_MEMBER) as member:
            swath_array = restricted_load_npy(member)
        period = ""
        if PERIOD_MEMBER in zf.namelist():
            with zf.open(PERIOD_MEMBER) as member:
                period = str(restricted_load_npy(member))
    items = list(swath_array.ravel())
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or TEMPERATURE not in item:
            raise LegacyFormatError(f"{path}: swath_array[{i}] is not a swath dictionary with 'temperature'")
    return items, period


# -- legacy swath -> Swath ------------------------------------------------------------------------------------
def legacy_raw_temperature(array: np.ndarray, where: str) -> tuple[np.ndarray, int]:
    """A legacy temperature as uint16 with the missing codes mapped to 0; also how many were mapped.

    The legacy README says int16, real L1B data are uint16: an int16 array is reinterpreted bit for bit
    (values above 327.67 K wrapped negative when cast), which also restores 65535/65534 from -1/-2.
    """
    if array.ndim != 2:
        raise LegacyFormatError(f"{where}: temperature has shape {array.shape}, expected (scans, pixels)")
    if array.dtype == np.int16:
        raw = array.view(np.uint16).copy()
    elif array.dtype == np.uint16:
        raw = array.copy()
    elif np.issubdtype(array.dtype, np.integer) and array.size and (array.min() < 0 or array.max() > 65535):
        raise LegacyFormatError(f"{where}: temperature {array.dtype} has values outside 0..65535")
    elif np.issubdtype(array.dtype, np.integer):
        raw = array.astype(np.uint16)
    else:
        raise LegacyFormatError(f"{where}: temperature has dtype {array.dtype}, expected int16/uint16")
    missing = raw >= min(l1b.TB_MISSING_CODES)
    raw[missing] = 0
    return raw, int(missing.sum())


def legacy_to_swath(item: Mapping[str, Any], granule_id: str) -> tuple[Swath, int]:
    """One legacy swath dictionary as a ``Swath`` (and the count of missing codes mapped to 0).

    Keeps what the legacy metadata holds (orbit type, scale factor) and any key this format adds (so an
    ``export_legacy`` file converts back exactly); ``temp_range`` and ``shape`` are recomputed from the data.
    """
    meta = dict(item.get("metadata") or {})
    granule_id = str(meta.get("granule_id") or granule_id)
    temperature, mapped = legacy_raw_temperature(np.asarray(item[TEMPERATURE]), granule_id)
    channels = tuple(str(c) for c in meta.get("channels") or ("36.5H",))
    arrays = {channels[0]: temperature}
    for channel in channels[1:]:
        raw, extra = legacy_raw_temperature(np.asarray(item[channel]), f"{granule_id} {channel}")
        arrays[channel] = raw
        mapped += extra
    scale = float(meta.get("scale_factor", l1b.TB_SCALE_FACTOR))
    per_channel = meta.get("scale_factors") or {}
    scales = [float(per_channel.get(c, scale)) for c in channels]
    positions: dict[str, np.ndarray] = {}
    if LATITUDE in item and item[LATITUDE] is not None:
        positions = {k: np.ascontiguousarray(item[k], dtype=np.float32) for k in (LATITUDE, LONGITUDE)}
    carried = {k: meta[k] for k in _CARRIED_METADATA if k in meta}
    orbit_type = str(meta.get("orbit_type", "U"))
    swath = make_swath(
        granule_id,
        orbit_type if orbit_type in ("A", "D") else "U",
        arrays,
        scales,
        latitude=positions.get(LATITUDE),
        longitude=positions.get(LONGITUDE),
        scan_time=np.asarray(item[SCAN_TIME_UTC], dtype=np.float64) if item.get(SCAN_TIME_UTC) is not None else None,
        extra={str(name): np.asarray(item[name]) for name in meta.get("variables") or ()},
        product_version=str(meta.get("product_version", "")),
        **{k: (str(v) if isinstance(v, str) else int(v)) for k, v in carried.items()},
    )
    return swath, mapped


def legacy_granule_id(path: str | os.PathLike[str], i: int) -> str:
    return f"{LEGACY_ID_PREFIX}_{Path(path).stem}_{i:05d}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class LegacyArchive(Archive):
    """A trusted legacy archive, unpickled into memory, with the same interface as ``Archive``."""

    def __init__(self, path: str | os.PathLike[str], swaths: Sequence[Swath], period: str, notes: Sequence[str]):
        self.path = Path(path)
        self._swaths = list(swaths)
        first = self._swaths[0].metadata if self._swaths else None
        channels = first.channels if first else l1b.DEFAULT_CHANNELS
        geo = bool(first and first.has_geolocation)
        self._table = index_table([s.metadata for s in self._swaths], channels)
        self.period = period
        self.provenance = {**base_provenance(channels, geo, "", notes), "format": LEGACY_FORMAT}
        self._positions = np.arange(len(self._swaths))

    def close(self) -> None:
        pass

    def read_array(self, i: int, array: str = TEMPERATURE) -> np.ndarray:
        return self._swaths[int(self._positions[i])].arrays[array]

    def member_info(self, i: int, array: str) -> zipfile.ZipInfo:
        raise ArchiveError(f"{self.path}: a legacy archive has no per-swath members")

    def zip_infos(self) -> list[zipfile.ZipInfo]:
        return []

    def swaths(self) -> list[Swath]:
        return [self._swaths[int(p)] for p in self._positions]


def load_legacy_archive(path: str | os.PathLike[str], *, trust_legacy_pickle: bool = False) -> LegacyArchive:
    """Read a trusted legacy archive (yearly or part, with or without coordinates) into memory."""
    items, period = read_legacy_members(path, trust_legacy_pickle=trust_legacy_pickle)
    swaths: list[Swath] = []
    mapped = 0
    synthesised = 0
    for i, item in enumerate(items):
        try:
            swath, count = legacy_to_swath(item, legacy_granule_id(path, i))
        except (SwathError, KeyError, TypeError, ValueError) as exc:
            raise LegacyFormatError(f"{path}: swath_array[{i}] is not a legacy swath ({exc})") from exc
        swaths.append(swath)
        mapped += count
        synthesised += swath.granule_id == legacy_granule_id(path, i)
    notes = [f"converted from legacy pickled archive {Path(path).name} (sha256 {_sha256(Path(path))})"]
    if synthesised:
        notes.append(
            f"{synthesised} legacy swaths carry no granule id or scan times: ids synthesised as "
            f"{LEGACY_ID_PREFIX}_<file stem>_<position>, times left empty, original order kept"
        )
    if mapped:
        notes.append(f"{mapped} pixels holding missing codes 65535/65534 mapped to 0 (invalid)")
    notes.append("shape, temp_range, lat_range and lon_range recomputed from the data")
    return LegacyArchive(path, swaths, period, notes)


# -- conversion and export ------------------------------------------------------------------------------------
def convert_legacy(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    trust_legacy_pickle: bool = False,
    config_digest: str = "",
) -> Path:
    """Convert a trusted legacy archive to the new format at ``target``: a file, or a folder for
    ``<source stem>_converted.npz`` (a name that tells the pickle-free copy from the legacy file beside it)."""
    source, target = Path(source), Path(target)
    if target.is_dir():
        target = target / converted_name(source)
    if target.resolve() == source.resolve():
        raise ArchiveError(f"{target}: converting in place would replace the source; choose another folder")
    legacy = load_legacy_archive(source, trust_legacy_pickle=trust_legacy_pickle)
    notes = legacy.provenance["notes"]
    with ArchiveWriter(target, period=legacy.period, config_digest=config_digest, notes=notes) as writer:
        for swath in legacy.swaths():
            writer.add(swath)
    return target


def converted_name(source: Path) -> str:
    """``AMSR2_temp_only_..._to_..._converted.npz`` for ``AMSR2_temp_only_..._to_....npz`` (parts alike)."""
    return f"{source.stem}{CONVERTED_SUFFIX}.npz"


def legacy_swath_array(swaths: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """An object array of swath dictionaries (built element by element: numpy must not broadcast them)."""
    array = np.empty(len(swaths), dtype=object)
    for i, swath in enumerate(swaths):
        array[i] = swath
    return array


def write_legacy_npz(target: str | os.PathLike[str], swaths: Sequence[Mapping[str, Any]], period: str) -> Path:
    """Write the legacy layout (``swath_array`` + ``period``) atomically, with fixed zip timestamps."""
    target = Path(target)
    buffers = {}
    for name, array, pickled in (
        (LEGACY_MEMBER, legacy_swath_array(swaths), True),
        (PERIOD_MEMBER, np.array(period), False),
    ):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, array, allow_pickle=pickled)
        buffers[name] = buf.getvalue()

    def write(f: IO[bytes]) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for name, data in buffers.items():
                with zf.open(_member_info(name, 6), "w", force_zip64=True) as member:
                    member.write(data)

    atomic_write(target, write)
    return target


def export_legacy(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Export an archive to the legacy pickled layout, for code that still loads it with ``allow_pickle=True``.

    The result is a pickle: do not share it (readers must trust it), and it holds the whole archive in
    memory while writing, as the legacy format requires. Metadata dictionaries carry the legacy keys plus
    this format's (granule id, scan times, ...), so ``convert_legacy`` restores the archive exactly.
    """
    with Archive(source) as archive:
        swaths = [swath.load().legacy_dict() for swath in archive]
        period = archive.period
    return write_legacy_npz(target, swaths, period)
