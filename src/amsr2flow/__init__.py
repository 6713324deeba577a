"""amsr2flow: collect AMSR-2 brightness temperatures from JAXA G-Portal into verified, pickle-free archives."""

from __future__ import annotations

__version__ = "0.1.0"

JAXA_ACKNOWLEDGEMENT = (
    "AMSR2 (and AMSR-E) data provided by the Japan Aerospace Exploration Agency (JAXA) through G-Portal "
    "(https://gportal.jaxa.jp/). Use is subject to JAXA's G-Portal terms of use."
)

__all__ = ["JAXA_ACKNOWLEDGEMENT", "__version__"]
