"""Metrics wiring that needs no service: ports per process, dramatiq's middleware, an unreadable database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from shared.metrics import Metrics
from shared.middleware.prometheus import DramatiqPrometheus
from shared.settings import Settings
from shared.side_database import SideDatabase
from workers.finance.tables import messaging, metadata
from workers.process import process_settings


def test_each_process_of_a_worker_serves_on_the_port_plus_its_index() -> None:
    settings = Settings(metrics_port=9300)

    assert [process_settings(settings, index).metrics_port for index in range(3)] == [9300, 9301, 9302]
    assert process_settings(Settings(), 2).metrics_port is None


def test_dramatiq_metrics_join_our_registry_without_switching_the_process_to_multiprocess_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"):
        monkeypatch.delenv(name, raising=False)
    registry = CollectorRegistry()

    middleware = DramatiqPrometheus(registry)
    middleware.total_messages.labels("finance.commands", "receive_finance_commands").inc()

    assert registry.get_sample_value("dramatiq_messages_total", {"queue_name": "finance.commands", "actor_name": "receive_finance_commands"}) == 1
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ and "prometheus_multiproc_dir" not in os.environ
    assert middleware.forks == []


def test_a_database_that_does_not_answer_is_reported_not_raised(tmp_path: Path) -> None:
    unreachable = SideDatabase.open("finance", f"sqlite:///{tmp_path / 'missing' / 'finance.sqlite3'}", metadata, messaging)
    metrics = Metrics()
    metrics.watch([(unreachable, ())])

    assert metrics.registry.get_sample_value("dualwrite_database_readable", {"side": "finance"}) == 0
    assert metrics.registry.get_sample_value("dualwrite_outbox_backlog", {"side": "finance"}) is None
    unreachable.dispose()
