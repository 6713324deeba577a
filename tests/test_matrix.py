"""The configuration matrix, end to end (see `matrix.py` for its cells and invariants): each cell a real
`snakemake` run against one local G-Portal, checked against the manifests, the archives' own arrays and the
pictures themselves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator_fixtures import start_emulator, stop_emulator
from matrix import (
    CELLS,
    Cell,
    check_archives_against_the_catalogue,
    check_exports,
    check_figures,
    check_grids,
    uncovered_pairs,
)
from workflow_helpers import emulator_config, run_workflow

pytest.importorskip("xarray")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    proc, state = start_emulator(tmp_path_factory.mktemp("matrix") / "emulator")
    try:
        yield state
    finally:
        stop_emulator(proc)


def test_the_matrix_covers_every_pair_of_levels() -> None:
    assert uncovered_pairs(CELLS) == []
    assert uncovered_pairs(CELLS[:-1])  # the 10th cell is needed (the channel factor)


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.name)
def test_a_configuration_users_combine(cell: Cell, service: dict, tmp_path: Path) -> None:
    cfg = emulator_config(service, tmp_path, **cell.config())
    started = time.monotonic()
    run = run_workflow(tmp_path, cfg, "--resources", "gportal=2")
    assert run.returncode == 0, run.stdout[-4000:]
    results = tmp_path / "results"
    archives = check_archives_against_the_catalogue(cell, results)
    check_grids(cell, results)
    check_figures(cell, results)
    check_exports(cell, archives, tmp_path)
    print(f"{cell.name}: {time.monotonic() - started:.1f} s")
