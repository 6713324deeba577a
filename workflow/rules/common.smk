# Configuration, validated before anything runs, and the path helpers every rule shares.
import json
import re
import shutil
import sys
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path

from amsr2flow import atomic
from amsr2flow import config as settings
from amsr2flow.formats import repair
from amsr2flow.gportal import preflight, remote_layout
from amsr2flow.stages import report_pages
from amsr2flow.stages import report as run_reports  # `report` is Snakemake's report()
from amsr2flow.status import ProgressReporter, quiet_scheduler_chatter
from amsr2flow.ledger import due_for_recheck
from amsr2flow.stages import year as year_stage
from amsr2flow.stages.year import archive_path_for
from amsr2flow.layout import Layout, period_tag
from amsr2flow.runlock import RunLock, RunLockError
from amsr2flow.stages.catalogue import read_listing

try:
    # The file alone is checked at parse time (also for --dry-run and --lint); what lies outside it
    # (credentials, writable folders, the emulator's state file) when a real run starts: see prepare_run().
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

# The safe cap on concurrent G-Portal sessions is the workflow's default, not only a profile's: a plain
# `snakemake --cores 8` without the default profile, or this workflow used as a module, must not open 8
# sessions (the legacy system lost 3-5 % of granules at 8 threads, 15-17 % at 16). --resources overrides it.
DEFAULT_GPORTAL_SESSIONS = 4
if "gportal" not in workflow.global_resources:
    workflow.register_resource("gportal", DEFAULT_GPORTAL_SESSIONS)

LAYOUT = Layout.from_config(config)
OUT = str(LAYOUT.root)
YEAR_PERIODS = settings.year_periods(config)  # year -> (first day, day after the last)
PERIODS = {year: period_tag(*p) for year, p in YEAR_PERIODS.items()}
RUN_TAG = period_tag(settings.days(config)[0], YEAR_PERIODS[max(YEAR_PERIODS)][1])
RUN_REPORT = f"{OUT}/reports/run_{RUN_TAG}.json"
RUN_LOCK = RunLock(LAYOUT.state_dir())
RUN_STATUS = f"{OUT}/.state/run_status_{RUN_TAG}.txt"


# Archives of earlier runs whose index stores orbit types their granule ids contradict (amsr2flow 0.1.0 with
# `variables:` set): the run refuses to start over them until `amsr2flow repair`. Read once per archive version,
# and only by the main process (cluster jobs parse this file again).
def contradicting_archives():
    if not workflow.is_main_process:
        return {}
    paths = [Path(year_archive(year)) for year in YEAR_PERIODS]
    found = repair.contradicting_swaths(
        paths, LAYOUT.state_dir() / "metadata_checked.json"
    )
    if (
        found
    ):  # also for dry runs (no handler runs then); a real run stops in prepare_run()
        message = repair.contradiction_message(found, LAYOUT.root)
        print(f"amsr2flow: note: {message}", file=sys.stderr)
    return found


def is_complete_year(year):
    """A year whose requested period is the whole calendar year: archived for good, swaths temporary."""
    first, after = YEAR_PERIODS[year]
    return first == date(year, 1, 1) and after == date(year + 1, 1, 1)


def year_archive(year):
    return str(
        archive_path_for(
            LAYOUT,
            *YEAR_PERIODS[year],
            config["geolocation"],
            settings.year_mission(config, year).archive_prefix,
        )
    )


def year_of_archive_name(name):
    """The year of an archive name such as AMSR2_temp_only_20160101_000000_to_20170101_000000."""
    for year in YEAR_PERIODS:
        if Path(year_archive(year)).stem == name:
            return year
    raise ValueError(f"{name}.npz is not an archive of this configuration's years")


def year_listing(year):
    return str(LAYOUT.year_listing(year, PERIODS[year]))


@lru_cache(maxsize=None)
def _listed_days(path, mtime_ns):
    return sorted(set(read_listing(path)["day"]))


def year_days(year):
    """The days of the year with at least one listed granule, once its checkpoint has run.

    Cached per file version: Snakemake asks again each time it re-evaluates the DAG.
    """
    checkpoints.catalogue.get(year=str(year), period=PERIODS[year])
    path = year_listing(year)
    return _listed_days(path, Path(path).stat().st_mtime_ns)


def grid_targets():
    """The daily-grid records of every year (grid.enabled), one job per year."""
    if not config["grid"]["enabled"]:
        return []
    return [f"{OUT}/grids/{y}/grids_{PERIODS[y]}.json" for y in YEAR_PERIODS]


def year_figure_dirs(year):
    if not config["report"]["figures"]:
        return []
    return [f"{OUT}/reports/{year}/figures_{PERIODS[year]}"]


def map_days(year):
    """The days of `year` drawn as map pages (report.map_days)."""
    first, after = YEAR_PERIODS[year]
    choice = config["report"]["map_days"]
    if not config["report"]["figures"] or choice == "none":
        return []
    if choice == "first":
        return [first.isoformat()]
    return sorted(d for d in choice if first.isoformat() <= d < after.isoformat())


def year_map_pages(year):
    return [f"{OUT}/reports/{year}/maps/{day}.html" for day in map_days(year)]


NETWORK_RULES = {
    "catalogue",
    "recheck_absent",
    "download_day",
    "day_temp_swaths",
    "day_kept_swaths",
}


def prepare_run():
    """Start of a real run with work to do (never in dry runs): check the environment, log in once to
    G-Portal if jobs will need it, reset the run-wide stop flag and circuit breaker, and sweep what killed
    jobs left behind."""
    if CONTRADICTING_ARCHIVES:
        sys.stderr.write(
            f"amsr2flow: cannot start: run `amsr2flow repair {LAYOUT.root}` first (see the note above)\n"
        )
        sys.exit(2)
    network = _network_jobs_pending()
    # Credentials and the service are needed only by jobs that reach G-Portal: redrawing reports does not.
    problems = settings.environment_problems(config) if network else []
    if problems:
        sys.stderr.write("amsr2flow: cannot start:\n  " + "\n  ".join(problems) + "\n")
        sys.exit(2)
    # One run per output folder, held until this process ends (the kernel drops it if the run is killed).
    try:
        RUN_LOCK.acquire(LAYOUT.root)
    except RunLockError as exc:
        sys.stderr.write(f"amsr2flow: cannot start: {exc}\n")
        sys.exit(2)
    LAYOUT.stop_flag().unlink(missing_ok=True)
    LAYOUT.breaker_state().unlink(missing_ok=True)
    if LAYOUT.scratch.is_dir():
        # No job runs yet: downloads of killed jobs (partial ones anywhere; whole ones at the top level,
        # where one-job-per-granule downloads live) go. Split-transfer downloads below are declared outputs.
        leftovers = [p for p in LAYOUT.scratch.iterdir() if p.is_file()]
        leftovers += [p for p in LAYOUT.scratch.rglob("*.part-*") if p.is_file()]
        for leftover in sorted(set(leftovers)):
            print(f"amsr2flow: removing leftover download {leftover}", file=sys.stderr)
            leftover.unlink()
    for year in sorted(SEALED_YEARS):
        # A complete year's swaths and day records go once its archive exists; a job killed in between
        # leaves some behind (and day records without swaths would make a later rebuild fail).
        if swaths_are_temporary(year) and (LAYOUT.root / "swaths" / str(year)).is_dir():
            print(
                f"amsr2flow: removing the leftover swaths of archived {year}",
                file=sys.stderr,
            )
            shutil.rmtree(LAYOUT.root / "swaths" / str(year))
    for leftover in atomic.sweep_temporaries(LAYOUT.root):
        print(
            f"amsr2flow: removed leftover of an interrupted job: {leftover}",
            file=sys.stderr,
        )
    if network:
        notice = year_stage.variables_notice(
            sorted(LAYOUT.archives_dir().glob("*.npz")),
            settings.extra_variables(config),
        )
        if notice:
            print(f"amsr2flow: note: {notice}", file=sys.stderr)
        try:
            choice = preflight.check_service(
                config,
                settings.resolve_source(config),
                probe_days=preflight.probe_days(settings.days(config), date.today()),
            )
        except (preflight.PreflightError, settings.ConfigError) as exc:
            sys.stderr.write(f"amsr2flow: cannot start: {exc}\n")
            sys.exit(2)
        # Granule jobs and reports read the layout chosen here, for the whole run.
        remote_layout.record_run_layout(
            LAYOUT.remote_layout_file(), choice.to_json() if choice else None
        )
        if choice is not None:
            print(f"amsr2flow: {choice.summary()}", file=sys.stderr)
    if config["report"]["progress_interval_s"]:
        # Counts, rate and ETA at a steady pace (`amsr2flow status` prints the same from another terminal),
        # in place of the scheduler's two lines per job.
        quiet_scheduler_chatter()
        ProgressReporter(config, config["report"]["progress_interval_s"]).start()


def finish_run():
    """After a run that ended without a failed job: exit status 3 when catalogued granules are not archived
    (unless accept_missing accepts them), with last lines saying how many, why, and where the report is.
    """
    if not Path(RUN_REPORT).is_file():
        return
    run = json.loads(Path(RUN_REPORT).read_text(encoding="utf-8"))
    code, lines = run_reports.run_outcome(
        run, config["accept_missing"], RUN_REPORT.replace(".json", ".html")
    )
    print("\n".join(lines), file=sys.stderr)
    if code:
        sys.exit(code)


def status_targets():
    """An always-stale target when the last run report says granules are missing: an unchanged rerun then
    still reaches finish_run() (Snakemake skips onsuccess when there is nothing to do) and exits 3 again.
    Also when archives store contradicted orbit types, so that prepare_run() says so on an unchanged rerun.
    """
    if CONTRADICTING_ARCHIVES:
        return [RUN_STATUS]
    try:
        run = json.loads(Path(RUN_REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if run.get("missing_granules") or run.get("damaged_swaths"):
        return [RUN_STATUS]
    return []


def write_interim_report():
    """After a failed run: a report from what exists, so every granule's state and reason is visible."""
    interim = run_reports.interim_report(config)
    if interim is None:
        return
    path = LAYOUT.reports_dir() / f"interim_{RUN_TAG}.md"
    atomic.write_json(path.with_suffix(".json"), interim)
    atomic.write_bytes(path, run_reports.run_markdown(interim).encode("utf-8"))
    atomic.write_bytes(
        path.with_suffix(".html"),
        report_pages.interim_page(interim, YEAR_PERIODS).encode("utf-8"),
    )
    print(
        f"amsr2flow: the run stopped early; {interim['archived_granules']} of "
        f"{interim['expected_granules']} listed granules are done. Interim report: {path.with_suffix('.html')} (also .md, .json)",
        file=sys.stderr,
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
    return str(LAYOUT.day_manifest(date.fromisoformat(wildcards.day)))


SPLIT_TRANSFERS = config["transfer_jobs"] == "local"
DAY_DOWNLOADS_PATTERN = str(LAYOUT.day_downloads("{year}", "{day}"))


def day_inputs(wildcards):
    """With split transfers the swath job extracts a day downloaded on the submit host; else it downloads."""
    inputs = {"manifest": day_manifest(wildcards)}
    if SPLIT_TRANSFERS:
        inputs["downloads"] = DAY_DOWNLOADS_PATTERN.format(**wildcards)
    return inputs


def swaths_are_temporary(year):
    """A complete year keeps no swaths once archived (unless keep_swaths): the archive job removes them."""
    return is_complete_year(year) and not config["keep_swaths"]


TEMP_YEARS = "|".join(str(y) for y in YEAR_PERIODS if swaths_are_temporary(y)) or "none"
KEPT_YEARS = (
    "|".join(str(y) for y in YEAR_PERIODS if not swaths_are_temporary(y)) or "none"
)


# -- archives ------------------------------------------------------------------------------------
def is_sealed_year(year):
    """A complete year whose archive exists: archived for good. No rule makes its archive, so no rerun can
    replace it (an input function listing no swaths would make Snakemake rebuild it empty: the input set
    changed). Absent granules that reappear are added to it by the recheck job."""
    return is_complete_year(year) and Path(year_archive(year)).is_file()


SEALED_YEARS = {y for y in YEAR_PERIODS if is_sealed_year(y)}
CONTRADICTING_ARCHIVES = contradicting_archives()
UNSEALED_ARCHIVES = (
    "|".join(
        re.escape(Path(year_archive(y)).stem)
        for y in YEAR_PERIODS
        if y not in SEALED_YEARS
    )
    or "none"
)


def year_day_records(wildcards):
    """The day records of a year that is not sealed (sealed years have no archive job)."""
    year = year_of_archive_name(wildcards.name)
    if due_absent(year):
        # Look for the year's absent granules first; reappeared ones lose their tombstone and are fetched.
        checkpoints.recheck_absent.get(year=str(year), stamp=RECHECK_STAMP)
    return [str(LAYOUT.day_record(day)) for day in year_days(year)]


# -- absent granules, looked for again ----------------------------------------------------------------------
RECHECK_STAMP = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")


def recheck_targets():
    """The rechecks due this run, as targets: a checkpoint that only an up-to-date (sealed) archive's input
    function asks for would not be run."""
    return [
        f"{OUT}/ledger/{year}/rechecks/recheck_{RECHECK_STAMP}.json"
        for year in YEAR_PERIODS
        if due_absent(year)
    ]


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
