"""The SLURM run against a local one with ``transfer_jobs: local`` (test_slurm_cluster.py says what it checks):
a file of its own, with its own private SLURM, so that pytest-xdist runs it beside the ``cluster`` case."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm import SlurmCluster
from slurm_runs import MARKS, check_slurm_run_equals_local_run_and_keeps_the_gportal_cap, private_cluster

pytestmark = MARKS


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    yield from private_cluster(tmp_path_factory)


def test_slurm_run_with_local_transfers_equals_local_run_and_keeps_the_gportal_cap(
    tmp_path: Path,
    cluster: SlurmCluster,
) -> None:
    check_slurm_run_equals_local_run_and_keeps_the_gportal_cap(tmp_path, cluster, "local")
