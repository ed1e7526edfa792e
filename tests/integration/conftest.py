"""The ``system`` fixture: all three workers running on the test's backend, always stopped after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import Backend
from tests.integration.support import System, load_test_companies
from workers.runtime import Runtime


@contextmanager
def started_system(backend: Backend) -> Iterator[System]:
    """Finance, Dataverse and the bridge on one broker, tables created, workers started; stopped after."""
    runtime = Runtime(backend.settings)
    try:
        running = System(runtime, backend.name)
        backend.fresh_tables(runtime)
        load_test_companies(runtime)
        runtime.start()
        yield running
    finally:
        runtime.stop()


@pytest.fixture
def system(backend: Backend) -> Iterator[System]:
    """Finance, Dataverse and the bridge on one broker, tables created, workers started."""
    with started_system(backend) as running:
        yield running
