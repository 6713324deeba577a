"""The workflow through Snakemake's SLURM executor on a real (private, single-node) SLURM, against the local
G-Portal: the archives and parts must equal those of a local ``--cores`` run byte for byte, and the global
``gportal`` cap must hold for the G-Portal's concurrent SFTP sessions. A toy workflow checks how a group of
granule-like jobs is counted against the cap (the profile's ``serial`` resource).

Needs Debian's slurmctld/slurmd/slurm-client/munge and the ``slurm`` extra (``.ci/install-slurm.sh``), and root
(the private SLURM runs its daemons as root); skipped otherwise. By hand::

    .ci/install-slurm.sh .venv                   # as root
    .venv/bin/pytest tests/cluster -v            # about 3-4 minutes on 2 cores

The SLURM run uses ``profiles/slurm`` as users do, with test-only overrides on the command line: the private
partition, small requests, ``squeue`` for job states (no slurmdbd here), a 1 s first status check and a cap of
2. The node is declared with 8 CPUs on a 2-core machine, so SLURM alone would run up to 8 granule jobs at once:
only the ``gportal`` cap keeps it to 2.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from emulator_fixtures import read_stats, start_emulator, stop_emulator
from slurm import SlurmCluster, missing_binaries
from workflow_helpers import REPO, SNAKEFILE, SNAKEMAKE, emulator_config, run_workflow

from amsr2flow.stages.catalogue import read_listing

PROFILE = REPO / "profiles" / "slurm"
CAP = 4  # gportal for the SLURM runs: below the granule jobs ready at once and the node's 8 CPU slots
GROUP_CAP = 2  # gportal for the toy group test: two groups of six
NODE_CPUS = 8
SLURM_RUN_TIMEOUT_S = 480
#: Slow transfers (16-scan granules are ~1 MB: ~1 s each) so that sessions of concurrent jobs overlap.
SLOW_TRANSFERS = {"bandwidth_bytes_per_s": 1_000_000}


def _skip_reason() -> str | None:
    if missing := missing_binaries():
        return f"SLURM is not installed ({', '.join(missing)} missing): run .ci/install-slurm.sh"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed: pip install -e '.[slurm]'"
    if os.geteuid() != 0:
        return "the private SLURM (tests/cluster/slurm.py) runs its daemons as root"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or ""),
    pytest.mark.timeout(900),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """One private SLURM for the module, stopped by PID at the end (also when a test fails)."""
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


@pytest.mark.parametrize("transfer_jobs", ["cluster", "local"])
def test_slurm_run_equals_local_run_and_keeps_the_gportal_cap(
    tmp_path: Path, cluster: SlurmCluster, transfer_jobs: str
) -> None:
    """``transfer_jobs: cluster``: a granule job downloads and extracts on a compute node. ``local``: the download
    is a local job of the Snakemake process (the submit host, where the internet is), extraction goes to SLURM."""
    data_dir = tmp_path / "emulator-data"  # one granule cache for both service instances
    days = {"start": "2024-01-01", "end": "2024-01-01"}

    # (a) the reference: a local run with --cores 2
    proc, state = start_emulator(tmp_path / "emulator-local", "--data-dir", str(data_dir))
    try:
        local = run_workflow(tmp_path / "local", emulator_config(state, tmp_path / "local", **days), cores=2)
    finally:
        stop_emulator(proc)
    assert local.returncode == 0, local.stdout[-4000:]
    expected = _products(tmp_path / "local" / "results")
    assert any(k.startswith("archives/") for k in expected) and any(k.startswith("parts/") for k in expected)
    (listing,) = (tmp_path / "local" / "results" / "manifests" / "2024").glob("granules_*.csv")
    granules = len(read_listing(listing))

    # (b) the same range through the SLURM executor, against a fresh service on the same cache so that its
    # session peak belongs to this run alone
    workdir = tmp_path / "slurm-run"
    proc, state = start_emulator(
        tmp_path / "emulator-slurm", "--data-dir", str(data_dir), "--faults", json.dumps(SLOW_TRANSFERS)
    )
    try:
        workdir.mkdir()
        config_path = workdir / "config.yaml"
        cfg = emulator_config(state, workdir, **days, transfer_jobs=transfer_jobs)
        config_path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        cmd = [
            str(SNAKEMAKE),
            *("-s", str(SNAKEFILE), "--configfile", str(config_path)),
            *("--workflow-profile", str(PROFILE)),  # as docs/hpc.md says to run it
            # test-only overrides of the profile
            *("--default-resources", "slurm_partition=debug", "runtime=10", "mem_mb=500", "cpus_per_task=1"),
            *("--resources", f"gportal={CAP}", "serial=1"),
            *("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1"),
            *("--seconds-between-status-checks", "2"),  # CI: poll often (the plugin adds 10 s per idle check)
            *("--latency-wait", "10", "--retries", "0"),
        ]
        run = run_through_slurm(workdir, cmd, cluster)
    finally:
        stop_emulator(proc)
    stats = read_stats(state)
    assert run.returncode == 0, run.stdout[-6000:]

    # the granules and the archive went to SLURM (one SLURM job per granule: the profile does not group);
    # split transfers downloaded on the submit host
    submitted = [line for line in run.stdout.splitlines() if "submitted with SLURM jobid" in line]
    assert sum("rule_granule_kept_swath" in line for line in submitted) == granules, "\n".join(submitted)
    assert any("rule_year_archive" in line for line in submitted), "\n".join(submitted)
    assert not any("download_granule" in line for line in submitted)
    # (the profile's quiet settings hide the job blocks: count the download jobs' own logs)
    local_downloads = len(list((workdir / "results" / "logs" / "downloads").rglob("*.log")))
    assert local_downloads == (granules if transfer_jobs == "local" else 0)

    # the service: every granule served, never more concurrent sessions than the cap
    assert stats["files_served"] >= granules
    assert 1 <= stats["peak_sftp_sessions"] <= CAP, stats

    # byte for byte the same archives and parts
    got = _products(workdir / "results")
    assert sorted(got) == sorted(expected)
    differing = [name for name in expected if expected[name].read_bytes() != got[name].read_bytes()]
    assert not differing, "\n".join(_describe_difference(expected[n], got[n]) for n in differing)

    # the run report is complete as well
    (report,) = (workdir / "results" / "reports").glob("run_*.json")
    body = json.loads(report.read_text())
    assert body["status"] == "complete" and body["archived_granules"] == granules, body


TOY_SNAKEFILE = """
rule all:
    input: expand("out/{i}.txt", i=range(12))

rule fetch:
    output: "out/{i}.txt"
    resources: gportal=1
    group: "granules"
    shell: "mkdir -p spans; s=$(date +%s.%N); sleep 3; echo $s $(date +%s.%N) > spans/{wildcards.i}; touch {output}"
"""


def _peak_overlap(spans: Path) -> int:
    events = []
    for path in spans.iterdir():
        start, end = map(float, path.read_text().split())
        events += [(start, 1), (end, -1)]
    peak = current = 0
    for _, step in sorted(events):
        current += step
        peak = max(peak, current)
    return peak


def test_group_jobs_hold_one_gportal_slot_each(tmp_path: Path, cluster: SlurmCluster) -> None:
    """12 granule-like jobs (gportal=1, 3 s each) in groups of 6 under gportal=2 and the profile's serial=1:
    each group is submitted as one 1-CPU SLURM job holding gportal=1, runs its members one after another, and
    two groups run at once: at most (and here exactly) 2 jobs overlap. Without serial=1 a group of 6 would be
    sized 2 wide (2 CPUs, gportal=2) and the two groups would run one after the other."""
    (tmp_path / "Snakefile").write_text(TOY_SNAKEFILE, encoding="utf-8")
    cmd = [
        str(SNAKEMAKE),
        *("--executor", "slurm", "--jobs", "10", "--workflow-profile", "none"),
        *("--resources", f"gportal={GROUP_CAP}", "serial=1", "--set-resource-scopes", "serial=local"),
        *("--set-resources", "fetch:serial=1", "--group-components", "granules=6"),
        *("--default-resources", "slurm_partition=debug", "mem_mb=200", "runtime=5"),
        *("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1", "--verbose"),
    ]
    run = run_through_slurm(tmp_path, cmd, cluster, timeout=240)
    assert run.returncode == 0, run.stdout[-6000:]
    sbatch = [line for line in run.stdout.splitlines() if line.startswith("sbatch call:")]
    assert len(sbatch) == 2, "\n".join(sbatch)
    assert all("--cpus-per-task=1" in line and "--mem 200" in line and "-t 30" in line for line in sbatch), sbatch
    assert _peak_overlap(tmp_path / "spans") == GROUP_CAP


def test_private_cluster_runs_jobs_and_stops_by_pid(tmp_path: Path, cluster: SlurmCluster) -> None:
    out = subprocess.run(
        ["sbatch", "--parsable", "--wait", "-o", str(tmp_path / "job.out"), "--wrap", "echo $SLURM_JOB_ID"],
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"\d+", out.stdout.strip())
    # the srun wrapper restores SLURM_CONF when a caller has dropped it (as the jobstep plugin does)
    env = {k: v for k, v in cluster.env().items() if k != "SLURM_CONF"}
    step = subprocess.run(["srun", "-n1", "hostname"], env=env, capture_output=True, text=True, timeout=60)
    assert step.returncode == 0, step.stderr

    # a second cluster in another folder starts and stops by its own PIDs, leaving the first one running
    other = SlurmCluster(tmp_path / "other")
    with other:
        pids = {name: p.pid for name, p in other.procs.items()}
        assert other.node_state() == "idle"
    assert set(pids) == {"munged", "slurmctld", "slurmd"}
    assert not any(Path(f"/proc/{pid}").exists() and _not_zombie(pid) for pid in pids.values())
    assert cluster.node_state() in {"idle", "mixed", "allocated"}


def _not_zombie(pid: int) -> bool:
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
