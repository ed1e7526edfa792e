"""``dualwrite finance import-from-staging``: run Import from staging and post the journals now."""

from __future__ import annotations

import argparse

from sqlalchemy.exc import OperationalError

from shared import migrations
from shared.settings import Settings
from shared.side import open_database
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("finance", help="finance operations")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    importing = actions.add_parser(
        "import-from-staging",
        help="turn staged actuals into integration journals and post them (the periodic job, on demand)",
    )
    importing.add_argument("--no-post", action="store_true", help="import only; leave the journals open")
    importing.add_argument("--json", action="store_true", help="print the result as JSON")
    importing.set_defaults(run=run_import)


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    from workers.finance.bootstrap import SPEC, import_policy
    from workers.finance.integration import IntegrationRun, import_from_staging, run_integration

    database = open_database(SPEC, settings)
    policy = import_policy(settings)
    try:
        migrations.upgrade(database)
        if args.no_post:
            result = IntegrationRun()
            while (run := import_from_staging(database, policy)).lines_imported:
                result += run
        else:
            # The posting results wait in the finance outbox; the finance worker's relay sends them.
            result = run_integration(database, None, policy)
    except OperationalError as error:
        fail(f"finance database unavailable: {error.orig}")
        return ExitCode.UNAVAILABLE
    finally:
        database.dispose()
    if args.json:
        print_json(vars(result))
    else:
        print(
            f"imported {result.lines_imported} actual(s) into {result.journals_created} journal(s); "
            f"posted {result.journals_posted} journal(s) with {result.lines_posted} line(s)"
        )
    return ExitCode.OK
