"""Shared fixtures of the test suite."""

from emulator_fixtures import emulator, emulator_factory  # noqa: F401 - registers the fixtures
