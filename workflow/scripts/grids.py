"""Grid job: a year's daily grids from its archive (adapter; logic in amsr2flow.stages.grid)."""

from datetime import date
from pathlib import Path

from amsr2flow import atomic
from amsr2flow.joblog import setup_logging, stop_run
from amsr2flow.plan import days_between
from amsr2flow.region import region_from_setting
from amsr2flow.stages import grid

log = setup_logging(snakemake.log[0])
first, after = (date.fromisoformat(d) for d in snakemake.params.days)
try:
    record = grid.build_year_grids(
        archive_path=Path(snakemake.input.archive),
        days=days_between(first, after),
        grids=list(snakemake.params.grids),
        channels=list(snakemake.params.channels),
        out_dir=Path(snakemake.params.out_dir),
        fmt=snakemake.params.format,
        prefix=snakemake.params.prefix,
        region=region_from_setting(snakemake.config.get("region")) if snakemake.params.crop_to_region else None,
    )
except grid.GridError as exc:
    stop_run(log, exc)  # one line naming the day and why; no record, so the next run tries again
log.info(
    "%d day files made, %d up to date, %d with no observation on their grid",
    record["made"],
    record["up_to_date"],
    len(record["no_data_on_grid"]),
)
atomic.write_json(Path(snakemake.output.record), record)
