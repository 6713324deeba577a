"""Figure job: a year's report figures from its archive (adapter; logic in amsr2flow.stages.figures)."""

import json
from pathlib import Path

from amsr2flow.joblog import setup_logging
from amsr2flow.region import region_from_setting
from amsr2flow.stages import figures

log = setup_logging(snakemake.log[0])
manifest = figures.build_year_figures(
    archive_path=Path(snakemake.input.archive),
    report=json.loads(Path(snakemake.input.report).read_text(encoding="utf-8")),
    out_dir=Path(snakemake.output.figures),
    cache_dir=Path(snakemake.params.cache_dir),
    quicklooks_per_week=int(snakemake.params.quicklooks_per_week),
    region=region_from_setting(snakemake.config.get("region")),
)
log.info("%d figures, %d quick-looks", len(manifest["figures"]), len(manifest["quicklooks"]))
