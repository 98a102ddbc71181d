"""pytest: the shared fixtures live in tests/fixtures.py, used by tests/ and conformance/ alike."""

pytest_plugins = ["tests.fixtures"]
