"""``dualwrite worker finance|dataverse|bridge``: run one side's consumers."""

from __future__ import annotations

import argparse

from pydantic import ValidationError

from contracts.envelope import Side
from shared.settings import Settings
from shared.signatures import Signer, key_ring
from workers.cli.configuration import describe_validation_error
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail

SIDES = [Side.FINANCE.value, Side.DATAVERSE.value, Side.BRIDGE.value]


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("worker", help="run one side's worker process(es)")
    parser.add_argument("side", choices=SIDES, help="which side to run")
    parser.add_argument("--processes", type=int, help="OS processes (default DUALWRITE_WORKER_PROCESSES)")
    parser.add_argument("--threads", type=int, help="threads per process (default DUALWRITE_WORKER_THREADS)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from workers.process import supervise

    if settings.embedded_broker:
        fail(
            "a worker needs a broker other processes can reach: set DUALWRITE_BROKER_URL "
            "(redis://... or amqp://...); `dualwrite demo` runs everything embedded"
        )
        return ExitCode.CONFIGURATION
    overrides = {}
    if args.threads is not None:
        overrides["worker_threads"] = args.threads
    if args.processes is not None:
        overrides["worker_processes"] = args.processes
    try:
        settings = Settings.model_validate({**settings.model_dump(), **overrides})
    except ValidationError as error:
        names = {"worker_threads": "--threads", "worker_processes": "--processes"}
        fail(f"bad option: {describe_validation_error(error, names)}")
        return ExitCode.USAGE
    # Its keys before any process starts: a worker that can neither sign nor verify exits 5 here,
    # once, rather than in every child (the first one makes a development ring when allowed).
    Signer(key_ring(settings), args.side)
    return supervise(settings, [Side(args.side)], settings.worker_processes)
