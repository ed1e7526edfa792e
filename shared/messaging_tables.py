"""The three tables every side keeps beside its business tables: inbox, outbox and dead letters."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Column, DateTime, Index, Insert, Integer, MetaData, String, Table, Text, Update, bindparam

from shared.sql_lists import ValueList, one_of


@dataclass(frozen=True)
class MessagingTables:
    inbox: Table
    outbox: Table
    dead_letters: Table
    # The statements every unit of work runs, built once: building one (and its cache key) on
    # every call cost a busy worker more CPU than sending it.
    #: ``finished_at`` of the inbox rows ``b_message_ids`` (one list parameter, so one statement
    #: whatever the count: a text per list length would be prepared again for each length).
    finish_inbox: Update = field(init=False)
    #: Outbox rows (one parameter set each).
    insert_outbox: Insert = field(init=False)
    #: ``sent_at`` of the unsent outbox rows whose ids are in ``b_message_ids`` (one list parameter).
    mark_sent: Update = field(init=False)

    def __post_init__(self) -> None:
        inbox, outbox = self.inbox, self.outbox
        statements = {
            "finish_inbox": inbox.update()
            .where(one_of(inbox.c.message_id, bindparam("b_message_ids", type_=ValueList())))
            .values(finished_at=bindparam("b_finished_at")),
            "insert_outbox": outbox.insert(),
            "mark_sent": outbox.update()
            .where(one_of(outbox.c.message_id, bindparam("b_message_ids", type_=ValueList())), outbox.c.sent_at.is_(None))
            .values(sent_at=bindparam("b_sent_at")),
        }
        for name, statement in statements.items():
            object.__setattr__(self, name, statement)


def messaging_tables(metadata: MetaData) -> MessagingTables:
    """Declare the inbox, outbox and dead-letter tables in a side's metadata."""
    inbox = Table(
        "inbox",
        metadata,
        # One row per part applied (a message has one part unless it carries several documents'
        # rows); its key makes a redelivery, or the part's resend in another batch, a no-op.
        Column("message_id", String(36), primary_key=True),
        Column("contract", String(64), nullable=False),
        Column("version", Integer, nullable=False),
        Column("queue_name", String(128), nullable=False),
        Column("source", String(16), nullable=False),
        Column("legal_entity", String(8)),
        Column("correlation_id", String(200), nullable=False, index=True),
        Column("causation_id", String(200)),
        Column("rows", Integer, nullable=False),
        Column("enqueued_at", DateTime(timezone=True)),
        Column("started_at", DateTime(timezone=True), nullable=False),
        Column("finished_at", DateTime(timezone=True), nullable=False),
        #: SHA-256 of what the message asked for (shared.unit_of_work.content_digest): the same id
        #: asking for something else is a conflicting duplicate.
        Column("digest", String(64)),
        #: The id of the message that carried the part (the broker's, in logs and dead letters).
        Column("carried_by", String(36)),
    )
    outbox = Table(
        "outbox",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("message_id", String(36), nullable=False, unique=True),
        Column("queue_name", String(128), nullable=False),
        Column("actor_name", String(128), nullable=False),
        Column("contract", String(64), nullable=False),
        Column("correlation_id", String(200), nullable=False, index=True),
        Column("causation_id", String(200), index=True),
        Column("body", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True)),
        Index("ix_outbox_unsent", "sent_at", "id"),
    )
    dead_letters = Table(
        "dead_letters",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("message_id", String(36), nullable=False, index=True),
        Column("queue_name", String(128), nullable=False),
        Column("actor_name", String(128), nullable=False),
        Column("contract", String(64)),
        Column("correlation_id", String(200)),
        Column("error_kind", String(16), nullable=False),
        Column("error_type", String(128), nullable=False),
        Column("error", Text, nullable=False),
        Column("traceback", Text),
        Column("attempts", Integer, nullable=False),
        Column("body", Text, nullable=False),
        Column("dead_at", DateTime(timezone=True), nullable=False),
        # What an operator did about it (``dualwrite dlq``); the row stays, as history.
        # NULL while the letter is dead; replayed, edited, purged, or superseded by a later row.
        Column("outcome", String(16)),
        Column("resolved_at", DateTime(timezone=True)),
        Column("resolved_by", String(128)),
        #: The envelope sent back to the queue: the original upcast to the newest version, or an edit.
        Column("replayed_body", Text),
        #: SHA-256 of the exact bytes the broker held (shared/dead_letters.py ``copy_digest``): the
        #: operator tools pair the row with its own copy in ``<queue>.XQ`` by it, since two letters
        #: may carry one message id. NULL in rows recorded before it was kept.
        Column("copy_digest", String(64)),
    )
    return MessagingTables(inbox=inbox, outbox=outbox, dead_letters=dead_letters)
