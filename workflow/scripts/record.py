"""Record job: append the archives' new swaths to the record (adapter; logic in amsr2flow.stages.record)."""

from pathlib import Path

from amsr2flow import atomic
from amsr2flow.formats.record import RecordError
from amsr2flow.joblog import setup_logging, stop_run
from amsr2flow.plan import Layout
from amsr2flow.stages import record

log = setup_logging(snakemake.log[0])
try:
    summary = record.update_record(
        Path(snakemake.params.store),
        [Path(p) for p in snakemake.input.archives],
        Path(snakemake.output.receipt),
        log,
    )
except RecordError as exc:
    stop_run(log, exc)
except atomic.NoSpace as exc:
    stop_run(log, exc, Layout.from_config(snakemake.config).stop_flag())
log.info("the record holds %d swath(s) (commit %s)", summary["swaths"], summary["snapshot"])
