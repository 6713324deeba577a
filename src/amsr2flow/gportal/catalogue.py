"""G-Portal catalogue: search a day, guard the paging, and turn records into a day manifest.

``gportal`` 0.4.0 is used for what it does well (building the query, ``Product`` type conversion and
accessors). What it lacks is wrapped here rather than forked: a configurable endpoint (its ``BASE_URL`` and the
``/csw/csw`` path are fixed, the current service lives at ``https://csw.gportal.jaxa.jp/csw``), a check that
the answer is JSON (maintenance pages are HTML), and a paging guard (its pager loops forever on an empty early
page).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import gportal
import pandas as pd
import requests
import tenacity
from gportal.search import Search

from .backoff import exponential_backoff

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "granule_id",
    "begin_utc",
    "end_utc",
    "orbit_direction",
    "path_number",
    "remote_path",
    "size_bytes",
    "catalogue_product_version",  # the catalogue's product.version ("2"); swaths keep the file name's digits
    "dataset_id",
    "generation",
]

#: What manifests written before the rename call the catalogue's product version (read as the new name).
OLD_VERSION_COLUMN = "product_version"

LEGACY_DOWNLOAD_PREFIX = "https://gportal.jaxa.jp/download/"
CURRENT_PRODUCT_MARKER = "/Standard/"


class CatalogueError(RuntimeError):
    """The catalogue could not be read; a day must never be recorded as empty because of it."""

    transient = True


class CatalogueUnavailable(CatalogueError):
    """HTTP 5xx, a maintenance page, a timeout or a dropped connection: worth retrying later."""


class CataloguePagingError(CatalogueError):
    """The catalogue's pages are inconsistent (empty early page, repeated page): paging stopped."""


class CatalogueRecordError(CatalogueError):
    """A record cannot be understood (unknown fileName form, missing fields)."""

    transient = False


@dataclass(frozen=True)
class DaySearchResult:
    manifest: pd.DataFrame
    matched: int  # the catalogue's numberOfRecordsMatched for the day's window
    returned: int  # records received over all pages (before filtering and de-duplication)
    duplicates: int  # records received more than once
    outlines: Mapping[str, str] = field(default_factory=dict)  # granule_id -> the record's multiExtentOf text


#: Tries of one catalogue request (and of an empty early page) before the day's listing gives up; a failure
#: late in a long listing then costs one request again, not the whole day.
REQUEST_ATTEMPTS = 3


class CatalogueSearch(Search):
    """``gportal.search.Search`` pointed at any catalogue URL, with JSON checks, per-request retries and a
    paging guard."""

    def __init__(
        self,
        params: Mapping[str, Any],
        *,
        url: str,
        timeout: float,
        session: requests.Session,
        request_attempts: int = REQUEST_ATTEMPTS,
    ):
        super().__init__(params, timeout=timeout)
        self.url = url
        self.session = session
        self._retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(CatalogueUnavailable),
            stop=tenacity.stop_after_attempt(request_attempts),
            wait=exponential_backoff(0.5, 5),
            before_sleep=lambda rs: log.warning("catalogue request failed (%s); retrying", rs.outcome.exception()),
            reraise=True,
        )
        self.request_attempts = request_attempts

    def _request(self, extra_params: dict[str, Any]) -> dict[str, Any]:
        return self._retrying(self._request_once, extra_params)

    def _request_once(self, extra_params: dict[str, Any]) -> dict[str, Any]:
        params = {
            **self.params,
            "service": "CSW",
            "version": "3.0.0",
            "request": "GetRecords",
            "outputFormat": "application/json",
            **extra_params,
        }
        try:
            response = self.session.get(self.url, params=params, timeout=self.timeout)
        except requests.Timeout as exc:
            raise CatalogueUnavailable(f"catalogue {self.url} did not answer within {self.timeout} s") from exc
        except requests.ConnectionError as exc:
            if _unresolvable(exc):
                raise CatalogueUnavailable(
                    f"the host name of the catalogue {self.url} cannot be resolved from this machine: no DNS or no "
                    "internet here? On a cluster, run where the internet is reachable (docs/hpc.md)"
                ) from exc
            raise CatalogueUnavailable(f"catalogue {self.url} could not be reached: {exc}") from exc
        if response.status_code >= 500:
            raise CatalogueUnavailable(f"catalogue {self.url} answered HTTP {response.status_code} (server side)")
        if response.status_code >= 400:
            raise CatalogueError(
                f"catalogue {self.url} refused the query with HTTP {response.status_code}: {response.text[:200]}"
            )
        try:
            body = response.json()
        except ValueError as exc:
            kind = response.headers.get("Content-Type", "unknown content type")
            raise CatalogueUnavailable(
                f"catalogue {self.url} answered {kind} instead of JSON (a maintenance page?)"
            ) from exc
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            raise CatalogueUnavailable(f"catalogue {self.url} answered JSON without the 'properties' counts")
        return body

    def pages(self) -> Iterator[dict[str, Any]]:
        """Pages like ``gportal``'s pager, but ends with an error instead of looping on a bad page."""
        start_index = 1
        seen_first_ids: set[str] = set()
        while True:
            for _ in range(self.request_attempts):  # bounded: an empty early page is asked again, not forever
                page = self._request({"startIndex": start_index})
                props = page["properties"]
                returned = int(props.get("numberOfRecordsReturned", 0))
                matched = int(props.get("numberOfRecordsMatched", 0))
                if returned or start_index > matched:
                    break
                log.warning(
                    "catalogue returned an empty page at startIndex=%d of %d; asking again", start_index, matched
                )
            if returned == 0 and start_index <= matched:
                raise CataloguePagingError(
                    f"catalogue returned an empty page at startIndex={start_index} of {matched} matches, "
                    f"{self.request_attempts} times"
                )
            first_id = _first_identifier(page)
            if first_id is not None and first_id in seen_first_ids:
                raise CataloguePagingError(f"catalogue repeated a page (record {first_id}) at startIndex={start_index}")
            if first_id is not None:
                seen_first_ids.add(first_id)
            yield page
            start_index += returned
            if start_index > matched:
                break


def _unresolvable(exc: BaseException) -> bool:
    """Whether a connection error comes from a host name that does not resolve (urllib3 wraps the gaierror)."""
    pending: list[object] = [exc]
    seen: set[int] = set()
    while pending:
        error = pending.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, socket.gaierror) or type(error).__name__ == "NameResolutionError":
            return True
        pending += [error.__cause__, error.__context__, getattr(error, "reason", None), *error.args]
    return False


def _first_identifier(page: Mapping[str, Any]) -> str | None:
    features = page.get("features") or []
    if not features:
        return None
    return (features[0].get("properties") or {}).get("identifier")


def map_remote_path(file_name: str) -> str:
    """The SFTP path of a product from its catalogue ``product.fileName``, for either generation.

    Legacy: ``https://gportal.jaxa.jp/download/standard/...`` -> ``standard/...`` (what ``gportal`` does).
    Current: ``product.gportal.jaxa.jp:/products/Standard/X`` -> ``/product/Standard/X`` (the catalogue's form
    is not an SFTP path).
    """
    if file_name.startswith(LEGACY_DOWNLOAD_PREFIX):
        return file_name[len(LEGACY_DOWNLOAD_PREFIX) :]
    if CURRENT_PRODUCT_MARKER in file_name and not file_name.startswith("http"):
        return "/product/Standard/" + file_name.split(CURRENT_PRODUCT_MARKER, 1)[1]
    raise CatalogueRecordError(
        f"product.fileName {file_name!r} has neither the legacy nor the current G-Portal form; check the source setting"
    )


def _utc(value: str) -> pd.Timestamp:
    return pd.Timestamp(value.replace("Z", "+00:00")).tz_convert("UTC")


def product_row(product: gportal.Product, generation: str) -> dict[str, Any]:
    """One manifest row from a catalogue product (``convert_types=False``: values are the raw strings)."""
    props = product.properties
    try:
        file_name = props["product"]["fileName"]
        row = {
            "granule_id": props["identifier"],
            "begin_utc": _utc(props["beginPosition"]),
            "end_utc": _utc(props["endPosition"]),
            "orbit_direction": str(product["orbitDirection"])[:1].upper() or "U",
            "path_number": int(product["startPathNumber"]),
            "remote_path": map_remote_path(file_name),
            "size_bytes": int(props["product"]["size"]),
            "catalogue_product_version": str(props["product"].get("version", "")),
            "dataset_id": str(product.get("datasetId", "")),
            "generation": generation,
        }
    except (KeyError, TypeError, ValueError) as exc:
        ident = props.get("identifier", "?")
        raise CatalogueRecordError(f"catalogue record {ident} lacks or garbles a field: {exc!r}") from exc
    return row


def search_day(
    day: date,
    *,
    dataset_id: str,
    catalogue_url: str,
    generation: str,
    timeout: float,
    page_size: int = 100,
    session: requests.Session | None = None,
    bbox: tuple[float, float, float, float] | None = None,
) -> DaySearchResult:
    """All granules that *begin* on ``day`` (UTC), de-duplicated, checked against the match count; with
    ``bbox`` (lon_min, lat_min, lon_max, lat_max), those the catalogue says cross it.

    The catalogue filters by intersection, so the window's neighbours come back too; they are dropped here.
    Raises :class:`CatalogueError` on any failure: an empty manifest always means "no observation".
    """
    search = _search(*_day_window(day), dataset_id, catalogue_url, timeout, page_size, session, bbox)
    matched = search.matched()
    rows: dict[str, dict[str, Any]] = {}
    outlines: dict[str, str] = {}
    returned = duplicates = 0
    if matched:
        for product in search.products(convert_types=False):
            returned += 1
            row = product_row(product, generation)
            if row["granule_id"] in rows:
                duplicates += 1
                continue
            rows[row["granule_id"]] = row
            outlines[row["granule_id"]] = str(product.properties.get("multiExtentOf") or "")
    if returned - duplicates != (matched or 0):
        raise CatalogueError(
            f"{day}: catalogue matched {matched} records but {returned - duplicates} distinct ones arrived "
            f"({duplicates} duplicates); the listing changed while paging, try again later"
        )
    frame = pd.DataFrame(list(rows.values()), columns=MANIFEST_COLUMNS)
    day_start = pd.Timestamp(_day_window(day)[0])
    frame = frame[(frame["begin_utc"] >= day_start) & (frame["begin_utc"] < day_start + pd.Timedelta(days=1))]
    frame = frame.sort_values(["begin_utc", "granule_id"]).reset_index(drop=True)
    outlines = {g: outlines[g] for g in frame["granule_id"]}
    return DaySearchResult(frame, int(matched or 0), returned, duplicates, outlines)


def count_day(
    day: date,
    *,
    dataset_id: str,
    catalogue_url: str,
    timeout: float,
    session: requests.Session | None = None,
) -> int:
    """How many granules begin on ``day``, for the whole globe, from two match counts (no records).

    The catalogue matches records that intersect a window, so the day's window also counts the granule that
    began the day before and runs past midnight; the records that intersect the day before's last millisecond
    are those, and are taken away. For telling a user how many a region left out, never for deciding what is
    missing."""
    window_start, window_end = _day_window(day)
    before = window_start - timedelta(milliseconds=1)
    args = (dataset_id, catalogue_url, timeout, 1, session, None)
    in_window = _search(window_start, window_end, *args).matched() or 0
    across_midnight = _search(before, before, *args).matched() or 0
    return max(int(in_window) - int(across_midnight), 0)


def bbox_text(bbox: tuple[float, float, float, float]) -> list[str]:
    """The box's numbers as sent: exact (``repr``), so that no edge is rounded inwards."""
    return [repr(float(v)) for v in bbox]


def _day_window(day: date) -> tuple[datetime, datetime]:
    """The first and last millisecond of ``day`` (UTC)."""
    start = datetime.combine(day, time(0), tzinfo=timezone.utc)
    return start, start + timedelta(days=1) - timedelta(milliseconds=1)


def _search(
    start: datetime,
    end: datetime,
    dataset_id: str,
    catalogue_url: str,
    timeout: float,
    page_size: int,
    session: requests.Session | None,
    bbox: tuple[float, float, float, float] | None,
) -> CatalogueSearch:
    """A search of the records that intersect ``start``..``end`` (both inclusive, to the millisecond)."""
    base = gportal.search(
        dataset_ids=[dataset_id],
        bbox=bbox_text(bbox) if bbox is not None else None,
        start_time=start.strftime("%Y-%m-%dT%H:%M:%S.") + f"{start.microsecond // 1000:03d}Z",
        end_time=end.strftime("%Y-%m-%dT%H:%M:%S.") + f"{end.microsecond // 1000:03d}Z",
        count=page_size,
        timeout=timeout,
    )
    return CatalogueSearch(base.params, url=catalogue_url, timeout=timeout, session=session or requests.Session())


# -- manifest files -----------------------------------------------------------------------------------------
def iso_ms(t: pd.Timestamp) -> str:
    """``2024-01-01T00:16:06.777Z``: the catalogue's own form (UTC, cut to the millisecond, as
    ``formats.l1b.utc_iso_ms`` writes granule times)."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def manifest_to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """Deterministic CSV text of a manifest (ISO times with milliseconds, fixed column order)."""
    out = frame.copy()
    for col in ("begin_utc", "end_utc"):
        out[col] = [iso_ms(t) for t in out[col]]
    return out[MANIFEST_COLUMNS].to_csv(index=False, lineterminator="\n").encode("utf-8")


def read_manifest(path: str) -> pd.DataFrame:
    columns = ("granule_id", "remote_path", "catalogue_product_version", OLD_VERSION_COLUMN, "dataset_id")
    text = dict.fromkeys(columns, str)
    frame = pd.read_csv(path, dtype=text).rename(columns={OLD_VERSION_COLUMN: "catalogue_product_version"})
    for col in ("begin_utc", "end_utc"):
        frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
    return frame
