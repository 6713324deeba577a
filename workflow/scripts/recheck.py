"""Recheck job: look again for a year's absent granules (adapter; logic in amsr2flow.stages.granule)."""

from datetime import datetime, timezone
from pathlib import Path

from amsr2flow import atomic
from amsr2flow.formats import facts
from amsr2flow.gportal.sftp import TransferError
from amsr2flow.joblog import setup_logging
from amsr2flow.ledger import due_for_recheck, read_ledger
from amsr2flow.run.reasons import ACCEPTABLE
from amsr2flow.stages import archives, granule
from amsr2flow.stages.catalogue import read_listing

log = setup_logging(snakemake.log[0])
cfg = snakemake.config  # operational settings only; see rules/catalogue.smk
job = granule.DayJob.from_config(cfg, snakemake.params.channels, snakemake.params.geolocation)
ledger_dir = job.layout.ledger_dir(int(snakemake.wildcards.year))
due = due_for_recheck(ledger_dir, datetime.now(timezone.utc), cfg["catalogue"]["recheck_absent_after_hours"])
try:
    outcome = granule.recheck_absent(due, job)
except TransferError as exc:
    # Looking again is a courtesy: when G-Portal cannot be asked now, the next run asks again.
    log.warning("could not look for the absent granules of %s: %s", snakemake.wildcards.year, exc)
    outcome = granule.Recheck(tuple(sorted(due)), (), {})
if outcome.arrived and snakemake.params.sealed:
    # A sealed year keeps no swaths and has no archive job: fetch what reappeared and add it here.
    listing = read_listing(snakemake.params.listing)
    records = {row["granule_id"]: facts.CatalogueRecord.from_row(row) for row in listing.to_dict("records")}
    fetched = granule.fetch_reappeared(outcome, due, records, job)
    if fetched:
        still_missing = sum(e.get("status") in ACCEPTABLE for e in read_ledger(ledger_dir).values())
        archives.add_to_sealed_year(
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
