"""Day job: the day's granules over its share of the SFTP sessions (its ``gportal`` resource), each downloaded,
checked, extracted, its HDF5 deleted.

Adapter only; the logic is in amsr2flow.stages.granule. Which part runs follows from the rule's inputs and
outputs: a job with a ``downloads`` output only downloads (split transfers, on the submit host), a job with a
``downloads`` input only extracts (on a compute node), a job with neither does both.
"""

import sys
from pathlib import Path

from amsr2flow import atomic
from amsr2flow.config import ConfigError
from amsr2flow.joblog import setup_logging, stop_run
from amsr2flow.plan import Layout
from amsr2flow.stages import granule

log = setup_logging(snakemake.log[0])
cfg = snakemake.config  # operational settings only; see rules/catalogue.smk
day = snakemake.wildcards.day
try:
    job = granule.DayJob.from_config(cfg, snakemake.params.channels, snakemake.params.geolocation)
except ConfigError as exc:  # e.g. the local G-Portal's state file vanished: the run stops, it is not retried
    stop_run(log, exc, Layout.from_config(cfg).stop_flag())
tasks = granule.read_day_tasks(Path(snakemake.input.manifest), day, job.template)


def finish(result, record_path):
    log.info("%s: %s", day, ", ".join(f"{gid} {outcome}" for gid, outcome in sorted(result.outcomes.items())))
    log.info("%s: %d session(s) opened for %d granules", day, result.sessions_opened, len(tasks))
    if result.failed:
        message = result.failure_message(day)
        log.error("%s", message)
        sys.stderr.write(f"amsr2flow: {message}\n")
        sys.exit(1)
    atomic.write_json(record_path, result.record(day))


if "downloads" in snakemake.input.keys():  # noqa: SIM118 - Namedlist: `in` alone tests values
    try:
        result = granule.extract_day(tasks, job)
    except atomic.NoSpace as exc:
        stop_run(log, exc, job.stop_flag)
    finish(result, Path(snakemake.output.record))
    sys.exit(0)

download_only = "downloads" in snakemake.output.keys()  # noqa: SIM118
sessions = max(1, int(snakemake.resources.get("gportal", 1)))  # the share of the cap Snakemake counts for this job
result = granule.collect_day(tasks, job, download_only=download_only, sessions=sessions)
finish(result, Path(snakemake.output.downloads if download_only else snakemake.output.record))
