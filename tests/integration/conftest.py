"""Fixtures shared by the integration tests."""

from tests.pulsar_broker import pulsar_broker  # noqa: F401 - the fixture, registered for this package's tests
