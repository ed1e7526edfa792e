"""A master side's export of a table map for its initial sync, one page at a time.

Both masters (finance for ``msdyn_expensecategories``, Dataverse for
``msdyn_transactioncategories`` and ``msdyn_projects``) export the same way; each declares a
:class:`MapExport` per map and registers :func:`page_exporter` for its page command.

One page, in one unit of work:

1. read up to ``page_size`` rows in integration-key order after the key where the previous page
   ended (keyset paging: one indexed range scan, however far the run has got). On PostgreSQL the
   rows are read ``FOR SHARE``, so a live change to one of them either committed before the read
   (the page carries it) or waits for the page to commit (its message is stamped later, and the
   bridge lets the later stamp win; see ``workers/bridge/initial_sync.py``). SQLite's writers are
   serialised already (``BEGIN IMMEDIATE``);
2. sort the rows that fit the map's contract from those that do not (legacy data older than a
   rule of the contract): every refused row is reported with its key and reason, the rest are sent;
3. emit the good rows as ordinary batches of the map (one per legal entity for company-scoped
   maps), a report of the page for the bridge, and, unless this was the last page, the command
   for the next page. The checkpoint is that command, committed with the page: a crash before the
   commit redoes the page, a crash after it goes on with the next one, and the inbox makes a
   redelivered page command a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Table, func, select, tuple_

from contracts.batch import Batch
from contracts.initial_sync import (
    INITIAL_SYNC_REPORT,
    InitialSyncPageCommandV1,
    InitialSyncPageReportV1,
    InitialSyncPageV1,
    InitialSyncReportV1,
)
from contracts.queues import BRIDGE_INITIAL_SYNC, Queue, table_map
from contracts.registry import Contract, Decoded, describe_validation_error
from shared.consumer import Handler
from shared.errors import BusinessRuleViolation
from shared.logging import get_logger
from shared.unit_of_work import UnitOfWork

log = get_logger(__name__)

#: Every message of one run carries this correlation id: the run is the business document.
CORRELATION_PREFIX = "initial-sync:"


def correlation_id(run_id: str) -> str:
    return f"{CORRELATION_PREFIX}{run_id}"


@dataclass(frozen=True)
class MapExport:
    """How a master side reads one map's rows: its table, key columns and the contract's row."""

    table_map: str
    contract: Contract
    table: Table
    #: The table columns forming the integration key, in the map's key order.
    key: tuple[str, ...]
    #: A stored row as the fields of the contract's row.
    to_row: Callable[[Mapping[str, Any]], dict[str, Any]]
    #: The column naming each row's company, for company-scoped maps (None for shared data).
    legal_entity_column: str | None = None
    #: The contract version ``to_row`` writes; consumers upcast it to the newest, as for any publisher.
    version: int = 1

    @property
    def model(self) -> type[Batch]:
        return self.contract.model(self.version)

    def key_of(self, record: Mapping[str, Any]) -> list[str]:
        return [str(record[name]) for name in self.key]


@dataclass
class Page:
    """One page sorted out: batches to send (by legal entity), refused rows, and where it ended."""

    batches: dict[str | None, list[dict[str, Any]]] = field(default_factory=dict)
    failed: list[tuple[list[str], str]] = field(default_factory=list)
    last: list[str] | None = None
    rows_read: int = 0
    finished: bool = False

    @property
    def rows_sent(self) -> int:
        return sum(len(rows) for rows in self.batches.values())


def sort_page(records: Sequence[Mapping[str, Any]], export: MapExport, page_size: int) -> Page:
    """Rows that fit the map's contract (the export's version), grouped by company; the others with why."""
    model = export.model
    # The reader asks for one row more than a page: that one only says whether another page follows.
    page = Page(rows_read=min(len(records), page_size), finished=len(records) <= page_size)
    for record in records[:page_size]:
        key = export.key_of(record)
        page.last = key
        reason = refusal(model, export.to_row(record))
        if reason is not None:
            page.failed.append((key, reason))
            continue
        company = str(record[export.legal_entity_column]) if export.legal_entity_column else None
        page.batches.setdefault(company, []).append(export.to_row(record))
    return page


def refusal(model: type[Batch], row: dict[str, Any]) -> str | None:
    """Why ``row`` does not fit the contract (each field named), or None when it does."""
    try:
        model.model_validate({"rows": [row]})
    except ValidationError as error:
        return describe_validation_error(error).replace("rows.0.", "")
    return None


def read_page(connection: Connection, export: MapExport, after: Sequence[str] | None, size: int) -> list[Any]:
    """Up to ``size`` rows in key order after ``after``, locked against writers until commit."""
    columns = [export.table.c[name] for name in export.key]
    statement = select(export.table).order_by(*columns).limit(size)
    if after:
        statement = statement.where(tuple_(*columns) > tuple_(*after))
    if connection.dialect.name == "postgresql":
        statement = statement.with_for_update(read=True)
    return list(connection.execute(statement).mappings())


def count_rows(connection: Connection, export: MapExport) -> int:
    """How many rows the map has on its master side (the progress bar's total)."""
    return connection.scalar(select(func.count()).select_from(export.table)) or 0


def page_exporter(exports: Mapping[str, MapExport], own_queue: Queue, page_contract: Contract) -> Handler:
    """The handler of a master's page command: one page out, and the next page's command."""

    def export_pages(message: Decoded[InitialSyncPageCommandV1], uow: UnitOfWork) -> None:
        for command in message.payload.rows:
            export_page(command, message, uow)

    def export_page(command: InitialSyncPageV1, message: Decoded[InitialSyncPageCommandV1], uow: UnitOfWork) -> None:
        export = exports.get(command.table_map)
        if export is None:
            raise BusinessRuleViolation(
                f"{page_contract.name}: {uow.side} masters no map {command.table_map!r} with an initial sync"
                f" (it exports: {', '.join(sorted(exports))})"
            )
        records = read_page(uow.connection, export, command.after, command.page_size + 1)
        page = sort_page(records, export, command.page_size)
        send_page(uow, export, command, page, message.envelope.correlation_id)
        if not page.finished:
            next_page = InitialSyncPageV1(
                run_id=command.run_id,
                table_map=command.table_map,
                page=command.page + 1,
                after=page.last,
                page_size=command.page_size,
            )
            uow.emit(
                own_queue,
                page_contract.name,
                page_contract.latest,
                InitialSyncPageCommandV1(rows=[next_page]),
                correlation_id=message.envelope.correlation_id,
            )
        log.info(
            "initial sync page exported",
            table_map=command.table_map,
            page=command.page,
            rows_read=page.rows_read,
            rows_sent=page.rows_sent,
            rows_failed=len(page.failed),
            finished=page.finished,
        )

    export_pages.__name__ = f"export_{page_contract.name}"
    return export_pages


def send_page(uow: UnitOfWork, export: MapExport, command: InitialSyncPageV1, page: Page, correlation: str) -> None:
    """The page's batches on the map's first queue, then its report to the bridge."""
    for company, rows in page.batches.items():
        uow.emit(
            table_map(export.table_map).outbound,
            export.contract.name,
            export.version,
            export.model.model_validate({"rows": rows}),
            correlation_id=correlation,
            legal_entity=company,
        )
    report = InitialSyncPageReportV1(
        run_id=command.run_id,
        table_map=command.table_map,
        page=command.page,
        after=command.after,
        last=page.last,
        rows_read=page.rows_read,
        rows_sent=page.rows_sent,
        failed=[{"key": key, "reason": reason[:2000]} for key, reason in page.failed],
        finished=page.finished,
    )
    uow.emit(
        BRIDGE_INITIAL_SYNC,
        INITIAL_SYNC_REPORT.name,
        INITIAL_SYNC_REPORT.latest,
        InitialSyncReportV1(rows=[report]),
        correlation_id=correlation,
    )
