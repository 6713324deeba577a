"""The record stage (workflow/rules/record.smk): append each archive's new swaths to the record, check what was
appended against the archive, write the receipt; compute the training split's normalisation statistics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import atomic
from ..formats import record


def update_record(
    store: Path, archives: Sequence[Path], receipt: Path, log: logging.Logger | None = None
) -> dict[str, Any]:
    """Append to ``store`` what the archives hold and it does not (one commit per archive), read the appended
    swaths back against their archive, and write ``receipt`` (atomically, deterministically: an unchanged
    record gives the same bytes)."""
    results = record.append_archives(store, archives, log=log)
    appended = {g for r in results for g in r.granule_ids}
    if appended:
        check = record.verify_record(store, archives, granule_ids=appended)
        if not check.ok:
            raise record.RecordError(
                "the swaths just appended do not read back as their archives hold them: "
                + "; ".join(check.lines()[1:])
                + f". The record at {store} keeps them in its last commit: move it aside and rerun to rebuild it"
            )
    source = record.RecordSource(store)
    archived = {g for r in results for g in r.granule_ids_in_archive}
    in_no_archive = int(sum(1 for g in source.index()["granule_id"].tolist() if g not in archived))
    if in_no_archive and log is not None:
        log.warning(
            "%d swath(s) of the record are in no archive of this run (a smaller region or period than before?); "
            "the record keeps them: it is only ever appended to",
            in_no_archive,
        )
    summary = {
        "store": store.name,
        "in_no_archive": in_no_archive,
        "snapshot": source.snapshot,
        "swaths": len(source),
        "archives": {
            r.archive: {"added": r.added, "already_in_record": r.already}
            for r in sorted(results, key=lambda r: r.archive)
        },
    }
    atomic.write_json(receipt, summary)  # sorted keys: the same record gives the same bytes
    return summary


def write_statistics(store: Path, out: Path, train: Sequence[str] | None, channels: Sequence[str]) -> dict[str, Any]:
    """The normalisation statistics of the training split, kept as they are when the split's swaths did not
    change (a daily append after the split's last day recomputes nothing). Snakemake deletes ``out`` before
    the job, so a copy beside it (``.normalisation.json.kept``) is what is compared."""
    from .. import training

    source = record.RecordSource(store)
    split = (train[0], train[1]) if train else None
    index = source.index()
    selection = training.selection_fingerprint(index["granule_id"][training.select_positions(index, split)])
    kept = out.with_name(f".{out.name}.kept")
    if kept.exists():
        try:
            previous = training.load_statistics(kept)
        except training.TrainingError:
            previous = {}
        if previous.get("selection") == selection and sorted(previous.get("channels", {})) == sorted(channels):
            training.save_statistics(previous, out)  # the same swaths: the same statistics, the same bytes
            return previous
    stats = training.normalisation_statistics(source, channels=list(channels), split=split)
    training.save_statistics(stats, kept)
    training.save_statistics(stats, out)
    return stats
