"""Map page job: one day's swaths as layers of an offline Leaflet page (adapter; logic in amsr2flow.stages.maps)."""

from pathlib import Path

from amsr2flow.joblog import setup_logging
from amsr2flow.region import region_from_setting
from amsr2flow.stages import maps

log = setup_logging(snakemake.log[0])
maps.write_day_map(
    Path(snakemake.input.archive),
    snakemake.wildcards.day,
    Path(snakemake.output.page),
    region=region_from_setting(snakemake.config.get("region")),
)
log.info("map page of %s written", snakemake.wildcards.day)
