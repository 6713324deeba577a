"""Parts job: split a year's archive into parts of part_size swaths (adapter; logic in amsr2flow.stages.archives)."""

from pathlib import Path

from amsr2flow import atomic
from amsr2flow.joblog import setup_logging, stop_run
from amsr2flow.plan import Layout
from amsr2flow.stages import archives

log = setup_logging(snakemake.log[0])
try:
    parts = archives.build_parts(
        Path(snakemake.input.archive), Path(snakemake.output.parts), snakemake.params.part_size
    )
except atomic.NoSpace as exc:
    stop_run(log, exc, Layout.from_config(snakemake.config).stop_flag())
log.info("%d part file(s) in %s", len(parts), snakemake.output.parts)
