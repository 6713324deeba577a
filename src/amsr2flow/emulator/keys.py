"""SSH keys of the emulator: a persistent RSA host key and a client key pair for public-key login.

Keeping the host key across restarts matters: clients that pin the fingerprint (as they should for the
current G-Portal) must see the same server after the emulator restarts.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HOST_KEY_FILE = "host_key"
CLIENT_KEY_FILE = "client_key"
HOST_KEY_BITS = 2048


def load_or_create_host_key(data_dir: Path) -> paramiko.RSAKey:
    path = data_dir / HOST_KEY_FILE
    if path.exists():
        return paramiko.RSAKey.from_private_key_file(str(path))
    key = paramiko.RSAKey.generate(HOST_KEY_BITS)
    _write_private(path, lambda p: key.write_private_key_file(str(p)))
    return key


def load_or_create_client_key(data_dir: Path) -> tuple[paramiko.PKey, Path, Path]:
    """The ed25519 key pair users log in with: (key, private key path, public key path)."""
    private_path = data_dir / CLIENT_KEY_FILE
    public_path = data_dir / (CLIENT_KEY_FILE + ".pub")
    if not private_path.exists():
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        _write_private(private_path, lambda p: p.write_bytes(pem))
    key = paramiko.Ed25519Key.from_private_key_file(str(private_path))
    public_path.write_text(f"{key.get_name()} {key.get_base64()} amsr2flow-emulator\n", encoding="utf-8")
    return key, private_path, public_path


def read_authorized_keys(path: Path) -> list[paramiko.PKey]:
    """Public keys from an ``authorized_keys``-style file (``type base64 [comment]`` per line)."""
    keys = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) < 2 or line.lstrip().startswith("#"):
            continue
        keys.append(paramiko.PKey.from_type_string(fields[0], base64.b64decode(fields[1])))
    if not keys:
        raise ValueError(f"{path} holds no public key lines ('ssh-ed25519 AAAA...')")
    return keys


def _write_private(path: Path, write) -> None:
    """Write a private key readable by the owner only, atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.touch(mode=0o600)
    write(tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
