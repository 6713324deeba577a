"""Checkpoint job: a year's day manifests and listing (adapter; logic in amsr2flow.stages.catalogue)."""

from datetime import date, timedelta
from pathlib import Path

from amsr2flow import config as settings
from amsr2flow.joblog import setup_logging
from amsr2flow.plan import Layout
from amsr2flow.run.preflight import run_template
from amsr2flow.stages.catalogue import build_year_listing

log = setup_logging(snakemake.log[0])
cfg = snakemake.config  # operational settings only; see rules/catalogue.smk
first_s, after_s = snakemake.wildcards.period.split("-")
first = date(int(first_s[:4]), int(first_s[4:6]), int(first_s[6:]))
after = date(int(after_s[:4]), int(after_s[4:6]), int(after_s[6:]))
days = [first + timedelta(days=i) for i in range((after - first).days)]
source = settings.resolve_source(cfg)
log.info("listing %s to %s from %r", first, after - timedelta(days=1), source)
layout = Layout.from_config(cfg)
build_year_listing(
    days,
    cfg=cfg,
    source=source,
    layout=layout,
    listing_path=Path(snakemake.output.listing),
    remote_layout=run_template(layout.remote_layout_file(), cfg.get("remote_path_template")),
)
