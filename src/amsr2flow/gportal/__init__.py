"""The G-Portal client: catalogue (CSW) search, SFTP transfers, the preflight login, the circuit breaker.

It wraps the ``gportal`` package (a different, top-level package) where that package fits.
"""
