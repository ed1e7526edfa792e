"""The ``dualwrite`` command: one entry point, a module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from shared.errors import ConfigurationError
from shared.logging import log_warnings_redacted
from shared.redaction import redact_text
from workers.cli.configuration import BadConfiguration, load_settings
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail

#: Each subcommand's module, by command name, in the order ``dualwrite --help`` lists them. A
#: command imports only its own module (see ``build_parser``): a worker process loads neither the
#: migrations (alembic), the bench nor the operator tools, and starts sooner with less memory.
COMMANDS = {
    "publish": "publish_command",
    "worker": "worker_command",
    "db": "db_command",
    "health": "health_command",
    "demo": "demo_command",
    "setup": "setup_command",
    "finance": "finance_command",
    "reconcile": "reconcile_command",
    "jobs": "jobs_command",
    "queues": "queues_command",
    "dlq": "dlq_command",
    "maps": "maps_command",
    "audit": "audit_command",
    "trace": "trace_command",
    "contracts": "contracts_command",
    "keys": "keys_command",
    "bench": "bench_command",
    "soak": "soak_command",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``command`` alone (what parsing its arguments needs)."""
    parser = argparse.ArgumentParser(
        prog="dualwrite",
        description="Keep a finance system and a Dataverse-style project system in step over message queues.",
        epilog="Configuration comes from DUALWRITE_* environment variables; see the README.",
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        if command is None or name == command:
            importlib.import_module(f"workers.cli.{module}").add_parser(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The top level takes no options: a known first word is the command, and only it is loaded.
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
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
