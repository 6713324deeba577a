"""Open any archive: the pickle-free format lazily, a trusted legacy pickled archive through ``legacy``.

This is the one place that knows both formats, so the archive format does not depend on the legacy reader
(``legacy`` builds on ``archive``, never the other way round).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .archive import Archive, LegacyPickleRefused, detect_format, legacy_refusal
from .legacy import load_legacy_archive


def open_archive(path: str | os.PathLike[str], *, allow_legacy_pickle: bool = False) -> Any:
    """Open an archive lazily (``Archive``); legacy pickled archives only with ``allow_legacy_pickle=True``.

    Legacy archives are refused with ``LegacyPickleRefused`` unless the caller says the file is trusted; even
    then they are unpickled by a restricted unpickler (``amsr2flow.legacy``) and held in memory.
    """
    kind = detect_format(path)
    if kind == "legacy":
        if not allow_legacy_pickle:
            raise LegacyPickleRefused(legacy_refusal(Path(path)))
        return load_legacy_archive(path, trust_legacy_pickle=True)
    return Archive(path)
