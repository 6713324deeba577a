"""Reading one ``.npy`` stream defensively: the header is parsed and checked before anything is allocated.

``np.lib.format.read_array`` trusts the header: a damaged one raises whatever its parser meets
(``tokenize.TokenError``, ``SyntaxError``, ``TypeError``) or allocates what it claims (``MemoryError``).
Here every failure is a :class:`NpyError` saying what is wrong, and an array is read only when the bytes the
header claims fit in what the stream holds. Object arrays (pickles) are never read.
"""

from __future__ import annotations

import math
from typing import IO

import numpy as np

#: Largest header a valid ``.npy`` of ours has (version 1.0 allows 64 KiB; index headers are a few KiB).
MAX_HEADER_BYTES = 1 << 16


class NpyError(ValueError):
    """A ``.npy`` stream that cannot be read as a plain (non-object) array; the message says why."""


def read_header(fp: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran flag and dtype of a ``.npy`` stream; :class:`NpyError` for anything malformed."""
    try:
        version = np.lib.format.read_magic(fp)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(fp, max_header_size=MAX_HEADER_BYTES)
    except Exception as exc:  # the header parser raises many kinds (tokenize, ast, TypeError)
        raise NpyError(f"damaged .npy header ({type(exc).__name__}: {exc})") from exc
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise NpyError(f"damaged .npy header (shape {shape!r})")
    return shape, bool(fortran), dtype


def read_array(fp: IO[bytes], available_bytes: int) -> np.ndarray:
    """The array of a ``.npy`` stream whose total size is ``available_bytes`` (header included).

    The size the header claims is checked against what is there before any memory is allocated.
    """
    shape, fortran, dtype = read_header(fp)
    if dtype.hasobject:
        raise NpyError(f"holds Python objects (dtype {dtype}); that would need pickle, which is never read")
    header_bytes = fp.tell()
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > available_bytes - header_bytes:
        raise NpyError(
            f"header claims {claimed} bytes of data (shape {shape}, {dtype}) but the member holds "
            f"{available_bytes - header_bytes}"
        )
    try:
        data = fp.read(claimed)
    except Exception as exc:  # zip and zlib errors of a damaged member, named below
        raise NpyError(f"data unreadable ({type(exc).__name__}: {exc})") from exc
    if len(data) != claimed:
        raise NpyError(f"data ends after {len(data)} of {claimed} bytes")
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape)) if claimed else np.empty(0, dtype=dtype)
    array = array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)
    return array.copy() if array.size else array


def header_of_bytes(prefix: bytes) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The header of a ``.npy`` whose first bytes are ``prefix`` (enough to hold the header)."""
    import io

    return read_header(io.BytesIO(prefix))
