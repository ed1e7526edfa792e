"""A table map's message refused by its target side, reported back to the bridge.

The bridge carries a map's rows to a side; when that side's handler refuses them for good (the
message is dead-lettered there), the side writes ``map_failure_report`` to its outbox in the same
transaction as its dead-letter row, for the bridge's ``bridge.map-failures`` queue. The bridge
logs it in the map's activity log as a failure, with the side, the rows' integration keys and the
reason, and applies the map's alert rules, as it does for a failure of its own.

When an operator replays (or edits) such a letter and the side then applies it, the side reports
that too (``outcome: applied_on_replay``, with the error it had died of): the bridge logs it as
``replayed``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from contracts.batch import Batch, Row, Rows
from contracts.registry import Contract, Kind, Scope
from contracts.wire import FREE_TEXT_SCHEMA, PLAIN_TEXT_SCHEMA, Timestamp, free_text, plain_text

#: Integration keys named in one report; a 1,000-row batch names its first ones and counts the rest.
KEYS_REPORTED = 10

Text = Annotated[str, StringConstraints(max_length=200), plain_text, PLAIN_TEXT_SCHEMA]


class MapFailureV1(Row):
    #: ``dead_lettered``: the side refused the message; ``applied_on_replay``: it applied it once an
    #: operator sent it back (``dualwrite dlq replay`` or ``edit``); error and dead_at are the letter's.
    outcome: Literal["dead_lettered", "applied_on_replay"] = "dead_lettered"
    table_map: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{2,63}$")]
    #: The side that refused the message (the queue's consumer).
    side: Literal["finance", "dataverse"]
    queue: Annotated[str, StringConstraints(min_length=1, max_length=128), plain_text, PLAIN_TEXT_SCHEMA]
    #: The refused message: its id (what ``dualwrite dlq`` names it by), correlation and cause.
    message_id: Annotated[str, StringConstraints(min_length=1, max_length=36), plain_text, PLAIN_TEXT_SCHEMA]
    correlation_id: Text | None = None
    causation_id: Text | None = None
    legal_entity: Annotated[str, StringConstraints(max_length=8), plain_text, PLAIN_TEXT_SCHEMA] | None = None
    #: The rows' integration keys as text (``legal_entity=DEMF, project_id=P-1``), the first
    #: ``KEYS_REPORTED`` of them, then ``... N more``; empty when the body could not be read.
    keys: Annotated[
        list[Annotated[str, StringConstraints(max_length=1000), plain_text, PLAIN_TEXT_SCHEMA]], Field(max_length=KEYS_REPORTED + 1)
    ] = []
    error_type: Annotated[str, StringConstraints(min_length=1, max_length=128), plain_text, PLAIN_TEXT_SCHEMA]
    error: Annotated[str, StringConstraints(min_length=1, max_length=2000), free_text, FREE_TEXT_SCHEMA]
    dead_at: Timestamp


class MapFailuresV1(Batch):
    """Messages of table maps dead-lettered by the side they were carried to, or applied there on replay."""

    key_fields: ClassVar[tuple[str, ...]] = ("message_id",)
    rows: Rows[MapFailureV1]


MAP_FAILURE_REPORT = Contract(
    name="map_failure_report",
    kind=Kind.COMMAND,
    scope=Scope.GLOBAL,
    versions=(MapFailuresV1,),
    description="Target side -> bridge: a table map's message it refused (dead-lettered) or applied on replay, with keys and reason.",
)
