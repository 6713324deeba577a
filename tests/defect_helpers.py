"""Outputs as amsr2flow 0.1.0 wrote them with `variables:` set, made from correct ones: every stored orbit type
`U` (all else byte for byte as it was), and grid files without the attributes that say what they were made from.

0.1.0's extraction took the orbit type from the last extra variable's name instead of the file's; this is the
only way its archives, parts and sidecars differ from what the extraction writes now.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import h5py

from amsr2flow.formats import archive
from amsr2flow.formats.archive import Archive, ArchiveWriter, read_raw_member
from amsr2flow.formats.swath import metadata_json, read_swath_metadata, sidecar_path


def archive_as_written_by_0_1_0(path: Path) -> None:
    """An archive or part with every orbit type "U", its members copied as they are."""
    with Archive(path) as source, open(path, "rb") as raw:
        metas = [source.metadata(i) for i in range(len(source))]
        with ArchiveWriter(
            path,
            period=source.period,
            provenance=source.provenance,
            compression=archive.compression_of(source.provenance),
        ) as writer:
            for i, meta in enumerate(metas):
                members = {}
                for name in archive.meta_array_names(meta):
                    info = source.member_info(i, name)
                    members[name] = (info, read_raw_member(raw, info))
                writer.add_compressed(replace(meta, orbit_type="U"), members)


def sidecar_as_written_by_0_1_0(npy: Path) -> None:
    meta = read_swath_metadata(npy)
    sidecar_path(npy).write_bytes(metadata_json(replace(meta, orbit_type="U")))


def grid_as_written_by_0_1_0(path: Path) -> None:
    """A NetCDF day file as 0.1.0 left it: no record of what it was made from, and 0 granules used."""
    with h5py.File(path, "r+") as h5:
        for name in ("source_digest", "valid_cells_A", "valid_cells_D"):
            del h5.attrs[name]
        h5.attrs["granules_used"] = 0


def results_as_written_by_0_1_0(results: Path) -> None:
    """A whole results tree: archives and parts, kept swaths' sidecars, daily grids."""
    for path in sorted(results.glob("archives/*.npz")) + sorted(results.glob("parts/*/*.npz")):
        archive_as_written_by_0_1_0(path)
    for npy in sorted(results.glob("swaths/*/*/*.npy")):
        if read_swath_metadata(npy).orbit_type != "U":
            sidecar_as_written_by_0_1_0(npy)
    for grid in sorted(results.glob("grids/*/*/*.nc")):
        grid_as_written_by_0_1_0(grid)
