"""Only signed, authorized messages move anything: strangers are refused with nothing written.

Each scenario runs on the embedded default and on the real Redis and PostgreSQL (the ``system``
fixture). A forged message is always one that would have been applied had its rightful sender
signed it, so a refusal proves the check, not a broken message.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from contracts.envelope import Envelope, Side, new_envelope
from contracts.queues import DATAVERSE_COMMANDS, Queue, table_map
from shared.keys import SigningKey, add_trusted, revoke_trusted, write_private
from shared.publisher import dramatiq_message
from shared.signatures import KEY_OPTION, SIGNATURE_OPTION, key_ring, seal
from shared.waiting import wait_until
from tests.integration.support import DATAVERSE, FINANCE, System, given_transaction_categories
from workers.bridge.map_states import read_state
from workers.dataverse import tables as dataverse_tables
from workers.finance import tables as finance_tables

WAIT = 20.0
CATEGORIES_INTO_FINANCE = table_map("msdyn_transactioncategories").inbound


def category_envelope(code: str, *, source: Side = Side.UPSTREAM, message_id: uuid.UUID | None = None, name: str | None = None) -> Envelope:
    return new_envelope(
        contract="create_transaction_categories",
        version=1,
        source=source,
        payload={"rows": [{"category": code, "name": name or code.title()}]},
        correlation_id=f"trust:{code}",
        message_id=message_id,
    )


def map_envelope(code: str) -> Envelope:
    """A row of msdyn_transactioncategories as the bridge carries it to finance."""
    return new_envelope(
        contract="msdyn_transactioncategories",
        version=1,
        source=Side.BRIDGE,
        payload={"rows": [{"category": code, "name": code.title(), "description": None}]},
        correlation_id=f"trust:{code}",
    )


def send(system: System, queue: Queue, envelope: Envelope | str, options: dict[str, Any], message_id: str | None = None) -> str:
    """Enqueue a body with exactly these options (a signature, or none), as an attacker with broker access can."""
    body = envelope if isinstance(envelope, str) else envelope.model_dump_json()
    message_id = message_id or (str(envelope.message_id) if isinstance(envelope, Envelope) else str(uuid.uuid4()))
    system.runtime.broker.enqueue(dramatiq_message(queue.name, queue.actor_name, message_id, body, options))
    return message_id


def signed_by(system: System, sender: str, body: str) -> dict[str, str]:
    return seal(key_ring(system.runtime.settings).signer(sender), body)


def dataverse_categories(system: System) -> set[str]:
    return {row.category for row in system.rows(DATAVERSE, select(dataverse_tables.transaction_categories.c.category))}


def finance_categories(system: System) -> set[str]:
    return {row.category for row in system.rows(FINANCE, select(finance_tables.shared_categories.c.category))}


def letters(system: System, side: Side) -> dict[str, tuple[str, str]]:
    """message id -> (error type, reason) of the side's dead letters."""
    return {row.message_id: (row.error_type, row.error) for row in system.dead_letters(side)}


def test_forged_unsigned_and_unauthorized_messages_are_refused_and_write_nothing(system: System) -> None:
    # Given a system where the rightful upstream system's categories are applied
    given_transaction_categories(system, "HOTEL")
    stranger = SigningKey.generate("project-operations", "stranger-1")  # right sender name, untrusted key
    cases: dict[str, tuple[str, str]] = {}

    def attempt(label: str, queue: Queue, envelope: Envelope, options: dict[str, Any], expected: tuple[str, str]) -> None:
        cases[send(system, queue, envelope, options)] = expected
        forged.add(label)

    forged: set[str] = set()
    # When strangers and careless senders write to the queues
    unsigned = category_envelope("UNSIGNED")
    attempt("UNSIGNED", DATAVERSE_COMMANDS, unsigned, {}, ("Unauthenticated", "unsigned message"))

    untrusted = category_envelope("UNTRUSTED")
    attempt("UNTRUSTED", DATAVERSE_COMMANDS, untrusted, seal(stranger, untrusted.model_dump_json()),
            ("Unauthenticated", "unknown signing key 'stranger-1'"))

    genuine, tampered = category_envelope("GENUINE"), category_envelope("TAMPERED")
    genuine_signature = signed_by(system, "project-operations", genuine.model_dump_json())
    tampered = tampered.model_copy(update={"message_id": genuine.message_id})
    attempt("TAMPERED", DATAVERSE_COMMANDS, tampered, genuine_signature, ("Unauthenticated", "does not match the message"))

    wrong_system = category_envelope("WRONGSYSTEM")
    attempt("WRONGSYSTEM", DATAVERSE_COMMANDS, wrong_system, signed_by(system, "expense-management", wrong_system.model_dump_json()),
            ("Forbidden", "expense-management may not write queue 'dataverse.commands'"))

    wrong_contract = category_envelope("WRONGCONTRACT", source=Side.BRIDGE)  # the bridge writes this queue, not this contract
    attempt("WRONGCONTRACT", DATAVERSE_COMMANDS, wrong_contract, signed_by(system, "bridge", wrong_contract.model_dump_json()),
            ("Forbidden", "bridge may not send create_transaction_categories to 'dataverse.commands'"))

    side_on_commands = category_envelope("SIDEKEY")
    attempt("SIDEKEY", DATAVERSE_COMMANDS, side_on_commands, signed_by(system, "finance", side_on_commands.model_dump_json()),
            ("Forbidden", "finance may not write queue 'dataverse.commands'"))

    lying = category_envelope("LYING", source=Side.FINANCE)
    attempt("LYING", DATAVERSE_COMMANDS, lying, signed_by(system, "project-operations", lying.model_dump_json()),
            ("Forbidden", "envelope says source 'finance' but is signed by project-operations"))

    map_row = map_envelope("MAPFORGED")  # straight into finance, as if the bridge had carried it
    attempt("MAPFORGED", CATEGORIES_INTO_FINANCE, map_row, signed_by(system, "dataverse", map_row.model_dump_json()),
            ("Forbidden", "dataverse may not write queue 'msdyn_transactioncategories.bridge-to-finance'"))
    upstream_map = map_envelope("UPSTREAMMAP").model_copy(update={"source": Side.UPSTREAM})
    attempt("UPSTREAMMAP", CATEGORIES_INTO_FINANCE, upstream_map, signed_by(system, "project-operations", upstream_map.model_dump_json()),
            ("Forbidden", "project-operations may not write queue"))

    # ... while the rightful sender goes on publishing
    good = system.publish("create_transaction_categories", [{"category": "TAXI", "name": "Taxi"}])

    # Then every stranger's message is a dead letter with its own reason, at once (attempt 1)
    wait_until(lambda: len(letters(system, DATAVERSE)) + len(letters(system, FINANCE)) == len(cases), timeout=WAIT, what="every refusal recorded")
    system.settle()
    recorded = {**letters(system, DATAVERSE), **letters(system, FINANCE)}
    assert set(recorded) == set(cases)
    for message_id, (error_type, reason) in cases.items():
        assert recorded[message_id][0] == error_type, recorded[message_id]
        assert reason in recorded[message_id][1], recorded[message_id]
    attempts = {row.attempts for side in (DATAVERSE, FINANCE) for row in system.dead_letters(side)}
    assert attempts == {1}

    # And nothing of theirs was written on either side, while the rightful message was applied and carried
    assert dataverse_categories(system) == {"HOTEL", "TAXI"}
    wait_until(lambda: finance_categories(system) == {"HOTEL", "TAXI"}, timeout=WAIT, what="TAXI carried to finance")
    assert system.applied(DATAVERSE, good.message_id) == 1
    assert forged.isdisjoint(dataverse_categories(system) | finance_categories(system))

    # And a refusal is not a table map's failure: the map keeps running, no failure counted
    with system.database(Side.BRIDGE).engine.connect() as connection:
        status = read_state(connection, "msdyn_transactioncategories")
    assert (status.state.value, status.failed) == ("running", 0)


def test_a_revoked_key_is_refused_and_its_successor_is_heard(system: System) -> None:
    settings = system.runtime.settings
    ring = key_ring(settings)
    old = ring.signer("project-operations")

    # Given a second key of the same upstream system, made and trusted while the workers run
    successor = SigningKey.generate("project-operations", "project-operations-next")
    add_trusted(settings.key_folder, successor.trusted("9999-01-01T00:00:00+00:00"))
    write_private(settings.key_folder, successor)

    # When the old key is revoked
    revoke_trusted(settings.key_folder, old.key_id)

    # Then a message signed by the old key is refused, within the ring's reload time
    def refused_after_revoke() -> bool:
        envelope = category_envelope(f"OLD{uuid.uuid4().hex[:4].upper()}")
        message_id = send(system, DATAVERSE_COMMANDS, envelope, seal(old, envelope.model_dump_json()))
        wait_until(lambda: system.applied(DATAVERSE, message_id) or message_id in letters(system, DATAVERSE), timeout=WAIT, what="handled")
        return message_id in letters(system, DATAVERSE)

    wait_until(refused_after_revoke, timeout=WAIT, interval=0.5, what="the revoked key refused")
    newest = [error for _, error in letters(system, DATAVERSE).values()][-1]
    assert f"signing key {old.key_id!r} of project-operations was revoked" in newest

    # And one signed by the successor is applied
    envelope = category_envelope("NEWKEY")
    message_id = send(system, DATAVERSE_COMMANDS, envelope, seal(successor, envelope.model_dump_json()))
    wait_until(lambda: system.applied(DATAVERSE, message_id) == 1, timeout=WAIT, what="the successor's message applied")
    assert "NEWKEY" in dataverse_categories(system)


def test_a_message_id_replayed_with_another_payload_is_a_conflicting_duplicate(system: System) -> None:
    # Given a category applied under one message id
    first = category_envelope("MEALS", name="Meals")
    body = first.model_dump_json()
    send(system, DATAVERSE_COMMANDS, first, signed_by(system, "project-operations", body))
    wait_until(lambda: system.applied(DATAVERSE, first.message_id) == 1, timeout=WAIT, what="first applied")

    # When the same bytes come again (a redelivery), then the same id with another name (signed by the same system)
    send(system, DATAVERSE_COMMANDS, body, signed_by(system, "project-operations", body), message_id=str(first.message_id))
    renamed = category_envelope("MEALS", message_id=first.message_id, name="Meals and drinks")
    send(system, DATAVERSE_COMMANDS, renamed, signed_by(system, "project-operations", renamed.model_dump_json()))

    # Then the redelivery is ignored quietly and the other payload refused with its reason, once, at once
    wait_until(lambda: letters(system, DATAVERSE), timeout=WAIT, what="the conflicting duplicate recorded")
    system.settle()
    ((error_type, reason),) = letters(system, DATAVERSE).values()
    assert error_type == "ConflictingDuplicate"
    assert f"message id {first.message_id} was applied before with other content" in reason
    names = {row.name for row in system.rows(DATAVERSE, select(dataverse_tables.transaction_categories.c.name))}
    assert names == {"Meals"}


@pytest.mark.parametrize("option", [KEY_OPTION, SIGNATURE_OPTION])
def test_half_a_signature_is_no_signature(system: System, option: str) -> None:
    envelope = category_envelope("HALF")
    options = signed_by(system, "project-operations", envelope.model_dump_json())
    del options[option]
    message_id = send(system, DATAVERSE_COMMANDS, envelope, options)
    wait_until(lambda: message_id in letters(system, DATAVERSE), timeout=WAIT, what="refusal recorded")
    assert letters(system, DATAVERSE)[message_id][0] == "Unauthenticated"
    assert "HALF" not in dataverse_categories(system)
