"""`make demo` as the README describes it (`python -m amsr2flow.cli.demo`), small: one day of 16-scan granules."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from amsr2flow.cli import demo

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_demo_keeps_everything_it_writes_in_its_folder(tmp_path: Path) -> None:
    """The README says what `demo/` costs on disk and that `rm -rf demo` removes it: so nothing may land beside it
    (Snakemake's .snakemake/, the local G-Portal's granule cache, the results)."""
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert re.search(r"`demo/` takes about [\d.]+ GB .*`rm -rf demo` removes it", readme)
    assert demo.parse_args([]).dir == "demo"
    run = subprocess.run(
        [sys.executable, "-m", "amsr2flow.cli.demo", "--days", "1", "--scans", "16", "--cores", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert "29 of 29 granules archived" in run.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]
    folder = tmp_path / "demo"
    assert {p.name for p in folder.iterdir()} >= {"emulator", "results", "config.yaml", ".snakemake"}
