"""The queue topology: names dramatiq accepts, readable by an operator, one actor per queue."""

from __future__ import annotations

import re

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from contracts.envelope import Side
from contracts.queues import (
    DATAVERSE_COMMANDS,
    FINANCE_COMMANDS,
    TABLE_MAPS,
    Queue,
    all_queues,
    queues_consumed_by,
    table_map,
)

#: dramatiq's own rule (dramatiq/actor.py, ``_queue_name_re``), checked again below by dramatiq itself.
DRAMATIQ_QUEUE_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9._-]*")

QUEUES = all_queues()


@pytest.mark.parametrize("queue", QUEUES, ids=lambda q: q.name)
def test_every_queue_name_matches_dramatiqs_queue_name_rule(queue):
    assert DRAMATIQ_QUEUE_NAME.fullmatch(queue.name)
    assert not queue.name.endswith((".DQ", ".XQ")), "dramatiq reserves these suffixes for delay and dead-letter queues"


def test_dramatiq_accepts_an_actor_on_every_queue():
    broker = StubBroker()

    declared = [
        dramatiq.actor(lambda envelope: None, actor_name=queue.actor_name, queue_name=queue.name, broker=broker)
        for queue in QUEUES
    ]

    assert {queue.name for queue in QUEUES} <= broker.get_declared_queues()
    assert {actor.actor_name for actor in declared} == {queue.actor_name for queue in QUEUES}


def test_the_rule_we_copied_is_still_dramatiqs_rule():
    from dramatiq.actor import _queue_name_re

    assert _queue_name_re.pattern == DRAMATIQ_QUEUE_NAME.pattern


def test_an_operator_reads_map_and_direction_from_the_name():
    queue = table_map("msdyn_expensecategories").outbound

    assert queue.name == "msdyn_expensecategories.finance-to-bridge"
    assert queue.table_map == "msdyn_expensecategories"
    assert queue.direction == "finance -> bridge"
    assert queue.consumer is Side.BRIDGE


def test_the_second_leg_of_a_map_runs_from_the_bridge_to_the_target():
    queue = table_map("msdyn_expensecategories").inbound

    assert queue.name == "msdyn_expensecategories.bridge-to-dataverse"
    assert queue.direction == "bridge -> dataverse"
    assert queue.consumer is Side.DATAVERSE


def test_transaction_categories_run_the_other_way():
    each = table_map("msdyn_transactioncategories")

    assert [each.outbound.direction, each.inbound.direction] == ["dataverse -> bridge", "bridge -> finance"]


@pytest.mark.parametrize("each", TABLE_MAPS, ids=lambda m: m.name)
def test_every_map_has_two_legs_named_after_it_through_the_bridge(each):
    outbound, inbound = each.outbound, each.inbound

    assert outbound.name.split(".")[0] == inbound.name.split(".")[0] == each.name
    assert outbound.direction == f"{each.source} -> bridge"
    assert inbound.direction == f"bridge -> {each.target}"
    assert (outbound.consumer, inbound.consumer) == (Side.BRIDGE, each.target)
    assert each.source is not each.target


def test_upstream_commands_have_a_queue_per_side():
    assert (FINANCE_COMMANDS.name, FINANCE_COMMANDS.direction) == ("finance.commands", "upstream -> finance")
    assert (DATAVERSE_COMMANDS.name, DATAVERSE_COMMANDS.direction) == ("dataverse.commands", "upstream -> dataverse")


def test_queue_names_and_actor_names_are_unique():
    names = [queue.name for queue in QUEUES]
    actors = [queue.actor_name for queue in QUEUES]

    assert len(set(names)) == len(names)
    assert len(set(actors)) == len(actors)


def test_an_actor_name_is_a_python_identifier_derived_from_its_queue():
    queue = Queue("msdyn_expensecategories.finance-to-bridge", Side.BRIDGE, "msdyn_expensecategories")

    assert queue.actor_name == "receive_msdyn_expensecategories_finance_to_bridge"
    assert all(queue.actor_name.isidentifier() for queue in QUEUES)


def test_each_side_consumes_its_own_queues_only():
    for side in Side:
        consumed = queues_consumed_by(side)
        assert all(queue.consumer is side for queue in consumed)
    assert {queue.name for side in Side for queue in queues_consumed_by(side)} == {queue.name for queue in QUEUES}
    assert queues_consumed_by(Side.UPSTREAM) == []


def test_an_unknown_map_is_refused_by_name():
    with pytest.raises(KeyError, match="msdyn_unknown"):
        table_map("msdyn_unknown")
