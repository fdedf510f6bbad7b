"""Helpers shared by the test suites (cluster access, ...), imported as `tests.support`."""
