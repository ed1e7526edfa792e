"""The ``system`` fixture: all three workers running on the test's backend, always stopped after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.support import System, load_test_companies
from workers.runtime import Runtime


@pytest.fixture
def system(backend) -> Iterator[System]:
    """Finance, Dataverse and the bridge on one broker, tables created, workers started."""
    runtime = Runtime(backend.settings)
    try:
        running = System(runtime, backend.name)
        runtime.create_tables()
        load_test_companies(runtime)
        runtime.start()
        yield running
    finally:
        runtime.stop()
