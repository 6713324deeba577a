"""Normalisation statistics job: per-channel statistics of the training split (logic in amsr2flow.stages.record)."""

from pathlib import Path

from amsr2flow.formats.record import RecordError
from amsr2flow.joblog import setup_logging, stop_run
from amsr2flow.stages import record
from amsr2flow.training import TrainingError

log = setup_logging(snakemake.log[0])
try:
    stats = record.write_statistics(
        Path(snakemake.params.store),
        Path(snakemake.output.statistics),
        snakemake.params.train,
        snakemake.params.channels,
    )
except (RecordError, TrainingError) as exc:
    stop_run(log, exc)
log.info("normalisation statistics of %s swath(s) in %s", stats.get("n_swaths"), snakemake.output.statistics)
