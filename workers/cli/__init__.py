"""The ``dualwrite`` command: one entry point, a module per subcommand."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from shared.errors import ConfigurationError
from shared.logging import log_warnings_redacted
from shared.redaction import redact_text
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
    keys_command,
    maps_command,
    publish_command,
    queues_command,
    reconcile_command,
    setup_command,
    trace_command,
    worker_command,
)
from workers.cli.configuration import BadConfiguration, load_settings
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail

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
    keys_command,
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
        settings = load_settings()  # the values are never printed: a URL holds its password
    except BadConfiguration as error:
        fail(f"bad configuration: {error}")
        return ExitCode.CONFIGURATION
    log_warnings_redacted()  # a library's warning, in a command that sets no logging up, hides passwords too
    try:
        return int(args.run(args, settings))
    except BrokenPipeError:
        # `dualwrite ... --json | head`: the reader left; say nothing more and exit quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except ConfigurationError as error:  # e.g. no signing key for what the command must sign
        fail(redact_text(str(error)))
        return ExitCode.CONFIGURATION
    except KeyboardInterrupt:
        fail("interrupted")
        return INTERRUPTED
    except Exception as error:  # a bug: one line (secrets hidden), the traceback only when asked for
        if settings.log_level.upper() == "DEBUG":
            sys.stderr.write(redact_text("".join(traceback.format_exception(error))))
        fail(
            f"unexpected error: {type(error).__name__}: {error}; this is a bug"
            + ("" if settings.log_level.upper() == "DEBUG" else " (DUALWRITE_LOG_LEVEL=DEBUG shows its traceback)")
        )
        return ExitCode.FAILED


#: Ctrl-C: the status a shell gives a command ended by SIGINT (128 + 2).
INTERRUPTED = 130


if __name__ == "__main__":
    sys.exit(main())
