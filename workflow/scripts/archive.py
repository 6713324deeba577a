"""Year archive job: stream the year's swaths into one archive (adapter; logic in amsr2flow.stages.year)."""

from datetime import date
from pathlib import Path

from amsr2flow import atomic
from amsr2flow.joblog import setup_logging, stop_run
from amsr2flow.layout import Layout
from amsr2flow.stages import year

log = setup_logging(snakemake.log[0])
first, after = (date.fromisoformat(d) for d in snakemake.params.period)
try:
    summary = year.build_year_archive(
        [Path(p) for p in snakemake.input.swaths],
        Path(snakemake.output.archive),
        first_day=first,
        day_after_last=after,
        config_digest=snakemake.params.config_digest,
        compression=snakemake.params.compression,
    )
except atomic.NoSpace as exc:
    stop_run(log, exc, Layout.from_config(snakemake.config).stop_flag())
log.info("%s", summary)
