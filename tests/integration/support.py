"""The running system as the integration tests see it: publish as upstream does, wait, then look.

:class:`System` wraps a started :class:`workers.runtime.Runtime` and answers business questions
(which shared categories finance holds, which dead letters a side recorded and why, how often a
message was sent). The ``given_*`` steps set up the state a scenario starts from and check that the
set-up itself came out as expected, so a scenario fails at the step that went wrong.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, select

import workers

from contracts.senders import OPERATOR, authorization
from contracts.envelope import Envelope, Side
from contracts.queues import Queue
from shared.consumer import Consumer
from shared.outbox_batches import carried_parts
from shared.publisher import Publisher
from shared.signatures import Signer, key_ring
from shared.side_database import SideDatabase
from workers.dataverse import tables as dataverse_tables
from workers.finance import tables as finance_tables
from workers.finance.setup_document import SetupDocument, read_setup_document
from workers.reference_data import load_setup
from workers.runtime import Runtime
from workers.upstream import publish

FINANCE, DATAVERSE, BRIDGE = Side.FINANCE, Side.DATAVERSE, Side.BRIDGE
SETTLE_TIMEOUT = 20.0


class System:
    """All three sides running on one broker, with every relay send counted by the outbox rows
    (parts) it carried: a message combining several counts once for each."""

    def __init__(self, runtime: Runtime, backend_name: str) -> None:
        self.runtime = runtime
        self.backend = backend_name
        self.sends: Counter[str] = Counter()
        self._sends_lock = threading.Lock()
        for side in runtime.sides.values():
            self._count_sends(side.relay)

    def _count_sends(self, relay: Any) -> None:
        original = relay.send

        def counted(queue_name: str, actor_name: str, message_id: str, body: str) -> None:
            original(queue_name, actor_name, message_id, body)
            with self._sends_lock:
                self.sends.update(carried_parts(message_id, body))

        relay.send = counted

    # -- acting as upstream systems and operators ------------------------------------------------

    def publish(
        self,
        contract: str,
        rows: list[dict[str, Any]],
        *,
        correlation_id: str | None = None,
        legal_entity: str | None = None,
        version: int | None = None,
        message_id: uuid.UUID | None = None,
    ) -> Envelope:
        """Validate and enqueue as an upstream publisher does."""
        return publish(
            self.runtime.broker,
            self.runtime.registry,
            contract,
            {"rows": rows},
            ring=key_ring(self.runtime.settings),
            correlation_id=correlation_id or f"test:{contract}:{uuid.uuid4()}",
            legal_entity=legal_entity,
            version=version,
            message_id=message_id,
        )

    def put_raw(self, queue: Queue, body: str, message_id: str | None = None, *, sender: str | None = None) -> str:
        """Put a body on a queue with no validation at all, as a broken publisher would: signed by
        ``sender`` (default: one the queue hears), so what the queue makes of it is the body's fault."""
        message_id = message_id or str(uuid.uuid4())
        self.publisher(sender or rightful_sender(queue, body)).send_raw(queue.name, queue.actor_name, message_id, body)
        return message_id

    def publisher(self, sender: str) -> Publisher:
        """Sends signed as ``sender`` (a side, an upstream system, or the operator)."""
        return Publisher(self.runtime.broker, Signer(key_ring(self.runtime.settings), sender))

    def settle(self) -> None:
        """Wait (with a deadline) until every queue is empty and every outbox is sent."""
        self.runtime.wait_until_idle(timeout=SETTLE_TIMEOUT)

    # -- looking at the sides' databases ---------------------------------------------------------

    def database(self, side: Side) -> SideDatabase:
        return self.runtime.side(side).database

    def consumer(self, side: Side, queue: Queue) -> Consumer:
        for consumer in self.runtime.side(side).consumers:
            if consumer.endpoint.queue == queue:
                return consumer
        raise KeyError(f"{side} consumes no queue {queue.name!r}")

    def rows(self, side: Side, statement: Any) -> list[Any]:
        with self.database(side).engine.connect() as connection:
            return list(connection.execute(statement))

    def count(self, side: Side, table: Table, *criteria: Any) -> int:
        with self.database(side).engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(table).where(*criteria)) or 0

    def inbox(self, side: Side, *criteria: Any) -> list[Any]:
        table = self.database(side).messaging.inbox
        return self.rows(side, select(table).where(*criteria))

    def outbox(self, side: Side, *criteria: Any) -> list[Any]:
        table = self.database(side).messaging.outbox
        return self.rows(side, select(table).where(*criteria).order_by(table.c.id))

    def outbox_caused_by(self, side: Side, message_id: uuid.UUID | str) -> list[Any]:
        return self.outbox(side, self.database(side).messaging.outbox.c.causation_id == str(message_id))

    def applied(self, side: Side, message_id: uuid.UUID | str) -> int:
        """How many inbox rows ``side`` holds for this message id (1 means applied once)."""
        inbox = self.database(side).messaging.inbox
        return self.count(side, inbox, inbox.c.message_id == str(message_id))

    def dead_letters(self, side: Side, *criteria: Any) -> list[Any]:
        table = self.database(side).messaging.dead_letters
        return self.rows(side, select(table).where(*criteria).order_by(table.c.id))

    def all_dead_letters(self) -> dict[str, list[str]]:
        """Every side's dead letters as ``error_type: error``; empty lists when all went well."""
        return {
            side.value: [f"{row.error_type}: {row.error}" for row in self.dead_letters(side)]
            for side in self.runtime.sides
        }

    def broker_dead_letters(self, queue: Queue) -> list[dict[str, Any]]:
        """The messages in dramatiq's dead-letter queue (``dramatiq:<queue>.XQ``) of the broker."""
        client = self.runtime.broker.client
        key = f"dramatiq:{queue.name}.XQ"
        in_order = client.zrange(key, 0, -1)
        stored = client.hgetall(f"{key}.msgs")
        return [json.loads(stored[member]) for member in in_order if member in stored]

    def queue_length(self, queue: Queue) -> int:
        return self.runtime.broker.client.llen(f"dramatiq:{queue.name}")

    # -- business views --------------------------------------------------------------------------

    def shared_categories(self) -> dict[str, list[str]]:
        """Finance's shared categories: transaction category -> its transaction classes, sorted."""
        table = finance_tables.shared_categories
        held: dict[str, list[str]] = {}
        for code, cls in self.rows(FINANCE, select(table.c.category, table.c.transaction_class)):
            held.setdefault(code, []).append(cls)
        return {code: sorted(classes) for code, classes in sorted(held.items())}

    def dataverse_expense_categories(self) -> list[tuple[str, str, str, str]]:
        """(legal entity, expense category, transaction category, expense type) as Dataverse holds them."""
        table = dataverse_tables.expense_categories
        return [
            tuple(row)
            for row in self.rows(
                DATAVERSE,
                select(table.c.legal_entity, table.c.expense_category, table.c.transaction_category, table.c.expense_type)
                .order_by(table.c.legal_entity, table.c.expense_category),
            )
        ]


FOUR_CLASSES = ["expense", "fee", "hour", "item"]

#: The demo's finance set-up (USPM, DEMF), which the flows below use.
DEMO_SETUP_FILE = Path(workers.__file__).parent / "demo_data" / "setup.yaml"


def companies_of_the_tests() -> SetupDocument:
    """The set-up of every company the integration tests name: the demo's USPM and DEMF, and USMF (set up
    as USPM is). Finance and Dataverse refuse a company they do not know, as a deployment would."""
    demo = read_setup_document(DEMO_SETUP_FILE)
    usmf = demo.legal_entities[0].model_copy(update={"legal_entity": "USMF", "name": "Contoso Manufacturing US"})
    return demo.model_copy(update={"legal_entities": [*demo.legal_entities, usmf]})


def load_setup_of(runtime: Runtime, document: SetupDocument) -> dict[str, int]:
    """What `dualwrite setup` does on deployment, into the sides of ``runtime`` that keep reference data."""
    return load_setup(document, {side: running.database.engine for side, running in runtime.sides.items()})


def load_test_companies(runtime: Runtime) -> None:
    """The test companies, in finance and in Dataverse (those of them the runtime runs)."""
    load_setup_of(runtime, companies_of_the_tests())


# -- given: the state a scenario starts from -----------------------------------------------------


def _settled_cleanly(system: System, step: str) -> None:
    system.settle()
    dead = {side: letters for side, letters in system.all_dead_letters().items() if letters}
    assert not dead, f"set-up step {step!r} dead-lettered: {dead}"


def given_transaction_categories(system: System, *codes: str) -> None:
    system.publish("create_transaction_categories", [{"category": code, "name": code.title()} for code in codes])
    _settled_cleanly(system, "transaction categories")
    assert set(system.shared_categories()) >= set(codes)


def given_expense_enabled(system: System, expense_types: dict[str, str]) -> None:
    system.publish(
        "enable_expense_on_shared_category",
        [{"category": code, "expense_type": kind} for code, kind in expense_types.items()],
    )
    _settled_cleanly(system, "enable expense")


def given_expense_categories(system: System, legal_entity: str, categories: Iterable[str]) -> None:
    """Expense categories named after their shared category, created in finance and carried to Dataverse."""
    codes = list(categories)
    system.publish(
        "create_expense_categories",
        [{"expense_category": code, "name": code.title(), "shared_category": code} for code in codes],
        legal_entity=legal_entity,
    )
    _settled_cleanly(system, f"expense categories of {legal_entity}")
    held = {(le, code) for le, code, _, _ in system.dataverse_expense_categories()}
    assert {(legal_entity, code) for code in codes} <= held


def given_project(system: System, legal_entity: str, project_id: str) -> None:
    system.publish(
        "create_projects",
        [{"project_id": project_id, "name": f"Project {project_id}", "project_manager": "maria", "billable": True}],
        legal_entity=legal_entity,
    )
    _settled_cleanly(system, f"project {project_id}")


def rightful_sender(queue: Queue, body: str) -> str:
    """A sender the queue hears: the side the body's envelope names as its source when the queue
    hears that side, else the first it hears (an upstream system's command queue, a map's leg)."""
    heard = sorted(authorization().senders(queue.name) - {OPERATOR})
    try:
        source = json.loads(body).get("source")
    except (ValueError, AttributeError, RecursionError):
        source = None
    return source if source in heard else heard[0]


def operator_signer(system: System) -> Signer:
    """What an operator's dead-letter repairs sign with."""
    return Signer(key_ring(system.runtime.settings), OPERATOR)
