# Configuration, validated before anything runs; the run's plan (years, periods, every path: amsr2flow.plan); the
# handlers' calls into amsr2flow.run.lifecycle; the input functions and wildcard constraints only Snakemake needs.
import os
import re
import sys
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path

from amsr2flow import config as settings
from amsr2flow.formats import repair
from amsr2flow.formats.swath import crop_key
from amsr2flow.ledger import due_for_recheck
from amsr2flow.plan import RunPlan
from amsr2flow.region import region_from_setting
from amsr2flow.run import lifecycle
from amsr2flow.run.lock import RunLock
from amsr2flow.run.sessions import EMPTY_MANIFEST_BYTES, SessionShare
from amsr2flow.stages.catalogue import read_listing, read_region_summary
from amsr2flow.status import show_the_plan_in_dry_runs

try:
    # The file alone is checked at parse time (also for --dry-run and --lint); what lies outside it
    # (credentials, writable folders, the emulator's state file) when a real run starts: see start_run().
    _validated = settings.validate(
        config,
        check_environment=False,
        # this file's own folder, not workflow.basedir: that is the host's folder when used as a module
        schema_path=Path(workflow.source_path("../schemas/config.schema.yaml")),
    )
except settings.ConfigError as _exc:
    # One readable message and a non-zero exit, before any job or network call.
    sys.stderr.write(f"amsr2flow: {_exc}\n")
    sys.exit(2)
config.clear()
config.update(_validated)
# `snakemake -n` prints its plan (the job counts) under the profiles' `quiet: [rules, progress]` as well.
show_the_plan_in_dry_runs(workflow.output_settings)

# The safe cap on concurrent G-Portal sessions is the workflow's default, not only a profile's: a plain
# `snakemake --cores 8` without the default profile, or this workflow used as a module, must not open 8
# sessions (the legacy system lost 3-5 % of granules at 8 threads, 15-17 % at 16). --resources overrides it.
DEFAULT_GPORTAL_SESSIONS = 4
if "gportal" not in workflow.global_resources:
    workflow.register_resource("gportal", DEFAULT_GPORTAL_SESSIONS)

PLAN = RunPlan.from_config(config)
REGION = region_from_setting(config.get("region"))
REGION_FINGERPRINT = REGION.fingerprint if REGION else "globe"
REGION_KEY = crop_key(REGION, config["region_margin_scans"]) if REGION else "globe"
LAYOUT = PLAN.layout


# Each day job's share of the cap (amsr2flow.run.sessions): the whole cap among the day jobs this run will run,
# one session each when they are at least as many. Counted by the main process (a listing per year, a stat per
# day without a record) and passed on to its jobs, whose own parse (on a cluster) sees neither.
def day_job_sessions():
    cap = workflow.global_resources["gportal"].value
    if workflow.is_main_process:
        pending = PLAN.pending_days(empty_manifest_bytes=EMPTY_MANIFEST_BYTES)
        share = SessionShare.planned(cap, len(pending))
        os.environ.update(share.environ())
    else:
        share = SessionShare.inherited(os.environ, cap)
        # the main process's cap, not this parse's default: it bounds the job's gportal, as it did there
        workflow.register_resource("gportal", share.cap)
    return share.per_day_job


DAY_JOB_SESSIONS = day_job_sessions()
YEARS = PLAN.years  # year -> its YearPlan (period, sensor, complete)
RUN_TAG = PLAN.run_tag
RUN_REPORT = str(LAYOUT.run_report(RUN_TAG))
RUN_STATUS = str(LAYOUT.run_status(RUN_TAG))
RUN_LOCK = RunLock(LAYOUT.state_dir())


def path(p):
    """A path of the plan as the string a rule wants."""
    return str(p)


# Archives of earlier runs whose index stores orbit types their granule ids contradict (amsr2flow 0.1.0 with
# `variables:` set): the run refuses to start over them until `amsr2flow repair`. Read once per archive version,
# and only by the main process (cluster jobs parse this file again).
def contradicting_archives():
    if not workflow.is_main_process:
        return {}
    archives = [PLAN.archive(year) for year in YEARS]
    found = repair.contradicting_swaths(archives, LAYOUT.metadata_checked())
    if (
        found
    ):  # also for dry runs (no handler runs then); a real run stops in start_run()
        message = repair.contradiction_message(found, LAYOUT.root)
        print(f"amsr2flow: note: {message}", file=sys.stderr)
    return found


def year_archive(year):
    return path(PLAN.archive(year))


def year_period(year):
    """The year's requested period as [first day, day after the last] (ISO), for scripts."""
    return [YEARS[year].first_day.isoformat(), YEARS[year].day_after_last.isoformat()]


def year_of_archive_name(name):
    """The year of an archive name such as AMSR2_temp_only_20160101_000000_to_20170101_000000."""
    for year in YEARS:
        if PLAN.archive_name(year) == name:
            return year
    raise ValueError(f"{name}.npz is not an archive of this configuration's years")


def year_listing(year):
    return path(LAYOUT.year_listing(year, YEARS[year].period))


def listing_region(wildcards):
    """The region a year is listed for: the configured one; a sealed year's own (its archive is final)."""
    year = int(wildcards.year)
    if year not in SEALED_YEARS:
        return REGION_FINGERPRINT
    summary = read_region_summary(Path(year_listing(year)))
    return summary["fingerprint"] if summary else "globe"


@lru_cache(maxsize=None)
def _listed_days(listing, mtime_ns):
    return sorted(set(read_listing(listing)["day"]))


def year_days(year):
    """The days of the year with at least one listed granule, once its checkpoint has run.

    Cached per file version: Snakemake asks again each time it re-evaluates the DAG.
    """
    checkpoints.catalogue.get(year=str(year), period=YEARS[year].period)
    listing = year_listing(year)
    return _listed_days(listing, Path(listing).stat().st_mtime_ns)


def grid_targets():
    """The daily-grid records of every year (grid.enabled), one job per year."""
    if not config["grid"]["enabled"]:
        return []
    return [path(LAYOUT.grids_record(y, YEARS[y].period)) for y in YEARS]


def record_targets():
    """The record's receipt and the training split's statistics (record.enabled)."""
    if not config["record"]["enabled"]:
        return []
    return [path(LAYOUT.record_receipt()), path(LAYOUT.record_statistics())]


def year_figure_dirs(year):
    if not config["report"]["figures"]:
        return []
    return [path(LAYOUT.figures_dir(year, YEARS[year].period))]


def year_map_pages(year):
    return [path(LAYOUT.map_page(year, day)) for day in PLAN.map_days(year)]


NETWORK_RULES = {
    "catalogue",
    "recheck_absent",
    "download_day",
    "day_temp_swaths",
    "day_kept_swaths",
}


# -- the run's start and end (amsr2flow.run.lifecycle) -----------------------------------------------------
def prepare_run():
    try:
        lifecycle.start_run(
            PLAN,
            config,
            network=_network_jobs_pending(),
            lock=RUN_LOCK,
            contradicting=CONTRADICTING_ARCHIVES,
        )
    except lifecycle.RunRefused as exc:
        sys.stderr.write(exc.line() + "\n")
        sys.exit(2)


def finish_run():
    code = lifecycle.finish_run(PLAN, config["accept_missing"])
    if code:
        sys.exit(code)


def write_interim_report():
    lifecycle.write_interim_report(PLAN, config["start"], config["end"])


def status_targets():
    """An always-stale target when the run must reach its handlers although nothing changed (the last report
    says granules are missing, or archives need a repair): Snakemake skips onsuccess with nothing to do.
    """
    return (
        [RUN_STATUS]
        if lifecycle.needs_status_target(PLAN, CONTRADICTING_ARCHIVES)
        else []
    )


def _network_jobs_pending():
    try:
        names = [j.rule.name for j in workflow.dag.needrun_jobs()]
    except AttributeError:  # a Snakemake without this API: check anyway
        return True
    # Used as a module, rules may be renamed (`use rule * from amsr2 as amsr2_*`).
    return any(n == r or n.endswith(f"_{r}") for n in names for r in NETWORK_RULES)


def run_hooks_in_module_use():
    """Make the start-of-run work, the exit status and the interim report happen when this workflow is used
    as a module.

    Snakemake registers `onstart`/`onsuccess`/`onerror` of the main Snakefile only. There is no public way to
    add a handler from a module, so this chains ours in front of the host's current ones (a host that declares
    its own handlers declares them before its `module` statement; docs/module.md).
    """
    if workflow.modifier.is_main_snakefile():
        return
    host = workflow._onstart, workflow._onsuccess, workflow._onerror

    def chained(ours, theirs):
        def handler(log):
            ours()
            theirs(log)

        return handler

    workflow._onstart = chained(prepare_run, host[0])
    workflow._onsuccess = chained(finish_run, host[1])
    workflow._onerror = chained(write_interim_report, host[2])


# -- granules, one job per day ------------------------------------------------------------------
def day_manifest(wildcards):
    """The day's manifest: the day job reads its granules from it. Not an input function of the checkpoint's
    outputs on purpose: a cluster job re-parses the workflow with only its own job in the DAG, where the
    checkpoint is not known to be complete. A day job only exists once its year's listing (and so this
    manifest) does. Manifests are rewritten only when their content changes: an unchanged day stays done.
    """
    return path(LAYOUT.day_manifest(date.fromisoformat(wildcards.day)))


SPLIT_TRANSFERS = config["transfer_jobs"] == "local"
DAY_DOWNLOADS_PATTERN = path(LAYOUT.day_downloads("{year}", "{day}"))


def day_inputs(wildcards):
    """With split transfers the swath job extracts a day downloaded on the submit host; else it downloads."""
    inputs = {"manifest": day_manifest(wildcards)}
    if SPLIT_TRANSFERS:
        inputs["downloads"] = DAY_DOWNLOADS_PATTERN.format(**wildcards)
    return inputs


TEMP_YEARS = "|".join(str(y) for y in YEARS if PLAN.swaths_are_temporary(y)) or "none"
KEPT_YEARS = (
    "|".join(str(y) for y in YEARS if not PLAN.swaths_are_temporary(y)) or "none"
)


# -- archives ------------------------------------------------------------------------------------
# A sealed year (complete, its archive present) is archived for good. No rule makes its archive, so no rerun
# can replace it (an input function listing no swaths would make Snakemake rebuild it empty: the input set
# changed). Absent granules that reappear are added to it by the recheck job.
SEALED_YEARS = {y for y in YEARS if PLAN.is_sealed(y)}
CONTRADICTING_ARCHIVES = contradicting_archives()
UNSEALED_ARCHIVES = (
    "|".join(re.escape(PLAN.archive_name(y)) for y in YEARS if y not in SEALED_YEARS)
    or "none"
)


def year_day_records(wildcards):
    """The day records of a year that is not sealed (sealed years have no archive job)."""
    year = year_of_archive_name(wildcards.name)
    if due_absent(year):
        # Look for the year's absent granules first; reappeared ones lose their tombstone and are fetched.
        checkpoints.recheck_absent.get(year=str(year), stamp=RECHECK_STAMP)
    return [path(LAYOUT.day_record(day)) for day in year_days(year)]


# -- absent granules, looked for again ----------------------------------------------------------------------
RECHECK_STAMP = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")


def year_recheck(year):
    """The year's recheck due this run, if any (its record as a one-element list)."""
    return (
        [path(LAYOUT.recheck_record(year, RECHECK_STAMP))] if due_absent(year) else []
    )


def recheck_targets():
    """The rechecks due this run, as targets: a checkpoint that only an up-to-date (sealed) archive's input
    function asks for would not be run."""
    return [target for year in YEARS for target in year_recheck(year)]


@lru_cache(maxsize=None)
def due_absent(year):
    """Absent granules of the year whose last look is older than catalogue.recheck_absent_after_hours."""
    return due_for_recheck(
        LAYOUT.ledger_dir(year),
        datetime.now(timezone.utc),
        config["catalogue"]["recheck_absent_after_hours"],
    )


wildcard_constraints:
    year=r"\d{4}",
    day=r"\d{4}-\d{2}-\d{2}",
    period=r"\d{8}-\d{8}",
    granule_id=r"[A-Za-z0-9]+_\d{12}_\d{3}[ADU]_[A-Z0-9]+_\d{7}",
    stamp=r"\d{8}T\d{6}",
    name=r"[A-Za-z0-9_]+_\d{8}_\d{6}_to_\d{8}_\d{6}",
