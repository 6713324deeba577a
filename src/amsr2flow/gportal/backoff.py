"""The one backoff policy of every retry: exponential, capped, with jitter."""

from __future__ import annotations

import tenacity


def exponential_backoff(initial_s: float, max_s: float) -> tenacity.wait.wait_base:
    """Wait ``initial``, then 2x, 4x, ... up to ``max_s``, plus up to ``initial_s`` of random jitter.

    Jitter spreads the retries of parallel jobs that failed together (a server hiccup hits them all at once).
    Built from ``wait_exponential`` and ``wait_random``, which every supported tenacity version has.
    """
    return tenacity.wait_exponential(multiplier=initial_s, max=max_s) + tenacity.wait_random(0, initial_s)
