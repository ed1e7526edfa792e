"""Messages the broker lost: found hop by hop, and sent again from the sender's outbox.

A broker restarted without persistence, or a failover that drops its last writes, forgets
messages it had acknowledged taking. No worker notices: no error, no dead letter, and the
documents those messages carried stay half-way for ever. Every hop leaves two records, though:
the sender's ``outbox`` row (one per part, with ``sent_at``) and, once applied, the receiver's
``inbox`` row under the same part id. So a part is **lost** when its outbox row was sent more
than ``older_than`` seconds ago and its receiver (the side consuming its queue, from the queue
declarations in ``contracts.queues``) has

- no inbox row for it (not applied),
- no dead letter carrying it (a refusal is an operator's business, ``dualwrite dlq``, not a loss),
- no held message carrying it (the bridge holds a paused map's messages; it also records their
  parts in its inbox, so this is belt and braces),

and the broker, where it can tell cheaply, no longer holds it: on Redis every message waiting,
in flight, delayed for a retry or dead is in ``<ns>:<queue>.msgs``, ``.DQ.msgs`` or ``.XQ.msgs``,
read for the queues with candidates only (before their inbox is read again: see ``_follow``). RabbitMQ cannot show a queue's messages without taking them,
so there a part only slow for longer than the bound is sent again too.

The hops are checked one by one (finance -> bridge is the bridge's inbox, bridge -> Dataverse is
Dataverse's), so a document is covered end to end: once the lost hop is repaired, the next
hop's outbox row is written and checked in its turn.

**Repair** sends a lost part again *through its sender's outbox*: its row's ``sent_at`` is set
back to NULL, and the sender's own sweeper (every ``DUALWRITE_OUTBOX_SWEEP_SECONDS``; the row is
long past ``DUALWRITE_OUTBOX_RESEND_AFTER_SECONDS``) sends it as it sends anything a crash left
unsent: signed by the sender, combined with others, marked sent again. There is no second way of
sending. The update is conditional (``sent_at`` still set and still older than the bound), so two
repairs at once, or one repeated, re-send a part once; and the receiver's inbox makes a resend of
a part that was only slow a no-op. Each run that re-sends something (and every run an operator
asks for) writes one audit entry (``dualwrite audit``), and every part re-sent is counted in
``dualwrite_lost_messages_resent``. On PostgreSQL a run holds an advisory lock on the bridge
database: a second run meanwhile (another ``--every`` replica) skips rather than reading twice.

Only rows sent within ``lookback`` seconds are checked, so a run costs what the last day
carried, not the whole history: outbox rows are never deleted (they are what a repair sends).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, text

from contracts.queues import all_queues
from shared.logging import get_logger
from shared.metrics import Metrics
from shared.outbox_batches import carried_parts
from shared.side_database import SideDatabase
from workers.bridge.tables import held_messages
from workers.operations.audit import AuditLog

log = get_logger(__name__)

#: The audit log's action for a repair run.
AUDIT_ACTION = "resend-lost"
#: How many part ids of each queue a report (and an audit entry) names; the counts are always whole.
NAMED_PARTS = 50
#: Ids per ``IN (...)`` list.
CHUNK = 5000
#: The PostgreSQL advisory lock key of a repair run (on the bridge database): "dwlost" in ASCII.
ADVISORY_LOCK = 0x64776C6F7374

#: Which side consumes each declared queue: the receiver of an outbox row is its queue's consumer.
RECEIVERS = {queue.name: queue.consumer.value for queue in all_queues()}
#: The table map of each queue the bridge consumes (where its held messages are kept).
HOLDING_MAPS = {queue.name: queue.table_map for queue in all_queues() if queue.consumer.value == "bridge" and queue.table_map}

PartsOnQueue = Callable[[str], "frozenset[str] | None"]
"""The part ids a broker holds for a queue (waiting, in flight, delayed); None when it cannot tell."""


@dataclass
class QueueDelivery:
    """One hop: what one sender sent on one queue in the window, and what became of it."""

    sender: str
    queue: str
    receiver: str
    #: Outbox rows sent in the window (``lookback`` .. ``older_than`` ago).
    sent: int = 0
    applied: int = 0
    dead_lettered: int = 0
    held: int = 0
    #: Not applied yet, and still on the broker (queued, in flight or waiting for a retry).
    on_broker: int = 0
    #: Sent, and nowhere: neither at the receiver nor (where the broker can tell) on the broker.
    lost: list[str] = field(default_factory=list)
    #: Of ``lost``, how many this run sent again (0 on a check or a dry run).
    resent: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "queue": self.queue,
            "receiver": self.receiver,
            "sent": self.sent,
            "applied": self.applied,
            "dead_lettered": self.dead_lettered,
            "held": self.held,
            "on_broker": self.on_broker,
            "lost": len(self.lost),
            "lost_parts": self.lost[:NAMED_PARTS],
            "resent": self.resent,
        }


@dataclass
class DeliveryCheck:
    """Every hop's deliveries, as one check (and perhaps repair) found them."""

    checked_at: datetime
    older_than: float
    lookback: float
    #: What the broker could tell: ``redis``, or why it was not asked (``rabbitmq: cannot tell``...).
    broker: str
    queues: list[QueueDelivery] = field(default_factory=list)
    #: Outbox rows on queues no declaration names (no receiver known: neither checked nor re-sent).
    unknown_queues: dict[str, int] = field(default_factory=dict)
    #: Whether this run re-sent what it found (False on a check, a dry run, or a skipped run).
    repaired: bool = False
    #: Why a repair did nothing (another run held the lock).
    skipped: str | None = None

    @property
    def lost(self) -> int:
        return sum(len(each.lost) for each in self.queues)

    @property
    def resent(self) -> int:
        return sum(each.resent for each in self.queues)

    @property
    def lossy(self) -> list[QueueDelivery]:
        return [each for each in self.queues if each.lost]

    def problems(self) -> list[str]:
        """What an operator must hear: one line per queue that lost parts and was not repaired."""
        return [
            f"{each.queue}: {len(each.lost)} part(s) sent by {each.sender} more than {self.older_than:g} s ago "
            f"never reached {each.receiver} (lost by the broker?); `dualwrite reconcile --repair` sends them again"
            for each in self.lossy
            if each.resent < len(each.lost)
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "older_than_seconds": self.older_than,
            "lookback_seconds": self.lookback,
            "broker": self.broker,
            "lost": self.lost,
            "resent": self.resent,
            "repaired": self.repaired,
            "skipped": self.skipped,
            "queues": [each.as_json() for each in self.queues],
            "unknown_queues": self.unknown_queues,
        }


# -- finding ---------------------------------------------------------------------------------------


def check_deliveries(
    databases: Mapping[str, SideDatabase],
    *,
    older_than: float,
    lookback: float,
    parts_on_queue: PartsOnQueue | None = None,
    broker: str = "not asked",
    now: datetime | None = None,
) -> DeliveryCheck:
    """Every hop's outbox rows sent between ``lookback`` and ``older_than`` seconds ago, each
    found at its receiver, on the broker, or lost."""
    now = now or datetime.now(UTC)
    cutoff, horizon = now - timedelta(seconds=older_than), now - timedelta(seconds=lookback)
    check = DeliveryCheck(checked_at=now, older_than=older_than, lookback=lookback, broker=broker)
    for sender, database in databases.items():
        for queue_name, ids in _sent(database, cutoff, horizon).items():
            receiver = RECEIVERS.get(queue_name)
            if receiver is None or receiver not in databases:
                check.unknown_queues[queue_name] = check.unknown_queues.get(queue_name, 0) + len(ids)
                continue
            delivery = QueueDelivery(sender, queue_name, receiver, sent=len(ids))
            _follow(delivery, ids, databases[receiver], parts_on_queue)
            check.queues.append(delivery)
    check.queues.sort(key=lambda each: (each.sender, each.queue))
    return check


def _sent(database: SideDatabase, cutoff: datetime, horizon: datetime) -> dict[str, list[str]]:
    """The part ids of the side's outbox rows sent in the window, by queue."""
    outbox = database.messaging.outbox
    query = (
        select(outbox.c.queue_name, outbox.c.message_id)
        .where(outbox.c.sent_at.is_not(None), outbox.c.sent_at < cutoff, outbox.c.sent_at >= horizon)
        .order_by(outbox.c.id)
    )
    found: dict[str, list[str]] = {}
    with database.engine.connect() as connection:
        for queue_name, message_id in connection.execute(query):
            found.setdefault(queue_name, []).append(message_id)
    return found


def _follow(delivery: QueueDelivery, ids: list[str], receiver: SideDatabase, parts_on_queue: PartsOnQueue | None) -> None:
    """Where each part went: the receiver's inbox, its dead letters, its hold, the broker, or nowhere.

    The broker is read before the receiver's inbox is read the second time: a message leaves the
    broker only once its receiver has committed its inbox rows, so a part neither on the broker
    then nor in the inbox after was not merely taken in between.
    """
    applied = _applied(receiver, ids)
    waiting = [part for part in ids if part not in applied]
    on_broker = (parts_on_queue(delivery.queue) if waiting and parts_on_queue is not None else None) or frozenset()
    if waiting:
        applied |= _applied(receiver, waiting)
        waiting = [part for part in waiting if part not in applied]
    delivery.applied = len(applied)
    if not waiting:
        return
    messaging = receiver.messaging
    with receiver.engine.connect() as connection:
        dead = _carried(connection, messaging.dead_letters.c.message_id, messaging.dead_letters.c.body, messaging.dead_letters.c.queue_name == delivery.queue)
        held: set[str] = set()
        if delivery.queue in HOLDING_MAPS:
            held = _carried(connection, held_messages.c.message_id, held_messages.c.body, held_messages.c.map == HOLDING_MAPS[delivery.queue])
    for part in waiting:
        if part in dead:
            delivery.dead_lettered += 1
        elif part in held:
            delivery.held += 1
        elif part in on_broker:
            delivery.on_broker += 1
        else:
            delivery.lost.append(part)


def _applied(receiver: SideDatabase, ids: Sequence[str]) -> set[str]:
    with receiver.engine.connect() as connection:
        return _present(connection, receiver.messaging.inbox.c.message_id, ids)


def _present(connection: Connection, column: Any, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(ids):
        found.update(connection.scalars(select(column).where(column.in_(chunk))))
    return found


def _carried(connection: Connection, id_column: Any, body_column: Any, *where: Any) -> set[str]:
    """The ids of the messages of a table (dead letters, held messages) and of every part they carry."""
    found: set[str] = set()
    for message_id, body in connection.execute(select(id_column, body_column).where(*where)):
        found.add(message_id)
        found.update(carried_parts(message_id, body))
    return found


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


# -- repairing -------------------------------------------------------------------------------------


def resend(databases: Mapping[str, SideDatabase], check: DeliveryCheck) -> None:
    """Hand each lost part back to its sender's outbox sweeper (``sent_at`` to NULL), once.

    Conditional: a row whose ``sent_at`` is NULL already (another repair took it) or newer than
    the check's bound (it was sent again meanwhile) is left as it is and not counted.
    """
    cutoff = check.checked_at - timedelta(seconds=check.older_than)
    for delivery in check.lossy:
        outbox = databases[delivery.sender].messaging.outbox
        with databases[delivery.sender].engine.begin() as connection:
            for chunk in _chunks(delivery.lost):
                delivery.resent += connection.execute(
                    outbox.update()
                    .where(outbox.c.message_id.in_(chunk), outbox.c.sent_at.is_not(None), outbox.c.sent_at < cutoff)
                    .values(sent_at=None)
                ).rowcount
    check.repaired = True


@dataclass(frozen=True)
class Repair:
    """How a repair run is made: the bound, the window, and who to name in the audit log."""

    older_than: float
    lookback: float
    operator: str
    #: Write an audit entry even when nothing was lost (an operator's run; the periodic one only logs).
    audit_every_run: bool = True
    dry_run: bool = False
    automatic: bool = False


def repair_lost_messages(
    databases: Mapping[str, SideDatabase],
    repair: Repair,
    *,
    parts_on_queue: PartsOnQueue | None = None,
    broker: str = "not asked",
    metrics: Metrics | None = None,
) -> DeliveryCheck:
    """Find the lost parts of every hop and send them again through their senders' outboxes;
    audited, counted, and safe to run twice at once."""
    bridge = databases["bridge"]
    with _only_run(bridge) as running:
        if not running:
            skipped = DeliveryCheck(datetime.now(UTC), repair.older_than, repair.lookback, broker)
            skipped.skipped = "another repair run holds the lock"
            log.info("lost messages: another repair is running; skipped")
            return skipped
        check = check_deliveries(
            databases, older_than=repair.older_than, lookback=repair.lookback, parts_on_queue=parts_on_queue, broker=broker
        )
        if not repair.dry_run:
            resend(databases, check)
    if check.repaired and metrics is not None:
        for delivery in check.lossy:
            if delivery.resent:
                metrics.resent_lost(delivery.sender, delivery.queue, delivery.receiver, delivery.resent)
    if check.lost or check.resent:
        log.warning(
            "lost messages found" if repair.dry_run else "lost messages sent again",
            lost=check.lost,
            resent=check.resent,
            queues={each.queue: len(each.lost) for each in check.lossy},
        )
    if repair.audit_every_run or check.resent:
        _audit(AuditLog(bridge), repair, check)
    return check


def _audit(audit: AuditLog, repair: Repair, check: DeliveryCheck) -> None:
    queues = [each.queue for each in check.lossy]
    details = {
        "older_than_seconds": repair.older_than,
        "lookback_seconds": repair.lookback,
        "broker": check.broker,
        "dry_run": repair.dry_run,
        "automatic": repair.automatic,
        "lost": check.lost,
        "queues": {
            each.queue: {
                "sender": each.sender,
                "receiver": each.receiver,
                "lost": len(each.lost),
                "resent": each.resent,
                "parts": each.lost[:NAMED_PARTS],
            }
            for each in check.lossy
        },
    }
    audit.record(repair.operator, AUDIT_ACTION, ", ".join(queues) if queues else "none lost", check.resent, details)


@contextmanager
def _only_run(bridge: SideDatabase) -> Iterator[bool]:
    """On PostgreSQL, the session advisory lock of repair runs, if free (True), held until the block ends.

    SQLite has one writer at a time and nothing to lock: True. Without the lock two runs would still
    re-send each part once (``resend`` is conditional); the lock spares the second its reading.
    """
    if bridge.engine.dialect.name != "postgresql":
        yield True
        return
    with bridge.engine.connect() as connection:
        taken = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK}))
        connection.commit()
        try:
            yield taken
        finally:
            if taken:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK})
                connection.commit()


# -- the broker ------------------------------------------------------------------------------------


def broker_parts(queues: Any) -> tuple[PartsOnQueue | None, str]:
    """What the broker can tell of a queue's parts, and a word on it for the report.

    ``queues`` is a :class:`workers.operations.broker_queues.BrokerQueues` (or None when the broker
    was not reached). Redis: the parts of every message waiting, in flight or delayed. Anything else
    cannot tell without taking the messages.
    """
    from workers.operations.redis_queues import RedisQueues

    if isinstance(queues, RedisQueues):
        return (lambda queue_name: redis_parts(queues, queue_name)), "redis"
    if queues is None:
        return None, "not reached: parts not applied count as lost"
    return None, f"{queues.kind}: cannot tell what a queue holds; parts not applied count as lost"


def redis_parts(queues: Any, queue_name: str) -> frozenset[str]:
    """The part ids of every message in ``<ns>:<queue>.msgs`` (waiting and in flight), ``.DQ.msgs``
    (delayed for a retry) and ``.XQ.msgs`` (dead, its reason perhaps not recorded yet).

    Read with HSCAN, a queue at a time, not as one snapshot: a message moving between them while
    they are read (a retry's copy replacing it) may be missed, and is then sent again for nothing,
    which its receiver's inbox ignores."""
    from workers.operations.broker_queues import parse_dramatiq_message

    found: set[str] = set()
    for key in (queues.key(f"{queue_name}.msgs"), queues.key(f"{queue_name}.DQ.msgs"), queues.key(f"{queue_name}.XQ.msgs")):
        for _redis_id, raw in queues.client.hscan_iter(key, count=500):
            message = parse_dramatiq_message(raw)
            args = message.get("args")
            body = args[0] if isinstance(args, list) and args and isinstance(args[0], str) else ""
            found.update(_parts_of(str(message["message_id"]), body))
    return frozenset(found)


def _parts_of(message_id: str, body: str) -> Iterable[str]:
    yield message_id
    if body:
        yield from carried_parts(message_id, body)
