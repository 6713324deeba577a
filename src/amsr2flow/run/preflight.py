"""One login before any job starts: wrong credentials or a changed host key stop the run at once.

Without it, every granule job would discover the same refusal on its own (140,000 times for the full record).
The check opens one SFTP session (host key first, then login), asks the catalogue for one day's granules, and
finds where one of them is on the server (``gportal.remote_layout``): a service whose tree differs from what
the catalogue says stops the run here, or is adapted to, instead of turning every granule into "absent".
Transient failures are retried a few times; what remains is reported as one message naming the problem.

The template found is recorded for the run (:func:`record_choice`); the day jobs and reports read it back
(:func:`run_template`, :func:`recorded_choice`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import requests
import tenacity

from .. import atomic
from ..gportal import catalogue
from ..gportal.backoff import exponential_backoff
from ..gportal.remote_layout import LayoutNotFound, RemoteLayoutChoice, find_remote_layout
from ..gportal.sftp import (
    AuthenticationRefused,
    Connection,
    FatalTransferError,
    GPortalSFTP,
    NetworkUnreachable,
    TransientTransferError,
)
from ..gportal.source import Source
from ..plan import day_mission

PREFLIGHT_ATTEMPTS = 3
#: A refused login is tried twice: once more in case the server refused it sporadically, no more, so wrong
#: credentials cost two connection attempts.
LOGIN_REFUSALS_TOLERATED = 1


class PreflightError(RuntimeError):
    """The service cannot be used; ``fatal`` says whether a retry later could help."""

    def __init__(self, message: str, *, fatal: bool):
        super().__init__(message)
        self.fatal = fatal


def check_service(
    cfg: Mapping[str, Any], connection: Connection, *, probe_days: Sequence[date]
) -> RemoteLayoutChoice | None:
    """One SFTP login, one catalogued granule of the probe days, and where that granule is on the server.

    Raises :class:`PreflightError` when the service cannot be used; returns ``None`` when the probe days list no
    granule (nothing to look for: the absence breaker guards the run).
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((TransientTransferError, catalogue.CatalogueUnavailable)),
        stop=tenacity.stop_after_attempt(PREFLIGHT_ATTEMPTS),
        wait=exponential_backoff(min(cfg["transfer"]["backoff_initial_s"], 5), 10),
        reraise=True,
    )
    source = connection.source
    sessions: list[GPortalSFTP] = []

    def session() -> GPortalSFTP:
        if not sessions or sessions[-1].sftp is None:
            sessions.append(_login(connection))
        return sessions[-1]

    try:
        try:
            retrying(session)
        except FatalTransferError as exc:
            raise PreflightError(str(exc), fatal=True) from exc
        except TransientTransferError as exc:
            raise PreflightError(_unusable(source, exc), fatal=False) from exc
        try:
            probe = retrying(_probe_granule, cfg, source, probe_days)
        except catalogue.CatalogueError as exc:
            raise PreflightError(
                f"the catalogue {source.catalogue_url} is not usable ({exc}); rerun later", fatal=False
            ) from exc
        if probe is None:
            return None
        try:
            return retrying(lambda: find_remote_layout(session(), probe, cfg.get("remote_path_template")))
        except LayoutNotFound as exc:
            raise PreflightError(str(exc), fatal=True) from exc
        except TransientTransferError as exc:
            raise PreflightError(_unusable(source, exc), fatal=False) from exc
    finally:
        for s in sessions:
            s.close()


def _unusable(source: Source, exc: TransientTransferError) -> str:
    if isinstance(exc, NetworkUnreachable):
        return f"G-Portal's SFTP server cannot be reached from this machine: {exc}"
    return (
        f"the SFTP server {source.sftp_host}:{source.sftp_port} is not usable after {PREFLIGHT_ATTEMPTS} "
        f"tries ({exc}); G-Portal may be down or overloaded: rerun later"
    )


def _login(connection: Connection) -> GPortalSFTP:
    """An open, logged-in session; a refused login is tried once more (sporadic refusals happen)."""
    for refusals in range(LOGIN_REFUSALS_TOLERATED + 1):
        session = connection.session()
        try:
            session.connect()
            return session
        except AuthenticationRefused:
            session.close()
            if refusals == LOGIN_REFUSALS_TOLERATED:
                raise
    raise AssertionError("unreachable")


def _probe_granule(cfg: Mapping[str, Any], source: Source, days: Sequence[date]) -> str | None:
    """The mapped remote path of the last granule listed on the first of ``days`` that lists any."""
    for day in days:
        mission = day_mission(cfg, day)
        if mission is None:
            continue
        result = catalogue.search_day(
            day,
            dataset_id=mission.dataset_id,
            catalogue_url=source.catalogue_url,
            generation=source.generation,
            timeout=cfg["transfer"]["catalogue_timeout_s"],
            page_size=cfg["catalogue"]["page_size"],
            session=requests.Session(),
        )
        if len(result.manifest):
            return str(result.manifest.iloc[-1]["remote_path"])
    return None


def probe_days(days: Sequence[date], today: date) -> list[date]:
    """Days to take the probe granule from: the run's most recent day up to today (recent files are served
    without ordering), then its first day."""
    last = min(days[-1], today)
    return list(dict.fromkeys([last, days[0]]))


# -- the run's record of where granules are -------------------------------------------------------------------
def record_choice(path: Path, choice: RemoteLayoutChoice | None) -> None:
    """Write the preflight's choice for the run's jobs (``None``: nothing was probed; keep what an earlier run
    found, or the mapping)."""
    if choice is not None:
        atomic.write_json(path, choice.to_json())


def recorded_choice(path: Path) -> dict[str, Any] | None:
    """The choice recorded by the run's preflight, or ``None``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("template"), str) else None


def run_template(path: Path, configured: str | None) -> str | None:
    """The template granule jobs use: the configured one, else the preflight's, else ``None`` (the mapping)."""
    if configured:
        return configured
    recorded = recorded_choice(path)
    return recorded["template"] if recorded else None
