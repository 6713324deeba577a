"""Checkpoint job: a year's day manifests and listing (adapter; logic in amsr2flow.stages.catalogue)."""

from datetime import timedelta
from pathlib import Path

from amsr2flow.joblog import setup_logging
from amsr2flow.plan import Layout, days_between, parse_period_tag
from amsr2flow.run.connection import source_from
from amsr2flow.run.preflight import run_template
from amsr2flow.stages.catalogue import build_year_listing

log = setup_logging(snakemake.log[0])
cfg = snakemake.config  # operational settings only; see rules/catalogue.smk
first, after = parse_period_tag(snakemake.wildcards.period)
days = days_between(first, after)
source = source_from(cfg)
log.info("listing %s to %s from %r", first, after - timedelta(days=1), source)
layout = Layout.from_config(cfg)
build_year_listing(
    days,
    cfg=cfg,
    source=source,
    layout=layout,
    listing_path=Path(snakemake.output.listing),
    template=run_template(layout.template_choice_file(), cfg.get("remote_path_template")),
)
