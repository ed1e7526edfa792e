"""``dualwrite audit``: the operators' repairs (replays, edits, purges...), newest first."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from contracts.envelope import Side
from shared.settings import Settings
from shared.side import open_database
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json, print_table
from workers.operations.audit import AuditLog

DEFAULT_LIMIT = 50


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "audit",
        help="who replayed, edited or purged what, when, and how many",
        description="The audit log kept in the bridge database, newest first.",
    )
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N", help=f"at most N entries (default {DEFAULT_LIMIT})")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from workers.runtime import SPECS

    if args.limit < 1:
        fail("--limit takes a number greater than 0")
        return ExitCode.USAGE
    url = settings.database_url("bridge")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        fail(f"no bridge database at {parsed.render_as_string(hide_password=True)}: set DUALWRITE_DATA_DIR or DUALWRITE_BRIDGE_DB_URL")
        return ExitCode.UNAVAILABLE
    bridge = open_database(SPECS[Side.BRIDGE], settings)
    try:
        audit = AuditLog(bridge)
        audit.ensure_table()
        entries = audit.recent(args.limit)
    except DBAPIError as error:
        fail(f"bridge database unavailable: {error.orig}")
        return ExitCode.UNAVAILABLE
    finally:
        bridge.dispose()
    if args.json:
        print_json([entry.as_json() for entry in entries])
        return ExitCode.OK
    if not entries:
        print("no audit entries")
        return ExitCode.OK
    print_table(
        ["WHEN (UTC)", "WHO", "ACTION", "WHAT", "COUNT", "DETAILS"],
        [[f"{e.at:%Y-%m-%d %H:%M:%S}", e.operator, e.action, e.target, e.count, _details(e.details)] for e in entries],
    )
    return ExitCode.OK


def _details(details: dict) -> str:
    shown = {key: value for key, value in details.items() if key != "message_ids" and value}
    return json.dumps(shown, default=str) if shown else ""
