"""Run report job: the years' reports summed up (adapter; logic in amsr2flow.stages.report and report_pages)."""

import json
import os
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from amsr2flow import atomic
from amsr2flow.joblog import setup_logging
from amsr2flow.plan import Layout
from amsr2flow.run.preflight import recorded_choice
from amsr2flow.stages import report, report_pages

log = setup_logging(snakemake.log[0])
years = [json.loads(Path(p).read_text(encoding="utf-8")) for p in snakemake.input.years]
run = report.run_report(
    years,
    start=snakemake.params.start,
    end=snakemake.params.end,
    layout_choice=recorded_choice(Layout.from_config(snakemake.config).template_choice_file()),
)
html_path = Path(snakemake.output.html)
periods = snakemake.params.periods
calendars = {
    y["year"]: (
        y["days"],
        date.fromisoformat(periods[str(y["year"])][0]),
        date.fromisoformat(periods[str(y["year"])][1]) - timedelta(days=1),
    )
    for y in years
}
table = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in snakemake.input.granules])
atomic.write_bytes(snakemake.output.granules, report.granule_csv_bytes(table))
atomic.write_json(snakemake.output.json, run)
atomic.write_bytes(snakemake.output.markdown, report.run_markdown(run).encode("utf-8"))
page = report_pages.run_page(
    run,
    year_pages={
        y["year"]: os.path.relpath(p, html_path.parent) for y, p in zip(years, snakemake.input.pages, strict=True)
    },
    calendars=calendars,
    csv_name=Path(snakemake.output.granules).name,
)
atomic.write_bytes(html_path, page.encode("utf-8"))
# The final report supersedes any interim one of an earlier, interrupted run.
for interim in html_path.parent.glob("interim_*"):
    interim.unlink()
log.info("run report: %s, %s of %s granules", run["status"], run["archived_granules"], run["expected_granules"])
