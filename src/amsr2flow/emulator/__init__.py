"""A local G-Portal for tests, demos and benchmarks: the catalogue over HTTP in both generations' shapes, SFTP
with password and public-key login, synthetic or mirrored granules, fault injection and live counters.

Run it with ``python -m amsr2flow.emulator --state state.json`` (or ``amsr2flow emulator``); everything a
client needs (URLs, port, credentials, host key fingerprint, stats file) is in the state file.
"""

from __future__ import annotations

from .faults import FAULT_NAMES, FaultSpec, FaultSpecError, load_fault_spec

__all__ = ["FAULT_NAMES", "FaultSpec", "FaultSpecError", "load_fault_spec"]
