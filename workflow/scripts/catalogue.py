"""Checkpoint job: a year's day manifests and listing (adapter; logic in amsr2flow.listing)."""

import sys
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _common import setup_logging  # noqa: E402

from amsr2flow import config as settings  # noqa: E402
from amsr2flow.layout import Layout  # noqa: E402
from amsr2flow.listing import build_year_listing  # noqa: E402

log = setup_logging(snakemake.log[0])
cfg = snakemake.config  # operational settings only; see rules/catalogue.smk
first_s, after_s = snakemake.wildcards.period.split("-")
first = date(int(first_s[:4]), int(first_s[4:6]), int(first_s[6:]))
after = date(int(after_s[:4]), int(after_s[4:6]), int(after_s[6:]))
days = [first + timedelta(days=i) for i in range((after - first).days)]
source = settings.resolve_source(cfg)
log.info("listing %s to %s from %r", first, after - timedelta(days=1), source)
build_year_listing(
    days, cfg=cfg, source=source, layout=Layout.from_config(cfg), listing_path=Path(snakemake.output.listing)
)
