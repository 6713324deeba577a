"""The workflow end to end: real ``snakemake`` runs against the local G-Portal over sockets."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from emulator_fixtures import read_stats, start_emulator, stop_emulator
from workflow_helpers import REPO, SNAKEMAKE, emulator_config, job_counts, run_workflow

from amsr2flow import open_archive
from amsr2flow.stages.catalogue import read_listing

pytestmark = pytest.mark.slow


def _archives(results: Path) -> list[Path]:
    return sorted((results / "archives").glob("*.npz"))


def _hdf5_temperature(cache_dir: Path, granule_id: str, dataset: str) -> np.ndarray:
    with h5py.File(cache_dir / f"{granule_id}.h5", "r") as h5:
        raw = h5[dataset][:]
    raw[(raw == 65535) | (raw == 65534)] = 0
    return raw


def test_end_to_end_outputs_match_the_granules(tmp_path: Path, emulator: dict) -> None:
    cfg = emulator_config(
        emulator, tmp_path, start="2024-01-01", end="2024-01-02", part_size=20, report={"figures": True}
    )
    run = run_workflow(tmp_path, cfg, "--resources", "gportal=4")
    assert run.returncode == 0, run.stdout[-4000:]
    results = tmp_path / "results"

    # manifests: one per day, granules that begin on that day, all columns
    for day in ("2024-01-01", "2024-01-02"):
        manifest = pd.read_csv(results / "manifests" / "2024" / f"{day}.csv")
        assert 29 <= len(manifest) <= 30
        assert manifest["begin_utc"].str.startswith(day).all()
        assert set(manifest["orbit_direction"]) == {"A", "D"}
        assert manifest["remote_path"].str.startswith("/product/Standard/").all()
        assert manifest["granule_id"].is_unique
    listing = read_listing(results / "manifests" / "2024" / "granules_20240101-20240103.csv")

    # swaths of the year in progress are kept, with sidecars
    swaths = sorted((results / "swaths" / "2024").rglob("*.npy"))
    assert len(swaths) == len(listing)
    assert all(p.with_suffix(".json").is_file() for p in swaths)

    # the archive: pickle-free, in time order, equal to what the HDF5 files held; the HDF5s are gone
    (archive_path,) = _archives(results)
    assert archive_path.name == "AMSR2_temp_only_20240101_000000_to_20240103_000000.npz"
    with np.load(archive_path, allow_pickle=False) as npz:
        assert len(npz.files) > len(listing)
    cache_dir = Path(emulator["cache_dir"])
    with open_archive(archive_path) as archive:
        assert len(archive) == len(listing)
        assert list(archive.index["granule_id"]) == list(listing.sort_values("begin_utc")["granule_id"])
        for i in (0, len(archive) // 2, len(archive) - 1):
            swath = archive[i]
            gid = swath["metadata"]["granule_id"]
            expected = _hdf5_temperature(cache_dir, gid, "Brightness Temperature (36.5GHz,H)")
            np.testing.assert_array_equal(swath["temperature"], expected)
            assert swath["metadata"]["orbit_type"] == gid.split("_")[2][-1]
    assert not list((results / ".scratch").glob("*.h5"))

    # parts of 20 swaths
    parts = sorted((results / "parts" / "2024").glob("*.npz"))
    assert len(parts) == -(-len(listing) // 20)
    assert parts[0].name.endswith(f"_part_1of{len(parts)}.npz")
    assert sum(len(open_archive(p)) for p in parts) == len(listing)

    # reports: complete, nothing missing, nothing silent
    run_report = json.loads((results / "reports" / "run_20240101-20240103.json").read_text())
    assert run_report["status"] == "complete"
    assert run_report["expected_granules"] == run_report["archived_granules"] == len(listing)
    assert run_report["silent_losses"] == 0
    assert (results / "reports" / "run_20240101-20240103.html").read_text().startswith("<!DOCTYPE html>")
    year_report = json.loads((results / "reports" / "2024" / "report_20240101-20240103.json").read_text())
    assert sum(d["expected"] for d in year_report["days"]) == len(listing)
    assert year_report["orbit_direction"]["A"]["archived"] + year_report["orbit_direction"]["D"]["archived"] == len(
        listing
    )
    assert year_report["verification"]["damaged"] == 0

    # one log file per job: one job per day
    assert len(list((results / "logs" / "granules").rglob("*.log"))) == len(set(listing["day"])) == 2


def test_channels_and_geolocation_over_the_legacy_generation(tmp_path: Path, emulator: dict) -> None:
    cfg = emulator_config(
        emulator,
        tmp_path,
        channels=["89.0AV", "36.5H"],
        geolocation=True,
        variables=["land_fraction", "earth_incidence", "pixel_quality"],
        emulator={"generation": "legacy"},
        report={"figures": True},  # 89 GHz quick-looks and maps: positions of every second column
    )
    run = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
    assert run.returncode == 0, run.stdout[-4000:]
    results = tmp_path / "results"
    manifest = pd.read_csv(results / "manifests" / "2024" / "2024-01-01.csv")
    assert manifest["remote_path"].str.startswith("standard/GCOM-W/").all()
    (archive_path,) = _archives(results)
    assert "temp_only" not in archive_path.name
    cache_dir = Path(emulator["cache_dir"])
    with open_archive(archive_path) as archive:
        swath = archive[3]
        gid = swath["metadata"]["granule_id"]
        with h5py.File(cache_dir / f"{gid}.h5", "r") as h5:
            lat = h5["Latitude of Observation Point for 89A"][:, ::2]
        np.testing.assert_array_equal(swath["latitude"], lat)
        np.testing.assert_array_equal(
            swath["temperature"], _hdf5_temperature(cache_dir, gid, "Brightness Temperature (89.0GHz-A,V)")
        )
        np.testing.assert_array_equal(
            swath["36.5H"], _hdf5_temperature(cache_dir, gid, "Brightness Temperature (36.5GHz,H)")
        )
        with h5py.File(cache_dir / f"{gid}.h5", "r") as h5:  # extra variables: the granule's values, raw
            np.testing.assert_array_equal(swath["earth_incidence"], h5["Earth Incidence"][()])
            np.testing.assert_array_equal(swath["land_fraction"], np.moveaxis(h5["Land_Ocean Flag 6 to 36"][()], 0, 1))
            assert swath["pixel_quality"].tobytes() == h5["Pixel Data Quality 6 to 36"][()].tobytes()
        assert archive.metadata(3).variables == ("earth_incidence", "land_fraction", "pixel_quality")


def test_throttle_caps_concurrent_transfers(tmp_path: Path) -> None:
    """Three day jobs, eight cores, gportal=2: two sessions at once, and one session per day job (plus the
    preflight's login), not one per granule."""
    proc, state = start_emulator(tmp_path / "emulator", "--scans", "16", "--faults", json.dumps({"rates": {}}))
    try:
        cfg = emulator_config(state, tmp_path, end="2024-01-03")
        run = run_workflow(tmp_path, cfg, "--resources", "gportal=2", cores=8)
        assert run.returncode == 0, run.stdout[-4000:]
    finally:
        stop_emulator(proc)
    stats = read_stats(state)
    assert stats["files_served"] >= 3 * 29
    assert stats["peak_sftp_sessions"] == 2
    assert stats["sftp_sessions"] == 3 + 1


def test_incremental_reruns(tmp_path: Path, emulator: dict) -> None:
    # Two years touched: 2023 (one day) and 2024 (one day), so deleting one year's archive can be tested.
    cfg = emulator_config(emulator, tmp_path, start="2023-12-31", end="2024-01-01")
    first = run_workflow(tmp_path, cfg, "--resources", "gportal=4")
    assert first.returncode == 0, first.stdout[-4000:]
    served = read_stats(emulator)["files_served"]
    results = tmp_path / "results"

    # unchanged rerun: nothing scheduled, nothing fetched
    again = run_workflow(tmp_path, cfg)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout
    assert read_stats(emulator)["files_served"] == served

    # deleting one year's archive rebuilds that year only, without downloading
    archive_2023, archive_2024 = _archives(results)  # sorted by name: by period
    assert "_20231231_000000_to_20240101_" in archive_2023.name
    mtime_2024 = archive_2024.stat().st_mtime_ns
    archive_2023.unlink()
    rebuilt = run_workflow(tmp_path, cfg)
    assert rebuilt.returncode == 0, rebuilt.stdout[-4000:]
    counts = job_counts(rebuilt.stdout)
    assert counts.get("year_archive") == 1
    assert counts.get("catalogue", 0) == 0
    assert not any(rule.startswith("day_") for rule in counts)
    assert archive_2023.is_file()
    assert archive_2024.stat().st_mtime_ns == mtime_2024
    assert read_stats(emulator)["files_served"] == served

    # moving `end` forward fetches only the new day's granules, also when the variable set grows at the same
    # time: the new set applies to the new granules, nothing already extracted is downloaded again
    extended = dict(cfg, end="2024-01-02", variables=["earth_incidence"])
    grown = run_workflow(tmp_path, extended, "--resources", "gportal=4")
    assert grown.returncode == 0, grown.stdout[-4000:]
    new_day = pd.read_csv(results / "manifests" / "2024" / "2024-01-02.csv")
    assert read_stats(emulator)["files_served"] == served + len(new_day)
    assert "variables [earth_incidence] apply to granules extracted from now on" in grown.stdout
    (grown_2024,) = [p for p in _archives(results) if "_20240101_000000_to_20240103_" in p.name]
    with open_archive(grown_2024) as grown_archive:
        held = {grown_archive.metadata(i).variables for i in range(len(grown_archive))}
        first_new = next(
            i for i in range(len(grown_archive)) if grown_archive[i].granule_id in set(new_day["granule_id"])
        )
        assert grown_archive.metadata(first_new).variables == ("earth_incidence",)
    assert held == {(), ("earth_incidence",)}
    assert job_counts(grown.stdout)["catalogue"] == 1
    names = [p.name for p in _archives(results)]
    assert "AMSR2_temp_only_20240101_000000_to_20240103_000000.npz" in names
    assert "AMSR2_temp_only_20240101_000000_to_20240102_000000.npz" not in names  # superseded partial archive


def test_dry_run_shows_the_plan_without_network(tmp_path: Path) -> None:
    proc, state = start_emulator(tmp_path / "emulator", "--scans", "16")
    cfg = emulator_config(state, tmp_path)
    try:
        # Before any manifest exists, the plan is the catalogue checkpoint.
        plan = run_workflow(tmp_path, cfg, "-n")
        assert plan.returncode == 0, plan.stdout[-3000:]
        assert job_counts(plan.stdout).get("catalogue") == 1
        assert read_stats(state)["catalogue_requests"] == 0
        first = run_workflow(tmp_path, cfg)
        assert first.returncode == 0, first.stdout[-3000:]
    finally:
        stop_emulator(proc)
    # With the manifests present and the service gone, a dry run lists every day job and touches nothing.
    results = tmp_path / "results"
    for path in _archives(results):
        path.unlink()
    for record in (results / "swaths" / "2024").glob("*.json"):
        record.unlink()
    plan = run_workflow(tmp_path, cfg, "-n")
    assert plan.returncode == 0, plan.stdout[-3000:]
    listing = read_listing(results / "manifests" / "2024" / "granules_20240101-20240102.csv")
    assert job_counts(plan.stdout).get("day_kept_swaths") == len(set(listing["day"])) == 1


def test_lint_is_clean() -> None:
    import subprocess

    out = subprocess.run(
        [str(SNAKEMAKE), "--lint", "--workflow-profile", "none", "--cores", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Congratulations" in out.stdout + out.stderr


def test_split_transfers_give_the_same_archives(tmp_path: Path) -> None:
    """transfer_jobs: local (downloads where Snakemake runs, extraction as its own job) changes no byte."""
    from amsr2flow.emulator import orbit

    absent = orbit.granules_beginning_on(pd.Timestamp("2024-01-01").date())[4].granule_id
    spec = {
        "granules": {
            absent: ["absent"],
            orbit.granules_beginning_on(pd.Timestamp("2024-01-01").date())[6].granule_id: ["corrupted"],
        }
    }
    proc, state = start_emulator(tmp_path / "emulator", "--scans", "16", "--faults", json.dumps(spec))
    try:
        outputs = {}
        for mode in ("cluster", "local"):
            workdir = tmp_path / mode
            cfg = emulator_config(state, workdir, transfer_jobs=mode, accept_missing=["absent"])
            run = run_workflow(workdir, cfg, "--resources", "gportal=2")
            assert run.returncode == 0, run.stdout[-4000:]  # the absent granule is accepted
            results = workdir / "results"
            # day jobs are planned after the checkpoint, so their trace is their log files
            downloads = list((results / "logs" / "downloads").rglob("*.log"))
            assert len(downloads) == (1 if mode == "local" else 0)
            # one day under gportal=2: the day's downloads go over two sessions in either mode
            network_log = downloads[0] if mode == "local" else results / "logs" / "granules" / "2024" / "2024-01-01.log"
            assert "2 session(s) opened for 29 granules" in network_log.read_text()
            outputs[mode] = {p.name: p.read_bytes() for p in _archives(results)}
            report = json.loads((results / "reports" / "run_20240101-20240102.json").read_text())
            assert {m["granule_id"]: m["reason_class"] for m in report["missing"]} == {absent: "absent"}
            assert not list((results / ".scratch").rglob("*.h5"))
    finally:
        stop_emulator(proc)
    assert outputs["local"] == outputs["cluster"]
    assert len(outputs["local"]) == 1


def test_a_complete_year_is_archived_then_sealed(tmp_path: Path) -> None:
    """A whole calendar year (the service has data on one day): archived, its swaths gone; a rerun changes nothing.

    Before: the year's temporary sidecars were deleted before its archive job read them (the archive failed), and
    a rerun of a sealed year rebuilt its archive from no swaths (Snakemake: "set of input files has changed").
    """
    proc, state = start_emulator(tmp_path / "emulator", "--scans", "16", "--start", "2024-01-01", "--end", "2024-01-01")
    try:
        cfg = emulator_config(state, tmp_path, start="2024-01-01", end="2024-12-31")
        first = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
        assert first.returncode == 0, first.stdout[-4000:]
        archive = tmp_path / "results" / "archives" / "AMSR2_temp_only_20240101_000000_to_20250101_000000.npz"
        built = archive.read_bytes()
        assert len(open_archive(archive)) == 29
        assert not list((tmp_path / "results" / "swaths").rglob("*.npy"))  # temporary in a complete year
        again = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
    finally:
        stop_emulator(proc)
    assert again.returncode == 0, again.stdout[-4000:]
    assert job_counts(again.stdout) == {}
    assert archive.read_bytes() == built
