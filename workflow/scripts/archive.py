"""Year archive job: stream the year's swaths into one archive (adapter; logic in amsr2flow.stages.archives)."""

from datetime import date
from pathlib import Path

from amsr2flow import atomic
from amsr2flow.joblog import setup_logging, stop_run
from amsr2flow.plan import Layout
from amsr2flow.stages import archives

log = setup_logging(snakemake.log[0])
layout = Layout.from_config(snakemake.config)
first, after = (date.fromisoformat(d) for d in snakemake.params.period)
try:
    swaths = archives.swaths_of_days([Path(p) for p in snakemake.input.days], layout.swath)
except archives.SwathsMissing as exc:
    stop_run(log, exc)
try:
    summary = archives.build_year_archive(
        swaths,
        Path(snakemake.output.archive),
        first_day=first,
        day_after_last=after,
        config_digest=snakemake.params.config_digest,
        compression=snakemake.params.compression,
    )
except atomic.NoSpace as exc:
    stop_run(log, exc, layout.stop_flag())
log.info("%s", summary)
if snakemake.params.remove_swaths:
    # A complete year is archived for good: its swaths go (its day records are temp; Snakemake removes them).
    archives.remove_swaths(swaths)
    log.info("removed the %d swaths of the complete year", len(swaths))
