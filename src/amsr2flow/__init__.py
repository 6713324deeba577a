"""amsr2flow: collect AMSR-2 brightness temperatures from JAXA G-Portal into verified, pickle-free archives."""

from __future__ import annotations

__version__ = "0.1.0"

JAXA_ACKNOWLEDGEMENT = (
    "AMSR2 (and AMSR-E) data provided by the Japan Aerospace Exploration Agency (JAXA) through G-Portal "
    "(https://gportal.jaxa.jp/). Use is subject to JAXA's G-Portal terms of use."
)

#: Reader entry points, importable from the package root: ``amsr2flow.open_archive(path)``.
_ARCHIVE_EXPORTS = ("open_archive", "to_kelvin", "crop_or_pad")
__all__ = ["JAXA_ACKNOWLEDGEMENT", "__version__", *_ARCHIVE_EXPORTS]


def __getattr__(name: str) -> object:
    # Lazy: `import amsr2flow` stays cheap (no numpy/zipfile) until the reader is used.
    if name in _ARCHIVE_EXPORTS:
        from . import archive

        return getattr(archive, name)
    raise AttributeError(f"module 'amsr2flow' has no attribute {name!r}")
