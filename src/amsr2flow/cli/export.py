"""``amsr2flow export ARCHIVE... --to zarr|netcdf -o PATH``: an archive as a CF Zarr store or NetCDF-4 file;
several archives (e.g. the AMSR-E and AMSR2 years of one record) joined into one time series."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "archive", type=Path, nargs="+", help="amsr2flow archive(s) (.npz); several are joined along `swath`"
    )
    parser.add_argument("--to", choices=("zarr", "netcdf"), required=True, help="the format to write")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the store (zarr) or file (netcdf)")


def run(args: argparse.Namespace) -> int:
    from ..formats.archive import ArchiveError
    from ..formats.dataset import DatasetError, export_archive

    missing = [str(p) for p in args.archive if not p.is_file()]
    if missing:
        print(f"amsr2flow export: {', '.join(missing)} does not exist; give archives (.npz)", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        out = export_archive(args.archive if len(args.archive) > 1 else args.archive[0], args.output, args.to)
    except (ArchiveError, DatasetError) as exc:
        print(f"amsr2flow export: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"amsr2flow export: cannot write {args.output} ({exc.strerror or exc}); nothing left", file=sys.stderr)
        return 1
    print(f"amsr2flow export: {out} written in {time.monotonic() - started:.1f} s")
    return 0
