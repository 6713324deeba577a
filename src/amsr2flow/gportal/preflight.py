"""One login before any job starts: wrong credentials or a changed host key stop the run at once.

Without it, every granule job would discover the same refusal on its own (140,000 times for the full record).
The check opens one SFTP session (host key first, then login), asks the catalogue for one day's granules, and
finds where one of them is on the server (``remote_layout``): a service whose tree differs from what the
catalogue says stops the run here, or is adapted to, instead of turning every granule into "absent".
Transient failures are retried a few times; what remains is reported as one message naming the problem.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import requests
import tenacity

from ..config import timeouts_from
from ..plan import day_mission
from . import catalogue, remote_layout
from .backoff import exponential_backoff
from .sftp import AuthenticationRefused, FatalTransferError, GPortalSFTP, NetworkUnreachable, TransientTransferError
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


@dataclass(frozen=True)
class RemoteLayoutChoice:
    """The remote path template a run uses, and how the preflight settled on it."""

    template: str
    how: str  # "configured" (remote_path_template), "mapped" (the catalogue's file name) or "discovered"
    probe_granule: str
    mapped_path: str  # where the catalogue's file name maps to
    path: str  # where the probe granule is under ``template``
    requests: int  # SFTP requests the check took
    note: str = ""

    def summary(self) -> str:
        where = {
            "configured": "as configured in remote_path_template",
            "mapped": "where the catalogue's file names say",
            "discovered": (
                f"found by looking, in {self.requests} SFTP requests (the catalogue's file names map to "
                f"{self.mapped_path}, which does not exist)"
            ),
        }[self.how]
        text = f"granules are at {self.template}: {where}; e.g. {self.path}"
        return f"{text}. {self.note}" if self.note else text

    def to_json(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "how": self.how,
            "probe_granule": self.probe_granule,
            "mapped_path": self.mapped_path,
            "path": self.path,
            "requests": self.requests,
            "note": self.note,
        }


class LayoutNotFound(PreflightError):
    """No plausible layout holds a catalogued granule: the path mapping (or the service) is not what we know."""

    def __init__(self, message: str):
        super().__init__(message, fatal=True)


def find_remote_layout(session: GPortalSFTP, mapped_path: str, configured: str | None = None) -> RemoteLayoutChoice:
    """Where the granule the catalogue maps to ``mapped_path`` is: the configured template (checked, never
    second-guessed), else the mapped path, else the one plausible layout that holds it. Raises
    :class:`LayoutNotFound` with what was tried and what the nearest existing folder holds."""
    location = remote_layout.locate(mapped_path)
    mapped = remote_layout.template_of(mapped_path)
    templates = [configured] if configured else remote_layout.candidate_templates(mapped)
    found = remote_layout.discover(location, templates, exists=session.exists, list_names=session.list_names)
    how = "configured" if configured else "mapped"
    if found.template is not None:
        if not configured and found.template != mapped:
            how = "discovered"
        note = ""
        if len(found.found) > 1:
            note = f"{len(found.found)} layouts hold it; the first tried is used"
        return RemoteLayoutChoice(
            found.template, how, location.file_name, mapped_path, location.render(found.template), found.requests, note
        )
    first_folder = posixpath.dirname(found.tried[0][1])
    if found.nearest_folder == first_folder:
        # The folder is there, the file is not: a granule that is absent (or must be ordered first: files older
        # than ~2.5 years may need a web request), not a wrong layout. The absence breaker watches the rest.
        return RemoteLayoutChoice(
            templates[0],
            how,
            location.file_name,
            mapped_path,
            location.render(templates[0]),
            found.requests,
            note=(
                "The probe granule itself is not on the server although its folder is (it may have to be "
                "ordered on the G-Portal web site first)"
            ),
        )
    key = "remote_path_template"
    if configured:
        raise LayoutNotFound(
            f"the configured {key} {configured!r} does not hold {location.file_name} "
            f"({found.tried[0][1]}); the nearest existing folder, {found.nearest_folder or '/'}, holds: "
            f"{', '.join(found.nearest_names[: remote_layout.MAX_NAMES_SHOWN]) or 'nothing'}. Fix {key} or remove it "
            "to let the workflow look for the layout"
        )
    raise LayoutNotFound(found.failure_message(key))


def check_service(cfg: Mapping[str, Any], source: Source, *, probe_days: Sequence[date]) -> RemoteLayoutChoice | None:
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
    timeouts = timeouts_from(cfg)
    sessions: list[GPortalSFTP] = []

    def session() -> GPortalSFTP:
        if not sessions or sessions[-1].sftp is None:
            sessions.append(_login(source, timeouts))
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


def _login(source: Source, timeouts: Timeouts) -> GPortalSFTP:
    """An open, logged-in session; a refused login is tried once more (sporadic refusals happen)."""
    for refusals in range(LOGIN_REFUSALS_TOLERATED + 1):
        session = GPortalSFTP(source, timeouts)
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
