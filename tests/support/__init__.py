"""Helpers shared by the tests, imported as `from tests.support.devnodes import start_devnodes`."""
