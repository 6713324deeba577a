"""Where and how to reach one G-Portal generation, and how long to wait for it: plain values, no I/O.

The run (``amsr2flow.run.connection``) builds these from the user's file and environment, once per job, as a
``gportal.sftp.Connection``; the client modules of this folder take them and never read the configuration themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from .host_keys import HostKeyPin


@dataclass(frozen=True)
class Source:
    """Where and how to reach one G-Portal generation. Holds secrets: never log or print it."""

    generation: str  # "current" or "legacy"
    catalogue_url: str
    sftp_host: str
    sftp_port: int
    host_keys: tuple[HostKeyPin, ...]  # the pinned host keys (gportal.host_keys): any one of them is accepted
    username: str
    password: str | None
    private_key_path: str | None
    passphrase: str | None

    def __repr__(self) -> str:  # keep secrets out of tracebacks and logs
        return (
            f"Source(generation={self.generation!r}, catalogue_url={self.catalogue_url!r}, "
            f"sftp={self.sftp_host}:{self.sftp_port}, username={self.username!r}, "
            f"auth={'publickey' if self.private_key_path else 'password'})"
        )


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 30.0
    banner_s: float = 30.0
    auth_s: float = 30.0
    stall_s: float = 120.0


@dataclass(frozen=True)
class Link:
    """How much one SFTP session keeps in flight. Over a long link a session moves at most
    ``window_bytes`` per round trip (paramiko's default 2 MiB caps it near 10 MB/s at Tokyo's ~200 ms), so the
    SSH window and the read requests outstanding are sized together."""

    window_bytes: int = 16 << 20
    max_packet_bytes: int = 32768  # SSH packet size (paramiko's and OpenSSH's default)
    request_bytes: int = 32768  # bytes per SFTP read request asked for (a session asks at most what the server answers)
