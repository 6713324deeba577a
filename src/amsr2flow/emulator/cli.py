"""Command line of the emulator, shared by ``amsr2flow emulator`` and ``python -m amsr2flow.emulator``.

Bad input (unknown fault, rate outside 0..1, end before start, a folder that cannot be written, a relative
``--tree-root``) ends with one line on stderr naming the problem and the fix, and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from datetime import date
from pathlib import Path

from . import orbit
from .drift import Drift, normalise_tree_root
from .faults import FaultSpecError, load_fault_spec
from .service import DEFAULT_USERNAME, EmulatorConfig, run_service
from .store import CURRENT_ROOT

PROG = "amsr2flow-emulator"


class UsageError(ValueError):
    """Input the emulator cannot run with; the message says what to change."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Local G-Portal: catalogue over HTTP (current /csw and legacy /csw/csw) and SFTP (password and public "
        "key), on 127.0.0.1, serving synthetic granules or a folder of files, with optional fault injection."
    )
    parser.add_argument("--state", required=True, type=Path, help="JSON file written once both servers listen")
    parser.add_argument("--data-dir", type=Path, help="keys and granule cache (default: emulator-data/ beside --state)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic granules (default 0)")
    parser.add_argument("--scans", type=_positive_int, help="scans per synthetic granule (default: full ~1978)")
    parser.add_argument("--start", type=_day, help="first day served, YYYY-MM-DD (default: mission start)")
    parser.add_argument("--end", type=_day, help="last day served, YYYY-MM-DD (default: open)")
    parser.add_argument(
        "--flavour",
        action="append",
        choices=sorted(orbit.FLAVOURS),
        help="serve this sensor's dataset (repeatable; default: amsr2 and amsre)",
    )
    parser.add_argument("--faults", metavar="SPEC", help="fault spec: inline JSON or a JSON/YAML file")
    parser.add_argument("--serve-dir", type=Path, help="serve the *.h5 granule files of this folder as they are")
    parser.add_argument("--catalogue-port", type=_port, default=0, help="HTTP port (default 0: any free port)")
    parser.add_argument("--sftp-port", type=_port, default=0, help="SFTP port (default 0: any free port)")
    parser.add_argument("--username", default=DEFAULT_USERNAME, help=f"login name (default {DEFAULT_USERNAME})")
    parser.add_argument("--password-env", metavar="VAR", help="take the password from this environment variable")
    parser.add_argument(
        "--authorized-key", action="append", type=Path, default=[], help="extra public keys allowed to log in"
    )
    parser.add_argument(
        "--require-publickey", action="store_true", help="refuse password logins, like the current G-Portal"
    )
    parser.add_argument(
        "--workers",
        type=_non_negative_int,
        default=2,
        help="granule generator processes (default 2; 0 generates in the requesting thread)",
    )
    parser.add_argument(
        "--pregenerate",
        action="store_true",
        help="generate every granule of --start..--end before writing the state file (warm cache for benchmarks)",
    )
    parser.add_argument(
        "--latency-ms",
        type=_latency,
        default=0.0,
        help="round trip added to every SFTP connection, e.g. 200 for Tokyo from Europe (default 0)",
    )
    parser.add_argument("--log", type=Path, help="log file (default: stderr)")
    drift = parser.add_argument_group(
        "drift", "make the service differ from the G-Portal the product assumes (defaults: no difference)"
    )
    drift.add_argument(
        "--tree-root",
        default=CURRENT_ROOT,
        metavar="PATH",
        help=f"root of the current SFTP tree (default {CURRENT_ROOT}); the catalogue's fileName does not follow it",
    )
    drift.add_argument(
        "--no-tree-day-level",
        dest="tree_day_level",
        action="store_false",
        help="the current SFTP tree has no DD folder (YYYY/MM/<file>); the catalogue's fileName keeps it",
    )
    drift.add_argument(
        "--no-legacy-tree",
        dest="legacy_tree",
        action="store_false",
        help="SFTP serves only the current tree (no /standard legacy tree, no nrt/order/process folders)",
    )
    drift.add_argument(
        "--no-catalogue-day-level",
        dest="catalogue_day_level",
        action="store_false",
        help="the catalogue's fileName has no DD folder; the SFTP tree keeps it",
    )
    drift.add_argument(
        "--order-after-days",
        type=_non_negative_int,
        metavar="N",
        help="granules observed more than N days before today are absent from SFTP until ordered (GET /order)",
    )
    drift.add_argument(
        "--bbox-lat-lon",
        action="store_true",
        help="the catalogue reads bbox as latmin,lonmin,latmax,lonmax (EPSG:4326's axis order), not lon first",
    )
    drift.add_argument(
        "--big-endian",
        action="store_true",
        help="synthetic granules store every multi-byte dataset big-endian (same values)",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number (0-65535)")
    return value


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from exc


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    """Check everything that can be checked before binding sockets; raises ``UsageError``."""
    if args.start and args.end and args.end < args.start:
        raise UsageError(f"--end {args.end} is before --start {args.start}; swap them or fix the dates")
    if args.pregenerate and not (args.start and args.end) and not args.serve_dir:
        raise UsageError("--pregenerate needs --start and --end (the days to generate); add both")
    try:
        faults = load_fault_spec(args.faults)
    except FaultSpecError as exc:
        raise UsageError(str(exc)) from exc
    state_path = args.state.resolve()
    _ensure_writable_folder(state_path.parent, "--state folder")
    data_dir = (args.data_dir or state_path.parent / "emulator-data").resolve()
    _ensure_writable_folder(data_dir, "--data-dir")
    serve_dir = args.serve_dir.resolve() if args.serve_dir else None
    if serve_dir is not None and not serve_dir.is_dir():
        raise UsageError(f"--serve-dir {args.serve_dir} is not a folder; give the folder holding the .h5 files")
    for key_file in args.authorized_key:
        if not key_file.is_file():
            raise UsageError(f"--authorized-key {key_file} does not exist; give an OpenSSH public key file")
    if args.big_endian and serve_dir is not None:
        raise UsageError("--big-endian changes synthetic granules; --serve-dir serves files as they are: drop one")
    try:
        tree_root = normalise_tree_root(args.tree_root)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    drift = Drift(
        tree_root=tree_root,
        tree_day_level=args.tree_day_level,
        legacy_tree=args.legacy_tree,
        catalogue_day_level=args.catalogue_day_level,
        order_after_days=args.order_after_days,
        big_endian=args.big_endian,
        bbox_lat_lon=args.bbox_lat_lon,
    )
    flavours = args.flavour or list(orbit.FLAVOURS)
    return EmulatorConfig(
        state_path=state_path,
        data_dir=data_dir,
        dataset_ids=tuple(orbit.FLAVOURS[f].dataset_id for f in dict.fromkeys(flavours)),
        seed=args.seed,
        scans=args.scans,
        first_day=args.start,
        last_day=args.end,
        faults=faults,
        serve_dir=serve_dir,
        catalogue_port=args.catalogue_port,
        sftp_port=args.sftp_port,
        username=args.username,
        password=_password(args.password_env),
        authorized_key_files=tuple(args.authorized_key),
        require_publickey=args.require_publickey,
        workers=args.workers,
        pregenerate=args.pregenerate,
        log_path=args.log.resolve() if args.log else None,
        drift=drift,
        latency_ms=args.latency_ms,
    )


def _latency(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds") from None
    if not 0 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"{text} ms: give 0 to 10000 ms")
    return value


def _password(env_var: str | None) -> str | None:
    if env_var is None:
        return None
    value = os.environ.get(env_var)
    if not value:
        raise UsageError(f"--password-env {env_var}: the variable is not set or empty; export it first")
    return value


def _ensure_writable_folder(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UsageError(
            f"{what} {folder} is not writable ({exc.strerror or exc}); choose a folder you can write to"
        ) from exc


def _configure_logging(log_path: Path | None) -> None:
    if log_path is not None:
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            handler: logging.Handler = logging.FileHandler(log_path, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--log {log_path} cannot be written ({exc.strerror}); choose another file") from exc
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # paramiko reports every client that hangs up early as an error with a traceback: keep the log readable.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)


def run(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
        _configure_logging(config.log_path)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return run_service(config)
