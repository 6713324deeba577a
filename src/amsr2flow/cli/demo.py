"""``make demo``: a full run against the local G-Portal, from nothing to verified archives.

Starts the local G-Portal in the background, writes a config that points the workflow at it, runs
``snakemake`` with ``--resources gportal=4``, stops the service (also on Ctrl-C or failure) and prints where
the archives, parts and report are and how to load them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
STATE_TIMEOUT_S = 60


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m amsr2flow.cli.demo", description=__doc__.splitlines()[0])
    p.add_argument("--dir", default="demo", help="folder for the demo's service, config and results (default demo/)")
    p.add_argument("--start", default="2024-01-01", help="first day (default 2024-01-01)")
    p.add_argument("--days", type=int, default=3, help="number of days (default 3)")
    p.add_argument("--scans", type=int, default=None, help="scans per granule (default: full size, ~1978)")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="snakemake --cores (default: all)")
    p.add_argument("--fresh", action="store_true", help="delete the demo's earlier results first")
    return p.parse_args(argv)


def _start_service(folder: Path, args: argparse.Namespace, first: date, last: date) -> tuple[subprocess.Popen, dict]:
    state_path = folder / "emulator" / "state.json"
    state_path.unlink(missing_ok=True)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "amsr2flow.emulator", "--state", str(state_path), "--flavour", "amsr2"]
    cmd += ["--start", first.isoformat(), "--end", last.isoformat(), "--log", str(folder / "emulator" / "service.log")]
    if args.scans:
        cmd += ["--scans", str(args.scans)]
    out = open(folder / "emulator" / "service.out", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    deadline = time.monotonic() + STATE_TIMEOUT_S
    while not state_path.is_file():
        if proc.poll() is not None:
            raise SystemExit(f"amsr2flow demo: the local G-Portal exited early; see {folder / 'emulator'}")
        if time.monotonic() > deadline:
            proc.terminate()
            raise SystemExit("amsr2flow demo: the local G-Portal did not start within a minute")
        time.sleep(0.05)
    return proc, json.loads(state_path.read_text(encoding="utf-8"))


def _stop_service(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _generator_fingerprint() -> str:
    """The local G-Portal's generator version (a hash of its source, read as a file: the product never
    imports the emulator; the emulator names its granule cache by the same hash)."""
    import hashlib

    source = Path(__file__).resolve().parents[1] / "emulator" / "synth.py"
    return hashlib.sha256(source.read_bytes()).hexdigest()[:8]


#: What the demo says when Ctrl-C stopped it (Snakemake's own lines before it name the interim report).
INTERRUPTED = (
    "amsr2flow demo: interrupted. Run `make demo` again (with the same options, if you gave any) to continue "
    "where it stopped; --fresh starts over."
)
INTERRUPTED_EXIT = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


def _run_to_its_end(cmd: list[str], folder: Path) -> tuple[int, bool]:
    """Run snakemake and wait for its end, through any Ctrl-C: returns (exit code, interrupted).

    Ctrl-C reaches snakemake too (the terminal signals the whole foreground process group): it stops its jobs
    and writes the interim report, which takes a moment. ``subprocess.call`` would kill it 0.25 s after the
    interrupt, in the middle of that, and end in a traceback.
    """
    snakemake = subprocess.Popen(cmd, cwd=folder)
    interrupted = False
    while True:
        try:
            return snakemake.wait(), interrupted
        except KeyboardInterrupt:
            interrupted = True


def main(argv: list[str] | None = None) -> int:
    try:
        return _demo(parse_args(argv))
    except KeyboardInterrupt:  # before or after snakemake runs (starting the service, the summary)
        print(f"\n{INTERRUPTED}", file=sys.stderr)
        return INTERRUPTED_EXIT


def _demo(args: argparse.Namespace) -> int:
    folder = Path(args.dir).resolve()
    first = date.fromisoformat(args.start)
    last = first + timedelta(days=args.days - 1)
    results = folder / "results"
    # The local G-Portal's granules depend on its generator: manifests listed from an older one hold sizes the
    # new granules no longer have (every download would fail the size check), so a changed generator starts over.
    stamp = folder / "generator.txt"
    generator = _generator_fingerprint()
    changed = results.exists() and (not stamp.is_file() or stamp.read_text(encoding="utf-8").strip() != generator)
    if changed and not args.fresh:
        print("amsr2flow demo: the local G-Portal's granule generator changed since the last demo; starting fresh")
    if (args.fresh or changed) and results.exists():
        import shutil

        shutil.rmtree(results)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(generator + "\n", encoding="utf-8")
    print(f"amsr2flow demo: starting the local G-Portal for {first} to {last} ...", flush=True)
    proc, state = _start_service(folder, args, first, last)
    try:
        print(
            f"  catalogue {state['catalogue_url']}, SFTP {state['sftp_host']}:{state['sftp_port']} "
            f"(host key {state['host_key_sha256']})",
            flush=True,
        )
        config = {
            "start": first.isoformat(),
            "end": last.isoformat(),
            "source": "emulator",
            "output_dir": str(results),
            "channels": ["36.5H", "18.7V"],
            "geolocation": True,
            "variables": ["land_fraction", "earth_incidence"],
            "report": {"progress_interval_s": 20},
            "grid": {"enabled": True, "grids": ["nsidc_north_25km", "ease2_global_25km"]},
            # the record, with all days but the last as the training split (the last one left for validation)
            "record": {"enabled": True, "train": [first.isoformat(), max(first, last - timedelta(days=1)).isoformat()]},
            "emulator": {"state_file": str(folder / "emulator" / "state.json"), "generation": "current"},
        }
        config_path = folder / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        cmd = [
            str(Path(sys.executable).parent / "snakemake"),
            "-s",
            str(REPO / "workflow" / "Snakefile"),
            "--configfile",
            str(config_path),
            "--profile",
            str(REPO / "profiles" / "workstation"),
            "--cores",
            str(args.cores),
            "--resources",
            "gportal=4",
        ]
        print("amsr2flow demo: running", " ".join(cmd[1:]), flush=True)
        started = time.monotonic()
        code, interrupted = _run_to_its_end(cmd, folder)
        elapsed = time.monotonic() - started
    finally:
        _stop_service(proc)
        print("amsr2flow demo: local G-Portal stopped.", flush=True)
    if interrupted:
        print(INTERRUPTED, file=sys.stderr)
        return INTERRUPTED_EXIT
    if code != 0:
        print(f"amsr2flow demo: snakemake failed (exit {code}); logs are under {results / 'logs'}", file=sys.stderr)
        return code
    _print_summary(results, elapsed)
    return 0


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _print_summary(results: Path, elapsed: float) -> None:
    archives = sorted((results / "archives").glob("*.npz"))
    parts = sorted((results / "parts").rglob("*.npz"))
    reports = sorted((results / "reports").glob("run_*.md"))
    run = _json(reports[-1].with_suffix(".json")) if reports else {}
    print(
        f"\namsr2flow demo: done in {elapsed:.0f} s: {run.get('archived_granules')} of "
        f"{run.get('expected_granules')} granules archived ({run.get('status')})."
    )
    print(f"  archives: {', '.join(str(a) for a in archives)}")
    if "disagreement_count" in run:
        agree = "agree" if not run["disagreement_count"] else f"disagree on {run['disagreement_count']} fact(s)"
        print(f"  checks:   the catalogue, the file names, the files and the archives {agree} (see the report)")
    print(f"  parts:    {len(parts)} file(s) under {results / 'parts'}")
    print(f"  report:   {reports[-1].with_suffix('.html') if reports else '-'} (open it in a browser; also .md, .json)")
    for page in sorted((results / "reports").glob("*/report_*.html")):
        print(f"  year:     {page} (calendar, figures, quick-looks)")
    for page in sorted((results / "reports").glob("*/maps/*.html")):
        print(f"  map:      {page} (every swath of the day as a layer)")
    cells = [
        c
        for record in sorted((results / "grids").glob("*/grids_*.json"))
        for c in _json(record)["valid_cells"].values()
    ]
    if cells:
        both = sum(1 for c in cells if c["A"] and c["D"])
        print(
            f"  grids:    {len(cells)} daily grid file(s) under {results / 'grids'} (NetCDF, CF), {both} with "
            "ascending and descending data"
        )
    receipt = results / "record" / "record.json"
    if receipt.exists():
        store = results / "record" / _json(receipt)["store"]
        print(
            f"  record:   {_json(receipt)['swaths']} swaths in {store} (one dataset for training; "
            f"normalisation statistics in {results / 'record' / 'normalisation.json'})"
        )
    for table in sorted((results / "reports").glob("granules_*.csv")):
        print(f"  granules: {table} (one row per granule, for pandas)")
    print(f"  status:   amsr2flow status --configfile {results.parent / 'config.yaml'}")
    if archives:
        print(
            "\nLoad them (no pickle involved):\n"
            "  import amsr2flow\n"
            f"  archive = amsr2flow.open_archive('{archives[0]}')\n"
            "  swath = archive[0]; swath['temperature'], swath['metadata']['orbit_type']\n"
            "  kelvin = amsr2flow.to_kelvin(swath)  # float32, NaN where invalid\n"
            "  archive.index  # one row per swath (pandas)\n"
        )
    if receipt.exists():
        print(
            "The record, and a training batch from it:\n"
            "  from amsr2flow.formats.record import RecordSource, open_record\n"
            "  from amsr2flow.training import SwathBatches\n"
            f"  ds = open_record('{store}')\n"
            f"  batch = next(iter(SwathBatches(RecordSource('{store}'), n_scans=512, batch_size=8)))\n"
            "  batch['tb'].shape, batch['mask'].shape  # (8, 2, 512, 243) float32 Kelvin, bool\n"
        )


if __name__ == "__main__":
    sys.exit(main())
