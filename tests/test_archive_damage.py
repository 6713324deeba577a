"""Damaged archives: the library raises only ``ArchiveError`` (naming the member), memory stays bounded, and
``amsr2flow verify`` prints a problem line and exits 1; ``info`` exits with a message. Never a raw traceback.

Cases found from outside first, then a property-based test that mutates real archives at random.
"""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_swath import synthetic_swath

from amsr2flow.cli import main as cli_main
from amsr2flow.formats.archive import (
    INDEX_MEMBER,
    PROVENANCE_MEMBER,
    ArchiveError,
    write_archive,
)
from amsr2flow.formats.reader import open_archive
from amsr2flow.formats.verify import verify_archive

#: Peak Python allocation allowed while opening/verifying a damaged archive of a few small swaths.
MEMORY_LIMIT_BYTES = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def good_archive(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("good") / "AMSR2_temp_only_20200101_000000_to_20200102_000000.npz"
    write_archive(path, [synthetic_swath(i) for i in range(3)])
    return path.read_bytes()


def _rewrite_member(data: bytes, name: str, content: bytes) -> bytes:
    """The archive with one member's uncompressed content replaced (a valid zip around damaged content)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, content if info.filename == name else src.read(info.filename))
    return out.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def _header_claiming(shape: tuple[int, ...], descr: str = "<u2") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode() + b" "
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _expect_archive_error(path: Path, must_be_damaged: bool = True) -> None:
    """Opening and verifying raise nothing but ArchiveError within bounded memory; verify exits 1 on damage.

    A random byte flip can land where zip ignores it (e.g. an extra field): then nothing need be found.
    """
    tracemalloc.start()
    try:
        try:
            with open_archive(path) as archive:
                for swath in archive:
                    swath["temperature"]
        except ArchiveError:
            pass
        report = verify_archive(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT_BYTES
    assert not report.ok or not must_be_damaged
    if not report.ok:
        assert cli_main(["verify", str(path)]) == 1


CASES = {
    # bytes flipped inside the compressed index used to raise tokenize.TokenError
    "index header garbled": lambda a: _rewrite_member(
        a, INDEX_MEMBER, _npy(np.zeros(3, "<u2"))[:10] + b"{'descr': (('" + b"x" * 200
    ),
    "index is 0-d": lambda a: _rewrite_member(a, INDEX_MEMBER, _npy(np.array(5))),
    "index without fields": lambda a: _rewrite_member(a, INDEX_MEMBER, _npy(np.arange(3))),
    "index claims an impossible shape": lambda a: _rewrite_member(a, INDEX_MEMBER, _header_claiming((10**12,))),
    "provenance is JSON but not an object": lambda a: _rewrite_member(
        a, PROVENANCE_MEMBER, _npy(np.array(json.dumps([1, 2, 3])))
    ),
}


@pytest.mark.parametrize("damage", list(CASES), ids=list(CASES))
def test_damage_found_from_outside(damage: str, good_archive: bytes, tmp_path: Path, capsys) -> None:
    path = tmp_path / "damaged.npz"
    path.write_bytes(CASES[damage](good_archive))
    _expect_archive_error(path)
    out = capsys.readouterr()
    assert "problem:" in out.out and "Traceback" not in out.out + out.err
    assert cli_main(["info", str(path)]) == 2
    message = capsys.readouterr().err
    assert message.startswith("amsr2flow info:") and ".npy" in message  # the member is named


def test_a_swath_member_claiming_an_impossible_shape(good_archive: bytes, tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(good_archive)) as zf:
        name = next(n for n in zf.namelist() if n.startswith("swaths/"))
    path = tmp_path / "damaged.npz"
    path.write_bytes(_rewrite_member(good_archive, name, _header_claiming((10**6, 10**6))))
    _expect_archive_error(path)
    report = verify_archive(path)
    assert any(name.split("/")[1] in p and "claims" in p for p in report.problems())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mutation_of_a_real_archive_is_an_archive_error(data, good_archive: bytes, tmp_path: Path) -> None:
    kind = data.draw(st.sampled_from(["truncate", "flip", "header", "rename"]))
    damaged = bytearray(good_archive)
    if kind == "truncate":
        damaged = damaged[: data.draw(st.integers(0, len(damaged) - 1))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            at = data.draw(st.integers(0, len(damaged) - 1))
            damaged[at] ^= data.draw(st.integers(1, 255))
    else:
        with zipfile.ZipFile(io.BytesIO(good_archive)) as zf:
            names = zf.namelist()
        name = data.draw(st.sampled_from(names))
        if kind == "header":
            shape = tuple(data.draw(st.lists(st.integers(0, 2**40), min_size=0, max_size=3)))
            descr = data.draw(st.sampled_from(["<u2", "<f8", "|O", "<U9", "[('a', '<i4')]"]))
            damaged = bytearray(_rewrite_member(good_archive, name, _header_claiming(shape, descr)))
        else:
            out = io.BytesIO()
            with zipfile.ZipFile(io.BytesIO(good_archive)) as src, zipfile.ZipFile(out, "w") as dst:
                for info in src.infolist():
                    dst.writestr(info.filename + ("x" if info.filename == name else ""), src.read(info.filename))
            damaged = bytearray(out.getvalue())
    path = tmp_path / "mutated.npz"
    path.write_bytes(bytes(damaged))
    if bytes(damaged) != good_archive:
        _expect_archive_error(path, must_be_damaged=False)
