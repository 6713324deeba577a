"""Year page job: the year's report as an HTML page with its figures (adapter; logic in stages.report_pages)."""

import json
import os
from datetime import date, timedelta
from pathlib import Path

from amsr2flow import atomic
from amsr2flow.joblog import setup_logging
from amsr2flow.stages import figures, report_pages

log = setup_logging(snakemake.log[0])
page_path = Path(snakemake.output.page)
year_report = json.loads(Path(snakemake.input.report).read_text(encoding="utf-8"))
first, after = (date.fromisoformat(d) for d in snakemake.params.period)
figures_dir = Path(snakemake.input.figures[0]) if snakemake.input.figures else None
manifest = json.loads((figures_dir / figures.FIGURE_MANIFEST).read_text(encoding="utf-8")) if figures_dir else None
html = report_pages.year_page(
    year_report,
    first=first,
    last=after - timedelta(days=1),
    csv_name=os.path.relpath(snakemake.input.granules, page_path.parent),
    figures_dir=os.path.relpath(figures_dir, page_path.parent) if figures_dir else None,
    figures=manifest,
    maps=[(Path(m).stem, os.path.relpath(m, page_path.parent)) for m in snakemake.input.maps],
)
atomic.write_bytes(page_path, html.encode("utf-8"))
log.info("year page written: %s", page_path)
