"""Run report job: the years' reports summed up (adapter; logic in amsr2flow.stages.report)."""

import json
from pathlib import Path

from amsr2flow import atomic
from amsr2flow.gportal import remote_layout
from amsr2flow.joblog import setup_logging
from amsr2flow.layout import Layout
from amsr2flow.stages import report

log = setup_logging(snakemake.log[0])
years = [json.loads(Path(p).read_text(encoding="utf-8")) for p in snakemake.input.years]
run = report.run_report(
    years,
    start=snakemake.params.start,
    end=snakemake.params.end,
    remote_layout=remote_layout.run_layout(Layout.from_config(snakemake.config).remote_layout_file()),
)
markdown = report.run_markdown(run)
atomic.write_json(snakemake.output.json, run)
atomic.write_bytes(snakemake.output.markdown, markdown.encode("utf-8"))
atomic.write_bytes(snakemake.output.html, report.markdown_to_html(markdown, "AMSR-2 collection report").encode("utf-8"))
# The final report supersedes any interim one of an earlier, interrupted run.
for interim in Path(snakemake.output.json).parent.glob("interim_*"):
    interim.unlink()
log.info("run report: %s, %s of %s granules", run["status"], run["archived_granules"], run["expected_granules"])
