"""The catalogue stage: one manifest per day, and a year's listing built from them.

A day whose manifest was fetched more than ``settle_days`` after the day ended is never fetched again; a
recent day is fetched again on the next run because G-Portal may still be publishing its granules. Manifests are
rewritten only when their content changes, so an unchanged day keeps its file and its modification time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
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
from ..plan import Layout, RunPlan, dataset_keys, day_mission
from ..region import Region, parse_outline, region_from_setting

log = logging.getLogger(__name__)

LISTING_COLUMNS = ["day", *catalogue.MANIFEST_COLUMNS]
CATALOGUE_WORKERS = 4  # concurrent catalogue requests within one listing job; G-Portal has no published limit


def is_settled(day: date, fetched_utc: datetime, settle_days: int) -> bool:
    """A day's listing is final once it was fetched ``settle_days`` after the day ended."""
    day_end = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(days=1)
    return fetched_utc >= day_end + timedelta(days=settle_days)


def _manifest_is_final(layout: Layout, day: date, settle_days: int, region: Region | None = None) -> bool:
    """Whether a day's manifest stands: settled, and listed for the region now configured (a manifest of
    another region holds other granules; one written before regions existed is the globe's)."""
    info_path = layout.day_manifest_info(day)
    if not (layout.day_manifest(day).is_file() and info_path.is_file()):
        return False
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        fetched = datetime.fromisoformat(info["fetched_utc"])
    except (ValueError, KeyError, OSError):
        return False
    listed_for = (info.get("region") or {}).get("fingerprint")
    return listed_for == (region.fingerprint if region else None) and is_settled(day, fetched, settle_days)


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
    region: Region | None = None,
    bbox: tuple[float, float, float, float] | None = None,
) -> Path:
    """Fetch one day's manifest (with bounded retries of transient catalogue failures) and write it.

    With a region, the catalogue is asked for ``bbox`` (None: the whole day) and each record is kept only when
    its footprint touches the region; the day's info says what the region left out and why each granule is in.
    """
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
    where = {"dataset_id": _day_dataset_id(cfg, day), "catalogue_url": source.catalogue_url, "session": session}
    timeout = transfer["catalogue_timeout_s"]
    result = retrying(
        catalogue.search_day,
        day,
        generation=source.generation,
        timeout=timeout,
        page_size=cfg["catalogue"]["page_size"],
        bbox=bbox if region is not None else None,
        **where,
    )
    manifest, region_info = result.manifest, None
    if region is not None:
        # how many granules the day has: the whole day's records when they were all asked for, else two counts
        day_granules = (
            len(result.manifest) if bbox is None else retrying(catalogue.count_day, day, timeout=timeout, **where)
        )
        manifest, region_info = region_filter(result, region, bbox, day_granules)
    path = layout.day_manifest(day)
    changed = atomic.write_if_changed(path, catalogue.manifest_to_csv_bytes(manifest))
    fetched = now()
    info = {
        "day": day.isoformat(),
        "granules": len(manifest),
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
    if region_info is not None:
        info["region"] = region_info
    atomic.write_json(layout.day_manifest_info(day), info)
    crossing = f" crossing {region.description}" if region is not None else ""
    log.info("%s: %d granules%s (%s)", day, len(manifest), crossing, "updated" if changed else "unchanged")
    return path


#: Why a granule of a region's manifest is in it (the day's info, ``region.kept``).
KEPT_FOOTPRINT = "its catalogue footprint (multiExtentOf) touches the region"
KEPT_NO_FOOTPRINT = "its catalogue record has no footprint: kept, its scans decide"


def region_filter(
    result: catalogue.DaySearchResult,
    region: Region,
    bbox: tuple[float, float, float, float] | None,
    day_granules: int,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The records whose footprint touches ``region``, and the day's account of it: why each granule is in,
    which records the catalogue returned that the footprint test left out, and how many of the day's
    ``day_granules`` granules the region left out. The server's answer to ``bbox`` only saves records; this
    test decides."""
    kept: dict[str, str] = {}
    outside: list[str] = []
    for granule_id in result.manifest["granule_id"]:
        ring = parse_outline(result.outlines.get(granule_id, ""))
        if not ring:
            kept[granule_id] = KEPT_NO_FOOTPRINT
        elif region.touches_outline(ring):
            kept[granule_id] = KEPT_FOOTPRINT
        else:
            outside.append(granule_id)
    manifest = result.manifest[result.manifest["granule_id"].isin(list(kept))].reset_index(drop=True)
    info = {
        "description": region.description,
        "fingerprint": region.fingerprint,
        "catalogue_bbox": list(bbox) if bbox is not None else None,
        "day_granules": day_granules,
        "left_out": max(day_granules - len(kept), 0),
        "outside_by_footprint": outside,
        "kept": kept,
    }
    return manifest, info


#: Days whose catalogue answer to ``bbox`` is checked against the whole day, and how many granules the region
#: must need in them for the check to say anything (a check of nothing passes whatever the server does).
BBOX_CHECK_DAYS = 3
BBOX_CHECK_MIN_GRANULES = 3


def trusted_bbox(days: Sequence[date], region: Region, *, cfg: Mapping[str, Any], source: Source) -> tuple | None:
    """The region's box, if the catalogue's answer to it keeps every granule whose footprint touches the
    region on the first ``BBOX_CHECK_DAYS`` of ``days`` (each asked for the whole day and for the box), and
    these are at least ``BBOX_CHECK_MIN_GRANULES``; else None: whole days are asked for.

    What G-Portal does with ``bbox`` is not documented (footprints or their boxes, the antimeridian, the poles,
    the axis order); a server that drops a granule the region needs would lose it silently, so its answer is
    checked once per listing against the client's own test of whole days.
    """
    bbox = region.catalogue_bbox
    shown = ",".join(catalogue.bbox_text(bbox))
    needed_ids: set[str] = set()
    for day in days[:BBOX_CHECK_DAYS]:
        asked = {
            "dataset_id": _day_dataset_id(cfg, day),
            "catalogue_url": source.catalogue_url,
            "generation": source.generation,
            "timeout": cfg["transfer"]["catalogue_timeout_s"],
            "page_size": cfg["catalogue"]["page_size"],
        }
        try:
            whole = catalogue.search_day(day, **asked)
            boxed = catalogue.search_day(day, bbox=bbox, **asked)
        except catalogue.CatalogueError as exc:
            log.warning("%s: could not check the catalogue's bbox answer (%s); asking for whole days", day, exc)
            return None
        needed, _ = region_filter(whole, region, None, len(whole.manifest))
        needed_ids |= set(needed["granule_id"])
        lost = sorted(set(needed["granule_id"]) - set(boxed.manifest["granule_id"]))
        if lost:
            log.warning(
                "%s: the catalogue's answer to bbox=%s left out %d granule(s) whose footprint touches the region "
                "(%s); asking for whole days and testing each footprint here",
                day,
                shown,
                len(lost),
                ", ".join(lost[:3]),
            )
            return None
    if len(needed_ids) < BBOX_CHECK_MIN_GRANULES:
        log.info(
            "the region needs %d granule(s) on the %d day(s) checked, too few to tell whether the catalogue's answer "
            "to bbox=%s can be trusted; asking for whole days",
            len(needed_ids),
            min(len(days), BBOX_CHECK_DAYS),
            shown,
        )
        return None
    log.info(
        "the catalogue's answer to bbox=%s held all %d granules the region needs on %d day(s); asking with it",
        shown,
        len(needed_ids),
        min(len(days), BBOX_CHECK_DAYS),
    )
    return bbox


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
    region = region_from_setting(cfg.get("region"))
    to_fetch = [d for d in days if not _manifest_is_final(layout, d, settle, region)]
    log.info("%d of %d days need the catalogue; %d reused", len(to_fetch), len(days), len(days) - len(to_fetch))
    bbox = None
    if region is not None:
        log.info("region: %s", region.description)
        if to_fetch and region.catalogue_bbox is not None:
            bbox = trusted_bbox(to_fetch, region, cfg=cfg, source=source)

    def fetch(d: date) -> Path:
        return fetch_day_manifest(
            d, cfg=cfg, source=source, layout=layout, now=now, template=template, region=region, bbox=bbox
        )

    with ThreadPoolExecutor(max_workers=CATALOGUE_WORKERS) as pool:
        # list() propagates the first failure; a failed day never leaves an empty manifest behind.
        list(pool.map(fetch, to_fetch))
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
    summary = region_summary_path(listing_path)
    if region is None:
        summary.unlink(missing_ok=True)
    else:
        left_out = 0
        for d in days:
            info = json.loads(layout.day_manifest_info(d).read_text(encoding="utf-8"))
            left_out += int((info.get("region") or {}).get("left_out", 0))
        summary_of_year = {"description": region.description, "fingerprint": region.fingerprint}
        atomic.write_if_changed(summary, atomic.json_bytes(summary_of_year | {"left_out": left_out}))
    return listing


def region_summary_path(listing_path: Path) -> Path:
    """Beside a year's listing: the region it was listed for and how many catalogued records it left out."""
    return listing_path.with_name(listing_path.stem + ".region.json")


def read_region_summary(listing_path: Path) -> dict[str, Any] | None:
    """The year's region summary (:func:`region_summary_path`), or None for a listing of the globe."""
    try:
        return json.loads(region_summary_path(listing_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def read_listing(path: str | Path) -> pd.DataFrame:
    """A year's listing as written by :func:`build_year_listing` (times kept as ISO strings: cheap to parse)."""
    listing = pd.read_csv(path, dtype=str, keep_default_na=False)
    return listing.rename(columns={catalogue.OLD_VERSION_COLUMN: "catalogue_product_version"})


def listed_region(layout: Layout, day: date) -> tuple[str | None, str] | None:
    """The region a day was listed for, as (fingerprint, description); (None, "the globe") for none; None when
    the day is not listed yet."""
    try:
        info = json.loads(layout.day_manifest_info(day).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    region = info.get("region") or {}
    return region.get("fingerprint"), str(region.get("description") or "the globe")


def region_notice(plan: RunPlan, region: Region | None) -> str | None:
    """One line for the start of a run whose years were listed for another region: unsealed years are listed
    again (granules already extracted are not downloaded again); sealed years keep their archives. Reads the
    info file of each year's first day only."""
    fingerprint = region.fingerprint if region else None
    relisted, sealed, before = [], [], ""
    for year, year_plan in sorted(plan.years.items()):
        listed = listed_region(plan.layout, year_plan.first_day)
        if listed is None or listed[0] == fingerprint:
            continue
        before = listed[1]
        (sealed if plan.is_sealed(year) else relisted).append(str(year))
    if not relisted and not sealed:
        return None
    now = region.description if region else "the globe"
    parts = [f"the region is now {now}; days were listed for {before}"]
    if relisted:
        parts.append(
            f"{', '.join(relisted)} are listed again (one catalogue request per day) and their granules collected "
            "for it: swaths of whole granules serve any region, swaths cropped to another are made again (one "
            "download each)"
        )
    if sealed:
        parts.append(
            f"the archives of {', '.join(sealed)} (sealed) keep the granules they hold; delete an archive to collect "
            "its year for the new region (docs/configuration.md#regions)"
        )
    return "; ".join(parts)
