"""Every Python snippet of the README and docs/ runs, as written, against the outputs of a small run with the
demo's configuration (a snippet that raises, or whose results are empty, fails).

The files a snippet names are put where it looks for them (linked to the run's files of the same kind), and the
few names the docs leave to the reader (``swath_npy_paths``, ``digest``, ...) are given. Nothing else of a
snippet is changed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from emulator_fixtures import start_emulator, stop_emulator
from workflow_helpers import emulator_config, run_workflow

from amsr2flow.formats.archive import Archive, sorted_swath_paths
from amsr2flow.formats.swath import read_swath

pytest.importorskip("xarray")
REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "config" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def snippets() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text[: match.start()].count("\n") + 1
            found.append((f"{doc.relative_to(REPO)}:{line}", match.group(1)))
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A small run with the demo's configuration (one day of 16-scan granules); the service keeps running for
    the snippets that talk to it."""
    root = tmp_path_factory.mktemp("snippets")
    proc, state = start_emulator(root / "emulator")
    try:
        cfg = emulator_config(
            state,
            root / "work",
            channels=["36.5H", "18.7V"],
            geolocation=True,
            variables=["land_fraction", "earth_incidence"],
            grid={"enabled": True, "grids": ["nsidc_north_25km", "ease2_global_25km"]},
            record={"enabled": True},
        )
        result = run_workflow(root / "work", cfg)
        assert result.returncode == 0, result.stdout[-3000:]
        yield {"results": root / "work" / "results", "state_file": str(root / "emulator" / "state.json")}
    finally:
        stop_emulator(proc)


def _files(results: Path) -> list[tuple[re.Pattern[str], Callable[[str], Path]]]:
    """What each kind of file a snippet names links to: the run's file of that kind."""
    archive = next((results / "archives").glob("*.npz"))
    swath = sorted((results / "swaths").rglob("*.npy"))[0]
    return [
        (re.compile(r"[\w/.-]*AMSR2_temp_(?:only|with_coords)_\d{8}_\d{6}_to_\d{8}_\d{6}\.npz"), lambda _: archive),
        (re.compile(r"GW1AM2_\d{12}_\d{3}[AD]_L1SGBTBR_\d{7}\.npy"), lambda _: swath),
        (re.compile(r"GW1AM2_\d{12}_\d{3}[AD]_L1SGBTBR_\d{7}\.json"), lambda _: swath.with_suffix(".json")),
        (re.compile(r"[\w/.-]*AMSR2_daily_\w+_\d{8}\.nc"), lambda name: _grid_file(results, name)),
        (re.compile(r"[\w/.-]*record/swaths\.icechunk"), lambda _: results / "record" / "swaths.icechunk"),
        (re.compile(r"[\w/.-]*record/normalisation\.json"), lambda _: results / "record" / "normalisation.json"),
        (
            re.compile(r"[\w/.-]*granules_\d{8}-\d{8}\.csv"),
            lambda _: next((results / "reports").glob("granules_*.csv")),
        ),
    ]


def _grid_file(results: Path, name: str) -> Path:
    """The run's day file of the grid a snippet names."""
    grid = re.search(r"AMSR2_daily_(\w+)_\d{8}\.nc", name)
    assert grid is not None
    return next((results / "grids").rglob(f"AMSR2_daily_{grid[1]}_*.nc"))


def _givens(results: Path, cwd: Path) -> dict[str, Any]:
    """The names the docs leave to the reader, from the run."""
    paths = sorted_swath_paths(sorted((results / "swaths").rglob("*.npy")))
    with Archive(next((results / "archives").glob("*.npz"))) as archive:
        period = archive.period
    start, end = (datetime.fromisoformat(t).replace(tzinfo=timezone.utc) for t in period.split(" to "))
    return {
        "swath_npy_paths": paths,
        "digest": "0123456789abcdef",
        "swaths_in_time_order": [read_swath(p) for p in paths],
        "start": start,
        "end": end,
        "path": cwd / "granule.h5",
    }


def _empty(value: Any) -> bool:
    if isinstance(value, (list, tuple, np.ndarray, pd.DataFrame, pd.Series, Archive)):
        return len(value) == 0
    return False


def test_the_docs_hold_snippets() -> None:
    names = [name for name, _ in snippets()]
    assert any(n.startswith("README.md") for n in names) and any(n.startswith("docs/formats.md") for n in names)


@pytest.mark.parametrize(("where", "code"), snippets(), ids=[name for name, _ in snippets()])
def test_a_snippet_runs_as_written(
    where: str, code: str, run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gportal.http_client
    import matplotlib

    matplotlib.use("Agg")  # the snippets' .plot() calls draw without a screen
    # a snippet may point the gportal client elsewhere (docs/local-gportal.md): undone after it
    monkeypatch.setattr(gportal.http_client, "BASE_URL", gportal.http_client.BASE_URL)
    results = run["results"]
    for pattern, target in _files(results):
        for name in {m.group(0) for m in pattern.finditer(code)}:
            link = tmp_path / name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(target(name))
    (tmp_path / "parts").mkdir()
    code = code.replace("/tmp/gp/state.json", run["state_file"])  # the docs' example service: this one
    namespace: dict[str, Any] = {"__name__": "__snippet__", **_givens(results, tmp_path)}
    before = set(namespace)
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, where, "exec"), namespace)
    finally:
        os.chdir(cwd)
        import matplotlib.pyplot as plt

        plt.close("all")
    empty = sorted(name for name in set(namespace) - before if not name.startswith("_") and _empty(namespace[name]))
    assert not empty, f"{where}: the snippet's results are empty: {', '.join(empty)}"
