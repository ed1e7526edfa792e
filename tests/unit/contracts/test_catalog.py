"""The catalog: every contract has somewhere to go."""

from __future__ import annotations

import pytest

from contracts.catalog import CONTRACTS, default_registry, publish_queue
from contracts.queues import all_queues
from contracts.registry import Kind, Scope


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_every_contract_is_published_to_a_queue_of_the_topology(contract):
    queue = publish_queue(contract)

    assert queue in all_queues()
    if contract.kind is Kind.TABLE_MAP:
        assert queue.table_map == contract.name  # a map's rows travel on the map's own queues
    else:
        assert queue.table_map is None


def test_the_default_registry_holds_every_contract_once():
    assert sorted(contract.name for contract in default_registry()) == sorted(contract.name for contract in CONTRACTS)


def test_default_registry_builds_a_fresh_registry_each_time():
    assert default_registry() is not default_registry()


def test_transaction_categories_are_shared_and_expense_categories_belong_to_a_company():
    registry = default_registry()

    assert registry.get("msdyn_transactioncategories").scope is Scope.GLOBAL
    assert registry.get("msdyn_expensecategories").scope is Scope.LEGAL_ENTITY
    assert registry.get("create_expense_estimates").latest == 2
