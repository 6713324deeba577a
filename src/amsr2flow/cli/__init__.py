"""The ``amsr2flow`` command: one entry point, one subcommand per capability.

Each subcommand lives in its own module (in this folder; the local G-Portal's in ``emulator``), which
provides ``configure_parser(parser)`` and ``run(args) -> int``; modules are imported only when their
subcommand runs, so ``amsr2flow --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("amsr2flow.cli.doctor", "check a configuration against G-Portal: key, login, catalogue, paths"),
    "status": ("amsr2flow.cli.status", "where a run stands: counts per year, rate, ETA, last errors"),
    "synth": ("amsr2flow.emulator.synth", "write synthetic AMSR2/AMSR-E L1B granules (HDF5)"),
    "emulator": ("amsr2flow.emulator.cli", "run the local G-Portal (catalogue over HTTP, SFTP) on 127.0.0.1"),
    "verify": ("amsr2flow.cli.verify", "verify archives: structure, every swath, ranges, index, order, facts"),
    "repair": ("amsr2flow.cli.repair", "set wrongly stored metadata right in archives, parts, swaths (no download)"),
    "export": ("amsr2flow.cli.export", "write archive(s) as one CF Zarr store or NetCDF-4 file (xarray)"),
    "info": ("amsr2flow.cli.archive", "summarise an archive (swaths, period, channels, provenance)"),
    "partition": ("amsr2flow.cli.archive", "split an archive into part files of N swaths"),
    "convert-legacy": ("amsr2flow.cli.archive", "convert a trusted legacy pickled archive to the new format"),
    "export-legacy": ("amsr2flow.cli.archive", "export an archive to the legacy pickled layout (opt-in)"),
}


def build_parser(argv_command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amsr2flow",
        description="Collect AMSR-2 brightness temperatures from JAXA G-Portal into verified archives.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"amsr2flow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == argv_command:
            importlib.import_module(module_name).configure_parser(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
