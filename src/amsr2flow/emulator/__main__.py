"""``python -m amsr2flow.emulator`` and the ``amsr2flow-emulator`` console script."""

from __future__ import annotations

import argparse
import sys

from . import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=cli.PROG)
    cli.configure_parser(parser)
    return cli.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
