"""Granule job: download, check, extract, delete (adapter; logic in amsr2flow.fetch)."""

import sys
from pathlib import Path

from amsr2flow import config as settings
from amsr2flow import fetch
from amsr2flow.breaker import CircuitBreaker
from amsr2flow.joblog import setup_logging
from amsr2flow.layout import Layout
from amsr2flow.preflight import timeouts_from

log = setup_logging(snakemake.log[0])
cfg = snakemake.config  # operational settings only; see rules/catalogue.smk
layout = Layout.from_config(cfg)
transfer = cfg["transfer"]
task = fetch.GranuleTask(
    granule_id=snakemake.wildcards.granule_id,
    day=snakemake.wildcards.day,
    remote_path=snakemake.params.remote_path,
    size_bytes=int(snakemake.params.size_bytes),
)
try:
    outcome = fetch.collect_granule(
        task,
        source=settings.resolve_source(cfg),
        timeouts=timeouts_from(cfg),
        policy=fetch.RetryPolicy(transfer["attempts"], transfer["backoff_initial_s"], transfer["backoff_max_s"]),
        scratch_dir=layout.scratch,
        channels=tuple(snakemake.params.channels),
        geolocation=bool(snakemake.params.geolocation),
        npy_path=Path(snakemake.output.npy),
        ledger_path=layout.ledger_entry(task.day, task.granule_id),
        stop_flag=layout.stop_flag(),
        breaker=CircuitBreaker(layout.breaker_state(), layout.stop_flag(), transfer["circuit_breaker_failures"]),
    )
except (fetch.GranuleFailed, fetch.RunStopped, fetch.FatalTransferError) as exc:
    log.error("%s", exc)
    sys.stderr.write(f"amsr2flow: {exc}\n")
    sys.exit(1)
log.info("%s: %s", task.granule_id, outcome)
