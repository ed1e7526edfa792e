"""Prometheus metrics: a worker process serves what it applied, refused and still has to send, on both backends.

The three sides run with ``DUALWRITE_METRICS_PORT`` set to a free port; the test scrapes
``http://127.0.0.1:<port>/metrics`` as Prometheus would and reads the figures a dashboard shows.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.report_flow import (
    commit_unsent_expense_categories,
    given_the_demo_reference_data,
    import_from_staging,
    post_report,
    unique_correlation,
)
from tests.integration.support import FINANCE, System, given_transaction_categories, load_test_companies
from workers.runtime import Runtime

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def served(backend) -> Iterator[System]:  # noqa: ANN001
    """All three sides in one process, metrics on a free port; Import from staging and the outbox sweep run when the test says."""
    settings = backend.settings.model_copy(
        update={"metrics_port": free_port(), "metrics_address": "127.0.0.1", "import_interval_seconds": 3600, "outbox_sweep_seconds": 3600}
    )
    runtime = Runtime(settings)
    try:
        system = System(runtime, backend.name)
        runtime.create_tables()
        load_test_companies(runtime)
        runtime.start()
        yield system
    finally:
        runtime.stop()


def scrape(system: System) -> Samples:
    port = system.runtime.settings.metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def queue(side: str, name: str, table_map: str, contract: str) -> dict[str, str]:
    return {"side": side, "queue": name, "table_map": table_map, "contract": contract}


def test_rows_applied_per_map_and_dead_letters_per_contract(served: System) -> None:
    # Given two transaction categories created in Dataverse and carried to finance
    given_transaction_categories(served, "HOTEL", "AIRFARE")
    # ... and an expense category finance refuses (its shared category is not enabled for expense)
    served.publish("create_expense_categories", [{"expense_category": "HOTEL", "name": "Hotel", "shared_category": "HOTEL"}], legal_entity="USPM")
    served.settle()
    assert len(served.dead_letters(FINANCE)) == 1

    # When Prometheus scrapes the worker
    samples = scrape(served)

    # Then the rows applied show per side, queue, table map and contract
    rows = "dualwrite_rows_applied_total"
    assert value(samples, rows, **queue("dataverse", "dataverse.commands", "none", "create_transaction_categories")) == 2
    assert value(samples, rows, **queue("bridge", "msdyn_transactioncategories.dataverse-to-bridge", "msdyn_transactioncategories", "msdyn_transactioncategories")) == 2
    assert value(samples, rows, **queue("finance", "msdyn_transactioncategories.bridge-to-finance", "msdyn_transactioncategories", "msdyn_transactioncategories")) == 2
    assert value(samples, "dualwrite_messages_applied_total", **queue("finance", "msdyn_transactioncategories.bridge-to-finance", "msdyn_transactioncategories", "msdyn_transactioncategories")) == 1
    # And the refusal is one permanent dead letter of its contract; nothing else died
    dead = {labels: count for (name, labels), count in samples.items() if name == "dualwrite_dead_letters_total"}
    assert dead == {frozenset({**queue("finance", "finance.commands", "none", "create_expense_categories"), "error_kind": "permanent"}.items()): 1}
    # And dramatiq's own metrics are served beside ours
    assert value(samples, "dramatiq_messages_total", queue_name="dataverse.commands", actor_name="receive_dataverse_commands") == 1
    assert value(samples, "dramatiq_message_rejects_total", queue_name="finance.commands", actor_name="receive_finance_commands") == 1


def test_outbox_backlog_rises_with_unsent_messages_and_falls_when_relayed(served: System) -> None:
    # Given every outbox empty
    assert {side: value(scrape(served), "dualwrite_outbox_backlog", side=side) for side in ("finance", "dataverse", "bridge")} == {
        "finance": 0, "dataverse": 0, "bridge": 0,
    }

    # When finance commits two messages the relay has not sent yet (as a crash right after commit leaves them)
    for _ in range(2):
        commit_unsent_expense_categories(served, unique_correlation("expense-categories:USPM"))

    # Then the finance backlog is 2 and its oldest unsent message has an age
    samples = scrape(served)
    assert value(samples, "dualwrite_outbox_backlog", side="finance") == 2
    assert value(samples, "dualwrite_outbox_oldest_unsent_seconds", side="finance") >= 0
    assert value(samples, "dualwrite_database_readable", side="finance") == 1

    # When the relay runs, the backlog is gone and the bridge and Dataverse apply both
    assert served.runtime.side(FINANCE).relay.relay() == 2
    served.settle()
    samples = scrape(served)
    assert value(samples, "dualwrite_outbox_backlog", side="finance") == 0
    assert value(samples, "dualwrite_rows_applied_total", **queue("dataverse", "msdyn_expensecategories.bridge-to-dataverse", "msdyn_expensecategories", "msdyn_expensecategories")) == 2


def test_integration_account_balance_per_legal_entity(served: System) -> None:
    # Given R-US-001 posted: 891.00 USD of project cost waits on USPM's expense integration account
    given_the_demo_reference_data(served)
    post_report(served, "R-US-001")
    served.settle()

    # Then the gauge shows it per legal entity, in the company's accounting currency
    balance = "dualwrite_expense_integration_balance"
    samples = scrape(served)
    assert value(samples, balance, legal_entity="USPM", account="189900", currency="USD") == 891.00
    assert value(samples, balance, legal_entity="DEMF", account="189900", currency="EUR") == 0

    # When Import from staging imports and posts the journal, the account is cleared
    run = import_from_staging(served)
    assert run.lines_imported == 4
    assert value(scrape(served), balance, legal_entity="USPM", account="189900", currency="USD") == 0
