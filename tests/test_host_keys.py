"""Host key pins: read as ssh-keyscan and ssh-keygen print keys, checked against fingerprints ssh-keygen
computes (not our code), and turned into the handshake's list of host-key algorithms."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import paramiko
import pytest

from amsr2flow.gportal import host_keys
from amsr2flow.gportal.host_keys import HostKeyPin, PinError, parse_pin
from amsr2flow.run.connection import pins_of

FP = "SHA256:pYLmuMNFi9tQYRAZLXERRuyOszorS0qJQEE/u4Co+xM"


@pytest.mark.parametrize(
    ("text", "family"),
    [
        (f"ssh-rsa {FP}", "RSA"),
        (f"RSA {FP}", "RSA"),
        (f"  ssh-ed25519   {FP} ", "ED25519"),
        (f"ecdsa-sha2-nistp384 {FP}", "ECDSA"),
        (f"3072 {FP} sftp.gportal.jaxa.jp (RSA)", "RSA"),  # a line of `ssh-keygen -lf -`
        (f"256 {FP} [127.0.0.1]:2222 (ED25519)", "ED25519"),
        (FP, None),  # the older host_key_sha256: no type
    ],
)
def test_pins_are_read_as_the_ssh_tools_print_keys(text: str, family: str | None) -> None:
    assert parse_pin(text) == HostKeyPin(family, FP)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f"ssh-dss {FP}", "unknown key type 'ssh-dss'"),
        ("ssh-rsa AAAAB3NzaC1yc2E", "is not a host key pin"),
        ("SHA256:short", "is not a host key pin"),
        (f"MD5 {FP} extra", "is not a host key pin"),
    ],
)
def test_a_pin_that_cannot_be_read_says_how_to_write_one(text: str, says: str) -> None:
    with pytest.raises(PinError, match=says):
        parse_pin(text)


def test_the_handshake_asks_only_for_the_pinned_types_in_paramikos_order() -> None:
    supported = paramiko.Transport._preferred_keys
    rsa, ed = parse_pin(f"RSA {FP}"), parse_pin(f"ED25519 {FP}")
    assert host_keys.negotiable([rsa], supported) == ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")
    assert host_keys.negotiable([rsa, ed], supported) == ("ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")
    assert host_keys.negotiable([rsa, parse_pin(FP)], supported) is None  # an untyped pin: anything may be it


@pytest.mark.parametrize("kind", ["rsa", "ed25519", "ecdsa"])
def test_fingerprints_and_types_agree_with_ssh_keygen(tmp_path: Path, kind: str) -> None:
    key_file = tmp_path / f"key_{kind}"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(key_file)], check=True)
    line = subprocess.run(["ssh-keygen", "-lf", f"{key_file}.pub"], check=True, capture_output=True, text=True)
    pin = parse_pin(line.stdout)
    fields = Path(f"{key_file}.pub").read_text().split()
    key = paramiko.PKey.from_type_string(fields[0], base64.b64decode(fields[1]))
    assert host_keys.describe(key) == str(pin)
    assert host_keys.matches(key, [pin]) and host_keys.matches(key, [HostKeyPin(None, pin.fingerprint)])
    other_type = HostKeyPin("ED25519" if pin.key_type != "ED25519" else "RSA", pin.fingerprint)
    assert not host_keys.matches(key, [other_type])


def test_the_older_setting_takes_the_type_host_keys_gives_its_fingerprint() -> None:
    typed = {"host_keys": [f"ssh-rsa {FP}"], "host_key_sha256": FP}
    assert pins_of(typed) == (HostKeyPin("RSA", FP),)
    other = "SHA256:" + "A" * 43
    assert pins_of({"host_keys": [f"ssh-rsa {FP}"], "host_key_sha256": other}) == (HostKeyPin(None, other),)
    assert pins_of({"host_keys": [f"RSA {FP}", f"ED25519 {other}"]}) == (
        HostKeyPin("RSA", FP),
        HostKeyPin("ED25519", other),
    )
