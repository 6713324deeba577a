"""Fault injection: the spec a user writes, and the deterministic decisions the servers take from it.

Every random choice is a hash of ``(seed, what, key)`` rather than a draw from a shared generator, so the
same spec gives the same faults regardless of thread scheduling or of which requests came first:
- catalogue faults are drawn per catalogue request (key: the request's sequence number);
- connection faults (banner, authentication refusal) per SFTP connection (key: its sequence number);
- granule faults per granule (key: the granule id), so a granule is either affected or not, run after run.

Transient granule faults (reset, stall, truncated, corrupted) hit the first ``times`` read-opens of the
granule each, in the order listed, so a client that retries eventually gets the good file; ``absent`` is
permanent. See ``docs/local-gportal.md`` for the user-facing description.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CATALOGUE_FAULTS = ("http_503", "html_maintenance", "empty_page", "duplicate_records")
CONNECTION_FAULTS = ("ssh_banner", "auth_refusal")
TRANSIENT_GRANULE_FAULTS = ("connection_reset", "stall", "truncated", "corrupted")
PERMANENT_GRANULE_FAULTS = ("absent",)
GRANULE_FAULTS = TRANSIENT_GRANULE_FAULTS + PERMANENT_GRANULE_FAULTS
FAULT_NAMES = CATALOGUE_FAULTS + CONNECTION_FAULTS + GRANULE_FAULTS

#: Faults that only make sense on a page of records (not on a count=0 "how many?" request).
PAGE_FAULTS = ("empty_page", "duplicate_records")

SPEC_KEYS = ("seed", "rates", "stall_seconds", "bandwidth_bytes_per_s", "max_sessions", "granules", "times")

#: Where in a file (fraction of its size) a mid-transfer fault strikes.
MID_FILE_FRACTION = 0.5


class FaultSpecError(ValueError):
    """The fault spec cannot be used; the message names the problem and the fix."""


@dataclass(frozen=True)
class FaultSpec:
    """A validated fault spec. The empty spec (the default) injects nothing."""

    seed: int = 0
    rates: dict[str, float] = field(default_factory=dict)
    stall_seconds: float = 30.0
    bandwidth_bytes_per_s: float | None = None
    max_sessions: int | None = None
    granules: dict[str, tuple[str, ...]] = field(default_factory=dict)
    times: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "rates": dict(self.rates),
            "stall_seconds": self.stall_seconds,
            "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            "max_sessions": self.max_sessions,
            "granules": {k: list(v) for k, v in self.granules.items()},
            "times": self.times,
        }


def load_fault_spec(text_or_path: str | None) -> FaultSpec:
    """Read a spec given as inline JSON, or as the path of a JSON or YAML file."""
    if not text_or_path:
        return FaultSpec()
    stripped = text_or_path.strip()
    if stripped.startswith("{"):
        try:
            raw = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise FaultSpecError(f"--faults: inline JSON does not parse ({exc}); check quoting") from exc
        return parse_fault_spec(raw)
    path = Path(text_or_path)
    if not path.is_file():
        raise FaultSpecError(
            f"--faults {text_or_path!r} is neither inline JSON nor an existing file; "
            "give a JSON/YAML file path or a JSON object"
        )
    return parse_fault_spec(_read_spec_file(path))


def _read_spec_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as exc:
        raise FaultSpecError(f"--faults: cannot parse {path} ({exc}); fix the file's syntax") from exc


def parse_fault_spec(raw: Any) -> FaultSpec:
    """Validate a decoded spec; every problem is a ``FaultSpecError`` saying what to change."""
    if not isinstance(raw, dict):
        raise FaultSpecError("--faults: the spec must be a JSON/YAML object (mapping)")
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise FaultSpecError(f"--faults: unknown key(s) {unknown}; allowed keys are {list(SPEC_KEYS)}")
    return FaultSpec(
        seed=_integer(raw, "seed", 0, minimum=None),
        rates=_rates(raw.get("rates") or {}),
        stall_seconds=_number(raw, "stall_seconds", 30.0),
        bandwidth_bytes_per_s=_optional_positive(raw, "bandwidth_bytes_per_s"),
        max_sessions=_optional_count(raw, "max_sessions"),
        granules=_granule_faults(raw.get("granules") or {}),
        times=_integer(raw, "times", 1, minimum=1),
    )


def _check_fault_name(name: Any, allowed: tuple[str, ...], where: str) -> str:
    if name not in FAULT_NAMES:
        raise FaultSpecError(f"--faults: unknown fault {name!r} in {where}; known faults: {', '.join(FAULT_NAMES)}")
    if name not in allowed:
        raise FaultSpecError(f"--faults: fault {name!r} cannot be used in {where}; allowed there: {', '.join(allowed)}")
    return name


def _rates(raw: Any) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise FaultSpecError("--faults: 'rates' must map fault names to probabilities between 0 and 1")
    rates = {}
    for name, value in raw.items():
        _check_fault_name(name, FAULT_NAMES, "'rates'")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise FaultSpecError(f"--faults: rate of {name!r} is {value!r}; a rate must be a number from 0 to 1")
        rates[name] = float(value)
    return rates


def _granule_faults(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise FaultSpecError("--faults: 'granules' must map granule ids to lists of fault names")
    out = {}
    for granule, faults in raw.items():
        names = [faults] if isinstance(faults, str) else faults
        if not isinstance(names, list) or not names:
            raise FaultSpecError(f"--faults: faults of granule {granule!r} must be a non-empty list of names")
        key = granule_key(str(granule))
        out[key] = tuple(_check_fault_name(n, GRANULE_FAULTS, f"'granules' ({granule})") for n in names)
    return out


def _integer(raw: dict, key: str, default: int, minimum: int | None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise FaultSpecError(f"--faults: {key!r} is {value!r}; it must be an integer{bound}")
    return value


def _number(raw: dict, key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise FaultSpecError(f"--faults: {key!r} is {value!r}; it must be a number of seconds >= 0")
    return float(value)


def _optional_positive(raw: dict, key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise FaultSpecError(f"--faults: {key!r} is {value!r}; it must be a positive number (or omitted)")
    return float(value)


def _optional_count(raw: dict, key: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FaultSpecError(f"--faults: {key!r} is {value!r}; it must be an integer >= 1 (or omitted)")
    return value


def granule_key(name: str) -> str:
    """Granule id from an id, a file name or a remote path."""
    base = name.rsplit("/", 1)[-1]
    return base[: -len(".h5")] if base.endswith(".h5") else base


def unit_draw(seed: int, *keys: object) -> float:
    """A reproducible number in [0, 1) from the seed and keys (independent of call order and threads)."""
    digest = hashlib.sha256(repr((seed, *keys)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class FaultPlan:
    """Answers "which fault now?" for the servers, from a spec."""

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec

    def _hit(self, fault: str, *keys: object) -> bool:
        rate = self.spec.rates.get(fault, 0.0)
        return rate > 0.0 and unit_draw(self.spec.seed, fault, *keys) < rate

    def catalogue_fault(self, request_number: int, *, is_page: bool) -> str | None:
        """The fault for the n-th catalogue request, if any; page faults only hit requests for records."""
        for fault in CATALOGUE_FAULTS:
            if fault in PAGE_FAULTS and not is_page:
                continue
            if self._hit(fault, "request", request_number):
                return fault
        return None

    def connection_fault(self, connection_number: int) -> str | None:
        """``ssh_banner`` or ``auth_refusal`` for the n-th SFTP connection, if drawn."""
        for fault in CONNECTION_FAULTS:
            if self._hit(fault, "connection", connection_number):
                return fault
        return None

    def is_absent(self, granule_id: str) -> bool:
        return "absent" in self.spec.granules.get(granule_id, ()) or self._hit("absent", "granule", granule_id)

    def transient_faults(self, granule_id: str) -> tuple[str, ...]:
        """Targeted transient faults in their listed order, then those drawn by rate for this granule."""
        targeted = tuple(f for f in self.spec.granules.get(granule_id, ()) if f in TRANSIENT_GRANULE_FAULTS)
        drawn = tuple(f for f in TRANSIENT_GRANULE_FAULTS if f not in targeted and self._hit(f, "granule", granule_id))
        return targeted + drawn

    def fault_for_open(self, granule_id: str, attempt: int) -> str | None:
        """The transient fault for the ``attempt``-th (1-based) read-open of a granule, if any.

        Each listed fault occupies ``times`` consecutive attempts; later attempts are clean.
        """
        faults = self.transient_faults(granule_id)
        slot = (attempt - 1) // self.spec.times
        return faults[slot] if 0 <= slot < len(faults) else None
