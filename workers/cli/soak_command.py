"""``dualwrite soak``: the expense flow on private servers while faults strike; every document checked end to end."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

from shared.settings import Settings
from workers.cli.arguments import log_level
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json

if TYPE_CHECKING:
    from workers.soak.options import SoakOptions

DESCRIPTION = """\
Runs the whole expense flow (post -> Dataverse expense -> approval -> actuals -> integration
journal -> project cost) on servers of its own while it injects faults, then checks every document
end to end and prints a table: fault, count, lost, doubled, time to recover.

It starts a PRIVATE PostgreSQL cluster and a private Redis (append-only file, fsync always) or,
with --broker amqp, a private RabbitMQ node, each on a free port in a temporary directory, and
removes them at the end: the machine's shared servers are never touched (nor needed). The
workers run as processes (`python -m workers worker SIDE --processes 2`), with the periodic
repair (`dualwrite reconcile --repair --every 5 --older-than 20`) beside them. After the bench's
untimed set-up (finance set-up, categories, projects; every report created, submitted and
approved) the post commands go out in waves over --duration while the faults strike at seeded
moments, one at a time:

  kill            SIGKILL of one worker process (its supervisor starts another) or of a side's
                  whole process group (the soak starts it again), taking turns over the sides;
  broker-restart  the private Redis or RabbitMQ stopped and started on the same data;
  broker-loss     --messages-per-loss ready messages taken off the busiest expense map queue
                  (the periodic repair must send them again from the sender's outbox);
  db-restart      the private PostgreSQL restarted (every connection cut);
  conn-kill       pg_terminate_backend on every connection to the three databases.

Time to recover of a fault: from its injection until every report posted before it reached
project cost. The run then waits (--timeout) until every document did, and for the pipeline to go
idle, and checks: per hop (reports posted, expense records, cost and sales actuals, journal lines,
project transactions) each business key once, none missing; the balances as `dualwrite reconcile`
checks them, per legal entity; the dead letters of every side, with their cause.

Progress goes to stderr, the table (or --json) to stdout. Exit status 0 when nothing was lost,
nothing doubled and reconcile is ok; 1 otherwise (or when the run could not finish); 2 for bad
options; 4 when the private servers cannot be started (no redis-server, rabbitmq-server or
PostgreSQL server binaries)."""


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    from workers.bench.options import BROKERS
    from workers.soak.options import SoakOptions

    defaults = SoakOptions()
    parser = subcommands.add_parser(
        "soak",
        help="run the expense flow on private servers while injecting faults; check every document (exit 1 on a loss or a double)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load = parser.add_argument_group("load")
    load.add_argument("--lines", type=int, default=defaults.lines, help=f"expense lines posted over the run (default {defaults.lines:,})")
    load.add_argument(
        "--lines-per-report", type=int, default=defaults.lines_per_report,
        help=f"lines per report, all on projects (default {defaults.lines_per_report}); reports = lines / this, rounded up",
    )
    load.add_argument(
        "--legal-entities", type=int, default=defaults.legal_entities, help=f"legal entities (default {defaults.legal_entities})"
    )
    load.add_argument("--projects", type=int, default=defaults.projects, help=f"projects per legal entity (default {defaults.projects})")
    load.add_argument(
        "--duration", type=float, default=defaults.duration,
        help=f"seconds the posts and the faults are spread over (default {defaults.duration:g})",
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument("--kills", type=int, default=defaults.kills, help=f"SIGKILLs of worker processes (default {defaults.kills})")
    faults.add_argument(
        "--broker-restarts", type=int, default=defaults.broker_restarts, help=f"broker restarts (default {defaults.broker_restarts})"
    )
    faults.add_argument(
        "--broker-losses", type=int, default=defaults.broker_losses,
        help=f"times queued messages are taken off the broker (default {defaults.broker_losses})",
    )
    faults.add_argument(
        "--messages-per-loss", type=int, default=defaults.messages_per_loss,
        help=f"messages each broker loss takes (default {defaults.messages_per_loss})",
    )
    faults.add_argument("--db-restarts", type=int, default=defaults.db_restarts, help=f"PostgreSQL restarts (default {defaults.db_restarts})")
    faults.add_argument(
        "--connection-kills", type=int, default=defaults.connection_kills,
        help=f"times every database connection is terminated (default {defaults.connection_kills})",
    )
    faults.add_argument("--seed", type=int, default=defaults.seed, help=f"seed of the fault plan and the amounts (default {defaults.seed})")
    workers = parser.add_argument_group("workers")
    workers.add_argument("--broker", choices=BROKERS, default=defaults.broker, help=f"redis or amqp (RabbitMQ) (default {defaults.broker})")
    workers.add_argument("--processes", type=int, default=defaults.processes, help=f"processes per worker (default {defaults.processes})")
    workers.add_argument("--threads", type=int, default=defaults.threads, help=f"threads per worker process (default {defaults.threads})")
    workers.add_argument(
        "--import-interval", type=float, default=defaults.import_interval,
        help=f"seconds between Import from staging runs (default {defaults.import_interval:g})",
    )
    workers.add_argument(
        "--worker-log-level", type=log_level, default=defaults.worker_log_level,
        help=f"log level of the worker processes, logged to files (default {defaults.worker_log_level})",
    )
    run_group = parser.add_argument_group("run")
    run_group.add_argument(
        "--timeout", type=float, default=defaults.timeout,
        help=f"after the last post, how long every document may take to reach project cost (default {defaults.timeout:g} s)",
    )
    run_group.add_argument("--keep", action="store_true", help="keep the worker logs (the private servers are always removed)")
    run_group.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=run)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def options_from(args: argparse.Namespace) -> "SoakOptions":
    from workers.soak.options import SoakOptions

    return SoakOptions(
        lines=args.lines,
        lines_per_report=args.lines_per_report,
        legal_entities=args.legal_entities,
        projects=args.projects,
        broker=args.broker,
        kills=args.kills,
        broker_restarts=args.broker_restarts,
        broker_losses=args.broker_losses,
        db_restarts=args.db_restarts,
        connection_kills=args.connection_kills,
        messages_per_loss=args.messages_per_loss,
        duration=args.duration,
        seed=args.seed,
        processes=args.processes,
        threads=args.threads,
        import_interval=args.import_interval,
        timeout=args.timeout,
        keep=args.keep,
        worker_log_level=args.worker_log_level,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from workers.bench.options import BadOptions
    from workers.bench.run import Progress
    from workers.bench.services import BenchFailed, ServicesUnavailable
    from workers.soak.report import summary
    from workers.soak.run import SoakFailed, run_soak

    options = options_from(args)
    try:
        options.check()
    except BadOptions as error:
        fail(f"soak: {error}")
        return ExitCode.USAGE
    command = shlex.join(["dualwrite", *sys.argv[1:]]) if sys.argv[1:2] == ["soak"] else "dualwrite soak"
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM cleans up like Ctrl-C
    try:
        result = run_soak(options, command, Progress())
    except ServicesUnavailable as error:
        fail(f"soak: {error}")
        return ExitCode.UNAVAILABLE
    except (BenchFailed, SoakFailed) as error:
        fail(f"soak failed: {error}")
        return ExitCode.FAILED
    except KeyboardInterrupt:
        fail("soak interrupted; worker processes stopped and private servers removed")
        return ExitCode.FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        print_json(result.as_json())
    else:
        print("\n".join(summary(result)))
    return ExitCode.OK if result.ok else ExitCode.FAILED
