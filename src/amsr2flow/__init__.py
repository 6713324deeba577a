"""amsr2flow: collect AMSR-2 brightness temperatures from JAXA G-Portal into verified, pickle-free archives."""

from __future__ import annotations

__version__ = "0.1.0"

JAXA_ACKNOWLEDGEMENT = (
    "AMSR2 (and AMSR-E) data provided by the Japan Aerospace Exploration Agency (JAXA) through G-Portal "
    "(https://gportal.jaxa.jp/). Use is subject to JAXA's G-Portal terms of use."
)

__all__ = ["JAXA_ACKNOWLEDGEMENT", "__version__", "open_archive"]


def __getattr__(name: str) -> object:
    # Lazy: `import amsr2flow` stays cheap (no numpy/zipfile) until the reader is used.
    if name == "open_archive":
        from .archive import open_archive

        return open_archive
    raise AttributeError(f"module 'amsr2flow' has no attribute {name!r}")
