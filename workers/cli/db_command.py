"""``dualwrite db upgrade|status``: each side's schema migrations (Alembic, run in code).

``upgrade`` creates or upgrades the three databases (or one, with ``--side``) to the head revision
of their migrations; running it again changes nothing. ``status`` shows the current and head
revision of each side and exits 6 (SCHEMA_BEHIND) when one is behind. Workers refuse to start on a
database that is behind, so a deployment runs ``dualwrite db upgrade`` before them.
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.exc import DBAPIError

from shared.redaction import redact_text
from shared.settings import Settings
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json, print_table

SIDES = ("finance", "dataverse", "bridge")


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("db", help="create or upgrade the sides' databases (schema migrations)")
    actions = parser.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    upgrading = actions.add_parser("upgrade", help="create or upgrade each side's database to the newest schema")
    upgrading.add_argument("--side", choices=SIDES, help="only this side (default: all three)")
    upgrading.add_argument("--json", action="store_true", help="print the revisions before and after as JSON")
    upgrading.set_defaults(run=run_upgrade)
    status = actions.add_parser("status", help="current and head schema revision of each side")
    status.add_argument("--json", action="store_true", help="print the revisions as JSON")
    status.set_defaults(run=run_status)


def _databases(settings: Settings, only: str | None) -> list[Any]:
    from contracts.envelope import Side
    from shared.side import open_database
    from workers.runtime import ALL_SIDES, SPECS

    sides = [Side(only)] if only else list(ALL_SIDES)
    return [open_database(SPECS[side], settings) for side in sides]


def run_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from shared import migrations
    from shared.migrations.ids_in_any_case import CaseVariantsHeld

    results: list[dict[str, Any]] = []
    code = ExitCode.OK
    for database in _databases(settings, args.side):
        try:
            before, after = migrations.upgrade(database)
        except DBAPIError as error:
            fail(f"{database.side} database unavailable: {error.orig}")
            results.append({"side": database.side, "ok": False, "error": redact_text(error.orig)})
            code = ExitCode.UNAVAILABLE
            continue
        except CaseVariantsHeld as error:  # rows an operator must settle first; the side is left as it was
            fail(f"{database.side}: {error}")
            results.append({"side": database.side, "ok": False, "error": redact_text(str(error))})
            code = code if code != ExitCode.OK else ExitCode.FAILED
            continue
        finally:
            database.dispose()
        results.append({"side": database.side, "ok": True, "before": before, "after": after, "changed": before != after})
        if not args.json:
            done = f"upgraded {before or 'empty'} -> {after}" if before != after else f"at {after}, nothing to do"
            print(f"{database.side}: {done}", flush=True)
    if args.json:
        print_json({"ok": code == ExitCode.OK, "sides": results})
    return code


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    from shared import migrations

    found: list[dict[str, Any]] = []
    code = ExitCode.OK
    for database in _databases(settings, None):
        try:
            found.append(migrations.revisions(database).as_dict())
        except DBAPIError as error:
            found.append({"side": database.side, "current": None, "head": migrations.head(database.side), "at_head": False, "error": redact_text(error.orig)})
            code = ExitCode.UNAVAILABLE
        finally:
            database.dispose()
    if code == ExitCode.OK and not all(each["at_head"] for each in found):
        code = ExitCode.SCHEMA_BEHIND
    if args.json:
        print_json({"ok": code == ExitCode.OK, "sides": found})
    else:
        print_table(
            ["SIDE", "CURRENT", "HEAD", "STATE"],
            [
                [each["side"], each["current"] or "-", each["head"], "unavailable" if "error" in each else "ok" if each["at_head"] else "BEHIND"]
                for each in found
            ],
        )
        if code == ExitCode.SCHEMA_BEHIND:
            print("run `dualwrite db upgrade` to bring the databases to head")
    return code
