"""``dualwrite trace ID``: every hop of one business document across the three workers, and where it is.

Reads the finance, Dataverse and bridge databases named by the settings (``DUALWRITE_*_DB_URL``, or
the SQLite files under ``DUALWRITE_DATA_DIR``); it writes nothing and needs no broker.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from shared.settings import Settings
from shared.side import open_database
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json, print_table

if TYPE_CHECKING:
    from workers.operations.expense_trail import LineState
    from workers.operations.trace import SideDatabases, Trace


class DatabaseMissing(Exception):
    """Raised when a side's embedded SQLite file does not exist (no worker has run there)."""


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "trace",
        help="every hop of one business document in time order, and where it is now",
        description="Follows one business document through finance, the bridge and Dataverse: each message "
        "(queue, contract and version, rows, time waited and run, result) and each step of a side's own work "
        "(automated approval, Import from staging, journal posting), then says where it is and why. "
        "An expense report is followed to its project cost posting and the posting results in Dataverse.",
    )
    parser.add_argument(
        "id", metavar="ID", help="an expense report (R-US-001 or USPM:R-US-001), a correlation id, or a message id"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from workers.operations.trace import TraceError, trace

    try:
        databases = open_side_databases(settings)
    except DatabaseMissing as error:
        fail(str(error))
        return ExitCode.UNAVAILABLE
    try:
        found = trace(databases, args.id)
    except TraceError as error:
        fail(str(error))
        return ExitCode.INVALID_INPUT
    except DBAPIError as error:
        fail(f"could not read the databases: {error.orig}")
        return ExitCode.UNAVAILABLE
    finally:
        for database in databases.all():
            database.dispose()
    if args.json:
        print_json(found.as_json())
    else:
        print_trace(found)
    return ExitCode.OK


def open_side_databases(settings: Settings) -> SideDatabases:
    """The three sides' databases as the settings name them, without creating anything."""
    from workers.bridge.bootstrap import SPEC as BRIDGE
    from workers.dataverse.bootstrap import SPEC as DATAVERSE
    from workers.finance.bootstrap import SPEC as FINANCE
    from workers.operations.trace import SideDatabases

    specs = {"finance": FINANCE, "dataverse": DATAVERSE, "bridge": BRIDGE}
    for side in specs:
        url = make_url(settings.database_url(side))
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
            raise DatabaseMissing(
                f"no {side} database at {url.database}: set DUALWRITE_DATA_DIR to the folder of the embedded "
                f"SQLite files, or DUALWRITE_{side.upper()}_DB_URL"
            )
    return SideDatabases(**{side: open_database(spec, settings) for side, spec in specs.items()})


def print_trace(found: Trace) -> None:
    print(found.subject)
    if found.message_id:
        print(f"message {found.message_id} belongs to it")
    print(f"correlation ids: {', '.join(found.correlation_ids)}\n")
    print_table(
        ["#", "TIME (UTC)", "SIDE", "QUEUE OR STEP", "CONTRACT", "ROWS", "WAITED", "RAN", "RESULT", "DETAIL"],
        [
            [n, _time(hop.at), hop.side, hop.queue, _contract(hop.contract, hop.version), hop.rows,
             duration(hop.waited_ms), duration(hop.ran_ms), hop.result, hop.detail]
            for n, hop in enumerate(found.hops, start=1)
        ],
    )
    if found.report is not None:
        print()
        _print_lines(found.report.lines)
    print("\nwhere it is:")
    for sentence in found.where:
        print(f"  - {sentence}")


def _print_lines(lines: Iterable[LineState]) -> None:
    print_table(
        ["LINE", "EXPENSE", "PROJECT", "AMOUNT", "APPROVAL JOB", "ACTUALS", "STAGING", "JOURNAL", "PROJECT TX", "VOUCHER", "IN DATAVERSE"],
        [
            [
                line.line_number, line.expense_id, line.project_id or "-", f"{line.amount} {line.currency}",
                line.job_status, _each(a.transaction_type for a in line.actuals), _each(a.staging for a in line.actuals),
                _each(f"{a.journal_id} {a.journal_status}" for a in line.actuals if a.journal_id),
                _each(a.project_transaction for a in line.actuals), _each(a.voucher for a in line.actuals),
                _each(a.dataverse_posting for a in line.actuals),
            ]
            for line in lines
        ],
    )


def _each(values: Iterable[str | None]) -> str:
    """Distinct values in first-seen order: "cost, unbilled_sales"."""
    return ", ".join(dict.fromkeys(value for value in values if value))


def _contract(contract: str | None, version: int | None) -> str:
    if contract is None:
        return ""
    return f"{contract} v{version}" if version else contract


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def duration(ms: float | None) -> str:
    """4 ms, 12.5 s, 3 min 5 s, 2 h 10 min: the unit a person reads at a glance."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
