"""Where G-Portal keeps a granule on SFTP: a path template, and finding the template from one real file.

The catalogue's ``product.fileName`` says where a granule lives, but not reliably: the current service's form
is not an SFTP path at all (``product.gportal.jaxa.jp:/products/Standard/...``), whether its tree has a day
level for AMSR2 is not confirmed, and the legacy tree had none. So the workflow does not trust the mapping
blindly: before any granule job, the preflight ``stat``s one catalogued granule at its mapped path and, when it
is not there, tries the plausible layouts (:func:`candidate_templates`) within a small bounded number of
requests. A layout that holds the file is used for the whole run; when none does, the run stops with one
message naming what was tried and what the nearest existing folder holds.

A template has the fields ``{product_dir}`` (e.g. ``GCOM-W/GCOM-W.AMSR2/L1B/2``), ``{year}``, ``{month}``,
``{day}`` (zero-padded, of the granule's observation start) and ``{file_name}``.
"""

from __future__ import annotations

import posixpath
import re
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

TEMPLATE_FIELDS = ("product_dir", "year", "month", "day", "file_name")
CURRENT_TEMPLATE = "/product/Standard/{product_dir}/{year}/{month}/{day}/{file_name}"
LEGACY_TEMPLATE = "standard/{product_dir}/{year}/{month}/{file_name}"
#: Roots a G-Portal tree has been seen under or could plausibly use (current, legacy, case variants).
PLAUSIBLE_ROOTS = ("/product/Standard", "standard", "/standard", "/product/standard", "/Standard")
#: Most folders listed while looking for the nearest existing one (a granule path is ~10 folders deep), and
#: most names quoted from it.
MAX_LISTINGS = 12
MAX_NAMES_SHOWN = 8

_DATE_FOLDERS = re.compile(r"^(?P<product_dir>.+?)/(?P<year>\d{4})/(?P<month>\d{2})(?:/(?P<day>\d{2}))?/[^/]+$")
_START_IN_NAME = re.compile(r"_(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})\d{4}_")


class SftpLookups(Protocol):
    """What layout discovery asks of an SFTP session (``gportal.sftp.GPortalSFTP`` has both)."""

    def exists(self, remote_path: str) -> bool: ...

    def list_names(self, folder: str) -> list[str] | None: ...


class RemoteLayoutError(ValueError):
    """A path template or a remote path that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class GranuleLocation:
    """The parts of a granule's remote path that any layout is built from."""

    product_dir: str
    year: str
    month: str
    day: str
    file_name: str

    def render(self, template: str) -> str:
        return template.format(**{f: getattr(self, f) for f in TEMPLATE_FIELDS})


def check_template(template: str) -> str:
    """``template`` if it names only known fields and ends with the file name; else :class:`RemoteLayoutError`."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise RemoteLayoutError(f"{template!r} is not a path template ({exc})") from exc
    unknown = sorted(set(names) - set(TEMPLATE_FIELDS))
    if unknown:
        known = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
        raise RemoteLayoutError(f"{template!r} uses unknown field(s) {', '.join(unknown)}; use {known}")
    if not template.endswith("{file_name}"):
        raise RemoteLayoutError(f"{template!r} must end with {{file_name}}")
    if "{product_dir}" not in template:
        raise RemoteLayoutError(f"{template!r} must contain {{product_dir}} (e.g. GCOM-W/GCOM-W.AMSR2/L1B/2)")
    return template


def locate(remote_path: str) -> GranuleLocation:
    """Split a mapped remote path (either generation's) into product folder, date folders and file name.

    The date comes from the folders when they are there, else from the file name's observation start.
    """
    path = remote_path.lstrip("/")
    for root in sorted(PLAUSIBLE_ROOTS, key=len, reverse=True):
        prefix = root.strip("/") + "/"
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    file_name = posixpath.basename(path)
    match = _DATE_FOLDERS.match(path)
    start = _START_IN_NAME.search(file_name)
    if match is None or start is None:
        raise RemoteLayoutError(
            f"{remote_path!r} is not a granule path like <root>/<product dir>/YYYY/MM[/DD]/<granule>.h5"
        )
    return GranuleLocation(
        product_dir=match["product_dir"],
        year=start["year"],
        month=start["month"],
        day=start["day"],
        file_name=file_name,
    )


def template_of(remote_path: str) -> str:
    """The template that gives back ``remote_path`` (its root, and whether it has a day level)."""
    location = locate(remote_path)
    root, _, rest = remote_path.partition("/" + location.product_dir + "/")
    if not rest:  # a relative path whose root is the product folder's first component
        root, _, rest = remote_path.partition(location.product_dir + "/")
        root = root.rstrip("/")
    day_level = rest.count("/") == 3
    tail = "{year}/{month}/{day}/{file_name}" if day_level else "{year}/{month}/{file_name}"
    return f"{root}/{{product_dir}}/{tail}"


def apply_template(remote_path: str, template: str | None) -> str:
    """Where ``remote_path`` (as mapped from the catalogue) lives under ``template`` (unchanged for None)."""
    return locate(remote_path).render(template) if template else remote_path


def candidate_templates(mapped_template: str) -> list[str]:
    """The layouts to try, most plausible first: the mapped one, then with/without the day level, then other
    roots (each with and without the day level). Bounded: at most ``2 * len(PLAUSIBLE_ROOTS)`` entries."""
    day_forms = ("{year}/{month}/{day}/{file_name}", "{year}/{month}/{file_name}")
    out = [mapped_template]
    for root in PLAUSIBLE_ROOTS:
        for tail in day_forms:
            candidate = f"{root}/{{product_dir}}/{tail}"
            if candidate not in out:
                out.append(candidate)
    return out


@dataclass
class Discovery:
    """What looking for a granule found: the layouts that hold it, and what was seen on the way."""

    granule: str
    tried: list[tuple[str, str]] = field(default_factory=list)  # (template, path) in the order tried
    found: list[str] = field(default_factory=list)  # templates whose path holds the file
    nearest_folder: str = ""
    nearest_names: list[str] = field(default_factory=list)
    requests: int = 0

    @property
    def template(self) -> str | None:
        return self.found[0] if self.found else None

    def failure_message(self, config_key: str) -> str:
        names = ", ".join(self.nearest_names[:MAX_NAMES_SHOWN]) or "nothing"
        more = " ..." if len(self.nearest_names) > MAX_NAMES_SHOWN else ""
        first_path = self.tried[0][1] if self.tried else "?"
        nearest = (
            f"the nearest existing folder, {self.nearest_folder}, holds: {names}{more}"
            if self.nearest_folder
            else "no folder above it could be listed"
        )
        return (
            f"the SFTP server does not hold {self.granule} at {first_path} (where the catalogue's file name "
            f"maps to), nor under any of {len(self.tried) - 1} other plausible layouts; {nearest}. If you know "
            f"where G-Portal keeps these files, set {config_key} (fields {{product_dir}} {{year}} {{month}} "
            f"{{day}} {{file_name}}), e.g. {CURRENT_TEMPLATE!r}"
        )


def discover(
    location: GranuleLocation,
    templates: Sequence[str],
    *,
    exists: Callable[[str], bool],
    list_names: Callable[[str], Iterable[str] | None],
) -> Discovery:
    """Try the first template's path for the granule (``exists``); when it does not hold it, try every other one.
    When none does, list the folders above the first path upwards (``list_names`` returns ``None`` for no such
    folder) to say what is there. Requests: 1 when the first holds it, at most ``len(templates) + MAX_LISTINGS``."""
    found = Discovery(granule=location.file_name)
    for number, template in enumerate(templates):
        path = location.render(template)
        found.tried.append((template, path))
        found.requests += 1
        if exists(path):
            found.found.append(template)
            if number == 0:
                return found
    if found.found:
        return found
    folder = posixpath.dirname(found.tried[0][1]) or "/"
    for _ in range(MAX_LISTINGS):
        found.requests += 1
        names = list_names(folder)
        if names is not None:
            found.nearest_folder = folder
            found.nearest_names = sorted(names)
            break
        if folder in ("/", "."):
            break
        folder = posixpath.dirname(folder) or "/"
    return found


# -- the run's choice, shared by its jobs -------------------------------------------------------------------------


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


class LayoutNotFound(RemoteLayoutError):
    """No plausible layout holds a catalogued granule: the path mapping (or the service) is not what we know."""


def find_remote_layout(session: SftpLookups, mapped_path: str, configured: str | None = None) -> RemoteLayoutChoice:
    """Where the granule the catalogue maps to ``mapped_path`` is: the configured template (checked, never
    second-guessed), else the mapped path, else the one plausible layout that holds it. Raises
    :class:`LayoutNotFound` with what was tried and what the nearest existing folder holds."""
    location = locate(mapped_path)
    mapped = template_of(mapped_path)
    templates = [configured] if configured else candidate_templates(mapped)
    found = discover(location, templates, exists=session.exists, list_names=session.list_names)
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
            f"{', '.join(found.nearest_names[:MAX_NAMES_SHOWN]) or 'nothing'}. Fix {key} or remove it "
            "to let the workflow look for the layout"
        )
    raise LayoutNotFound(found.failure_message(key))
