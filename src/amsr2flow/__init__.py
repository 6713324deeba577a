"""amsr2flow: collect AMSR-2 brightness temperatures from JAXA G-Portal into verified, pickle-free archives."""

from __future__ import annotations

__version__ = "0.1.0"

JAXA_ACKNOWLEDGEMENT = (
    "AMSR2 (and AMSR-E) data provided by the Japan Aerospace Exploration Agency (JAXA) through G-Portal "
    "(https://gportal.jaxa.jp/). Use is subject to JAXA's G-Portal terms of use."
)

#: The reading API, importable from the package root (``amsr2flow.open_archive(path)``): name -> module.
_EXPORTS = {
    "open_archive": "amsr2flow.formats.reader",
    "Archive": "amsr2flow.formats.archive",
    "to_kelvin": "amsr2flow.formats.archive",
    "crop_or_pad": "amsr2flow.formats.archive",
    "read_swath": "amsr2flow.formats.swath",
    "verify_archive": "amsr2flow.formats.verify",
}
__all__ = ["JAXA_ACKNOWLEDGEMENT", "__version__", *_EXPORTS]


def __getattr__(name: str) -> object:
    # Lazy: `import amsr2flow` stays cheap (no numpy/zipfile) until the reader is used.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'amsr2flow' has no attribute {name!r}")
