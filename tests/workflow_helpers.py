"""Run the Snakemake workflow as users do (the ``snakemake`` command) against a local G-Portal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
#: Test runs retry quickly: the service's faults are short.
FAST_TRANSFER = {"backoff_initial_s": 0.1, "backoff_max_s": 0.5, "stall_timeout_s": 5}


def emulator_config(state: dict[str, Any], workdir: Path, **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "start": "2024-01-01",
        "end": "2024-01-01",
        "source": "emulator",
        "output_dir": str(workdir / "results"),
        "emulator": {"state_file": str(Path(state["stats_path"]).parent / "state.json")},
        "transfer": dict(FAST_TRANSFER),
        # Figures and map pages cost seconds per run; the tests about them (and the end-to-end ones) turn
        # them on, the fault and resume tests leave them out.
        "report": {"figures": False},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def real_service_config(state: dict[str, Any], workdir: Path, *, legacy: bool = False, **host: Any) -> dict[str, Any]:
    """The real-service code path (environment credentials, pinned key) pointed at the local G-Portal;
    ``host`` overrides keys of the service section (e.g. ``sftp_host``, ``host_keys``)."""
    section_values = {
        "catalogue_url": state["legacy_catalogue_url" if legacy else "catalogue_url"],
        "sftp_host": state["sftp_host"],
        "sftp_port": state["sftp_port"],
        "host_keys": state["host_keys"],
        **host,
    }
    source, section = ("gportal-legacy", "gportal_legacy") if legacy else ("gportal", "gportal")
    cfg = emulator_config(state, workdir, source=source, **{section: section_values})
    cfg.pop("emulator")
    if legacy:
        cfg["credentials"] = {"private_key_path": None}  # password login
    return cfg


def run_workflow(
    workdir: Path, cfg: dict[str, Any], *args: str, cores: int = 2, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``snakemake --cores N`` in ``workdir`` with ``cfg`` (no workflow profile); see :func:`snakemake`."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    common = ["-s", str(SNAKEFILE), "--configfile", str(config_path), "--workflow-profile", "none"]
    return snakemake(workdir, *common, "--cores", str(cores), *args, timeout=timeout)


def snakemake(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``snakemake ARGS`` in ``workdir`` exactly as typed; the whole process group is killed on timeout and the
    output (stdout and stderr together) is kept in ``workdir/snakemake.out``."""
    cmd = [str(SNAKEMAKE), *args]
    proc = subprocess.Popen(
        cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise AssertionError(f"snakemake did not finish within {timeout} s:\n{output[-5000:]}") from None
    (workdir / "snakemake.out").write_text(output, encoding="utf-8")
    return subprocess.CompletedProcess(cmd, proc.returncode, output, "")


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table as {rule: count} (empty when nothing was scheduled)."""
    counts: dict[str, int] = {}
    if "Job stats:" not in output:
        return counts
    table = output.split("Job stats:", 1)[1]
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match:
            break
        if match[1] != "total":
            counts[match[1]] = int(match[2])
    return counts


def day_listing(source: Any, count: int, day: date = date(2024, 1, 1)) -> Any:
    """The first ``count`` granules the service's catalogue lists for ``day`` (AMSR2), as a manifest."""
    import requests

    from amsr2flow.gportal import catalogue

    result = catalogue.search_day(
        day,
        dataset_id="11001001",
        catalogue_url=source.catalogue_url,
        generation=source.generation,
        timeout=300,
        page_size=100,
        session=requests.Session(),
    )
    return result.manifest.head(count)


def day_job(state: dict[str, Any], folder: Path) -> Any:
    """The day job a script builds (``stages.granule.DayJob``), over a results folder of the test's own, with
    quick retries, channel 36.5H."""
    from amsr2flow import config as settings
    from amsr2flow.formats.swath import ExtractionSpec
    from amsr2flow.gportal.sftp import Connection
    from amsr2flow.gportal.source import Timeouts
    from amsr2flow.plan import Layout
    from amsr2flow.run.connection import source_from
    from amsr2flow.stages import granule

    cfg = settings.validate(emulator_config(state, folder), check_environment=False)
    return granule.DayJob(
        layout=Layout(folder / "results", folder / "results" / ".scratch"),
        spec=ExtractionSpec(("36.5H",)),
        connection=Connection(source_from(cfg), Timeouts(10, 10, 10, 30)),
        policy=granule.RetryPolicy(3, 0.01, 0.02),
    )


def day_tasks(job: Any, count: int) -> list[Any]:
    """The first ``count`` granules of 2024-01-01 as the day job reads them: from a day manifest."""
    from amsr2flow.gportal.catalogue import manifest_to_csv_bytes
    from amsr2flow.stages import granule

    manifest = job.layout.day_manifest(date(2024, 1, 1))
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_bytes(manifest_to_csv_bytes(day_listing(job.connection.source, count)))
    return granule.read_day_tasks(manifest, "2024-01-01", None)
