"""The catalogue stage: one manifest per day, and a year's listing built from them.

A day whose manifest was fetched more than ``settle_days`` after the day ended is never fetched again; a
recent day is fetched again on the next run because G-Portal may still be publishing its granules. Manifests are
rewritten only when their content changes, so an unchanged day keeps its file and its modification time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import requests
import tenacity

from .. import atomic
from ..gportal import catalogue
from ..gportal.backoff import exponential_backoff
from ..gportal.source import Source
from ..plan import Layout, dataset_keys, day_mission

log = logging.getLogger(__name__)

LISTING_COLUMNS = ["day", *catalogue.MANIFEST_COLUMNS]
CATALOGUE_WORKERS = 4  # concurrent catalogue requests within one listing job; G-Portal has no published limit


def is_settled(day: date, fetched_utc: datetime, settle_days: int) -> bool:
    """A day's listing is final once it was fetched ``settle_days`` after the day ended."""
    day_end = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(days=1)
    return fetched_utc >= day_end + timedelta(days=settle_days)


def _manifest_is_final(layout: Layout, day: date, settle_days: int) -> bool:
    info_path = layout.day_manifest_info(day)
    if not (layout.day_manifest(day).is_file() and info_path.is_file()):
        return False
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        fetched = datetime.fromisoformat(info["fetched_utc"])
    except (ValueError, KeyError, OSError):
        return False
    return is_settled(day, fetched, settle_days)


def _day_dataset_id(cfg: Mapping[str, Any], day: date) -> str:
    """G-Portal's dataset id for a day: the configured mission that covers it (one per year)."""
    mission = day_mission(cfg, day)
    if mission is None:
        raise ValueError(f"{day} is outside every configured mission ({', '.join(dataset_keys(cfg))})")
    return mission.dataset_id


def fetch_day_manifest(
    day: date,
    *,
    cfg: Mapping[str, Any],
    source: Source,
    layout: Layout,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    template: str | None = None,
) -> Path:
    """Fetch one day's manifest (with bounded retries of transient catalogue failures) and write it."""
    transfer = cfg["transfer"]
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, catalogue.CatalogueError) and e.transient),
        stop=tenacity.stop_after_attempt(transfer["attempts"]),
        wait=exponential_backoff(transfer["backoff_initial_s"], transfer["backoff_max_s"]),
        before_sleep=lambda rs: log.warning(
            "%s: catalogue attempt %d failed (%s); retrying", day, rs.attempt_number, rs.outcome.exception()
        ),
        reraise=True,
    )
    session = requests.Session()
    result = retrying(
        catalogue.search_day,
        day,
        dataset_id=_day_dataset_id(cfg, day),
        catalogue_url=source.catalogue_url,
        generation=source.generation,
        timeout=transfer["catalogue_timeout_s"],
        page_size=cfg["catalogue"]["page_size"],
        session=session,
    )
    path = layout.day_manifest(day)
    changed = atomic.write_if_changed(path, catalogue.manifest_to_csv_bytes(result.manifest))
    fetched = now()
    info = {
        "day": day.isoformat(),
        "granules": len(result.manifest),
        "catalogue_matched": result.matched,
        "records_received": result.returned,
        "duplicates_dropped": result.duplicates,
        "fetched_utc": fetched.isoformat(),
        "settled": is_settled(day, fetched, cfg["catalogue"]["settle_days"]),
        "generation": source.generation,
        "catalogue_url": source.catalogue_url,
        # where this run's granule jobs look for the files (the remote_path column is the catalogue's mapping)
        "remote_layout": template or "the catalogue's file names",
    }
    atomic.write_json(layout.day_manifest_info(day), info)
    log.info("%s: %d granules (%s)", day, len(result.manifest), "updated" if changed else "unchanged")
    return path


def build_year_listing(
    days: list[date],
    *,
    cfg: Mapping[str, Any],
    source: Source,
    layout: Layout,
    listing_path: Path,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    template: str | None = None,
) -> pd.DataFrame:
    """Make sure every day has a manifest (fetching only those not final), then write the year's listing."""
    settle = cfg["catalogue"]["settle_days"]
    to_fetch = [d for d in days if not _manifest_is_final(layout, d, settle)]
    log.info("%d of %d days need the catalogue; %d reused", len(to_fetch), len(days), len(days) - len(to_fetch))
    with ThreadPoolExecutor(max_workers=CATALOGUE_WORKERS) as pool:
        # list() propagates the first failure; a failed day never leaves an empty manifest behind.
        list(
            pool.map(
                lambda d: fetch_day_manifest(d, cfg=cfg, source=source, layout=layout, now=now, template=template),
                to_fetch,
            )
        )
    frames = []
    for d in days:
        frame = catalogue.read_manifest(str(layout.day_manifest(d)))
        frame.insert(0, "day", d.isoformat())
        frames.append(frame)
    listing = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=LISTING_COLUMNS)
    out = listing.copy()
    for col in ("begin_utc", "end_utc"):
        out[col] = [catalogue.iso_ms(t) for t in out[col]]
    atomic.write_if_changed(listing_path, out[LISTING_COLUMNS].to_csv(index=False, lineterminator="\n").encode())
    return listing


def read_listing(path: str | Path) -> pd.DataFrame:
    """A year's listing as written by :func:`build_year_listing` (times kept as ISO strings: cheap to parse)."""
    listing = pd.read_csv(path, dtype=str, keep_default_na=False)
    return listing.rename(columns={catalogue.OLD_VERSION_COLUMN: "catalogue_product_version"})
