"""The workflow through Snakemake's SLURM executor on a real (private, single-node) SLURM, against the local
G-Portal: the archives and parts must equal those of a local ``--cores`` run byte for byte, the global
``gportal`` cap must hold for the G-Portal's concurrent SFTP sessions, and each day job must hold its share of
the cap (one session among more day jobs than the cap, the whole cap when one is foreseen: run.sessions).

Needs Debian's slurmctld/slurmd/slurm-client/munge and the ``slurm`` extra (``.ci/install-slurm.sh``), and root
(the private SLURM runs its daemons as root); skipped otherwise. By hand::

    .ci/install-slurm.sh .venv                   # as root
    .venv/bin/pytest tests/cluster -v            # about 2-3 minutes on 2 cores (-n 2: both cases at once)

The SLURM run uses ``profiles/slurm`` as users do, with test-only overrides on the command line: the private
partition, small requests, ``squeue`` for job states (no slurmdbd here), a 1 s first status check and a cap of
2. The node is declared with 8 CPUs on a 2-core machine, so SLURM alone would run all three day jobs at once:
only the ``gportal`` cap keeps it to 2 sessions (two jobs of one session, or one of two).

The case with ``transfer_jobs: local`` is in test_slurm_local_transfers.py, so that two workers run both at once;
what the two share is in slurm_runs.py.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm import SlurmCluster
from slurm_runs import MARKS, check_slurm_run_equals_local_run_and_keeps_the_gportal_cap, private_cluster

pytestmark = MARKS


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    yield from private_cluster(tmp_path_factory)


def test_slurm_run_equals_local_run_and_keeps_the_gportal_cap(tmp_path: Path, cluster: SlurmCluster) -> None:
    check_slurm_run_equals_local_run_and_keeps_the_gportal_cap(tmp_path, cluster, "cluster")


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
