"""Shared fixtures of the test suite."""

from collections.abc import Iterator

import pytest
from emulator_fixtures import emulator, emulator_factory, fresh_granules, granule_pool  # noqa: F401 - registers fixtures


@pytest.fixture(scope="session", autouse=True)
def _granule_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One pool of generated granules per test process (emulator_fixtures): a later service starts with the
    granules an earlier one generated instead of generating them again."""
    with granule_pool(tmp_path_factory.getbasetemp() / "granule-pool"):
        yield
