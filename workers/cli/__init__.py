"""The ``dualwrite`` command: one entry point, a module per subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from shared.settings import Settings
from workers.cli import (
    audit_command,
    bench_command,
    contracts_command,
    db_command,
    demo_command,
    dlq_command,
    finance_command,
    health_command,
    jobs_command,
    maps_command,
    publish_command,
    queues_command,
    reconcile_command,
    setup_command,
    trace_command,
    worker_command,
)
from workers.cli.exit_codes import ExitCode

COMMANDS = (
    publish_command,
    worker_command,
    db_command,
    health_command,
    demo_command,
    setup_command,
    finance_command,
    reconcile_command,
    jobs_command,
    queues_command,
    dlq_command,
    maps_command,
    audit_command,
    trace_command,
    contracts_command,
    bench_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dualwrite",
        description="Keep a finance system and a Dataverse-style project system in step over message queues.",
        epilog="Configuration comes from DUALWRITE_* environment variables; see the README.",
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"dualwrite: bad configuration: {error}", file=sys.stderr)
        return ExitCode.CONFIGURATION
    try:
        return int(args.run(args, settings))
    except BrokenPipeError:
        # `dualwrite ... --json | head`: the reader left; say nothing more and exit quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
