"""One login before any job starts: wrong credentials or a changed host key stop the run at once.

Without it, every granule job would discover the same refusal on its own (140,000 times for the full record).
The check opens one SFTP session (host key first, then login) and asks the catalogue for one day's count.
Transient failures are retried a few times; what remains is reported as one message naming the problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import requests
import tenacity

from ..config import timeouts_from
from ..mission import DATASETS
from . import catalogue
from .backoff import exponential_backoff
from .sftp import AuthenticationRefused, FatalTransferError, GPortalSFTP, TransientTransferError
from .source import Source, Timeouts

PREFLIGHT_ATTEMPTS = 3
#: A refused login is tried twice: once more in case the server refused it sporadically, no more, so wrong
#: credentials cost two connection attempts.
LOGIN_REFUSALS_TOLERATED = 1


class PreflightError(RuntimeError):
    """The service cannot be used; ``fatal`` says whether a retry later could help."""

    def __init__(self, message: str, *, fatal: bool):
        super().__init__(message)
        self.fatal = fatal


def check_service(cfg: Mapping[str, Any], source: Source, *, probe_day: date) -> None:
    """Raise :class:`PreflightError` unless one SFTP login and one catalogue request succeed."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((TransientTransferError, catalogue.CatalogueUnavailable)),
        stop=tenacity.stop_after_attempt(PREFLIGHT_ATTEMPTS),
        wait=exponential_backoff(min(cfg["transfer"]["backoff_initial_s"], 5), 10),
        reraise=True,
    )
    try:
        retrying(_login, source, timeouts_from(cfg))
    except FatalTransferError as exc:
        raise PreflightError(str(exc), fatal=True) from exc
    except TransientTransferError as exc:
        raise PreflightError(
            f"the SFTP server {source.sftp_host}:{source.sftp_port} is not usable after {PREFLIGHT_ATTEMPTS} "
            f"tries ({exc}); G-Portal may be down or overloaded: rerun later",
            fatal=False,
        ) from exc
    try:
        retrying(_catalogue_probe, cfg, source, probe_day)
    except catalogue.CatalogueError as exc:
        raise PreflightError(
            f"the catalogue {source.catalogue_url} is not usable ({exc}); rerun later", fatal=False
        ) from exc


def _login(source: Source, timeouts: Timeouts) -> None:
    for refusals in range(LOGIN_REFUSALS_TOLERATED + 1):
        try:
            with GPortalSFTP(source, timeouts):
                return
        except AuthenticationRefused:
            if refusals == LOGIN_REFUSALS_TOLERATED:
                raise


def _catalogue_probe(cfg: Mapping[str, Any], source: Source, day: date) -> None:
    search = catalogue.CatalogueSearch(
        {
            "datasetId": DATASETS[cfg["dataset"]].dataset_id,
            "startTime": f"{day}T00:00:00.000Z",
            "endTime": f"{day}T23:59:59.999Z",
            "count": 1,
        },
        url=source.catalogue_url,
        timeout=cfg["transfer"]["catalogue_timeout_s"],
        session=requests.Session(),
    )
    search.matched()
