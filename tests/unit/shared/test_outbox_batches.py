"""How waiting outbox parts are combined into messages (shared.outbox_batches): pure, no I/O."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from dataclasses import replace
from typing import Any

import pytest

from contracts.batch import MAX_ROWS
from contracts.catalog import default_registry
from contracts.envelope import Side, new_envelope
from contracts.registry import by_part
from shared.errors import InvalidContract
from shared.outbox_batches import carried_parts, combine
from shared.outbox_marks import Outgoing

REGISTRY = default_registry()
QUEUE, ACTOR = "msdyn_expenses.finance-to-bridge", "msdyn_expenses_finance_to_bridge"


def expense_row(expense_id: str, amount: str = "10.00") -> dict[str, Any]:
    return {
        "expense_id": expense_id, "report_id": expense_id.rsplit("-", 1)[0], "line_number": 1,
        "project_id": "PRJ-US-1", "expense_category": "HOTEL", "worker": "maria", "date": "2026-11-02",
        "amount": amount, "currency": "USD", "project_cost": amount, "accounting_currency": "USD",
        "project_cost_accounting": amount, "exchange_rate": "1", "voucher": "V-1",
    }


def part(document: str, rows: list[dict[str, Any]], *, legal_entity: str = "USPM", queue: str = QUEUE) -> Outgoing:
    """One outbox row as a unit of work writes it: one document's rows, its own envelope."""
    envelope = new_envelope(
        contract="msdyn_expenses", version=1, source=Side.FINANCE, payload={"rows": rows},
        correlation_id=f"expense-report:{legal_entity}:{document}", legal_entity=legal_entity,
        causation_id=str(uuid.uuid4()),
    )
    return Outgoing(queue, ACTOR, str(envelope.message_id), envelope.model_dump_json(), "msdyn_expenses", 1, "finance", legal_entity)


def test_a_part_waiting_alone_leaves_as_it_was_written() -> None:
    lone = part("R-1", [expense_row("R-1-1")])

    [message] = combine([lone], REGISTRY.key_fields)

    assert (message.message_id, message.body, message.part_ids) == (lone.message_id, lone.body, (lone.message_id,))


def test_parts_of_one_group_leave_as_one_message_that_the_receiver_decodes_into_the_same_parts() -> None:
    parts = [part(f"R-{n}", [expense_row(f"R-{n}-1"), expense_row(f"R-{n}-2", "2.50")]) for n in range(3)]

    [message] = combine(parts, REGISTRY.key_fields)

    # One message with every row, in order, and each part's ids, rows and correlation
    decoded = REGISTRY.decode(message.body)
    assert message.part_ids == tuple(p.message_id for p in parts) == carried_parts(message.message_id, message.body)
    assert [row.expense_id for row in decoded.payload.rows] == [f"R-{n}-{i}" for n in range(3) for i in (1, 2)]
    assert [(p.message_id, p.correlation_id, p.rows) for p in decoded.parts] == [
        (p.message_id, f"expense-report:USPM:R-{n}", 2) for n, p in enumerate(parts)
    ]
    assert [json.loads(p.body)["causation_id"] for p in parts] == [p.causation_id for p in decoded.parts]
    assert decoded.payload.rows[1].amount == Decimal("2.50")
    # And the same parts always make the same message id
    assert combine(parts, REGISTRY.key_fields)[0].message_id == message.message_id
    assert combine(parts[:2], REGISTRY.key_fields)[0].message_id != message.message_id


def test_parts_of_other_companies_or_queues_never_share_a_message() -> None:
    usa, germany = part("R-1", [expense_row("R-1-1")]), part("R-2", [expense_row("R-2-1")], legal_entity="DEMF")
    other_queue = part("R-3", [expense_row("R-3-1")], queue="msdyn_expenses.other")

    messages = combine([usa, germany, other_queue], REGISTRY.key_fields)

    assert [m.part_ids for m in messages] == [(usa.message_id,), (germany.message_id,), (other_queue.message_id,)]


def test_a_part_repeating_an_integration_key_starts_the_next_message_so_it_applies_after() -> None:
    first, again, other = (part("R-1", [expense_row("R-1-1")]), part("R-1", [expense_row("r-1-1", "3.00")]),
                           part("R-2", [expense_row("R-2-1")]))

    messages = combine([first, again, other], REGISTRY.key_fields)

    assert [m.part_ids for m in messages] == [(first.message_id,), (again.message_id, other.message_id)]
    for message in messages:
        REGISTRY.decode(message.body)  # each one valid: no batch repeats a key, in any case


def test_no_message_holds_more_than_the_row_limit() -> None:
    parts = [part(f"R-{n}", [expense_row(f"R-{n}-{i}") for i in range(300)]) for n in range(4)]

    messages = combine(parts, REGISTRY.key_fields)

    assert [len(m.part_ids) for m in messages] == [3, 1]
    assert all(len(REGISTRY.decode(m.body).payload.rows) <= MAX_ROWS for m in messages)


def test_no_message_grows_past_the_byte_limit() -> None:
    parts = [part(f"R-{n}", [expense_row(f"R-{n}-1")]) for n in range(5)]
    size = len(parts[0].body)

    messages = combine(parts, REGISTRY.key_fields, max_bytes=2 * size + 10)

    assert [len(m.part_ids) for m in messages] == [2, 2, 1]


def test_a_message_whose_parts_do_not_count_its_rows_is_refused() -> None:
    [message] = combine([part("R-1", [expense_row("R-1-1")]), part("R-2", [expense_row("R-2-1")])], REGISTRY.key_fields)
    envelope = json.loads(message.body)
    envelope["parts"][1]["rows"] = 2

    with pytest.raises(InvalidContract, match="the parts count 3 rows, the payload has 2"):
        REGISTRY.decode(json.dumps(envelope))


def test_a_message_naming_one_part_twice_is_refused() -> None:
    [message] = combine([part("R-1", [expense_row("R-1-1")]), part("R-2", [expense_row("R-2-1")])], REGISTRY.key_fields)
    envelope = json.loads(message.body)
    envelope["parts"][1]["message_id"] = envelope["parts"][0]["message_id"]

    with pytest.raises(InvalidContract, match="two parts have one message_id"):
        REGISTRY.decode(json.dumps(envelope))


def test_a_message_reduced_to_its_unapplied_parts_holds_only_their_rows() -> None:
    parts = [part(f"R-{n}", [expense_row(f"R-{n}-1"), expense_row(f"R-{n}-2")]) for n in range(3)]
    [message] = combine(parts, REGISTRY.key_fields)
    decoded = REGISTRY.decode(message.body)

    # When two parts are left, the message keeps its id and names those two
    left = decoded.only(decoded.parts[1:])
    assert [row.expense_id for row in left.payload.rows] == ["R-1-1", "R-1-2", "R-2-1", "R-2-2"]
    assert [str(p.message_id) for p in left.envelope.parts] == [parts[1].message_id, parts[2].message_id]
    assert [r["expense_id"] for r in left.envelope.payload["rows"]] == ["R-1-1", "R-1-2", "R-2-1", "R-2-2"]
    # And one part left is that part's own message again
    alone = decoded.only([decoded.parts[2]])
    assert (str(alone.envelope.message_id), alone.envelope.correlation_id, alone.envelope.parts) == (
        parts[2].message_id, "expense-report:USPM:R-2", None)
    assert [(p.start, p.stop) for p in alone.parts] == [(0, 2)]
    # And grouping a handler's output by the part each row came from keeps the parts' order
    grouped = by_part(range(6), decoded.part_of)
    assert [(p.message_id, rows) for p, rows in grouped] == [
        (parts[0].message_id, [0, 1]), (parts[1].message_id, [2, 3]), (parts[2].message_id, [4, 5])
    ]


# -- rows carried on as emit wrote them ---------------------------------------------------------


def _as_dumped(parts: list[Outgoing]) -> str:
    """The combined envelope as json.dumps writes it from the parsed parts (the former way)."""
    envelopes = [json.loads(p.body) for p in parts]
    first = envelopes[0]
    return json.dumps(
        {
            "message_id": None, "contract": first["contract"], "version": first["version"], "source": first["source"],
            "legal_entity": first["legal_entity"], "correlation_id": first["correlation_id"], "causation_id": None,
            "occurred_at": first["occurred_at"],
            "payload": {"rows": [row for e in envelopes for row in e["payload"]["rows"]]},
            "parts": [{"message_id": e["message_id"], "correlation_id": e["correlation_id"],
                       "causation_id": e["causation_id"], "rows": len(e["payload"]["rows"])} for e in envelopes],
        },
        separators=(",", ":"), ensure_ascii=False,
    )


def test_a_combined_message_is_byte_for_byte_its_parts_rows_as_json_writes_them() -> None:
    rows = [expense_row("R-1-1"), {**expense_row("R-1-2"), "voucher": 'V-"é€😀\\'}]
    parts = [part("R-1", rows), part('R-"2"\u2028', [expense_row("R-2-1")]), part("R-3", [expense_row("R-3-1")])]

    [message] = combine(parts, REGISTRY.key_fields)

    expected = json.loads(_as_dumped(parts))
    expected["message_id"] = message.message_id
    assert message.body == json.dumps(expected, separators=(",", ":"), ensure_ascii=False)


def test_a_part_not_written_as_emit_writes_it_is_combined_from_its_parsed_rows() -> None:
    written = [part(f"R-{n}", [expense_row(f"R-{n}-1")]) for n in range(3)]
    spaced = replace(written[1], body=json.dumps(json.loads(written[1].body), indent=1))
    parts = [written[0], spaced, written[2]]

    [message] = combine(parts, REGISTRY.key_fields)

    decoded = REGISTRY.decode(message.body)
    assert [row.expense_id for row in decoded.payload.rows] == ["R-0-1", "R-1-1", "R-2-1"]
    assert [p.message_id for p in decoded.parts] == [p.message_id for p in parts]


def test_a_part_without_rows_adds_none_to_the_message() -> None:
    parts = [part("R-1", [expense_row("R-1-1")]), part("R-2", []), part("R-3", [expense_row("R-3-1")])]

    [message] = combine(parts, REGISTRY.key_fields)

    envelope = json.loads(message.body)
    assert [row["expense_id"] for row in envelope["payload"]["rows"]] == ["R-1-1", "R-3-1"]
    assert [p["rows"] for p in envelope["parts"]] == [1, 0, 1]
