"""A dead letter's reason is recorded whatever the message held, on SQLite and on PostgreSQL.

PostgreSQL refuses a value longer than its column and text with a NUL; before, such a message lost
its reason ("could not record the dead letter's reason"). Each value is now cut to fit, marked, and
the body capped, and the letter can still be found, listed and recorded again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, select

from shared.dead_letters import BODY_BYTES, DeadLetter, body_cut_size, record_dead_letter
from shared.errors import InvalidContract, Unauthenticated
from shared.messaging_tables import messaging_tables
from shared.side_database import SideDatabase
from tests.integration.engines import BACKENDS, engine_with
from workers.operations.dead_letter_queue import DeadLetterQueue
from workers.operations.dead_letter_records import DeadLetterLedgers

metadata = MetaData()
messaging = messaging_tables(metadata)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SideDatabase]:
    for engine in engine_with(request, tmp_path, metadata):
        yield SideDatabase("finance", engine, metadata, messaging)


def letter(**fields: object) -> DeadLetter:
    values: dict[str, object] = {
        "message_id": str(uuid.uuid4()), "queue_name": "finance.commands", "actor_name": "receive_finance_commands",
        "body": "{}", "error": InvalidContract("envelope: Invalid JSON"), "traceback": None, "attempts": 1,
    }
    return DeadLetter(**{**values, **fields})  # type: ignore[arg-type]


def rows(engine: Engine) -> list[dict]:
    table = messaging.dead_letters
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(select(table).order_by(table.c.id)).mappings()]


def test_values_longer_than_their_columns_are_cut_to_fit_and_the_reason_kept(database: SideDatabase) -> None:
    long_id = "not-a-uuid-" + "x" * 500
    record_dead_letter(
        database,
        letter(
            message_id=long_id, queue_name="q" * 300, actor_name="a" * 300, contract="c" * 300,
            correlation_id="r" * 1000, error=InvalidContract("e" * 100_000), traceback="t" * 100_000,
        ),
    )

    [row] = rows(database.engine)

    assert len(row["message_id"]) == 36 and row["message_id"].startswith("not-a-uuid-xxxx") and "…" in row["message_id"]
    assert (len(row["queue_name"]), len(row["actor_name"]), len(row["contract"]), len(row["correlation_id"])) == (128, 128, 64, 200)
    assert row["queue_name"].endswith("q…") and row["correlation_id"].endswith("r…")
    assert row["error"].startswith("eeee") and row["error"].endswith("…") and len(row["error"]) < 10_000
    assert row["traceback"].endswith("…") and len(row["traceback"]) < 40_000
    assert row["error_type"] == "InvalidContract"


def test_a_long_message_id_stays_apart_from_another_and_is_found_by_its_start(database: SideDatabase) -> None:
    first, second = "id-" + "x" * 100 + "-1", "id-" + "x" * 100 + "-2"
    record_dead_letter(database, letter(message_id=first))
    record_dead_letter(database, letter(message_id=second))
    queue = DeadLetterQueue(DeadLetterLedgers({"finance": database}), None)

    ids = [letter.message_id for letter in queue.letters()]

    assert len(set(ids)) == 2 and all(len(message_id) <= 36 for message_id in ids)
    assert queue.find(ids[0]).message_id == ids[0]
    [history] = queue.history(ids[1])
    assert history.message_id == ids[1]


def test_a_huge_body_is_capped_with_its_size_noted_and_text_a_database_refuses_is_escaped(database: SideDatabase) -> None:
    huge = json.dumps({"contract": "create_projects", "payload": "é" * BODY_BYTES})
    hostile = "\x00 NUL, a lone surrogate \ud800, bytes \\xff"
    record_dead_letter(database, letter(body=huge))
    record_dead_letter(database, letter(body=hostile, error=Unauthenticated("unsigned \x00 message \udcff"), correlation_id="\x00" * 300))

    cut, escaped = rows(database.engine)

    assert len(cut["body"].encode("utf-8")) < BODY_BYTES + 200
    assert body_cut_size(cut["body"]) == len(huge.encode("utf-8"))
    assert f"{len(huge.encode('utf-8')):,} bytes in all" in cut["body"]
    assert escaped["body"] == "\\x00 NUL, a lone surrogate \\ud800, bytes \\xff"
    assert escaped["error"] == "unsigned \\x00 message \\udcff" and escaped["error_type"] == "Unauthenticated"
    assert len(escaped["correlation_id"]) == 200


def test_a_letter_refused_again_on_replay_is_recorded_again_as_it_was(database: SideDatabase) -> None:
    huge = json.dumps({"payload": "x" * (2 * BODY_BYTES)})
    record_dead_letter(database, letter(message_id="m" * 100, correlation_id="r" * 1000, body=huge))
    ledgers = DeadLetterLedgers({"finance": database})
    [record] = ledgers.dead()

    ledgers.supersede(record, InvalidContract("still " * 10_000), "dana")

    old, new = rows(database.engine)
    assert old["outcome"] == "superseded" and new["outcome"] is None
    assert (new["message_id"], new["correlation_id"], new["body"]) == (old["message_id"], old["correlation_id"], old["body"])
    assert body_cut_size(new["body"]) == len(huge) and new["body"].count("cut when recorded") == 1
    assert new["error"].endswith("…")
