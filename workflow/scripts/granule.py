"""Granule job: download, check, extract, delete; or, with split transfers, only one half of it.

Adapter only; the logic is in amsr2flow.stages.granule. Which half runs follows from the rule's inputs and outputs:
a job with a ``record`` output downloads (split transfers, on the submit host), a job with a ``record`` input
extracts (on a compute node), a job with neither does both.
"""

import sys
from pathlib import Path

from amsr2flow import atomic
from amsr2flow import config as settings
from amsr2flow.config import timeouts_from
from amsr2flow.formats import l1b
from amsr2flow.gportal import remote_layout
from amsr2flow.gportal.breaker import CircuitBreaker
from amsr2flow.joblog import setup_logging, stop_run
from amsr2flow.layout import Layout
from amsr2flow.stages import granule
from amsr2flow.status import mark_finished

log = setup_logging(snakemake.log[0])
cfg = snakemake.config  # operational settings only; see rules/catalogue.smk
layout = Layout.from_config(cfg)
transfer = cfg["transfer"]
channels = tuple(snakemake.params.channels)
# From the config, not a rule param: params are rerun triggers, and a new variable set must not re-download the
# granules already extracted. It applies to granules extracted from now on; each swath records its own set.
variables = settings.extra_variables(cfg)
# Where the granule is on SFTP: the catalogue's mapping, under the layout the run's preflight settled on.
template = remote_layout.run_template(layout.remote_layout_file(), cfg.get("remote_path_template"))
task = granule.GranuleTask(
    granule_id=snakemake.wildcards.granule_id,
    day=snakemake.wildcards.day,
    remote_path=remote_layout.apply_template(snakemake.params.remote_path, template),
    size_bytes=int(snakemake.params.size_bytes),
    remote_layout=template or "",
)

if "record" in snakemake.input.keys():  # noqa: SIM118 - Namedlist: `in` alone tests values
    try:
        outcome = granule.extract_download(
            task,
            h5_path=Path(snakemake.input.h5),
            record_path=Path(snakemake.input.record),
            channels=channels,
            geolocation=bool(snakemake.params.geolocation),
            npy_path=Path(snakemake.output.npy),
            variables=variables,
        )
    except atomic.NoSpace as exc:
        stop_run(log, exc, layout.stop_flag())
    log.info("%s: %s", task.granule_id, outcome)
    mark_finished(layout, task.granule_id, outcome)
    sys.exit(0)

if "record" in snakemake.output.keys():  # noqa: SIM118
    outputs = granule.DownloadOutputs(h5_path=Path(snakemake.output.h5), record_path=Path(snakemake.output.record))
else:
    outputs = granule.SwathOutputs(
        npy_path=Path(snakemake.output.npy), scratch_dir=layout.scratch, n_pixels=l1b.channel_pixels(channels[0])
    )
try:
    outcome = granule.collect_granule(
        task,
        source=settings.resolve_source(cfg),
        timeouts=timeouts_from(cfg),
        policy=granule.RetryPolicy(transfer["attempts"], transfer["backoff_initial_s"], transfer["backoff_max_s"]),
        channels=channels,
        geolocation=bool(snakemake.params.geolocation),
        variables=variables,
        link=settings.link_from(cfg),
        outputs=outputs,
        ledger_path=layout.ledger_entry(task.day, task.granule_id),
        stop_flag=layout.stop_flag(),
        breaker=CircuitBreaker(
            layout.breaker_state(),
            layout.stop_flag(),
            transfer["circuit_breaker_failures"],
            absent_threshold=transfer["absent_breaker_granules"],
        ),
    )
except (granule.GranuleFailed, granule.RunStopped, granule.FatalTransferError) as exc:
    log.error("%s", exc)
    sys.stderr.write(f"amsr2flow: {exc}\n")
    sys.exit(1)
log.info("%s: %s", task.granule_id, outcome)
if "record" not in snakemake.output.keys():  # noqa: SIM118 - a download alone does not finish the granule
    mark_finished(layout, task.granule_id, outcome)
