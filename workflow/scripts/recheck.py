"""Recheck job: look again for a year's absent granules (adapter; logic in amsr2flow.stages.granule)."""

from datetime import date, datetime, timezone
from pathlib import Path

from amsr2flow import atomic
from amsr2flow import config as settings
from amsr2flow.config import timeouts_from
from amsr2flow.formats import facts
from amsr2flow.gportal.sftp import TransferError
from amsr2flow.joblog import setup_logging
from amsr2flow.ledger import due_for_recheck, read_ledger
from amsr2flow.plan import Layout
from amsr2flow.run.preflight import run_template
from amsr2flow.stages import granule, year
from amsr2flow.stages.catalogue import read_listing

log = setup_logging(snakemake.log[0])
cfg = snakemake.config  # operational settings only; see rules/catalogue.smk
layout = Layout.from_config(cfg)
ledger_dir = layout.ledger_dir(int(snakemake.wildcards.year))
now = datetime.now(timezone.utc)
due = due_for_recheck(ledger_dir, now, cfg["catalogue"]["recheck_absent_after_hours"])
template = run_template(layout.remote_layout_file(), cfg.get("remote_path_template"))
try:
    outcome = granule.recheck_absent(
        due,
        source=settings.resolve_source(cfg),
        timeouts=timeouts_from(cfg),
        template=template,
        ledger_path_for=layout.ledger_entry,
        swath_path_for=lambda day, gid: layout.swath(date.fromisoformat(day), gid),
        day_record_for=layout.day_record,
    )
except TransferError as exc:
    # Looking again is a courtesy: when G-Portal cannot be asked now, the next run asks again.
    log.warning("could not look for the absent granules of %s: %s", snakemake.wildcards.year, exc)
    outcome = granule.Recheck(tuple(sorted(due)), (), {})
if outcome.arrived and snakemake.params.sealed:
    # A sealed year keeps no swaths and has no archive job: fetch what reappeared and add it here.
    listing = read_listing(snakemake.params.listing)
    transfer = cfg["transfer"]
    fetched = granule.fetch_reappeared(
        outcome,
        due,
        {row["granule_id"]: facts.CatalogueRecord.from_row(row) for row in listing.to_dict("records")},
        template=template,
        swath_path_for=lambda day, gid: layout.swath(date.fromisoformat(day), gid),
        ledger_path_for=layout.ledger_entry,
        scratch_dir=layout.scratch,
        stop_flag=layout.stop_flag(),
        source=settings.resolve_source(cfg),
        timeouts=timeouts_from(cfg),
        policy=granule.RetryPolicy(transfer["attempts"], transfer["backoff_initial_s"], transfer["backoff_max_s"]),
        channels=tuple(snakemake.params.channels),
        geolocation=bool(snakemake.params.geolocation),
        variables=settings.extra_variables(cfg),
        link=settings.link_from(cfg),
        time_tolerance_s=cfg["catalogue"]["time_tolerance_s"],
    )
    if fetched:
        still_missing = sum(e.get("status") in ("absent", "invalid") for e in read_ledger(ledger_dir).values())
        year.add_to_sealed_year(
            Path(snakemake.params.archive),
            Path(snakemake.params.parts),
            snakemake.params.part_size,
            fetched,
            not_archived=still_missing,
        )
        if not cfg["keep_swaths"]:
            for npy in fetched:
                npy.unlink()
                npy.with_suffix(".json").unlink()
log.info("%d absent granule(s) looked for, %d back: %s", len(outcome.checked), len(outcome.arrived), outcome.arrived)
atomic.write_json(snakemake.output.record, {"checked": list(outcome.checked), "arrived": list(outcome.arrived)})
