"""Workflow configuration: defaults, validation with messages that name the key, and source resolution.

The schema (``workflow/schemas/config.schema.yaml``) is the single description of every key; this module adds
what a schema cannot say (date order, writable folders, credentials present) and turns jsonschema's errors into
one line per problem that names the key, the bad value and what is allowed.

Secrets are never part of the configuration: it names environment variables and key files, and
``amsr2flow.run.connection`` reads them only inside the job that needs them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from collections.abc import Mapping
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema

from .plan import PlanError, dataset_keys, mission_span, missions, plan_years

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem, one per line."""


def load_schema(path: Path | None = None) -> dict[str, Any]:
    import yaml  # here, not at the top: day jobs read settings from this module and validate nothing

    with open(path or SCHEMA_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def apply_defaults(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with every missing key that has a schema default filled in (recursively)."""
    out = copy.deepcopy(dict(config))
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if isinstance(out.get(key), dict) and sub.get("type") == "object":
            out[key] = apply_defaults(out[key], sub)
    return out


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    sub = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "enum":
        allowed = ", ".join(repr(v) for v in error.validator_value)
        return f"{key}: {error.instance!r} is not allowed; use one of {allowed}"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(sub.get("properties", {})))
        secrets = [k for k in extra if "password" in k.lower() or "passphrase" in k.lower()]
        if secrets:
            where = f"{key}." if error.absolute_path else ""
            return (
                f"{where}{secrets[0]}: secrets are never read from the config file; remove it and export the "
                "secret in the environment variable named by credentials.password_env / passphrase_env"
            )
        known = ", ".join(sorted(sub.get("properties", {})))
        where = f"{key}." if error.absolute_path else ""
        return f"{where}{', '.join(extra)}: unknown key; known keys here are {known}"
    if error.validator == "required":
        return f"{error.message.split(' ', 1)[0].strip(chr(39))}: required key is missing"
    if error.validator == "pattern" and key in ("start", "end"):
        return f"{key}: {error.instance!r} is not a date; write it as YYYY-MM-DD, in quotes"
    if error.validator == "pattern" and "host_key_sha256" in key:
        return f"{key}: {error.instance!r} is not an OpenSSH fingerprint like 'SHA256:<43 base64 characters>'"
    if error.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "minItems"):
        return f"{key}: {error.instance!r} is out of range ({error.validator} {error.validator_value})"
    if error.validator == "type":
        return f"{key}: {error.instance!r} has the wrong type; expected {error.validator_value}"
    return f"{key}: {error.message}"


def validate(
    config: Mapping[str, Any], *, check_environment: bool = True, schema_path: Path | None = None
) -> dict[str, Any]:
    """Validate and complete a configuration. Raises :class:`ConfigError` listing every problem.

    ``check_environment`` also checks what lies outside the file: the output folder is writable, the
    emulator's state file exists, credentials for the real service are present. It never touches the network.
    """
    import jsonschema  # here, not at the top: ~0.15 s that day jobs, which validate nothing, do not pay

    schema = load_schema(schema_path)
    # YAML turns unquoted 2020-01-01 into a date; accept both spellings.
    raw = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in dict(config).items()}
    completed = apply_defaults(raw, schema)
    # .inf and .nan are YAML numbers that every numeric bound accepts (nan compares false): refuse them first
    problems = [
        f"{key}: {value!r} is not a finite number; give a plain number" for key, value in _non_finite(completed)
    ]
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(completed), key=lambda e: list(e.path))
    problems += [_describe(e) for e in errors if not _is_non_finite(e.instance)]
    if not problems:
        problems += _semantic_problems(completed) + output_problems(completed)
    if not problems and check_environment:
        problems += environment_problems(completed)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return completed


# -- reading the file ---------------------------------------------------------------------------------------
def read_config_file(path: str | Path) -> dict[str, Any]:
    """A configuration file as written, for :func:`validate`; :class:`ConfigError` with one line if it is unusable.

    Days stay text even unquoted: YAML turns ``start: 2024-01-01`` into a date and fails on ``2024-02-30`` inside
    its own reader, where :func:`validate` names the key and says what to write.
    """
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror}); give the configuration file of the run") from None
    try:
        raw = yaml.load(text, Loader=_days_as_text_loader()) or {}  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc}); fix its syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} does not hold a mapping of keys; see config/config.yaml")
    return raw


def check_days_readable(path: str | Path) -> None:
    """:class:`ConfigError` naming the key when YAML itself cannot read an unquoted day of the file (2024-02-30).

    Snakemake reads its config files with YAML's dates, and such a day stops it with YAML's traceback before the
    workflow can say anything: the Snakefile calls this first for its own file. Anything else that is wrong
    with the file is left to the reading and validation that follow.
    """
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
        yaml.safe_load(text)
    except (OSError, yaml.YAMLError):
        return
    except ValueError as exc:  # datetime.date() refused the day
        validate(read_config_file(path), check_environment=False)  # names the key
        raise ConfigError(f"{path} holds an impossible day ({exc}); write days as YYYY-MM-DD") from None


def _days_as_text_loader() -> type:
    import yaml

    class DaysAsText(yaml.SafeLoader):
        """SafeLoader without YAML 1.1's implicit timestamps."""

    DaysAsText.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return DaysAsText


def _is_non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _non_finite(cfg: Mapping[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += _non_finite(value, f"{name}.")
        elif _is_non_finite(value):
            out.append((name, value))
    return out


def _parse_day(value: str, key: str, problems: list[str]) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(f"{key}: {value!r} is not a real calendar date; write it as YYYY-MM-DD")
        return None


def _semantic_problems(cfg: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    start = _parse_day(cfg["start"], "start", problems)
    end = _parse_day(cfg["end"], "end", problems)
    chosen = missions(cfg)
    flavour, last_flavour = chosen[0], chosen[-1]
    if start and end:
        if end < start:
            problems.append(f"end: {cfg['end']} is before start {cfg['start']}; swap them (both are inclusive)")
        if start < flavour.first_day:
            problems.append(
                f"start: {cfg['start']} is before the first {flavour.sensor} data ({flavour.first_day}); "
                f"start on or after it"
            )
        if end >= start and not any(mission_span(m, start, end) for m in chosen):
            spans = ", ".join(f"{m.sensor} {m.first_day} to {m.last_day or 'today'}" for m in chosen)
            problems.append(f"start..end ({cfg['start']} to {cfg['end']}) holds no day of {spans}; pick days within")
        today = datetime.now(timezone.utc).date()
        if end > today:
            problems.append(
                f"end: {cfg['end']} is after today ({today}); G-Portal lists nothing in the future, so every "
                "day after today would cost catalogue requests for nothing: end on or before today"
            )
        if last_flavour.last_day and end > last_flavour.last_day:
            problems.append(
                f"end: {cfg['end']} is after the last {last_flavour.sensor} data ({last_flavour.last_day}); end on "
                "or before it" + ("" if "amsr2-l1b" in dataset_keys(cfg) else ", or add amsr2-l1b to `dataset`")
            )
        map_days = cfg.get("report", {}).get("map_days")
        if isinstance(map_days, list):
            outside = [d for d in map_days if not (start.isoformat() <= d <= end.isoformat())]
            bad = [d for d in map_days if _parse_day(d, "report.map_days", []) is None]
            if bad:
                problems.append(f"report.map_days: {', '.join(bad)} are not real days; write days as YYYY-MM-DD")
            elif outside:
                problems.append(
                    f"report.map_days: {', '.join(outside)} outside start..end ({cfg['start']} to {cfg['end']}); "
                    "pick days of the run"
                )
    for mission in chosen:
        missing = [c for c in cfg["channels"] if c not in mission.channels]
        if missing:
            problems.append(f"channels: {', '.join(missing)} not measured by {mission.sensor}; remove them")
    if cfg.get("grid", {}).get("enabled"):
        if not cfg["geolocation"]:
            problems.append("grid.enabled: daily grids need positions; set `geolocation: true`")
        stray = [c for c in cfg["grid"].get("channels") or () if c not in cfg["channels"]]
        if stray:
            problems.append(f"grid.channels: {', '.join(stray)} not among `channels`; grid extracted channels only")
        b_horn = [c for c in cfg["grid"].get("channels") or cfg["channels"] if c.startswith("89.0B")]
        if b_horn:
            problems.append(
                f"grid.channels: {', '.join(b_horn)} cannot be gridded (the swaths keep the 89 GHz A horn's positions "
                "only); set grid.channels to the others"
            )
    train = cfg.get("record", {}).get("train")
    if train:
        first = _parse_day(str(train[0]), "record.train", problems)
        last = _parse_day(str(train[1]), "record.train", problems)
        if first and last and last < first:
            problems.append(f"record.train: {train[1]} is before {train[0]}; give [first day, last day]")
    if start and end:
        try:
            plan_years(cfg)
        except PlanError as exc:
            problems.append(str(exc))
    if cfg.get("remote_path_template"):
        from .gportal.remote_layout import RemoteLayoutError, check_template

        try:
            check_template(cfg["remote_path_template"])
        except RemoteLayoutError as exc:
            problems.append(f"remote_path_template: {exc}")
    if cfg.get("region") is not None:
        from .region import RegionError, region_from_setting

        try:
            region_from_setting(cfg["region"])
        except RegionError as exc:
            problems.append(str(exc))
    problems += host_key_problems(cfg)
    return problems


def host_key_problems(cfg: Mapping[str, Any]) -> list[str]:
    """Pins that cannot be read, and the legacy service without one."""
    from .gportal.host_keys import HOW_TO_READ, PinError, parse_pin

    problems = []
    for section in ("gportal", "gportal_legacy"):
        for position, text in enumerate(cfg[section].get("host_keys") or ()):
            try:
                parse_pin(text)
            except PinError as exc:
                problems.append(f"{section}.host_keys[{position}]: {exc}")
    legacy = cfg["gportal_legacy"]
    if cfg["source"] == "gportal-legacy" and not (legacy.get("host_keys") or legacy.get("host_key_sha256")):
        problems.append(
            "gportal_legacy.host_keys: required for source gportal-legacy (unknown hosts are refused); "
            f"pin the key JAXA publishes, as `{HOW_TO_READ.replace('PORT HOST', '2051 ftp.gportal.jaxa.jp')}` "
            "prints it: ['ssh-rsa SHA256:...']"
        )
    return problems


def output_problems(cfg: Mapping[str, Any]) -> list[str]:
    """The output and scratch folders must be folders that exist or can be created, and be writable (checked at
    parse time, before any network request: the DAG itself scans the output folder)."""
    problems = [_folder_problem("output_dir", Path(cfg["output_dir"]).expanduser())]
    if cfg.get("scratch_dir"):
        problems.append(_folder_problem("scratch_dir", Path(cfg["scratch_dir"]).expanduser()))
    return [p for p in problems if p]


def _folder_problem(key: str, folder: Path) -> str:
    if folder.exists() and not folder.is_dir():
        return f"{key}: {str(folder)!r} is a file, not a folder; point {key} at a folder"
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        return f"{key}: {str(folder)!r} cannot be created or written (nearest folder {str(probe)!r})"
    return ""


def environment_problems(cfg: Mapping[str, Any]) -> list[str]:
    """What a real run needs outside the file: writable output, credentials, the emulator's state file."""
    problems: list[str] = []
    if cfg["source"] == "emulator":
        state = Path(cfg["emulator"]["state_file"]).expanduser()
        if not state.is_file():
            problems.append(
                f"emulator.state_file: {str(state)!r} does not exist; start the local G-Portal with "
                f"`amsr2flow emulator --state {state}` or point this key at its state file"
            )
    else:
        creds = cfg["credentials"]
        if not os.environ.get(creds["username_env"]):
            problems.append(
                f"credentials.username_env: environment variable {creds['username_env']} is not set; "
                "export your G-Portal user name in it"
            )
        if cfg["source"] == "gportal":
            key = creds.get("private_key_path")
            if not key:
                problems.append(
                    "credentials.private_key_path: the current G-Portal accepts public-key login only; "
                    "set the path of the private key you registered with G-Portal"
                )
            elif not Path(key).expanduser().is_file():
                problems.append(
                    f"credentials.private_key_path: {key!r} does not exist; set the path of the private key "
                    "you registered with G-Portal"
                )
        elif not os.environ.get(creds["password_env"]) and not (
            creds.get("private_key_path") and Path(creds["private_key_path"]).expanduser().is_file()
        ):
            problems.append(
                f"credentials.password_env: environment variable {creds['password_env']} is not set and no "
                "private key file exists; export your G-Portal password or set credentials.private_key_path"
            )
    return problems


# -- derived values ----------------------------------------------------------------------------------------
def extra_variables(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """The configured extra variables (``formats.variables``) in storage order."""
    from .formats.variables import check_names

    return check_names(list(cfg.get("variables") or ()))


def digest(cfg: Mapping[str, Any]) -> str:
    """A short, stable digest of the settings that shape archive content (recorded in provenance)."""
    shaping = {k: cfg[k] for k in ("dataset", "channels", "geolocation", "part_size")}
    if not isinstance(shaping["dataset"], str):  # a list's order is not a setting
        shaping["dataset"] = sorted(shaping["dataset"])
    if cfg.get("region") is not None:  # only then: the globe's digests stay what they were
        shaping |= {"region": cfg["region"], "region_margin_scans": cfg.get("region_margin_scans")}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]
