"""Initial sync of a table map: the master side exports its existing rows, one page at a time.

Three commands, all internal to the integration (an operator starts a run with
``dualwrite maps initial-sync``, never by hand):

- ``initial_sync_finance_page`` / ``initial_sync_dataverse_page``: read one page of the map's rows
  on the master side, after the key where the previous page ended. The master sends the page as
  an ordinary batch of the map, and, in the same transaction, the command for the next page: the
  checkpoint of the run is that command, committed with the page it follows.
- ``initial_sync_report``: the master tells the bridge what a page held (rows read, rows sent,
  every row that could not be sent with its integration key and reason, where it ended, whether
  it was the last), on the bridge's ``bridge.initial-sync`` queue.

Integration keys travel as lists of strings, in the order of the map's key fields.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from contracts.batch import MAX_ROWS, Batch, Row, Rows
from contracts.registry import Contract, Kind, Scope
from contracts.wire import FREE_TEXT_SCHEMA, PLAIN_TEXT_SCHEMA, Flag, WholeNumber, free_text, plain_text

#: A sync run's id: 32 lower-case hex digits (a UUID without dashes).
RunId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
#: The table map being synced.
MapName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{2,63}$")]
#: An integration key: the values of the map's key fields, in order.
IntegrationKey = Annotated[
    list[Annotated[str, StringConstraints(max_length=200), plain_text, PLAIN_TEXT_SCHEMA]], Field(max_length=8)
]
PageNumber = Annotated[WholeNumber, Field(ge=1)]


class InitialSyncPageV1(Row):
    run_id: RunId
    table_map: MapName
    page: PageNumber
    #: The key of the last row of the previous page; null (or empty) for the first page.
    after: IntegrationKey | None = None
    page_size: Annotated[WholeNumber, Field(ge=1, le=MAX_ROWS)]


class InitialSyncPageCommandV1(Batch):
    """Export pages of a table map's rows on its master side (a row per page asked for; one, in practice)."""

    key_fields: ClassVar[tuple[str, ...]] = ("run_id", "page")
    rows: Rows[InitialSyncPageV1]


class FailedRowV1(Row):
    key: IntegrationKey
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000), free_text, FREE_TEXT_SCHEMA]


class InitialSyncPageReportV1(Row):
    run_id: RunId
    table_map: MapName
    page: PageNumber
    after: IntegrationKey | None = None
    #: The key of the last row read; null when the page was empty.
    last: IntegrationKey | None = None
    rows_read: Annotated[WholeNumber, Field(ge=0, le=MAX_ROWS)]
    rows_sent: Annotated[WholeNumber, Field(ge=0, le=MAX_ROWS)]
    failed: Annotated[list[FailedRowV1], Field(max_length=MAX_ROWS)] = []
    #: True on the last page: nothing is left after it.
    finished: Flag


class InitialSyncReportV1(Batch):
    """What one exported page held, for the bridge's record of the run."""

    key_fields: ClassVar[tuple[str, ...]] = ("run_id", "page")
    rows: Rows[InitialSyncPageReportV1]


INITIAL_SYNC_FINANCE_PAGE = Contract(
    name="initial_sync_finance_page",
    kind=Kind.COMMAND,
    scope=Scope.GLOBAL,
    versions=(InitialSyncPageCommandV1,),
    description="Operator -> finance, then finance -> itself: export one page of a map finance masters.",
)

INITIAL_SYNC_DATAVERSE_PAGE = Contract(
    name="initial_sync_dataverse_page",
    kind=Kind.COMMAND,
    scope=Scope.GLOBAL,
    versions=(InitialSyncPageCommandV1,),
    description="Operator -> Dataverse, then Dataverse -> itself: export one page of a map Dataverse masters.",
)

INITIAL_SYNC_REPORT = Contract(
    name="initial_sync_report",
    kind=Kind.COMMAND,
    scope=Scope.GLOBAL,
    versions=(InitialSyncReportV1,),
    description="Master side -> bridge: rows read, sent and refused (each with its key and reason) of one page.",
)
