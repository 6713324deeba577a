"""``amsr2flow export ARCHIVE --to zarr|netcdf -o PATH``: an archive as a CF Zarr store or NetCDF-4 file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("archive", type=Path, help="an amsr2flow archive (.npz)")
    parser.add_argument("--to", choices=("zarr", "netcdf"), required=True, help="the format to write")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the store (zarr) or file (netcdf)")


def run(args: argparse.Namespace) -> int:
    from ..formats.archive import ArchiveError
    from ..formats.dataset import DatasetError, export_archive

    if not args.archive.is_file():
        print(f"amsr2flow export: {args.archive} does not exist; give an archive (.npz)", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        out = export_archive(args.archive, args.output, args.to)
    except (ArchiveError, DatasetError) as exc:
        print(f"amsr2flow export: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"amsr2flow export: cannot write {args.output} ({exc.strerror or exc}); nothing left", file=sys.stderr)
        return 1
    print(f"amsr2flow export: {out} written in {time.monotonic() - started:.1f} s")
    return 0
