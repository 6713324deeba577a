"""Pinned SSH host keys: each pin names a key type and its fingerprint, and the handshake asks only for the
pinned types.

Why the type: a server may hold several host keys (AWS Transfer Family, which G-Portal runs on, can hold RSA,
ECDSA and Ed25519 keys at once) and offers the one the client prefers. paramiko prefers Ed25519, so a client
that pinned G-Portal's RSA fingerprint and let paramiko choose got the server's genuine Ed25519 key, found it
unequal to the pin and refused a server that is who it claims to be. A pin's type restricts the negotiation
to that type's algorithms, so the server shows the key that was pinned. Several pins are allowed: a server's
keys of several types, or a planned key rotation (old and new key pinned side by side).

The pin is written as ``ssh-keyscan`` and ``ssh-keygen`` name keys, so that it can be copied from their output:
``ssh-rsa SHA256:...``, ``RSA SHA256:...`` or the line ``ssh-keygen -lf`` prints (``3072 SHA256:... host
(RSA)``). A bare ``SHA256:...`` (the old ``host_key_sha256`` setting) is a pin of unknown type: accepted, but
it cannot steer the negotiation, and a refusal says how to name its type.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import paramiko

#: Key families as ssh-keygen names them, with the host-key algorithms that show a key of that family.
ALGORITHMS = {
    "RSA": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
    "ED25519": ("ssh-ed25519",),
    "ECDSA": ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"),
}
#: How a pin may name the family: ssh-keygen's names, and the key type names of ssh-keyscan and known_hosts.
_TYPE_NAMES = {
    "rsa": "RSA",
    "ssh-rsa": "RSA",
    "ed25519": "ED25519",
    "ssh-ed25519": "ED25519",
    "ecdsa": "ECDSA",
    "ecdsa-sha2-nistp256": "ECDSA",
    "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA",
}
_FINGERPRINT = r"SHA256:[A-Za-z0-9+/]{43}"
_TYPED = re.compile(rf"^\s*(?P<type>[A-Za-z0-9-]+)\s+(?P<fp>{_FINGERPRINT})\s*$")
_KEYGEN_LINE = re.compile(rf"^\s*\d+\s+(?P<fp>{_FINGERPRINT})\s.*\((?P<type>[A-Za-z0-9-]+)\)\s*$")
_BARE = re.compile(rf"^\s*(?P<fp>{_FINGERPRINT})\s*$")

HOW_TO_READ = "ssh-keyscan -p PORT HOST | ssh-keygen -lf -"


class PinError(ValueError):
    """A pin that cannot be read; the message says how to write one."""


@dataclass(frozen=True)
class HostKeyPin:
    """One pinned host key: its family (``RSA``, ``ED25519``, ``ECDSA``; None when the pin does not say) and
    its OpenSSH SHA256 fingerprint."""

    key_type: str | None
    fingerprint: str

    def __str__(self) -> str:
        return f"{self.key_type} {self.fingerprint}" if self.key_type else self.fingerprint


def parse_pin(text: str) -> HostKeyPin:
    """``"ssh-rsa SHA256:..."``, ``"RSA SHA256:..."``, an ``ssh-keygen -lf`` line, or a bare fingerprint."""
    for pattern in (_TYPED, _KEYGEN_LINE):
        match = pattern.match(text)
        if match:
            family = _TYPE_NAMES.get(match["type"].lower())
            if family is None:
                known = ", ".join(sorted({*ALGORITHMS, "ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256"}))
                raise PinError(f"{text!r}: unknown key type {match['type']!r}; use one of {known}")
            return HostKeyPin(family, match["fp"])
    match = _BARE.match(text)
    if match:
        return HostKeyPin(None, match["fp"])
    raise PinError(
        f"{text!r} is not a host key pin; write the key type and its fingerprint, e.g. "
        f"'ssh-rsa SHA256:<43 base64 characters>', as `{HOW_TO_READ}` prints them"
    )


def parse_pins(texts: Iterable[str]) -> tuple[HostKeyPin, ...]:
    return tuple(parse_pin(text) for text in texts)


def fingerprint_sha256(key: paramiko.PKey) -> str:
    """OpenSSH-style fingerprint: ``SHA256:`` + unpadded base64 of the SHA-256 of the key blob."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def family_of(key: paramiko.PKey) -> str:
    """``RSA``, ``ED25519`` or ``ECDSA`` (or the key's own name for anything else)."""
    name = key.get_name()
    return _TYPE_NAMES.get(name, "ECDSA" if name.startswith("ecdsa-") else name)


def describe(key: paramiko.PKey) -> str:
    """The key as a pin would name it: ``RSA SHA256:...``."""
    return f"{family_of(key)} {fingerprint_sha256(key)}"


def negotiable(pins: Sequence[HostKeyPin], supported: Sequence[str]) -> tuple[str, ...] | None:
    """The host-key algorithms to offer, in ``supported``'s order of preference: those of the pinned families.
    None (offer everything) when a pin does not name its type, since any type might be the pinned one."""
    if any(pin.key_type is None for pin in pins):
        return None
    wanted = {algorithm for pin in pins for algorithm in ALGORITHMS.get(str(pin.key_type), ())}
    return tuple(algorithm for algorithm in supported if algorithm in wanted)


def matches(key: paramiko.PKey, pins: Sequence[HostKeyPin]) -> bool:
    """Whether the server's key is one of the pins (its fingerprint, and its family when the pin names one)."""
    seen, family = fingerprint_sha256(key), family_of(key)
    return any(pin.fingerprint == seen and pin.key_type in (None, family) for pin in pins)


def pins_text(pins: Sequence[HostKeyPin]) -> str:
    return ", ".join(str(pin) for pin in pins)
