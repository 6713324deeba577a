"""The record in the workflow, against the local G-Portal: `record: {enabled: true}` appends every archived
swath once (one commit per archive that gained swaths), a rerun appends nothing, a later end appends only the
new days, `amsr2flow verify` finds it equal to the archives, and the training split's statistics are written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from workflow_helpers import emulator_config, job_counts, run_workflow

from amsr2flow.formats.archive import Archive
from amsr2flow.formats.record import RecordSource, open_record

icechunk = pytest.importorskip("icechunk")
AMSR2FLOW = Path(sys.executable).parent / "amsr2flow"


def commits(store: Path) -> list[str]:
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(store)))
    return [s.message for s in repo.ancestry(branch="main")]


@pytest.mark.slow
def test_the_record_follows_the_archives_through_reruns_and_a_later_end(tmp_path: Path, emulator: dict) -> None:
    cfg = emulator_config(
        emulator,
        tmp_path,
        start="2024-01-01",
        end="2024-01-02",
        channels=["36.5H", "89.0AV"],
        geolocation=True,
        record={"enabled": True, "train": ["2024-01-01", "2024-01-01"]},
    )
    run = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
    assert run.returncode == 0, run.stdout[-4000:]
    results = tmp_path / "results"
    store = results / "record" / "swaths.icechunk"
    (archive_path,) = sorted((results / "archives").glob("*.npz"))
    with Archive(archive_path) as archive:
        archived = sorted(archive.table["granule_id"].tolist())
    source = RecordSource(store)
    assert sorted(source.index()["granule_id"].tolist()) == archived and len(archived) > 40
    receipt = json.loads((results / "record" / "record.json").read_text())
    assert receipt["swaths"] == len(archived) and receipt["archives"][archive_path.name]["added"] == len(archived)
    first_commits = commits(store)
    assert len([m for m in first_commits if m.startswith("append")]) == 1

    # the statistics of the training split (its first day only), in Kelvin
    stats = json.loads((results / "record" / "normalisation.json").read_text())
    assert set(stats["channels"]) == {"36.5H", "89.0AV"}
    assert 100 < stats["channels"]["36.5H"]["mean"] < 300 and stats["channels"]["36.5H"]["std"] > 0

    verify = subprocess.run([str(AMSR2FLOW), "verify", str(store)], capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "every archived swath once, equal bytes" in verify.stdout

    # a rerun: nothing to do, nothing appended
    again = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
    assert again.returncode == 0, again.stdout[-4000:]
    assert commits(store) == first_commits

    # one more day: only its swaths are appended, in one commit; the training split's statistics stay
    cfg["end"] = "2024-01-03"
    later = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
    assert later.returncode == 0, later.stdout[-4000:]
    assert job_counts(later.stdout).get("record") == 1
    now = commits(store)
    assert len(now) == len(first_commits) + 1 and now[1:] == first_commits
    ds = open_record(store)
    days = ds["time"].values.astype("datetime64[D]")
    assert (days[: len(archived)] <= np.datetime64("2024-01-02")).all()
    assert (days[len(archived) :] >= np.datetime64("2024-01-02")).all()
    assert len(set(ds["granule_id"].values.tolist())) == ds.sizes["swath"]
    assert json.loads((results / "record" / "normalisation.json").read_text()) == stats
    ds.close()

    # a smaller region: the archive now holds the region's swaths (whole ones serve any region); the record
    # keeps every swath it was given (it is only appended to) and the receipt counts those in no archive
    cfg["region"] = [120.0, 20.0, 150.0, 50.0]
    smaller = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
    assert smaller.returncode == 0, smaller.stdout[-3000:]
    receipt = json.loads((results / "record" / "record.json").read_text())
    with Archive(next((results / "archives").glob("*.npz"))) as archive:
        kept = len(archive)
    assert 0 < kept < receipt["swaths"] and receipt["in_no_archive"] == receipt["swaths"] - kept
    assert commits(store) == now

    # something else where the record should be: one line saying what it is and what to do, no traceback
    store.rename(tmp_path / "record-aside")
    store.mkdir()
    (store / "notes.txt").write_text("not a record")
    (results / "record" / "record.json").unlink()
    blocked = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
    assert blocked.returncode != 0
    assert f"amsr2flow: {store} exists and is not a record; move it aside" in blocked.stdout
    assert "Traceback" not in blocked.stdout, blocked.stdout[-3000:]


@pytest.mark.slow
def test_a_run_killed_at_its_record_job_leaves_a_readable_record_and_the_next_run_completes_it(
    tmp_path: Path, emulator: dict
) -> None:
    import os
    import signal
    import time

    import yaml
    from workflow_helpers import SNAKEFILE, SNAKEMAKE

    cfg = emulator_config(emulator, tmp_path, channels=["36.5H"], record={"enabled": True})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    command = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "--configfile", "config.yaml", "--workflow-profile", "none"]
    proc = subprocess.Popen(
        [*command, "--cores", "2"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log = tmp_path / "results" / "logs" / "record" / "record.log"
    deadline = time.monotonic() + 240
    # the whole run is killed as soon as the record job has logged its append (the read-back and the receipt
    # may or may not be done: either way the next run must end with every swath once)
    while proc.poll() is None and time.monotonic() < deadline:
        if log.exists() and "appended" in log.read_text():
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)  # polling a file, not synchronising on time
    proc.wait(timeout=60)
    store = tmp_path / "results" / "record" / "swaths.icechunk"
    assert RecordSource(store).index()["granule_id"].size > 0  # the commit is readable as it is

    # as after any kill of Snakemake itself: its directory lock stays until --unlock (docs/troubleshooting.md)
    assert run_workflow(tmp_path, cfg, "--unlock").returncode == 0
    again = run_workflow(tmp_path, cfg)
    assert again.returncode == 0, again.stdout[-3000:]
    ids = RecordSource(store).index()["granule_id"].tolist()
    assert len(ids) == len(set(ids))
    (archive_path,) = sorted((tmp_path / "results" / "archives").glob("*.npz"))
    with Archive(archive_path) as archive:
        assert sorted(ids) == sorted(archive.table["granule_id"].tolist())
    assert len([m for m in commits(store) if m.startswith("append")]) == 1
    assert json.loads((tmp_path / "results" / "record" / "record.json").read_text())["swaths"] == len(ids)
