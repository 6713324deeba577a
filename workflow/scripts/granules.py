"""Day job: the day's granules over one SFTP session, each downloaded, checked, extracted, its HDF5 deleted.

Adapter only; the logic is in amsr2flow.stages.granule. Which part runs follows from the rule's inputs and
outputs: a job with a ``downloads`` output only downloads (split transfers, on the submit host), a job with a
``downloads`` input only extracts (on a compute node), a job with neither does both.
"""

import sys
from pathlib import Path

from amsr2flow import atomic
from amsr2flow import config as settings
from amsr2flow.config import timeouts_from
from amsr2flow.formats import l1b
from amsr2flow.joblog import setup_logging, stop_run
from amsr2flow.plan import Layout
from amsr2flow.run.breaker import CircuitBreaker
from amsr2flow.run.preflight import run_template
from amsr2flow.stages import granule
from amsr2flow.status import mark_finished

log = setup_logging(snakemake.log[0])
cfg = snakemake.config  # operational settings only; see rules/catalogue.smk
layout = Layout.from_config(cfg)
transfer = cfg["transfer"]
day = snakemake.wildcards.day
channels = tuple(snakemake.params.channels)
geolocation = bool(snakemake.params.geolocation)
# From the config, not a rule param: params are rerun triggers, and a new variable set must not re-download the
# granules already extracted. It applies to granules extracted from now on; each swath records its own set.
variables = settings.extra_variables(cfg)
# Where the granules are on SFTP: the catalogue's mapping, under the layout the run's preflight settled on.
template = run_template(layout.remote_layout_file(), cfg.get("remote_path_template"))
tasks = granule.read_day_tasks(Path(snakemake.input.manifest), day, template)


def swath_of(task):
    return layout.swath(task.day, task.granule_id)


def download_of(task):
    h5 = layout.download(day[:4], day, task.granule_id)
    return h5, h5.with_suffix(".download.json")


def finished(task, outcome):
    mark_finished(layout, task.granule_id, outcome)


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
        result = granule.extract_day(
            tasks,
            download_for=download_of,
            npy_for=swath_of,
            channels=channels,
            geolocation=geolocation,
            variables=variables,
            on_done=finished,
        )
    except atomic.NoSpace as exc:
        stop_run(log, exc, layout.stop_flag())
    finish(result, Path(snakemake.output.record))
    sys.exit(0)

split_download = "downloads" in snakemake.output.keys()  # noqa: SIM118


def outputs_for(task):
    if split_download:
        h5, record = download_of(task)
        return granule.DownloadOutputs(h5_path=h5, record_path=record)
    return granule.SwathOutputs(
        npy_path=swath_of(task), scratch_dir=layout.scratch, n_pixels=l1b.channel_pixels(channels[0])
    )


def done_for(task):
    outcome = granule.finished_outcome(swath_of(task), channels, geolocation)
    if outcome is None and split_download:
        outcome = granule.downloaded_outcome(*download_of(task))
    return outcome


source = settings.resolve_source(cfg)
timeouts = timeouts_from(cfg)
with granule.SharedSession(source, timeouts, settings.link_from(cfg)) as sessions:
    result = granule.collect_day(
        tasks,
        outputs_for=outputs_for,
        done_for=done_for,
        ledger_path_for=lambda task: layout.ledger_entry(task.day, task.granule_id),
        sessions=sessions,
        on_done=(lambda task, outcome: None) if split_download else finished,
        source=source,
        timeouts=timeouts,
        policy=granule.RetryPolicy(transfer["attempts"], transfer["backoff_initial_s"], transfer["backoff_max_s"]),
        channels=channels,
        geolocation=geolocation,
        variables=variables,
        stop_flag=layout.stop_flag(),
        time_tolerance_s=cfg["catalogue"]["time_tolerance_s"],
        breaker=CircuitBreaker(
            layout.breaker_state(),
            layout.stop_flag(),
            transfer["circuit_breaker_failures"],
            absent_threshold=transfer["absent_breaker_granules"],
        ),
    )
finish(result, Path(snakemake.output.downloads if split_download else snakemake.output.record))
