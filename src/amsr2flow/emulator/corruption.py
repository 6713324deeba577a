"""Make a corrupted copy of a granule: same size, different bytes, detectable by reading the data.

The damage goes into the stored chunks of the 36.5 GHz H brightness temperatures, the channel the
collection extracts: the file still opens and its attributes read fine (so a size check passes), but reading
that dataset fails in the deflate filter (compressed chunks) or gives garbage (uncompressed ones). Files
without that dataset get the middle of the file flipped instead.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import h5py

from ..formats import l1b

log = logging.getLogger("amsr2flow.emulator.corruption")

TARGET_DATASET = l1b.CHANNEL_DATASETS["36.5H"]
#: Bytes inverted in the middle of each chunk (or of the file).
DAMAGE_BYTES = 64


def damaged_ranges(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of the file regions to invert."""
    try:
        with h5py.File(path, "r") as h5:
            if TARGET_DATASET in h5:
                ranges = _chunk_ranges(h5[TARGET_DATASET])
                if ranges:
                    return ranges
    except OSError as exc:
        log.warning("%s: cannot locate %s (%s); damaging the middle of the file", path.name, TARGET_DATASET, exc)
    size = path.stat().st_size
    return [(max(0, size // 2 - DAMAGE_BYTES // 2), min(DAMAGE_BYTES, size))]


def _chunk_ranges(dataset: h5py.Dataset) -> list[tuple[int, int]]:
    """Middle part of every stored chunk of the dataset (or of its contiguous storage)."""
    dsid = dataset.id
    if dataset.chunks is None:
        offset = dsid.get_offset()
        size = dsid.get_storage_size()
        return [] if offset is None or size == 0 else [_middle(offset, size)]
    ranges = []
    for i in range(dsid.get_num_chunks()):
        info = dsid.get_chunk_info(i)
        if info.byte_offset is not None and info.size > 0:
            ranges.append(_middle(info.byte_offset, info.size))
    return ranges


def _middle(offset: int, size: int) -> tuple[int, int]:
    length = min(DAMAGE_BYTES, max(1, size // 4))
    return offset + (size - length) // 2, length


def write_corrupted_copy(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` (atomically) with the damaged ranges inverted; returns ``target``."""
    ranges = damaged_ranges(source)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    with open(tmp, "r+b") as fh:
        for offset, length in ranges:
            fh.seek(offset)
            original = fh.read(length)
            fh.seek(offset)
            fh.write(bytes(b ^ 0xFF for b in original))
    os.replace(tmp, target)
    return target
