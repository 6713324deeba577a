"""Year report job: verify the year's archive and parts, join the ledger (adapter; logic in amsr2flow.stages.report)."""

from pathlib import Path

from amsr2flow import atomic
from amsr2flow.joblog import setup_logging
from amsr2flow.stages import report

log = setup_logging(snakemake.log[0])
year_report, granules = report.build_year_report(
    year=snakemake.params.year,
    listing_path=Path(snakemake.input.listing),
    archive_path=Path(snakemake.input.archive),
    parts_dir=Path(snakemake.input.parts),
    ledger_dir=Path(snakemake.params.ledger_dir),
    time_tolerance_s=float(snakemake.params.time_tolerance_s),
)
atomic.write_json(snakemake.output.json, year_report)
atomic.write_bytes(snakemake.output.markdown, report.year_markdown(year_report).encode("utf-8"))
atomic.write_bytes(snakemake.output.granules, report.granule_csv_bytes(granules))
log.info(
    "%d of %d granules archived, %d damaged, %d disagreement(s)",
    year_report["archived_granules"],
    year_report["expected_granules"],
    year_report["verification"]["damaged"],
    len(year_report["disagreements"]),
)
for problem in year_report["count_problems"]:
    log.warning("%s", problem)
