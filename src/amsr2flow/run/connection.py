"""How a run reaches G-Portal: the configuration's source, credentials, timeouts and link, as one
``gportal.source.Connection`` built once per job (jobs, preflight and doctor open their sessions from it).

Secrets are read here, from the environment variables the configuration names (or the local G-Portal's state
file), only inside the process that needs them; :class:`~amsr2flow.gportal.source.Source` keeps them out of its
``repr``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..gportal import host_keys
from ..gportal.sftp import Connection
from ..gportal.source import Link, Source, Timeouts


def connection_from(cfg: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Connection:
    """The configured source, timeouts and link."""
    return Connection(source_from(cfg, environ), timeouts_from(cfg), link_from(cfg))


def link_from(cfg: Mapping[str, Any]) -> Link:
    """What one SFTP session keeps in flight (``transfer.ssh_window_mib``, ``ssh_packet_kib``, ``sftp_request_kib``)."""
    transfer = cfg["transfer"]
    return Link(
        window_bytes=int(transfer["ssh_window_mib"] * (1 << 20)),
        max_packet_bytes=int(transfer.get("ssh_packet_kib", 32)) << 10,
        request_bytes=int(transfer.get("sftp_request_kib", 32)) << 10,
    )


def timeouts_from(cfg: Mapping[str, Any]) -> Timeouts:
    t = cfg["transfer"]
    return Timeouts(t["connect_timeout_s"], t["banner_timeout_s"], t["auth_timeout_s"], t["stall_timeout_s"])


def source_from(cfg: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Source:
    """The endpoint and credentials for the configured source, read from the environment or the state file."""
    env = os.environ if environ is None else environ
    if cfg["source"] == "emulator":
        state_path = Path(cfg["emulator"]["state_file"]).expanduser()
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"emulator.state_file: cannot read {str(state_path)!r} ({exc}); is the local G-Portal running?"
            ) from exc
        generation = cfg["emulator"]["generation"]
        return Source(
            generation=generation,
            catalogue_url=state["catalogue_url"] if generation == "current" else state["legacy_catalogue_url"],
            sftp_host=state["sftp_host"],
            sftp_port=int(state["sftp_port"]),
            host_keys=host_keys.parse_pins(state.get("host_keys") or [state["host_key_sha256"]]),
            username=state["username"],
            # The current generation is public-key only, as on the real service.
            password=state["password"] if generation == "legacy" else None,
            private_key_path=state["private_key_path"] if generation == "current" else None,
            passphrase=None,
        )
    creds = cfg["credentials"]
    section = cfg["gportal"] if cfg["source"] == "gportal" else cfg["gportal_legacy"]
    key_path = creds.get("private_key_path")
    key_file = str(Path(key_path).expanduser()) if key_path else None
    use_key = cfg["source"] == "gportal" or (key_file is not None and Path(key_file).is_file())
    return Source(
        generation="current" if cfg["source"] == "gportal" else "legacy",
        catalogue_url=section["catalogue_url"],
        sftp_host=section["sftp_host"],
        sftp_port=int(section["sftp_port"]),
        host_keys=pins_of(section),
        username=env.get(creds["username_env"], ""),
        password=None if use_key else env.get(creds["password_env"]),
        private_key_path=key_file if use_key else None,
        passphrase=env.get(creds["passphrase_env"]) or None,
    )


def pins_of(section: Mapping[str, Any]) -> tuple[host_keys.HostKeyPin, ...]:
    """The pinned host keys of a service section: ``host_keys``, or the older ``host_key_sha256`` (a pin that
    names no type), which takes its type from ``host_keys`` when both pin the same fingerprint."""
    typed = host_keys.parse_pins(section.get("host_keys") or ())
    old = section.get("host_key_sha256")
    if not old:
        return typed
    same = tuple(pin for pin in typed if pin.fingerprint == old)
    return same or (host_keys.parse_pin(old),)
