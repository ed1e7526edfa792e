"""Fixtures of the end-to-end tier: a broker (Redis, or a throwaway RabbitMQ vhost) and the
compose workers' environment pointed at it and at three throwaway PostgreSQL databases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import compose_file
from tests.e2e.brokers import Broker, BrokerUnavailable, amqp_publisher, redis_publisher, throwaway_vhost
from tests.e2e.deployment import LocalDeployment


def broker_unavailable(error: BaseException) -> None:
    """Skip on a laptop without the broker; fail under CI, where every service must be up."""
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{error} (under CI the end-to-end tests never skip)", pytrace=False)
    pytest.skip(f"{error}; under CI=true this fails")


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
    ]
)
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """The broker the workers run on: the machine's Redis (a dedicated, flushed db), or RabbitMQ."""
    if request.param == "redis":
        redis_db = request.getfixturevalue("redis_db")  # tests/conftest.py: skips or fails itself
        yield Broker("redis", redis_db.url, redis_publisher(redis_db.client))
        return
    with ExitStack() as cleanup:
        try:
            url = cleanup.enter_context(throwaway_vhost())
        except BrokerUnavailable as error:
            broker_unavailable(error)
        yield Broker("rabbitmq", url, amqp_publisher(url))


@pytest.fixture
def local_deployment(broker: Broker, postgres_server: Any, tmp_path: Path) -> Iterator[LocalDeployment]:
    """compose.yaml's worker environment, its URLs pointed at the broker and the machine's PostgreSQL.

    ``postgres_server`` (tests/conftest.py) gives three throwaway databases, one per side,
    emptied here and dropped at the end of the session; it skips when PostgreSQL is down, except
    under CI, where it fails.
    """
    postgres_server.reset()
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DUALWRITE_")}
    environment.update(compose_file.resolved_environment(compose_file.services()["finance"]))
    environment.update(
        {
            "DUALWRITE_BROKER_URL": broker.url,
            "DUALWRITE_FINANCE_DB_URL": postgres_server.urls["finance"],
            "DUALWRITE_DATAVERSE_DB_URL": postgres_server.urls["dataverse"],
            "DUALWRITE_BRIDGE_DB_URL": postgres_server.urls["bridge"],
        }
    )
    deployment = LocalDeployment(environment, postgres_server.urls, tmp_path)
    try:
        yield deployment
    finally:
        deployment.close()
