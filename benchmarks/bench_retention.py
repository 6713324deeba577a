"""Retention benchmark: our workflow vs a legacy-style client against the same faulty local G-Portal.

    .venv/bin/python benchmarks/bench_retention.py                 # rates 0/5/10/20 %, 4 vs 16 transfers, 2 days
    .venv/bin/python benchmarks/bench_retention.py --quick         # smoke run: 1 day, rates 0 and 10 %
    .venv/bin/python benchmarks/bench_retention.py --json retention.json --legacy-retries 3

For every fault rate r and transfer cap p, two fresh local G-Portals (``amsr2flow.emulator``) are started with
the same fault spec and seed, one per client:

* **ours**: the real ``snakemake`` command (``--cores max(4, p) --resources gportal=p --keep-going``) with
  ``source: emulator``; if a granule's transient failures outlive ``transfer.attempts`` the job fails and, as
  the README says, the next run retries it; a day whose listing fails also fails the run. The benchmark then
  reruns the same command (at most ``--max-runs`` runs; the wall time is the sum). Retention, reported
  missing and silent losses come from the run report ``results/reports/run_<period>.json``, cross-checked
  against the orbit model's list of granules.
* **legacy-style**: a re-creation of the legacy collector's design, not our code: ``gportal.search`` on the
  legacy catalogue, then a ``ThreadPoolExecutor(max_workers=p)`` whose tasks each open their own password
  SFTP session (as ``gportal.SFTP.connect`` does, host and port from the state file), ``sftp.download`` the
  product, read ``Brightness Temperature (36.5GHz,H)`` with h5py and delete the file. No timeouts; an
  exception loses the granule (``--legacy-retries K``: K more tries with 0.5/1/2... s backoff, like
  ``amsr2_processor_slow.py`` with shorter waits). It runs in a child process under an overall deadline
  (``--legacy-deadline``), so a hang is reported as ``hung`` instead of hanging the benchmark.

Fault spec (per configuration; ``seed`` = ``--seed`` + 1000 r, so p = 4 and p = 16 see the same granule faults):
every fault a loaded G-Portal shows at rate r (``http_503``, ``html_maintenance``, ``empty_page``,
``duplicate_records``, ``ssh_banner``, ``connection_reset``, ``stall`` (``stall_seconds`` 3), ``truncated``,
``corrupted``), ``max_sessions: 8`` (connections beyond 8 refused before the banner: "concurrency past ~8
sessions loses files"), a per-connection bandwidth cap (``--bandwidth``, default 2 MB/s, ~16 Mbit/s, so that
transfers overlap as they do on the live service), and ``absent`` at a fixed ``--absent-rate`` (default 2 %,
permanent: in the catalogue, not on SFTP) independent of r. ``auth_refusal`` is left out by default (not a load
symptom; ``--auth-refusal`` adds it at rate r).

Decisions a reader should know:
* Granule files are small (``--scans 64``, ~1.6 MB) and pre-generated once into a shared cache, so wall time
  measures collection, not the emulator's generator.
* Both clients page the catalogue ``--page-size`` records at a time (default 100: ``gportal``'s default count
  and our ``catalogue.page_size``). Then the legacy query for 2 days and each of our per-day queries is one
  page, so ``duplicate_records`` (pages after the first only) never fires; ``--page-size 10`` gives several
  pages per query, like the legacy client's month- or year-long windows (and a harder time for ours, whose
  per-day listing restarts the day on any bad page).
* A legacy catalogue failure (HTTP 503 / HTML instead of JSON) would crash the legacy script before any
  download; the benchmark re-runs the search from scratch, as a user re-running the script would (counted as
  ``catalogue restarts``), up to 200 times.
* ``gportal.SFTP.close()`` closes only the SFTP channel and leaves the SSH connection open; a literal copy
  would hold every connection until the process ends, and the 8-session cap would refuse everything after the
  8th file (the legacy system's published 99 % at 4 threads rules that out for the live service, which must
  drop idle connections). The re-creation therefore also closes the transport after each granule.
* Retention = granules retained / granules that begin in the window (the orbit model's list, which the
  catalogue serves). For ours, "retained" means in the year archive; reported missing are the report's
  ``missing`` rows (with their reason); silent losses = the report's ``silent_losses`` plus granules of the
  window missing from our listing. For the legacy-style client every loss is silent: it keeps no record.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from emulator_fixtures import read_stats, start_emulator, stop_emulator, wait_for_stats  # noqa: E402
from workflow_helpers import emulator_config, run_workflow  # noqa: E402

LOAD_FAULTS = (
    "http_503",
    "html_maintenance",
    "empty_page",
    "duplicate_records",
    "ssh_banner",
    "connection_reset",
    "stall",
    "truncated",
    "corrupted",
)
#: The legacy system's measured retention by thread count (live G-Portal, its own unknown fault rates).
PUBLISHED = {1: "99.97", 4: "~99", 8: "95-97", 16: "83-85"}
VARIABLE = "Brightness Temperature (36.5GHz,H)"
DATASET_ID = "11001001"
FIRST_DAY = date(2024, 1, 1)
STATS_KEYS = ("faults_injected", "refused_sessions", "peak_sftp_sessions", "sftp_connections", "files_served")


# -- configuration ----------------------------------------------------------------------------------------
def fault_spec(rate: float, args: argparse.Namespace) -> dict[str, Any]:
    rates = {name: rate for name in LOAD_FAULTS}
    if args.auth_refusal:
        rates["auth_refusal"] = rate
    rates["absent"] = args.absent_rate
    spec: dict[str, Any] = {
        "seed": args.seed + round(rate * 1000),
        "rates": rates,
        "stall_seconds": args.stall_seconds,
        "max_sessions": args.max_sessions,
        "times": 1,
    }
    if args.bandwidth > 0:
        spec["bandwidth_bytes_per_s"] = args.bandwidth
    return spec


def window(days: int) -> tuple[date, date]:
    return FIRST_DAY, FIRST_DAY + timedelta(days=days - 1)


def truth_ids(days: int) -> set[str]:
    """Granules that begin in the window: what a complete collection holds."""
    from amsr2flow.emulator import orbit

    first, _ = window(days)
    return {g.granule_id for k in range(days) for g in orbit.granules_beginning_on(first + timedelta(days=k))}


def emulator_args(args: argparse.Namespace, data_dir: Path, spec: dict | None) -> list[str]:
    first, last = window(args.days)
    extra = ["--scans", str(args.scans), "--data-dir", str(data_dir), "--start", str(first), "--end", str(last)]
    if spec is not None:
        extra += ["--faults", json.dumps(spec)]
    return extra


def final_stats(state: dict[str, Any]) -> dict[str, Any]:
    with contextlib.suppress(TimeoutError):
        wait_for_stats(state, lambda s: s["active_sftp_sessions"] == 0, timeout=10)
    stats = read_stats(state)
    return {k: stats.get(k) for k in STATS_KEYS}


# -- ours -------------------------------------------------------------------------------------------------
def run_ours(rate: float, p: int, args: argparse.Namespace, data_dir: Path, work: Path, truth: set[str]) -> dict:
    spec = fault_spec(rate, args)
    proc, state = start_emulator(work / "emulator", *emulator_args(args, data_dir, spec))
    first, last = window(args.days)
    period = f"{first:%Y%m%d}-{last + timedelta(days=1):%Y%m%d}"
    results = work / "results"
    cfg = emulator_config(
        state,
        work,
        start=str(first),
        end=str(last),
        catalogue={"page_size": args.page_size},
        # the benchmark's `absent` fault is permanent: a run that archived everything else is finished
        accept_missing=["absent"],
        transfer={
            "attempts": args.attempts,
            "backoff_initial_s": args.backoff_initial,
            "backoff_max_s": args.backoff_max,
            "stall_timeout_s": args.stall_timeout,
        },
    )
    runs: list[dict[str, Any]] = []
    try:
        for _ in range(args.max_runs):
            started = time.monotonic()
            try:
                run = run_workflow(
                    work,
                    cfg,
                    "--resources",
                    f"gportal={p}",
                    "--keep-going",
                    cores=max(4, p),
                    timeout=args.run_timeout,
                )
                rc, output = run.returncode, run.stdout
            except AssertionError as exc:  # run_workflow's timeout
                rc, output = "timeout", str(exc)
            failed_rules = sorted(set(re.findall(r"Error in rule (\w+):", output)))
            runs.append(
                {
                    "returncode": rc,
                    "wall_s": round(time.monotonic() - started, 1),
                    "failed_rules": failed_rules,
                    "tail": tail(output),
                }
            )
            if rc == 0:
                break
        stats = final_stats(state)
    finally:
        stop_emulator(proc)
    out: dict[str, Any] = {
        "runs": len(runs),
        "returncodes": [r["returncode"] for r in runs],
        "failed_rules": [r["failed_rules"] for r in runs if r["returncode"] != 0],
        "wall_s": round(sum(r["wall_s"] for r in runs), 1),
        "first_run_wall_s": runs[0]["wall_s"],
        "emulator": stats,
    }
    failed = [r for r in runs if r["returncode"] != 0]
    if failed:
        out["failed_run_tails"] = [r["tail"] for r in failed]
    out["ledger"] = ledger_failures(results)
    report_path = results / "reports" / f"run_{period}.json"
    if not report_path.is_file():
        out["status"] = f"no report after {len(runs)} run(s)"
        return out
    report = json.loads(report_path.read_text(encoding="utf-8"))
    from amsr2flow.stages.catalogue import read_listing

    listing = set(read_listing(results / "manifests" / str(first.year) / f"granules_{period}.csv")["granule_id"])
    missing = {m["granule_id"]: m["reason_class"] for m in report["missing"]}
    archived = (listing - set(missing)) & truth
    reported = {g: r for g, r in missing.items() if r != "unaccounted"}
    out.update(
        status=report.get("status", "?"),
        expected=report["expected_granules"],
        archived=report["archived_granules"],
        retained=len(archived),
        retention_pct=pct(len(archived), len(truth)),
        reported_missing=len(reported),
        reported_reasons=dict(Counter(reported.values())),
        silent=report["silent_losses"] + len(truth - listing),
        not_listed=sorted(truth - listing),
        listed_outside_window=sorted(listing - truth),
    )
    return out


def ledger_failures(results: Path) -> dict[str, int]:
    """Reason classes of every failed attempt-run recorded in the ledger (all runs, resolved ones included)."""
    reasons: Counter[str] = Counter()
    for path in (results / "ledger").glob("*/*.json"):
        with contextlib.suppress(OSError, ValueError):
            for run in json.loads(path.read_text(encoding="utf-8")).get("runs", []):
                reasons[f"{run['status']}:{run['reason_class'] or '-'}"] += 1
    return dict(reasons)


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


# -- legacy-style client (runs in a child process) ----------------------------------------------------------
def legacy_client(job: dict[str, Any]) -> None:
    """The legacy collector's design; writes one JSON line per event to ``job['events']``."""
    import gportal
    import gportal.http_client
    import h5py
    import paramiko

    state = job["state"]
    events = open(job["events"], "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    def emit(**event: Any) -> None:
        events.write(json.dumps(event) + "\n")

    gportal.http_client.BASE_URL = state["legacy_base_url"]
    gportal.username, gportal.password = state["username"], state["password"]
    started = time.monotonic()
    restarts = 0
    while True:  # the script crashed on a catalogue error; the user re-runs it
        try:
            search = gportal.search(
                dataset_ids=[DATASET_ID],
                start_time=datetime.fromisoformat(job["start"]),
                end_time=datetime.fromisoformat(job["end"]),
                count=job["page_size"],
            )
            products = list(search.products())
            break
        except Exception as exc:  # any crash of the script
            restarts += 1
            if restarts > job["max_restarts"]:
                emit(event="catalogue_failed", restarts=restarts, error=repr(exc)[:200])
                return
    emit(event="catalogue", products=[p.id for p in products], restarts=restarts, s=time.monotonic() - started)

    tmpdir = job["tmpdir"]
    rng = random.Random(0)

    def connect() -> tuple[paramiko.Transport, gportal.SFTP]:
        # as gportal.SFTP.connect, with the emulator's host and port
        transport = paramiko.Transport((state["sftp_host"], state["sftp_port"]))
        try:
            transport.connect(username=gportal.username, password=gportal.password)
            client = transport.open_sftp_client()
        except BaseException:
            transport.close()
            raise
        return transport, gportal.SFTP(client)

    def process(product: Any) -> None:
        error = None
        for attempt in range(1 + job["retries"]):
            if attempt:
                time.sleep(job["backoff"] * 2 ** (attempt - 1) + rng.uniform(0, job["backoff"]))
            try:
                transport, sftp = connect()
                try:
                    with sftp:
                        path = sftp.download(product, tmpdir)
                finally:
                    transport.close()  # gportal leaves the SSH connection open; see the module docstring
                try:
                    with h5py.File(path, "r") as h5:
                        raw = h5[VARIABLE][:]
                    emit(event="kept", id=product.id, shape=list(raw.shape), attempts=attempt + 1)
                    return
                finally:
                    os.remove(path)
            except Exception as exc:  # the legacy code lost the granule on any exception
                error = f"{type(exc).__name__}: {exc}"[:200]
        emit(event="lost", id=product.id, error=error)

    with ThreadPoolExecutor(max_workers=job["workers"]) as pool:
        for future in [pool.submit(process, product) for product in products]:
            future.result()
    emit(event="done", s=time.monotonic() - started)


def classify(error: str) -> str:
    text = error.lower()
    if "banner" in text:
        return "connection refused (banner)"
    if "no such file or directory: '" in text:
        return "local file clash (duplicate record)"
    if "no such file" in text:
        return "absent"
    if "truncated" in text or "unable to open" in text or "signature" in text:
        return "unreadable (truncated)"
    if "filter" in text or "can't read data" in text or "inflate" in text:
        return "unreadable (corrupted)"
    if "dropped" in text or "eof" in text or "reset" in text or "socket" in text:
        return "connection reset"
    return "other"


def run_legacy(
    rate: float, p: int, retries: int, args: argparse.Namespace, data_dir: Path, work: Path, truth: set[str]
) -> dict:
    spec = fault_spec(rate, args)
    proc, state = start_emulator(work / "emulator", *emulator_args(args, data_dir, spec))
    first, last = window(args.days)
    events_path = work / "legacy_events.jsonl"
    (work / "downloads").mkdir(parents=True, exist_ok=True)
    job = {
        "state": state,
        "events": str(events_path),
        "tmpdir": str(work / "downloads"),
        "start": f"{first}T00:00:00",
        "end": f"{last + timedelta(days=1)}T00:00:00",
        "page_size": args.page_size,
        "workers": p,
        "retries": retries,
        "backoff": args.legacy_backoff,
        "max_restarts": 200,
    }
    job_path = work / "legacy_job.json"
    job_path.write_text(json.dumps(job), encoding="utf-8")
    hung = False
    started = time.monotonic()
    try:
        with open(work / "legacy.out", "wb") as out:
            child = subprocess.Popen(
                [sys.executable, __file__, "--legacy-client", str(job_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                child.wait(timeout=args.legacy_deadline)
            except subprocess.TimeoutExpired:
                hung = True
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        wall = time.monotonic() - started
        stats = final_stats(state)
    finally:
        stop_emulator(proc)
    events = [json.loads(line) for line in events_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    catalogue = next((e for e in events if e["event"] == "catalogue"), None)
    kept = {e["id"] for e in events if e["event"] == "kept"}
    lost = {e["id"]: e["error"] for e in events if e["event"] == "lost"}
    listed = set(catalogue["products"]) if catalogue else set()
    causes: Counter[str] = Counter()
    for gid in truth - kept:
        if gid in lost:
            causes[classify(lost[gid] or "")] += 1
        elif gid not in listed:
            causes["not listed (catalogue)" if catalogue else "catalogue failed"] += 1
        else:
            causes["hung (deadline)" if hung else "unfinished"] += 1
    done = any(e["event"] == "done" for e in events)
    return {
        "status": "hung" if hung else ("ok" if done else f"child exited {child.returncode}"),
        "retained": len(kept & truth),
        "retention_pct": pct(len(kept & truth), len(truth)),
        "lost": len(truth - kept),
        "lost_causes": dict(causes),
        "catalogue_restarts": catalogue["restarts"] if catalogue else None,
        "listed": len(listed),
        "listed_duplicates": (len(catalogue["products"]) - len(listed)) if catalogue else None,
        "wall_s": round(wall, 1),
        "emulator": stats,
        "child_output": tail((work / "legacy.out").read_text(errors="replace"), 10) if not done else "",
    }


# -- driver -----------------------------------------------------------------------------------------------
def pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def warm_cache(args: argparse.Namespace, data_dir: Path, work: Path) -> float:
    started = time.monotonic()
    proc, _ = start_emulator(work, *emulator_args(args, data_dir, None), "--pregenerate", timeout=600)
    stop_emulator(proc)
    return time.monotonic() - started


def fmt_table(rows: list[dict[str, Any]]) -> str:
    retries = rows[0].get("legacy_retries") is not None
    cols = [
        "fault rate",
        "transfers",
        "catalogued",
        "ours: retained",
        "ours: reported missing",
        "ours: silent",
        "ours: runs",
        "ours: wall",
        "legacy-style: retained",
        "legacy-style: lost (all silent)",
        "legacy-style: wall",
    ]
    if retries:
        cols += [f"legacy-style + {rows[0]['legacy_retries']['retries']} retries: retained", "… wall"]
    cols.append("legacy published (same threads)")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        o, lg = row["ours"], row["legacy"]
        if "retention_pct" in o:
            reasons = ", ".join(f"{n} {r}" for r, n in sorted(o["reported_reasons"].items()))
            ours = [
                f"{o['retention_pct']:.1f} % ({o['retained']})",
                f"{o['reported_missing']}" + (f" ({reasons})" if reasons else ""),
                str(o["silent"]),
            ]
        else:
            ours = [o["status"], "?", "?"]
        published = PUBLISHED.get(row["parallel"])
        cells = [
            f"{row['rate'] * 100:g} %",
            str(row["parallel"]),
            str(row["catalogued"]),
            *ours,
            str(o["runs"]),
            f"{o['wall_s']:.0f} s",
            legacy_cell(lg),
            str(lg["lost"]),
            f"{lg['wall_s']:.0f} s",
        ]
        if retries:
            cells += [legacy_cell(row["legacy_retries"]), f"{row['legacy_retries']['wall_s']:.0f} s"]
        cells.append(f"{published} %" if published else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def legacy_cell(result: dict[str, Any]) -> str:
    note = "" if result["status"] == "ok" else f" [{result['status']}]"
    return f"{result['retention_pct']:.1f} % ({result['retained']}){note}"


def fmt_details(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| fault rate | transfers | ours: failed runs (rules) | ours: ledger entries (status:reason) | "
        "ours: peak sessions / refused | "
        "legacy-style: loss causes | legacy-style: catalogue restarts | legacy-style: peak sessions / refused |",
        "|" + "---|" * 8,
    ]
    for row in rows:
        o, lg = row["ours"], row["legacy"]
        lg_sessions = f"{lg['emulator']['peak_sftp_sessions']} / {lg['emulator']['refused_sessions']}"
        ledger = ", ".join(f"{k} {v}" for k, v in sorted(o.get("ledger", {}).items())) or "-"
        failed = "; ".join(",".join(rules) or "?" for rules in o["failed_rules"]) or "-"
        causes = ", ".join(f"{k} {v}" for k, v in sorted(lg["lost_causes"].items())) or "-"
        lines.append(
            f"| {row['rate'] * 100:g} % | {row['parallel']} | {failed} | {ledger} | "
            f"{o['emulator']['peak_sftp_sessions']} / {o['emulator']['refused_sessions']} | {causes} | "
            f"{lg['catalogue_restarts']} | {lg_sessions} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.05, 0.10, 0.20])
    parser.add_argument("--parallel", type=int, nargs="+", default=[4, 16], help="transfer caps / legacy threads")
    parser.add_argument("--days", type=int, default=2, help="days collected from 2024-01-01 (~29 granules a day)")
    parser.add_argument("--scans", type=int, default=64, help="scans per synthetic granule (64: ~1.6 MB)")
    parser.add_argument("--seed", type=int, default=1, help="base fault seed (configuration seed = seed + 1000 r)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 day, rates 0 and 0.1")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--absent-rate", type=float, default=0.02, help="permanent 'absent' rate, every config")
    parser.add_argument("--auth-refusal", action="store_true", help="also inject auth_refusal at rate r")
    parser.add_argument("--max-sessions", type=int, default=8)
    parser.add_argument("--bandwidth", type=int, default=2_000_000, help="bytes/s per connection (0: no cap)")
    parser.add_argument("--stall-seconds", type=float, default=3)
    parser.add_argument("--page-size", type=int, default=100, help="catalogue records per page, both clients")
    parser.add_argument("--attempts", type=int, default=4, help="ours: transfer.attempts (shipped default 4)")
    parser.add_argument("--stall-timeout", type=float, default=1.5, help="ours: transfer.stall_timeout_s")
    parser.add_argument("--backoff-initial", type=float, default=0.5, help="ours: transfer.backoff_initial_s")
    parser.add_argument("--backoff-max", type=float, default=4, help="ours: transfer.backoff_max_s")
    parser.add_argument("--max-runs", type=int, default=5, help="ours: runs of the same command while one fails")
    parser.add_argument("--run-timeout", type=float, default=900, help="ours: seconds per snakemake run")
    parser.add_argument(
        "--legacy-retries", type=int, default=3, help="also run the legacy-style client with this many retries (0: no)"
    )
    parser.add_argument("--legacy-backoff", type=float, default=0.5, help="legacy: first retry wait (doubles)")
    parser.add_argument("--legacy-deadline", type=float, default=300, help="legacy: overall limit in seconds")
    parser.add_argument("--workdir", type=Path, help="keep every run's files here (default: a temporary folder)")
    parser.add_argument("--legacy-client", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.days, args.rates = 1, [0.0, 0.10]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.legacy_client:
        legacy_client(json.loads(args.legacy_client.read_text(encoding="utf-8")))
        return 0
    base = args.workdir or Path(tempfile.mkdtemp(prefix="bench_retention_"))
    base.mkdir(parents=True, exist_ok=True)
    data_dir = base / "emulator-data"
    truth = truth_ids(args.days)
    started = time.monotonic()
    print(f"warming the granule cache ({len(truth)} granules, --scans {args.scans}) ...", flush=True)
    warm_s = warm_cache(args, data_dir, base / "warm")
    print(f"  {warm_s:.1f} s", flush=True)
    rows = []
    try:
        for rate in args.rates:
            for p in args.parallel:
                tag = f"r{round(rate * 100):02d}_p{p}"
                print(f"rate {rate:g}, {p} transfers: ours ...", end="", flush=True)
                ours = run_ours(rate, p, args, data_dir, base / tag / "ours", truth)
                print(f" {ours.get('retention_pct', ours.get('status'))} % in {ours['wall_s']} s; legacy ...", end="")
                legacy = run_legacy(rate, p, 0, args, data_dir, base / tag / "legacy", truth)
                print(f" {legacy['retention_pct']} % in {legacy['wall_s']} s", end="", flush=True)
                row = {
                    "rate": rate,
                    "parallel": p,
                    "catalogued": len(truth),
                    "fault_spec": fault_spec(rate, args),
                    "ours": ours,
                    "legacy": legacy,
                    "legacy_retries": None,
                    "legacy_published_pct": PUBLISHED.get(p),
                }
                if args.legacy_retries > 0:
                    print("; legacy with retries ...", end="", flush=True)
                    retried = run_legacy(rate, p, args.legacy_retries, args, data_dir, base / tag / "legacy_r", truth)
                    retried["retries"] = args.legacy_retries
                    row["legacy_retries"] = retried
                    print(f" {retried['retention_pct']} % in {retried['wall_s']} s", end="")
                print(flush=True)
                rows.append(row)
    finally:
        total = time.monotonic() - started
        if rows:
            print()
            print(fmt_table(rows))
            print()
            print(fmt_details(rows))
        kept = f"files in {base}" if args.workdir else "temporary files removed"
        print(f"\ntotal {total / 60:.1f} min (cache warm-up {warm_s:.0f} s); {kept}")
        if args.json:
            settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
            result = {"settings": settings, "total_s": round(total, 1), "rows": rows}
            args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        if args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
