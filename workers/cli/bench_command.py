"""``dualwrite bench``: the expense flow under load on real Redis or RabbitMQ and PostgreSQL, workers as separate processes."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

from shared.redaction import redact_text, remember_secrets
from shared.settings import Settings
from workers.cli.arguments import log_level
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json

if TYPE_CHECKING:
    from workers.bench.options import BenchOptions

DESCRIPTION = """\
Measures the whole expense flow on real Redis (or RabbitMQ, --broker amqp) and PostgreSQL with
the finance, Dataverse and bridge workers as separate processes (`python -m workers worker SIDE`).

It drops and recreates three throwaway databases (dualwrite_bench_finance, _dataverse, _bridge) on
the --postgres-url server. On Redis it flushes the --redis-url db at start and at the end, so give
it a Redis db number of its own; on RabbitMQ it creates a throwaway vhost (dualwrite-bench-...) on
the --amqp-url server and deletes it at the end (through the management API on port 15672 when it
answers, else rabbitmqctl on this machine). It loads a generated finance set-up, categories and
projects through the normal commands, prepares every report (created, submitted, approved;
untimed), then:

  baseline    a bare dramatiq no-op actor on the same broker (1 process, 8 threads), messages/s;
  throughput  posts all --reports at once and times them until reconcile is ok: expense lines per
              second end to end, and per-report latency (post -> project cost) p50/p95/p99; the
              default 1,000 reports keep the flow loaded for some 25 s, so the pipeline's fill and
              drain (about a second) do not decide the figure (200 reports run for 5 s); CPU-s of
              the workers, PostgreSQL, the broker's server (redis-server or beam.smp) and the bench
              per 1,000 lines; every worker process's resident memory (VmRSS) sampled each second,
              shown at 10, 50 and 90 % of the phase and its peak;
  light load  posts --light reports one at a time, each after the previous reached project cost;
  memory      peak resident memory (VmHWM) of every worker process;
  idle        --idle-seconds with every worker idle: each worker process's CPU, % of one core;
  initial sync  with --initial-sync ROWS: ROWS transaction categories written to Dataverse's store,
              then `maps initial-sync msdyn_transactioncategories --master dataverse` started as an
              operator starts it, timed until finance holds every row: rows/s.

--profile runs py-spy on every worker process through the throughput phase and prints the top 15
functions by own time of each (py-spy must be installed: pip install py-spy, or the project's
[bench] extra; attaching needs ptrace rights: root, or kernel.yama.ptrace_scope 0). A profiled
run's figures are not comparable with others: py-spy shares the CPUs.

Workers run Import from staging every --import-interval seconds (default 0.1; the product default
of 2 s would dominate latency). Progress goes to stderr, the summary (or --json) to stdout.
Worker processes are stopped, the Redis db flushed or the vhost deleted, and the databases dropped
(unless --keep) even on Ctrl-C or failure. docs/benchmark.md describes every line of the summary.

Exit status 0 when the run completed, whether or not the targets (>= 1,000 expense lines/s,
p99 < 1 s at light load, < 150 MB per worker, < 2 % of a core per idle worker) were met: a missed
target is reported as MISS, not as a failure. 1 when the run could not complete (a worker died, a
message was dead-lettered, a deadline passed, Ctrl-C), 2 for bad options (such as an embedded
broker, a --amqp-url that is not amqp://, or --profile without py-spy), 4 when the broker or
PostgreSQL cannot be reached (or the RabbitMQ vhost cannot be made)."""


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    from workers.bench.options import BROKERS, DEFAULT_AMQP_URL, DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL, BenchOptions

    defaults = BenchOptions()
    parser = subcommands.add_parser(
        "bench",
        help="measure throughput, latency, CPU and memory on real Redis or RabbitMQ and PostgreSQL (exit 0 even if a target is missed)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load = parser.add_argument_group("load")
    load.add_argument("--reports", type=int, default=defaults.reports, help=f"reports of the throughput phase (default {defaults.reports})")
    load.add_argument("--lines", type=int, default=defaults.lines, help=f"lines per report, all on projects (default {defaults.lines})")
    load.add_argument(
        "--legal-entities", type=int, default=defaults.legal_entities,
        help=f"legal entities, each in its own accounting currency (default {defaults.legal_entities}, at most 8)",
    )
    load.add_argument(
        "--projects", type=int, default=defaults.projects,
        help=f"projects per legal entity, odd-numbered ones billable (default {defaults.projects})",
    )
    load.add_argument(
        "--light", type=int, default=defaults.light,
        help=f"reports of the light-load phase, posted one at a time (default {defaults.light}; 0 skips it)",
    )
    load.add_argument(
        "--reports-per-post", type=int, default=defaults.reports_per_post,
        help=f"reports per post message in the throughput phase (default {defaults.reports_per_post}: one message per report)",
    )
    load.add_argument(
        "--noop-messages", type=int, default=defaults.noop_messages,
        help=f"messages of the no-op baseline (default {defaults.noop_messages:,})",
    )
    workers = parser.add_argument_group("workers")
    workers.add_argument("--threads", type=int, default=defaults.threads, help=f"threads per worker process (default {defaults.threads})")
    workers.add_argument("--processes", type=int, default=defaults.processes, help=f"processes per worker (default {defaults.processes})")
    workers.add_argument(
        "--import-interval", type=float, default=defaults.import_interval,
        help=f"seconds between Import from staging runs (default {defaults.import_interval:g})",
    )
    workers.add_argument(
        "--worker-log-level", type=log_level, default=defaults.worker_log_level,
        help=f"log level of the worker processes, logged to files (default {defaults.worker_log_level})",
    )
    servers = parser.add_argument_group("servers")
    servers.add_argument(
        "--broker", choices=BROKERS, default=defaults.broker,
        help=f"the broker of the workers and of the no-op baseline: redis (--redis-url) or amqp (RabbitMQ, --amqp-url; "
        f"default {defaults.broker})",
    )
    servers.add_argument(
        "--redis-url", default=DEFAULT_REDIS_URL,
        help=f"Redis db of the bench, flushed at start and end (default {DEFAULT_REDIS_URL}); not DUALWRITE_BROKER_URL",
    )
    servers.add_argument(
        "--amqp-url", default=DEFAULT_AMQP_URL,
        help=f"RabbitMQ server of --broker amqp (default {DEFAULT_AMQP_URL}); the bench runs in a throwaway vhost of its own "
        "on it, created and deleted by the run (a vhost in the URL is not used)",
    )
    servers.add_argument(
        "--postgres-url", default=DEFAULT_POSTGRES_URL,
        help=f"PostgreSQL admin connection to create and drop the bench databases with (default {DEFAULT_POSTGRES_URL})",
    )
    phases = parser.add_argument_group("more phases")
    phases.add_argument(
        "--idle-seconds", type=float, default=defaults.idle_seconds,
        help=f"seconds of the idle phase after the run: each worker process's CPU while idle, %% of one core "
        f"(default {defaults.idle_seconds:g}; 0 skips it)",
    )
    phases.add_argument(
        "--initial-sync", type=int, default=defaults.initial_sync, metavar="ROWS",
        help="also time an initial sync of ROWS transaction categories (msdyn_transactioncategories, Dataverse -> finance): "
        "rows/s (default 0: skipped)",
    )
    phases.add_argument(
        "--initial-sync-page-size", type=int, default=defaults.initial_sync_page_size, metavar="N",
        help=f"rows per page of that initial sync, as maps initial-sync --page-size (default {defaults.initial_sync_page_size})",
    )
    phases.add_argument(
        "--profile", action="store_true",
        help="run py-spy on every worker process through the throughput phase; print each one's top 15 functions by own time",
    )
    phases.add_argument(
        "--profile-dir", metavar="DIR",
        help="where --profile writes the raw py-spy stacks (default: a new dualwrite-bench-profile-* temporary directory, kept)",
    )
    output = parser.add_argument_group("run")
    output.add_argument("--timeout", type=float, default=defaults.timeout, help=f"deadline of each wait, seconds (default {defaults.timeout:g})")
    output.add_argument("--keep", action="store_true", help="keep the databases and worker logs afterwards")
    output.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=run)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def options_from(args: argparse.Namespace) -> "BenchOptions":
    """The run the parsed command line asks for (not checked yet: BenchOptions.check)."""
    from workers.bench.options import BenchOptions

    return BenchOptions(
        reports=args.reports,
        lines=args.lines,
        legal_entities=args.legal_entities,
        projects=args.projects,
        threads=args.threads,
        processes=args.processes,
        light=args.light,
        reports_per_post=args.reports_per_post,
        noop_messages=args.noop_messages,
        import_interval=args.import_interval,
        redis_url=args.redis_url,
        postgres_url=args.postgres_url,
        timeout=args.timeout,
        keep=args.keep,
        worker_log_level=args.worker_log_level,
        broker=args.broker,
        amqp_url=args.amqp_url,
        idle_seconds=args.idle_seconds,
        initial_sync=args.initial_sync,
        initial_sync_page_size=args.initial_sync_page_size,
        profile=args.profile,
        profile_dir=args.profile_dir,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from workers.bench.options import BadOptions
    from workers.bench.report import summary
    from workers.bench.run import Progress, run_bench
    from workers.bench.services import BenchFailed, ServicesUnavailable

    options = options_from(args)
    remember_secrets(args.redis_url, args.postgres_url, args.amqp_url)  # hidden from every line the run prints
    try:
        options.check()
    except BadOptions as error:
        fail(f"bench: {error}")
        return ExitCode.USAGE
    if options.profile:
        from workers.bench.profile import find_py_spy

        if find_py_spy() is None:
            fail("bench: --profile needs py-spy, found neither beside this Python nor on PATH: pip install py-spy (or the project's [bench] extra)")
            return ExitCode.USAGE
    command = shlex.join(["dualwrite", *sys.argv[1:]]) if sys.argv[1:2] == ["bench"] else "dualwrite bench"
    command = redact_text(command)  # a URL given on the command line keeps its password out of --json
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM cleans up like Ctrl-C
    try:
        result = run_bench(options, command, Progress())
    except ServicesUnavailable as error:
        fail(f"bench: {error}")
        return ExitCode.UNAVAILABLE
    except BenchFailed as error:
        fail(f"bench failed: {error}")
        return ExitCode.FAILED
    except KeyboardInterrupt:
        fail("bench interrupted; worker processes stopped and databases cleaned up")
        return ExitCode.FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        print_json(result.as_json())
    else:
        print("\n".join(summary(result)))
    return ExitCode.OK
