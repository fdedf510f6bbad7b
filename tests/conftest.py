"""Shared pytest configuration: registers the fixtures that live in tests/support/."""

# `cluster` and `namespace` fixtures (a real Kubernetes API, see tests/support/cluster.py).
pytest_plugins = ["tests.support.cluster_fixtures"]
