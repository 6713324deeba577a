"""What the SLURM tests share (test_slurm_cluster.py says what they check): the private cluster of a test module,
the SLURM run as docs/hpc.md says to start it, and the comparison of a SLURM run with a local one.

The two cases of that comparison, ``transfer_jobs: cluster`` and ``local``, are in two test files so that
pytest-xdist's ``--dist loadfile`` runs them at the same time, one per worker, each with its own private SLURM:
each run waits mostly for the executor's status checks (the plugin adds 10 s to the interval after each check
that finds no job finished).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from emulator_fixtures import read_stats, start_emulator, stop_emulator
from slurm import SlurmCluster, missing_binaries
from workflow_helpers import REPO, SNAKEFILE, SNAKEMAKE, emulator_config, run_workflow

from amsr2flow.stages.catalogue import read_listing

PROFILE = REPO / "profiles" / "slurm"
CAP = 2  # gportal for the SLURM runs: below the three day jobs ready at once and the node's 8 CPU slots
NODE_CPUS = 8
SLURM_RUN_TIMEOUT_S = 480
DAYS = {"start": "2024-01-01", "end": "2024-01-03"}  # three day jobs for two sessions
#: The second day has a record already: the run foresees the first day's job alone and gives each the whole cap.
UNFORESEEN = {"start": "2024-01-01", "end": "2024-01-02"}
SCANS = "16"  # small granules (~1 MB): the test is about scheduling and sessions, not about volume
#: Slow transfers (~0.5 s per granule, ~15 s per day) so that the sessions of concurrent day jobs overlap.
SLOW_TRANSFERS = {"bandwidth_bytes_per_s": 2_000_000}


def skip_reason() -> str | None:
    if missing := missing_binaries():
        return f"SLURM is not installed ({', '.join(missing)} missing): run .ci/install-slurm.sh"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed: pip install -e '.[slurm]'"
    if os.geteuid() != 0:
        return "the private SLURM (tests/cluster/slurm.py) runs its daemons as root"
    return None


#: The marks of each SLURM test module (``pytestmark = MARKS``).
MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or ""),
    pytest.mark.timeout(900),
]


def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """One private SLURM for a test module (its ``cluster`` fixture), stopped by PID at the end (also when a test
    fails)."""
    with SlurmCluster(tmp_path_factory.mktemp("slurm"), cpus=NODE_CPUS) as running:
        yield running


def run_through_slurm(
    workdir: Path, cmd: list[str], cluster: SlurmCluster, timeout: float = SLURM_RUN_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (a snakemake command) in ``workdir`` in the cluster's environment, bounded like
    ``timeout -s INT``: on overrun the process group gets SIGINT (Snakemake then cancels its SLURM jobs; it
    ignores SIGTERM while jobs are out), and SIGKILL if it has not stopped 60 s later."""
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        env=cluster.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        (workdir / "snakemake.out").write_text(output, encoding="utf-8")
        raise AssertionError(f"the SLURM run did not finish within {timeout} s:\n{output[-6000:]}") from None
    (workdir / "snakemake.out").write_text(output, encoding="utf-8")
    return subprocess.CompletedProcess(cmd, proc.returncode, output, "")


def _wait_and_stop(local_run: Future, proc: subprocess.Popen) -> subprocess.CompletedProcess[str]:
    """The reference run's end (run_workflow's own timeout bounds it), then its service's."""
    try:
        return local_run.result()
    finally:
        stop_emulator(proc)


def slurm_command(config_path: Path) -> list[str]:
    """``snakemake`` with ``profiles/slurm``, as docs/hpc.md says to run it, and the test's overrides."""
    return [
        str(SNAKEMAKE),
        *("-s", str(SNAKEFILE), "--configfile", str(config_path)),
        *("--workflow-profile", str(PROFILE)),  # as docs/hpc.md says to run it
        # test-only overrides of the profile
        *("--default-resources", "slurm_partition=debug", "runtime=10", "mem_mb=500", "cpus_per_task=1"),
        *("--resources", f"gportal={CAP}"),
        *("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1"),
        *("--seconds-between-status-checks", "2"),  # CI: poll often (the plugin adds 10 s per idle check)
        *("--latency-wait", "10", "--retries", "0"),
    ]


def _products(results: Path) -> dict[str, Path]:
    """Archives and part files, by path relative to ``results``."""
    files = [*(results / "archives").glob("*.npz"), *(results / "parts").rglob("*.npz")]
    return {str(p.relative_to(results)): p for p in sorted(files)}


def _describe_difference(a: Path, b: Path) -> str:
    """Where two files differ: size, first differing byte, and for zip files the differing members."""
    data_a, data_b = a.read_bytes(), b.read_bytes()
    first = next(
        (i for i, (x, y) in enumerate(zip(data_a, data_b, strict=False)) if x != y), min(len(data_a), len(data_b))
    )
    lines = [f"{a.name}: sizes {len(data_a)} vs {len(data_b)}, first difference at byte {first}"]
    try:
        with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
            infos_a = {i.filename: i for i in za.infolist()}
            infos_b = {i.filename: i for i in zb.infolist()}
            if list(infos_a) != list(infos_b):
                lines.append(f"  member lists differ: {sorted(set(infos_a) ^ set(infos_b))[:10]} (or their order)")
            for name in infos_a.keys() & infos_b.keys():
                ia, ib = infos_a[name], infos_b[name]
                fields = ("CRC", "compress_size", "file_size", "date_time", "external_attr", "extra")
                diff = [f for f in fields if getattr(ia, f) != getattr(ib, f)]
                if diff:
                    lines.append(f"  member {name}: {', '.join(diff)} differ")
    except zipfile.BadZipFile as exc:
        lines.append(f"  not comparable as zip files: {exc}")
    return "\n".join(lines[:40])


def check_slurm_run_equals_local_run_and_keeps_the_gportal_cap(
    tmp_path: Path, cluster: SlurmCluster, transfer_jobs: str
) -> None:
    """``transfer_jobs: cluster``: a day job downloads and extracts on a compute node. ``local``: the downloads
    are a local day job of the Snakemake process (the submit host, where the internet is), extraction goes to
    SLURM.

    With ``cluster``, two days, the second with a day record already: the run foresees one day job and gives
    each the whole cap (gportal=2, run.sessions); the second day's manifest, listed by the run, is newer than
    its record, so both day jobs run. A job's own parse on the node sees neither the cap nor the count and takes
    both from the main process's environment; the main process runs the two one after the other. With
    ``local``, three days foreseen: one session per day job, two jobs at once."""
    days_asked = UNFORESEEN if transfer_jobs == "cluster" else DAYS

    # (a) the reference: a local run with --cores 2, one session at a time, against a service of its own. It runs
    # meanwhile (b) below, which mostly waits for SLURM's status checks. (Synthetic granules are the same bytes
    # from every service: the generator is deterministic.)
    local_proc, local_state = start_emulator(tmp_path / "emulator-local", "--scans", SCANS)
    local_cfg = emulator_config(local_state, tmp_path / "local", **days_asked)
    reference = ThreadPoolExecutor(max_workers=1)
    local_run = reference.submit(run_workflow, tmp_path / "local", local_cfg, "--resources", "gportal=1", cores=2)
    reference.shutdown(wait=False)

    # (b) the same range through the SLURM executor, against a service of its own so that its session peak belongs
    # to this run alone
    workdir = tmp_path / "slurm-run"
    try:
        proc, state = start_emulator(
            tmp_path / "emulator-slurm", *("--scans", SCANS), *("--faults", json.dumps(SLOW_TRANSFERS))
        )
    except BaseException:
        _wait_and_stop(local_run, local_proc)
        raise
    try:
        workdir.mkdir()
        config_path = workdir / "config.yaml"
        cfg = emulator_config(state, workdir, **days_asked, transfer_jobs=transfer_jobs)
        config_path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        if transfer_jobs == "cluster":
            record = workdir / "results" / "swaths" / "2024" / f"{UNFORESEEN['end']}.json"
            record.parent.mkdir(parents=True)
            record.write_text("{}")  # older than the manifest the run writes: the job runs, unforeseen
        run = run_through_slurm(workdir, slurm_command(config_path), cluster)
    finally:
        stop_emulator(proc)
        local = _wait_and_stop(local_run, local_proc)
    stats = read_stats(state)
    assert local.returncode == 0, local.stdout[-4000:]
    expected = _products(tmp_path / "local" / "results")
    assert any(k.startswith("archives/") for k in expected) and any(k.startswith("parts/") for k in expected)
    (listing,) = (tmp_path / "local" / "results" / "manifests" / "2024").glob("granules_*.csv")
    granules = len(read_listing(listing))
    assert run.returncode == 0, run.stdout[-6000:]

    # the day jobs and the archive went to SLURM (one SLURM job per day); split transfers downloaded on the
    # submit host, one local job per day
    days = len(set(read_listing(listing)["day"]))
    submitted = [line for line in run.stdout.splitlines() if "submitted with SLURM jobid" in line]
    assert sum("rule_day_kept_swaths" in line for line in submitted) == days, "\n".join(submitted)
    assert any("rule_year_archive" in line for line in submitted), "\n".join(submitted)
    assert not any("download_day" in line for line in submitted)
    # (the profile's quiet settings hide the job blocks: count the download jobs' own logs)
    local_downloads = len(list((workdir / "results" / "logs" / "downloads").rglob("*.log")))
    assert local_downloads == (days if transfer_jobs == "local" else 0)

    # the service: every granule served, never more concurrent sessions than the cap, and each day job's share
    # of it (plus the run's preflight login), not one session per granule
    share = CAP if transfer_jobs == "cluster" else 1
    assert stats["files_served"] >= granules
    assert 1 <= stats["peak_sftp_sessions"] <= CAP, stats
    assert stats["sftp_sessions"] == days * share + 1, stats
    network_logs = workdir / "results" / "logs" / ("granules" if transfer_jobs == "cluster" else "downloads")
    for log in network_logs.rglob("*.log"):
        assert f"{share} session(s) opened for" in log.read_text(), log

    # byte for byte the same archives and parts
    got = _products(workdir / "results")
    assert sorted(got) == sorted(expected)
    differing = [name for name in expected if expected[name].read_bytes() != got[name].read_bytes()]
    assert not differing, "\n".join(_describe_difference(expected[n], got[n]) for n in differing)

    # the run report is complete as well
    (report,) = (workdir / "results" / "reports").glob("run_*.json")
    body = json.loads(report.read_text())
    assert body["status"] == "complete" and body["archived_granules"] == granules, body
