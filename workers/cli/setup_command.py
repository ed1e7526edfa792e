"""``dualwrite setup FILE``: load the reference data: finance's (companies, accounts, tax, workers, rates) and
Dataverse's (its companies), from one document."""

from __future__ import annotations

import argparse
from pathlib import Path

from sqlalchemy.exc import OperationalError

from shared.errors import InvalidContract
from shared import migrations
from shared.settings import Settings
from shared.side import open_database
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "setup", help="load the set-up document (JSON or YAML) into the finance database, and its companies into Dataverse's"
    )
    parser.add_argument("file", type=Path, help="set-up document, e.g. workers/demo_data/setup.yaml")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from workers.dataverse.bootstrap import SPEC as DATAVERSE
    from workers.finance.bootstrap import SPEC as FINANCE
    from workers.finance.setup_document import read_setup_document
    from workers.reference_data import load_setup

    try:
        document = read_setup_document(args.file)
    except OSError as error:
        fail(f"cannot read {args.file}: {error.strerror or error}")
        return ExitCode.INVALID_INPUT
    except UnicodeDecodeError as error:
        fail(f"cannot read {args.file}: not UTF-8 text ({error.reason} at byte {error.start}); nothing was loaded")
        return ExitCode.INVALID_INPUT
    except InvalidContract as error:
        fail(f"{error}; nothing was loaded")
        return ExitCode.INVALID_INPUT
    counts: dict[str, int] = {}
    for spec in (FINANCE, DATAVERSE):  # each side's database on its own: an error names the one that failed
        database = open_database(spec, settings)
        try:
            migrations.upgrade(database)  # the first command of a deployment: creates or upgrades the schema
            counts.update(load_setup(document, {spec.side: database.engine}))
        except OperationalError as error:
            fail(f"{spec.side.value} database unavailable: {error.orig}")
            return ExitCode.UNAVAILABLE
        finally:
            database.dispose()
    if args.json:
        print_json(counts)
    else:
        print("loaded " + ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in counts.items()))
    return ExitCode.OK
