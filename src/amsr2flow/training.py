"""Fixed-size numpy batches of swaths for training models on the whole record (numpy only; no DL framework).

A *source* is anything with the :class:`SwathSource` protocol: year archives and their parts
(:class:`ArchiveSource`) or the record store (``formats.record.RecordSource``). :class:`SwathBatches` selects
swaths (split, orbit direction, sensor), shuffles them per epoch, shards them over ranks, crops or pads each to
``n_scans`` rows and stacks the channels at one pixel width. It reads one swath at a time, so memory is bounded
by the batch, not by the selection. :func:`normalisation_statistics` streams per-channel Kelvin statistics for
``normalisation=``. See docs/training.md.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from . import atomic
from .formats import l1b
from .formats.archive import Archive
from .formats.swath import TEMPERATURE, index_times

CROPS = ("start", "centre", "random")
UNITS = ("kelvin", "raw")
ORBIT_DIRECTIONS = ("A", "D")
SENSORS = ("AMSR2", "AMSR-E")
STATISTICS_FORMAT = "amsr2flow.normalisation"
STATE_FORMAT = "amsr2flow.swath_batches"

PathLike = str | os.PathLike[str]
Day = str | date
Split = tuple[Day, Day]


class TrainingError(ValueError):
    """A batch iterator, source or statistics file that cannot be used as asked; the message says how to fix it."""


# -- the source protocol -------------------------------------------------------------------------------------
@runtime_checkable
class SwathSource(Protocol):
    """What :class:`SwathBatches` and :func:`normalisation_statistics` need of a collection of swaths.

    ``index()`` has one entry per swath, all of the same length: ``time`` and ``time_end`` (datetime64[ns] UTC
    first and last scan, NaT when unknown), ``granule_id``, ``orbit_direction`` (``A``/``D``/``U``), ``sensor``
    (``AMSR2``/``AMSR-E``) and ``n_scans``. ``read_raw(position, names)`` gives the raw uint16 arrays of one
    swath, exactly ``n_scans`` rows, 243 pixels (486 for 89 GHz channels); raw 0 is invalid and
    ``raw * scale_factor(channel)`` is Kelvin.
    """

    @property
    def channels(self) -> tuple[str, ...]: ...

    def index(self) -> dict[str, np.ndarray]: ...

    def scale_factor(self, channel: str) -> float: ...

    def read_raw(self, position: int, names: Sequence[str]) -> dict[str, np.ndarray]: ...


# -- year archives and parts as a source ----------------------------------------------------------------------
class ArchiveSource:
    """One or several archives (or parts) as one :class:`SwathSource`, swaths in time order.

    ``channels`` is the union of the archives' channels (in the order first met). A channel an archive lacks
    (AMSR-E has no 7.3 GHz) reads as all-zero raw values for that archive's swaths: invalid everywhere, so the
    batches' mask is False there and the statistics leave it out. Swaths with unknown times (converted legacy
    archives) come last. A granule id in two files (an archive and its own part) is refused. Use it as a
    context manager, or call ``close()``: it keeps the files open.
    """

    def __init__(self, paths: PathLike | Sequence[PathLike]) -> None:
        given = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not given:
            raise TrainingError("ArchiveSource needs at least one archive path")
        self._archives: list[Archive] = []
        try:
            for path in given:
                self._archives.append(Archive(path))
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        channels: list[str] = []
        for archive in self._archives:
            channels.extend(c for c in archive.channels if c not in channels)
        self._channels = tuple(channels)
        tables = [archive.table for archive in self._archives]
        which = np.concatenate([np.full(len(t), n, dtype=np.int64) for n, t in enumerate(tables)])
        rows = np.concatenate([np.arange(len(t), dtype=np.int64) for t in tables])
        ids = np.concatenate([t["granule_id"].astype(str) for t in tables]) if tables else np.array([], str)
        self._refuse_repeats(ids, which)
        times = np.concatenate([index_times(t["scan_start_utc"]) for t in tables])
        # stable: equal times keep the order given; NaT sorts last
        order = np.argsort(times, kind="stable")
        self._which, self._rows = which[order], rows[order]
        ends = np.concatenate([index_times(t["scan_end_utc"]) for t in tables])
        directions = np.concatenate([t["orbit_type"].astype(str) for t in tables])
        n_scans = np.concatenate([t["n_scans"].astype(np.int64) for t in tables])
        self._index = {
            "time": times[order],
            "time_end": ends[order],
            "granule_id": ids[order],
            "orbit_direction": np.array([l1b.direction_key(d) for d in directions[order]], dtype="<U1"),
            "sensor": np.array([l1b.sensor_of(g) for g in ids[order]], dtype=str),
            "n_scans": n_scans[order],
        }
        self._scale_factors = {c: self._one_scale_factor(c) for c in self._channels}

    def _refuse_repeats(self, ids: np.ndarray, which: np.ndarray) -> None:
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            repeated = str(unique[counts > 1][0])
            files = sorted({self._archives[int(w)].path.name for w in which[ids == repeated]})
            raise TrainingError(
                f"granule {repeated} is in {' and '.join(files) if len(files) > 1 else f'{files[0]} twice'}: "
                "the archives overlap (an archive and its own part?); give each swath's file once"
            )

    def _one_scale_factor(self, channel: str) -> float:
        """The channel's scale factor over every archive holding it: one value, or the sources disagree."""
        factors: set[float] = set()
        for archive in self._archives:
            if channel in archive.channels:
                column = "scale_factor" if channel == archive.channels[0] else f"scale_factor_{channel}"
                factors.update(float(f) for f in archive.table[column])
        if len(factors) > 1:
            raise TrainingError(
                f"channel {channel}: the swaths have different scale factors {sorted(factors)}; one Kelvin "
                "conversion per channel is needed, so train on archives with one scale factor per channel"
            )
        return factors.pop() if factors else l1b.TB_SCALE_FACTOR

    # -- the protocol
    @property
    def channels(self) -> tuple[str, ...]:
        return self._channels

    def index(self) -> dict[str, np.ndarray]:
        return {name: values.copy() for name, values in self._index.items()}

    def scale_factor(self, channel: str) -> float:
        if channel not in self._scale_factors:
            raise TrainingError(f"no channel {channel!r} in the archives; they hold {', '.join(self._channels)}")
        return self._scale_factors[channel]

    def read_raw(self, position: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        archive = self._archives[int(self._which[position])]
        row = int(self._rows[position])
        n_scans = int(self._index["n_scans"][position])
        out = {}
        for name in names:
            if name in archive.channels:
                out[name] = archive.read_array(row, TEMPERATURE if name == archive.channels[0] else name)
            elif name in self._channels:  # a channel this sensor's archive lacks: invalid everywhere
                out[name] = np.zeros((n_scans, l1b.channel_pixels(name)), dtype=np.uint16)
            else:
                raise TrainingError(f"no channel {name!r} in the archives; they hold {', '.join(self._channels)}")
        return out

    def __len__(self) -> int:
        return len(self._rows)

    def close(self) -> None:
        for archive in self._archives:
            archive.close()

    def __enter__(self) -> ArchiveSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# -- selection: splits and filters ----------------------------------------------------------------------------
def _day(value: Day) -> np.datetime64:
    if isinstance(value, datetime):
        raise TrainingError(f"split bound {value!r} is a datetime; give whole UTC days ('2019-12-31' or a date)")
    text = value.isoformat() if isinstance(value, date) else str(value)
    try:
        return np.datetime64(date.fromisoformat(text), "D")
    except ValueError as exc:
        raise TrainingError(f"split bound {value!r} is not a day; give 'YYYY-MM-DD' or a datetime.date") from exc


def split_days(split: Split) -> tuple[np.datetime64, np.datetime64]:
    """``(first day, last day)`` of a split given as two days, inclusive; refuses an empty range."""
    try:
        first, last = (_day(bound) for bound in split)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, TrainingError):
            raise
        raise TrainingError(f"split {split!r} is not (first_day, last_day)") from exc
    if last < first:
        raise TrainingError(f"split {split!r} ends before it starts; give (first_day, last_day), both inclusive")
    return first, last


def check_disjoint(*splits: Split) -> None:
    """Raise :class:`TrainingError` when two splits share a UTC day (so no day's data can be in both)."""
    ranges = sorted((*split_days(s), n) for n, s in enumerate(splits))
    for (_, end_a, a), (start_b, end_b, b) in itertools.pairwise(ranges):
        if start_b <= end_a:
            raise TrainingError(
                f"splits {splits[a]!r} and {splits[b]!r} share the days {start_b} to {min(end_a, end_b)}; "
                "make their day ranges disjoint"
            )


def in_split(index: Mapping[str, np.ndarray], split: Split | None) -> np.ndarray:
    """Which swaths lie in ``split``: both their first and last scan's UTC days inside it (unknown times never)."""
    count = len(index["granule_id"])
    if split is None:
        return np.ones(count, dtype=bool)
    first, last = split_days(split)
    start_day = index["time"].astype("datetime64[D]")
    end_day = index["time_end"].astype("datetime64[D]")
    known = ~np.isnat(index["time"]) & ~np.isnat(index["time_end"])
    with np.errstate(invalid="ignore"):
        return known & (start_day >= first) & (end_day <= last)


def select_positions(
    index: Mapping[str, np.ndarray],
    split: Split | None = None,
    orbit_direction: str | None = None,
    sensor: str | None = None,
) -> np.ndarray:
    """Positions (ascending) of the swaths in ``split`` with the given orbit direction and sensor."""
    keep = in_split(index, split)
    if orbit_direction is not None:
        if orbit_direction not in ORBIT_DIRECTIONS:
            raise TrainingError(f"orbit_direction {orbit_direction!r}: give 'A', 'D' or None (both)")
        keep &= index["orbit_direction"] == orbit_direction
    if sensor is not None:
        if sensor not in SENSORS:
            raise TrainingError(f"sensor {sensor!r}: give 'AMSR2', 'AMSR-E' or None (both)")
        keep &= index["sensor"] == sensor
    return np.flatnonzero(keep).astype(np.int64)


def selection_fingerprint(granule_ids: Sequence[str] | np.ndarray) -> str:
    """What identifies a selection of swaths (their granule ids, in source order): a state or statistics of
    another selection is told apart."""
    return hashlib.sha256("\n".join(np.asarray(granule_ids, dtype=str).tolist()).encode()).hexdigest()[:16]


def _split_json(split: Split | None) -> list[str] | None:
    return None if split is None else [str(d) for d in split_days(split)]


# -- channels and crops ---------------------------------------------------------------------------------------
def stacked_pixels(channels: Sequence[str]) -> int:
    """Pixels per row of the stacked channels: 243 when any channel is below 89 GHz, else 486."""
    return min(l1b.channel_pixels(c) for c in channels)


def at_width(raw: np.ndarray, pixels: int) -> np.ndarray:
    """An 89 GHz row (486) at the low-frequency width (243): every second column, the 89 GHz samples that share
    the low-frequency footprints' positions (the archive's latitude/longitude are those columns' too)."""
    return raw[:, ::2] if raw.shape[1] == 2 * pixels else raw


def first_row(crop: str, rows: int, n_scans: int, seed: int, epoch: int, position: int) -> int:
    """Where a swath of ``rows`` rows is cut for ``n_scans``: start, centre, or a seeded random offset that depends
    only on (seed, epoch, position), so every rank and every resumption cuts the same rows."""
    spare = rows - n_scans
    if spare <= 0 or crop == "start":
        return 0
    if crop == "centre":
        return spare // 2
    return int(np.random.default_rng((seed, epoch, position)).integers(0, spare + 1))


# -- batches --------------------------------------------------------------------------------------------------
def _normalisation_of(stats: Mapping[str, Any], channels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    per_channel = stats.get("channels", {}) if isinstance(stats, Mapping) else {}
    means, stds = [], []
    for channel in channels:
        entry = per_channel.get(channel)
        if not entry or entry.get("mean") is None or not entry.get("std"):
            raise TrainingError(
                f"normalisation has no usable mean/std for channel {channel} (no valid pixels, or another "
                "selection of channels); compute normalisation_statistics over these channels"
            )
        means.append(float(entry["mean"]))
        stds.append(float(entry["std"]))
    return np.array(means, dtype=np.float32), np.array(stds, dtype=np.float32)


def exact_divisor(table: np.ndarray) -> np.float32 | None:
    """A float32 divisor whose quotients ``raw / divisor`` are ``table``'s values for every raw value but 0 (NaN
    there), if one exists: scale factors such as 0.01 are 1/100, and a vectorised conversion and division is
    about twice as fast as the table's gather. Checked on all 65,536 values, so the values stay the table's."""
    if not np.isnan(table[0]) or not np.isfinite(table[1]) or table[1] <= 0:
        return None  # normalised tables (0 for raw 0), or no Kelvin
    divisor = np.float32(round(1.0 / float(table[1])))
    values = np.arange(1, 1 << 16, dtype=np.float32)
    np.divide(values, divisor, out=values)
    return divisor if np.array_equal(values, table[1:]) else None


def kelvin_table(scale_factor: float, normalisation: tuple[float, float] | None = None) -> np.ndarray:
    """float32 value of every raw uint16: ``raw * scale_factor`` computed in float64 and rounded once (as
    ``formats.archive.to_kelvin``), NaN for raw 0; with ``(mean, std)``, ``(K - mean) / std`` and 0 for raw 0
    (the mean: a neutral input, the mask says it is no data)."""
    kelvin = np.arange(1 << 16, dtype=np.float64) * scale_factor
    if normalisation is None:
        table = kelvin.astype(np.float32)
        table[0] = np.nan
    else:
        mean, std = normalisation
        table = ((kelvin.astype(np.float32) - np.float32(mean)) / np.float32(std)).astype(np.float32)
        table[0] = 0.0
    return table


class SwathBatches:
    """Fixed-size batches of swaths from ``source``; each ``iter()`` runs (the rest of) one epoch.

    A batch is a dict: ``tb`` (B, C, n_scans, pixels) float32 Kelvin with NaN where invalid (uint16 raw with
    ``units="raw"``; ``(K - mean) / std`` with 0 where invalid with ``normalisation``), ``mask`` (True where a
    real valid value is), ``granule_id``, ``time`` (first scan), ``position`` (in the source) and ``first_row``
    (where the crop started). See docs/training.md for the stacking, split, shuffle, sharding and resume rules.
    """

    def __init__(
        self,
        source: SwathSource,
        *,
        channels: Sequence[str] | None = None,
        n_scans: int = 2000,
        crop: str = "start",
        batch_size: int = 8,
        split: Split | None = None,
        orbit_direction: str | None = None,
        sensor: str | None = None,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        units: str = "kelvin",
        normalisation: Mapping[str, Any] | None = None,
        drop_last: bool = False,
        prefetch: int = 0,
    ) -> None:
        _check_arguments(n_scans, crop, batch_size, rank, world_size, units, normalisation, prefetch)
        self.source = source
        self.channels = tuple(source.channels if channels is None else channels)
        missing = [c for c in self.channels if c not in source.channels]
        if not self.channels or missing:
            raise TrainingError(
                f"channels {', '.join(missing) or '(none)'} not in the source; it holds {', '.join(source.channels)}"
            )
        self.n_scans, self.crop, self.batch_size = n_scans, crop, batch_size
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, seed, rank, world_size
        self.units, self.drop_last, self.prefetch = units, drop_last, prefetch
        self.pixels = stacked_pixels(self.channels)
        norm = None if normalisation is None else _normalisation_of(normalisation, self.channels)
        self._tables = [
            kelvin_table(source.scale_factor(c), None if norm is None else (norm[0][n], norm[1][n]))
            for n, c in enumerate(self.channels)
        ]
        self._divisors = [exact_divisor(table) for table in self._tables]
        index = source.index()
        self._granule_ids, self._times, self._rows = index["granule_id"], index["time"], index["n_scans"]
        self.positions = select_positions(index, split, orbit_direction, sensor)
        self.fingerprint = selection_fingerprint(self._granule_ids[self.positions])
        self.epoch = 0
        self._done = 0  # swaths of this rank's share of the current epoch already yielded

    # -- the plan of an epoch
    def order(self, epoch: int) -> np.ndarray:
        """This rank's positions for ``epoch``: the epoch's permutation (the same on every rank), every
        ``world_size``-th from ``rank`` on, so the ranks together take each selected swath exactly once."""
        positions = self.positions
        if self.shuffle:
            positions = positions[np.random.default_rng((self.seed, epoch)).permutation(len(positions))]
        return positions[self.rank :: self.world_size]

    def _share(self) -> int:
        """Swaths this rank yields in a whole epoch (``drop_last`` leaves out the short last batch)."""
        share = len(self.positions[self.rank :: self.world_size])
        return share - share % self.batch_size if self.drop_last else share

    def __len__(self) -> int:
        """Batches in a whole epoch of this rank."""
        return math.ceil(self._share() / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning at the next ``iter()``."""
        self.epoch, self._done = int(epoch), 0

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        epoch = self.epoch
        order = self.order(epoch)
        stop = self._share()
        starts = range(self._done, stop, self.batch_size)
        with _Reader(self, epoch, order[self._done : stop]) as reader:
            for start in starts:
                chunk = order[start : min(start + self.batch_size, stop)]
                batch = self._batch(chunk, [reader.next() for _ in chunk])
                self._done = start + len(chunk)
                yield batch
        self.epoch, self._done = epoch + 1, 0

    # -- reading and stacking
    def read_swath(self, epoch: int, position: int) -> tuple[np.ndarray, int]:
        """One swath's channels, raw, cut to (C, n_scans, pixels) with padding 0, and the first row taken."""
        rows = int(self._rows[position])
        start = first_row(self.crop, rows, self.n_scans, self.seed, epoch, int(position))
        raw = self.source.read_raw(int(position), self.channels)
        out = np.empty((len(self.channels), self.n_scans, self.pixels), dtype=np.uint16)
        for c, channel in enumerate(self.channels):
            values = raw[channel]
            if values.ndim != 2 or values.shape[0] != rows or values.shape[1] not in (self.pixels, 2 * self.pixels):
                raise TrainingError(
                    f"{self._granule_ids[position]}: channel {channel} is {values.shape}, expected ({rows}, "
                    f"{l1b.channel_pixels(channel)}) as the index says; the source is inconsistent"
                )
            # written in place (crop_or_pad would make two copies of each channel): the crop, then padding 0
            taken = at_width(values, self.pixels)[start : start + self.n_scans]
            out[c, : len(taken)] = taken
            out[c, len(taken) :] = 0
        return out, start

    def _batch(self, positions: np.ndarray, swaths: list[tuple[np.ndarray, int]]) -> dict[str, np.ndarray]:
        raw = np.stack([s[0] for s in swaths])
        return {
            "tb": raw if self.units == "raw" else self._kelvin(raw),
            "mask": raw != 0,  # 0 is both the invalid raw value and the padding
            "granule_id": self._granule_ids[positions],
            "time": self._times[positions],
            "position": positions.astype(np.int64),
            "first_row": np.array([s[1] for s in swaths], dtype=np.int64),
        }

    def _kelvin(self, raw: np.ndarray) -> np.ndarray:
        tb = np.empty(raw.shape, dtype=np.float32)
        for c, (table, divisor) in enumerate(zip(self._tables, self._divisors, strict=True)):
            if divisor is not None:  # the table's values (exact_divisor), about twice as fast
                channel = tb[:, c]
                channel[...] = raw[:, c]
                np.divide(channel, divisor, out=channel)
                np.copyto(channel, np.float32(np.nan), where=raw[:, c] == 0)
                continue
            for b in range(raw.shape[0]):
                # one gather through the channel's table: no float64 temporary, no second pass for the mask
                np.take(table, raw[b, c], out=tb[b, c], mode="clip")
        return tb

    # -- resuming
    def state_dict(self) -> dict[str, Any]:
        """Where this iterator is: JSON-able; ``load_state_dict`` on one built with the same arguments resumes."""
        # an epoch whose last batch was yielded is over, even before the loop asked for more: resume at the next
        ended = self._done >= self._share() > 0
        return {
            "format": STATE_FORMAT,
            "epoch": self.epoch + 1 if ended else self.epoch,
            "swaths_done": 0 if ended else self._done,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "rank": self.rank,
            "world_size": self.world_size,
            "batch_size": self.batch_size,
            "selection": self.fingerprint,
            "swaths": len(self.positions),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state``: the next ``iter()`` yields the batches the saved iterator would have next."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise TrainingError("not a SwathBatches state (state_dict() of a SwathBatches); nothing loaded")
        mine = self.state_dict()
        for key, what in (
            ("selection", "selection of swaths (source, split or filters)"),
            ("seed", "seed"),
            ("shuffle", "shuffle"),
            ("rank", "rank"),
            ("world_size", "world_size"),
            ("batch_size", "batch_size"),
        ):
            if state.get(key) != mine[key]:
                raise TrainingError(
                    f"the state is of another {what} ({state.get(key)!r}, this iterator has {mine[key]!r}); "
                    "resume with the arguments the state was saved with"
                )
        self.epoch, self._done = int(state["epoch"]), int(state["swaths_done"])


def _check_arguments(
    n_scans: int,
    crop: str,
    batch_size: int,
    rank: int,
    world_size: int,
    units: str,
    normalisation: Mapping[str, Any] | None,
    prefetch: int,
) -> None:
    if n_scans < 1 or batch_size < 1:
        raise TrainingError(f"n_scans ({n_scans}) and batch_size ({batch_size}) must be at least 1")
    if crop not in CROPS:
        raise TrainingError(f"crop {crop!r}: give one of {', '.join(CROPS)}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise TrainingError(f"rank {rank} of world_size {world_size}: give 0 <= rank < world_size")
    if units not in UNITS:
        raise TrainingError(f"units {units!r}: give one of {', '.join(UNITS)}")
    if normalisation is not None and units == "raw":
        raise TrainingError("normalisation is in Kelvin; use units='kelvin' with it (or drop normalisation)")
    if prefetch not in (0, 1, 2):
        raise TrainingError(f"prefetch {prefetch}: give 0 (read in the caller), 1 or 2 reader threads")


class _Reader:
    """Swaths of one epoch in order: read in the caller (``prefetch=0``), or by ``prefetch`` threads at most one
    batch ahead (bounded memory). Threads need a source whose ``read_raw`` may be called from several threads
    at once (an ArchiveSource's zip files share their file under a lock)."""

    def __init__(self, batches: SwathBatches, epoch: int, positions: np.ndarray) -> None:
        self._batches, self._epoch = batches, epoch
        self._pending = iter(positions.tolist())
        self._pool = ThreadPoolExecutor(batches.prefetch) if batches.prefetch else None
        self._ahead: deque[Future[tuple[np.ndarray, int]]] = deque()
        self._window = batches.batch_size + batches.prefetch

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            for future in self._ahead:
                future.cancel()
            self._pool.shutdown(wait=True)
            self._ahead.clear()

    def next(self) -> tuple[np.ndarray, int]:
        if self._pool is None:
            return self._batches.read_swath(self._epoch, next(self._pending))
        while len(self._ahead) < self._window:
            position = next(self._pending, None)
            if position is None:
                break
            self._ahead.append(self._pool.submit(self._batches.read_swath, self._epoch, position))
        return self._ahead.popleft().result()


# -- normalisation statistics ---------------------------------------------------------------------------------
class _Running:
    """Count, mean, sum of squared deviations, min and max, merged batch by batch (Chan et al.) in float64."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.low, self.high = math.inf, -math.inf

    def add(self, kelvin: np.ndarray) -> None:
        n = kelvin.size
        if not n:
            return
        mean = float(kelvin.mean())
        m2 = float(np.square(kelvin - mean).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.low, self.high = min(self.low, float(kelvin.min())), max(self.high, float(kelvin.max()))

    def result(self) -> dict[str, Any]:
        if not self.count:
            return {"count": 0, "mean": None, "std": None, "min": None, "max": None}
        std = math.sqrt(self.m2 / self.count)
        return {"count": self.count, "mean": self.mean, "std": std, "min": self.low, "max": self.high}


def normalisation_statistics(
    source: SwathSource,
    channels: Sequence[str] | None = None,
    split: Split | None = None,
    *,
    orbit_direction: str | None = None,
    sensor: str | None = None,
) -> dict[str, Any]:
    """Per channel, over every valid pixel (raw != 0, all pixels at the channel's own width) of the swaths in
    ``split`` (and of ``orbit_direction``/``sensor`` when given), in Kelvin: count, mean, std (population), min,
    max; read swath by swath (bounded memory)."""
    names = tuple(source.channels if channels is None else channels)
    missing = [c for c in names if c not in source.channels]
    if missing:
        raise TrainingError(f"channels {', '.join(missing)} not in the source; it holds {', '.join(source.channels)}")
    index = source.index()
    positions = select_positions(index, split, orbit_direction, sensor)
    running = {c: _Running() for c in names}
    scales = {c: source.scale_factor(c) for c in names}
    for position in positions.tolist():
        raw = source.read_raw(position, names)
        for channel in names:
            values = raw[channel]
            running[channel].add(values[values != 0].astype(np.float64) * scales[channel])
    return {
        "format": STATISTICS_FORMAT,
        "units": "K",
        "split": _split_json(split),
        "orbit_direction": orbit_direction,
        "sensor": sensor,
        "n_swaths": len(positions),
        "selection": selection_fingerprint(index["granule_id"][positions]),
        "channels": {c: running[c].result() for c in names},
    }


def save_statistics(stats: Mapping[str, Any], path: PathLike) -> Path:
    """Write ``stats`` as JSON, atomically, with sorted keys: the same statistics give the same bytes."""
    with atomic.atomic_path(path) as tmp:
        tmp.write_bytes(atomic.json_bytes(dict(stats)))
    return Path(path)


def load_statistics(path: PathLike) -> dict[str, Any]:
    """Statistics written by :func:`save_statistics`."""
    try:
        stats = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainingError(f"{path}: not readable as normalisation statistics ({exc})") from exc
    if not isinstance(stats, dict) or stats.get("format") != STATISTICS_FORMAT or "channels" not in stats:
        raise TrainingError(f"{path}: not normalisation statistics; write them with save_statistics")
    return stats
