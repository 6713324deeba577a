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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with slow tests (end-to-end runs, marked ``slow``) first, each file's tests together and in their
    order: with ``--dist loadfile --no-loadscope-reorder`` (pyproject.toml) the workers take the long files first
    and end on short ones, rather than one running a long file at the end while the other has nothing left."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
