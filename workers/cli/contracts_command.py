"""``dualwrite contracts list|export``: the contracts, their versions, their JSON Schemas."""

from __future__ import annotations

import argparse
from pathlib import Path

from contracts.catalog import default_registry, publish_queue
from contracts.schemas import SCHEMA_DIR, export_schemas
from shared.settings import Settings
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json, print_table


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("contracts", help="list contracts or export their JSON Schemas")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every contract with its versions and queue")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=run_list)
    export = actions.add_parser("export", help="write every version's JSON Schema")
    export.add_argument("--dir", type=Path, default=SCHEMA_DIR, help=f"target folder (default {SCHEMA_DIR})")
    export.set_defaults(run=run_export)


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = [
        {
            "contract": contract.name,
            "kind": contract.kind.value,
            "scope": contract.scope.value,
            "versions": list(range(1, contract.latest + 1)),
            "queue": publish_queue(contract).name,
            "actor": publish_queue(contract).actor_name,
            "description": contract.description,
        }
        for contract in default_registry()
    ]
    if args.json:
        print_json(rows)
    else:
        print_table(
            ["CONTRACT", "KIND", "SCOPE", "VERSIONS", "PUBLISH TO QUEUE"],
            [[r["contract"], r["kind"], r["scope"], ",".join(map(str, r["versions"])), r["queue"]] for r in rows],
        )
    return ExitCode.OK


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    try:
        changed = export_schemas(default_registry(), args.dir)
    except OSError as error:  # not a folder, not ours to write
        why = "not a folder" if isinstance(error, (FileExistsError, NotADirectoryError)) else error.strerror or error
        fail(f"cannot write the schemas to --dir {args.dir}: {why}")
        return ExitCode.USAGE
    for path in changed:
        print(f"wrote {path}")
    print(f"{len(changed)} schema file(s) written, the others unchanged")
    return ExitCode.OK
