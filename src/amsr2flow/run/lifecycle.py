"""The start and the end of a run, out of the Snakefile so that they can be tested without Snakemake.

- :func:`start_run` (``onstart``, only when there is work, never in dry runs): refuse archives that need a
  repair, check what lies outside the configuration when jobs will reach G-Portal, take the run lock, reset the
  stop flag and the circuit breaker, sweep what killed jobs left, log in once (the preflight) and record where
  the granules are, watch the local G-Portal (``run.service_watch``), start the progress line.
- :func:`finish_run` (``onsuccess``): the exit status the run owes its caller, from the run report.
- :func:`write_interim_report` (``onerror``): what exists after a failed run, as a report.

Each says what it does on ``stream`` (stderr) and raises :class:`RunRefused` for a run that must not start (the
handler exits 2 with its message).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from .. import atomic
from .. import config as settings
from ..plan import RunPlan
from .lock import RunLock, RunLockError


class RunRefused(RuntimeError):
    """The run must not start; the message says why and what to do (exit status 2)."""

    def line(self) -> str:
        """``amsr2flow: cannot start: ...`` (several problems one per indented line)."""
        text = str(self)
        return f"amsr2flow: cannot start:{'' if text.startswith(chr(10)) else ' '}{text}"


def start_run(
    plan: RunPlan,
    cfg: Mapping[str, Any],
    *,
    network: bool,
    lock: RunLock,
    contradicting: Mapping[Path, int],
    stream: TextIO = sys.stderr,
) -> None:
    """Everything a run does before its first job (see the module's docstring)."""
    layout = plan.layout
    if contradicting:
        raise RunRefused(f"run `amsr2flow repair {layout.root}` first (see the note above)")
    # Credentials and the service are needed only by jobs that reach G-Portal: redrawing reports does not.
    problems = settings.environment_problems(cfg) if network else []
    if problems:
        raise RunRefused("\n  " + "\n  ".join(problems))
    try:  # one run per output folder, held until this process ends (the kernel drops it if the run is killed)
        lock.acquire(layout.root)
    except RunLockError as exc:
        raise RunRefused(str(exc)) from exc
    layout.stop_flag().unlink(missing_ok=True)
    layout.breaker_state().unlink(missing_ok=True)
    for leftover in leftover_downloads(plan):
        print(f"amsr2flow: removing leftover download {leftover}", file=stream)
        leftover.unlink()
    for year in sorted(y for y in plan.years if plan.is_sealed(y) and plan.swaths_are_temporary(y)):
        # A complete year's swaths and day records go once its archive exists; a job killed in between
        # leaves some behind (and day records without swaths would make a later rebuild fail).
        swaths = layout.root / "swaths" / str(year)
        if swaths.is_dir():
            print(f"amsr2flow: removing the leftover swaths of archived {year}", file=stream)
            shutil.rmtree(swaths)
    for leftover in atomic.sweep_temporaries(layout.root):
        print(f"amsr2flow: removed leftover of an interrupted job: {leftover}", file=stream)
    from ..region import region_from_setting
    from ..stages.catalogue import region_notice

    notice = region_notice(plan, region_from_setting(cfg.get("region")))
    if notice:
        print(f"amsr2flow: note: {notice}", file=stream)
    if network:
        check_the_service(plan, cfg, stream)
        if cfg["source"] == "emulator":
            from .service_watch import LocalServiceWatch

            # The local G-Portal may be stopped during the run: then the run stops at once, with one message.
            # Absolute now: Snakemake returns to the launch folder after a run with --directory, and the watch
            # must not take a relative state file's absence there for the service having stopped.
            state_file = Path(cfg["emulator"]["state_file"]).expanduser().resolve()
            LocalServiceWatch(state_file, layout.stop_flag().resolve()).start()
    if cfg["report"]["progress_interval_s"]:
        from ..status import ProgressReporter, quiet_scheduler_chatter

        # Counts, rate and ETA at a steady pace (`amsr2flow status` prints the same from another terminal),
        # in place of the scheduler's two lines per job.
        quiet_scheduler_chatter()
        ProgressReporter(cfg, cfg["report"]["progress_interval_s"]).start()


def leftover_downloads(plan: RunPlan) -> list[Path]:
    """What killed jobs left in the scratch folder (no job runs yet): partial downloads anywhere, whole ones at
    its top level (one-job-per-granule downloads lived there). Split-transfer downloads below are declared
    outputs and stay."""
    scratch = plan.layout.scratch
    if not scratch.is_dir():
        return []
    leftovers = [p for p in scratch.iterdir() if p.is_file()]
    leftovers += [p for p in scratch.rglob("*.part-*") if p.is_file()]
    return sorted(set(leftovers))


def check_the_service(plan: RunPlan, cfg: Mapping[str, Any], stream: TextIO) -> None:
    """The notice about a changed variable set, one login (the preflight), and where granules are."""
    from ..stages import archives
    from . import preflight
    from .connection import connection_from

    notice = archives.variables_notice(sorted(plan.layout.archives_dir().glob("*.npz")), settings.extra_variables(cfg))
    if notice:
        print(f"amsr2flow: note: {notice}", file=stream)
    try:
        choice = preflight.check_service(
            cfg, connection_from(cfg), probe_days=preflight.probe_days(plan.days, date.today())
        )
    except (preflight.PreflightError, settings.ConfigError) as exc:
        raise RunRefused(str(exc)) from exc
    # Granule jobs and reports read the layout chosen here, for the whole run.
    preflight.record_choice(plan.layout.template_choice_file(), choice)
    if choice is not None:
        print(f"amsr2flow: {choice.summary()}", file=stream)


def last_report(plan: RunPlan) -> dict[str, Any] | None:
    try:
        return json.loads(plan.layout.run_report(plan.run_tag).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def finish_run(plan: RunPlan, accept_missing: list[str], stream: TextIO = sys.stderr) -> int:
    """After a run that ended without a failed job: the exit status, 3 when catalogued granules are not archived
    or their facts disagree (unless accept_missing accepts what is missing), with last lines saying how many,
    why, and where the report is."""
    from ..stages import report

    run = last_report(plan)
    if run is None:
        return 0
    code, lines = report.run_outcome(run, accept_missing, str(plan.layout.run_report(plan.run_tag, ".html")))
    print("\n".join(lines), file=stream)
    return code


def needs_status_target(plan: RunPlan, contradicting: Mapping[Path, int]) -> bool:
    """Whether an unchanged rerun must still reach its handlers: when the last run report says granules are
    missing or damaged (Snakemake skips onsuccess when there is nothing to do, and the run must exit 3 again),
    or when archives must be repaired (start_run says so)."""
    if contradicting:
        return True
    run = last_report(plan)
    return bool(run and (run.get("missing_granules") or run.get("damaged_swaths")))


def write_interim_report(plan: RunPlan, start: str, end: str, stream: TextIO = sys.stderr) -> Path | None:
    """After a failed run: a report from what exists, so every granule's state and reason is visible."""
    from ..stages import report, report_pages

    interim = report.interim_report(plan, start=start, end=end)
    if interim is None:
        return None
    layout = plan.layout
    page = layout.interim_report(plan.run_tag, ".html")
    atomic.write_json(layout.interim_report(plan.run_tag, ".json"), interim)
    atomic.write_bytes(layout.interim_report(plan.run_tag, ".md"), report.run_markdown(interim).encode("utf-8"))
    atomic.write_bytes(page, report_pages.interim_page(interim, plan).encode("utf-8"))
    print(
        f"amsr2flow: the run stopped early; {interim['archived_granules']} of {interim['expected_granules']} "
        f"listed granules are done. Interim report: {page} (also .md, .json)",
        file=stream,
    )
    return page
