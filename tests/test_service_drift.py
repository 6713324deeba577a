"""When the real G-Portal differs from our picture of it, a run adapts or stops with one clear message; it never
archives emptiness and exits 0. Each case is a real `snakemake` run against a local G-Portal that differs."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from emulator_fixtures import read_stats, start_emulator, stop_emulator, wait_for_stats
from workflow_helpers import emulator_config, run_workflow

from amsr2flow.formats.reader import open_archive
from amsr2flow.gportal.remote_layout import MAX_LISTINGS, PLAUSIBLE_ROOTS

pytestmark = pytest.mark.slow

PERIOD = "20240101-20240102"
NO_DAY_LEVEL = "{product_dir}/{year}/{month}/{file_name}"
#: SFTP requests the layout check may take at most: every plausible layout once, then the listings upwards.
MAX_LAYOUT_REQUESTS = 1 + 2 * len(PLAUSIBLE_ROOTS) + MAX_LISTINGS


def _report(results: Path) -> dict:
    return json.loads((results / "reports" / f"run_{PERIOD}.json").read_text())


def _archives(results: Path) -> list[Path]:
    return sorted((results / "archives").glob("AMSR2_temp_only_*.npz"))


def _run(tmp_path: Path, state: dict, *args: str, **overrides):
    cfg = emulator_config(state, tmp_path, **overrides)
    return run_workflow(tmp_path, cfg, "--resources", "gportal=4", *args, cores=4, timeout=300)


@pytest.mark.parametrize(
    ("drift", "template"),
    [
        (["--no-tree-day-level"], "/product/Standard/" + NO_DAY_LEVEL),
        (["--no-catalogue-day-level"], "/product/Standard/{product_dir}/{year}/{month}/{day}/{file_name}"),
        (["--tree-root", "/standard"], "standard/{product_dir}/{year}/{month}/{day}/{file_name}"),
    ],
    ids=["tree-without-day-level", "catalogue-without-day-level", "tree-under-standard"],
)
def test_a_different_layout_is_found_and_used_for_the_whole_run(tmp_path: Path, drift: list, template: str) -> None:
    proc, state = start_emulator(tmp_path / "emulator", *drift)
    try:
        run = _run(tmp_path, state)
        stats = wait_for_stats(state, lambda s: s["active_sftp_sessions"] == 0)
    finally:
        stop_emulator(proc)
    assert run.returncode == 0, run.stdout[-4000:]
    # said in one line; the relative standard/ is the first of the roots that hold the tree under /standard
    assert f"granules are at {template}: found by looking" in run.stdout
    report = _report(tmp_path / "results")
    assert report["archived_granules"] == report["expected_granules"] == 29
    layout = report["remote_layout"]
    assert layout["template"] == template and layout["how"] == "discovered"
    assert layout["requests"] <= MAX_LAYOUT_REQUESTS
    assert stats["files_served"] == 29 and stats["faults_injected"].get("absent", 0) == 0
    ledger = list((tmp_path / "results" / "ledger").rglob("*.json"))
    assert ledger == []  # nothing failed, nothing absent


def test_a_tree_no_layout_explains_stops_before_any_job(tmp_path: Path) -> None:
    """Lists every granule, serves none where any plausible layout says: before, exit 0 and empty archives."""
    proc, state = start_emulator(tmp_path / "emulator", "--tree-root", "/data/Standard", "--no-legacy-tree")
    try:
        run = _run(tmp_path, state)
        stats = wait_for_stats(state, lambda s: s["active_sftp_sessions"] == 0)
    finally:
        stop_emulator(proc)
    assert run.returncode == 2, run.stdout[-4000:]
    message = next(line for line in run.stdout.splitlines() if line.startswith("amsr2flow: cannot start"))
    assert "/product/Standard/GCOM-W/GCOM-W.AMSR2/L1B/2/2024/01/01/GW1AM2_" in message  # the path tried
    assert "the nearest existing folder, /, holds: data." in message
    assert "set remote_path_template" in message
    assert "Traceback" not in run.stdout
    assert stats["files_opened"] == 0 and stats["sftp_sessions"] == 1
    results = tmp_path / "results"
    assert not (results / "archives").exists() and not (results / "swaths").exists()
    assert not (results / "ledger").exists()


def test_a_configured_template_is_used(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator", "--tree-root", "/data/Standard", "--no-tree-day-level")
    try:
        run = _run(tmp_path, state, remote_path_template="/data/Standard/" + NO_DAY_LEVEL)
    finally:
        stop_emulator(proc)
    assert run.returncode == 0, run.stdout[-4000:]
    report = _report(tmp_path / "results")
    assert report["archived_granules"] == 29 and report["remote_layout"]["how"] == "configured"


def test_big_endian_granules_give_the_same_archive(tmp_path: Path) -> None:
    def collect(flavour: str) -> Path:
        extra = ["--big-endian"] if flavour == "big" else []
        proc, state = start_emulator(tmp_path / flavour / "emulator", *extra)
        try:
            run = _run(tmp_path / flavour, state)
        finally:
            stop_emulator(proc)
        assert run.returncode == 0, run.stdout[-4000:]
        (archive,) = _archives(tmp_path / flavour / "results")
        return archive

    # the two runs, each against a service of its own, at the same time
    with ThreadPoolExecutor(max_workers=2) as pool:
        archives = dict(zip(("little", "big"), pool.map(collect, ("little", "big")), strict=True))
    with open_archive(archives["big"]) as big, open_archive(archives["little"]) as little:
        assert len(big) == len(little) == 29
        # the same swaths; only the source files' checksums and sizes (other bytes) differ
        for column in big.table.dtype.names:
            if not column.startswith("source_"):
                a, b = big.table[column], little.table[column]
                assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), column
        for i in range(29):
            assert big[i]["temperature"].dtype.byteorder in ("=", "<", "|")
            assert (big[i]["temperature"] == little[i]["temperature"]).all()


def test_old_granules_wait_for_an_order_then_arrive(tmp_path: Path) -> None:
    """The 2.5-year rule: catalogued, absent on SFTP until ordered. The absence breaker stops the run instead of
    tombstoning a whole day; after the order, a rerun looks again at the ones recorded absent and fetches all."""
    proc, state = start_emulator(tmp_path / "emulator", "--order-after-days", "30")
    try:
        overrides = {"transfer": {"absent_breaker_granules": 5}, "catalogue": {"recheck_absent_after_hours": 0}}
        first = _run(tmp_path, state, "--keep-going", **overrides)
        results = tmp_path / "results"
        assert first.returncode == 1, first.stdout[-4000:]
        assert "are absent on the SFTP server" in first.stdout and "order them on the G-Portal web site" in first.stdout
        assert "Traceback" not in first.stdout
        assert _archives(results) == []  # never an archive of what was not found
        tombstones = [p for p in (results / "swaths").rglob("*.json") if '"missing"' in p.read_text()]
        assert len(tombstones) < 5  # none after the breaker opened
        stats = read_stats(state)
        assert stats["files_opened"] == 0
        interim = json.loads((results / "reports" / f"interim_{PERIOD}.json").read_text())
        reasons = {m["reason_class"] for m in interim["missing"]}
        assert reasons <= {"absent", "suspect_absent", "stopped"} and "suspect_absent" in reasons
        assert interim["silent_losses"] == 0

        ordered = requests.get(state["order_url"], params={"day": "2024-01-01"}, timeout=30)
        assert ordered.status_code == 200 and len(ordered.json()["ordered"]) == 29
        second = _run(tmp_path, state, "--keep-going", **overrides)
    finally:
        stop_emulator(proc)
    assert second.returncode == 0, second.stdout[-4000:]
    report = _report(results)
    assert report["archived_granules"] == report["expected_granules"] == 29
    ledger = {p.stem: json.loads(p.read_text()) for p in (results / "ledger").rglob("GW1AM2_*.json")}
    assert {e["status"] for e in ledger.values()} == {"resolved"}
    with open_archive(_archives(results)[0]) as archive:
        assert len(archive) == 29


def test_a_sealed_year_reopens_only_when_an_absent_granule_arrives(tmp_path: Path) -> None:
    """A complete year with one absent granule: reruns look again (a stat, no download); while it is absent the
    archive stays as it is, and when it arrives only it is downloaded and the archive gets exactly its bytes."""
    gone = "GW1AM2_202401010244_208D_L1SGBTBR_2220220"
    day_only = ["--start", "2024-01-01", "--end", "2024-01-01", "--data-dir", str(tmp_path / "emulator-data")]
    faults = json.dumps({"granules": {gone: ["absent"]}})
    year = {"start": "2024-01-01", "end": "2024-12-31", "catalogue": {"recheck_absent_after_hours": 0}}
    results = tmp_path / "run" / "results"
    archive_name = "AMSR2_temp_only_20240101_000000_to_20250101_000000.npz"
    proc, state = start_emulator(tmp_path / "with-fault", *day_only, "--faults", faults)
    try:
        first = _run(tmp_path / "run", state, **year)
        assert first.returncode == 3, first.stdout[-4000:]
        archive = results / "archives" / archive_name
        built = archive.stat().st_mtime_ns
        again = _run(tmp_path / "run", state, **year)
        assert again.returncode == 3, again.stdout[-4000:]
        assert "recheck_absent" in again.stdout and archive.stat().st_mtime_ns == built
        served_before = read_stats(state)["files_served"]
    finally:
        stop_emulator(proc)
    assert served_before == 28
    assert not list((results / "swaths").rglob("*.npy"))  # a complete year keeps no swaths

    proc, state = start_emulator(tmp_path / "without-fault", *day_only)
    try:
        arrived = _run(tmp_path / "run", state, **year)
        served = read_stats(state)["files_served"]
        fresh = _run(tmp_path / "fresh", state, **year)
    finally:
        stop_emulator(proc)
    assert arrived.returncode == 0, arrived.stdout[-4000:]
    assert served == 1  # only the granule that arrived
    assert fresh.returncode == 0, fresh.stdout[-4000:]
    assert archive.read_bytes() == (tmp_path / "fresh" / "results" / "archives" / archive_name).read_bytes()
    assert not (results / "archives" / ".base").exists() or not list((results / "archives" / ".base").iterdir())
