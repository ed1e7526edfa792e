"""``dualwrite maps initial-sync NAME --master SIDE``: copy the master side's rows of a map, in pages.

Starts a run (or, with ``--resume``, continues the map's unfinished one from its checkpoint),
then follows it with a progress line until the master has exported every row and the bridge has
seen them all; ``--no-wait`` returns at once, ``--status`` only shows the map's latest run.
Exits 0 when the run finished with every row carried, 1 when rows were refused (each listed with
its key and reason) or the wait timed out, 2 for a map that has no initial sync or a wrong master.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from contracts.envelope import Side
from shared.signatures import key_ring
from shared.broker import BROKER_UNAVAILABLE, make_broker
from shared.redaction import redact_text, redact_url
from shared.settings import Settings
from shared.side import open_database
from workers.bridge.initial_sync import RunProgress
from workers.cli.dlq_command import Stop, exit_status
from workers.cli.arguments import seconds
from workers.cli.exit_codes import ExitCode
from workers.cli.output import print_json
from workers.cli.progress import CounterLine
from workers.operations import initial_sync
from workers.operations.audit import operator_name


def add_action(actions: argparse._SubParsersAction, bridge: Callable[[Settings], Any]) -> None:
    """The ``initial-sync`` action of ``dualwrite maps``; ``bridge`` opens the bridge database as maps does."""
    parser = actions.add_parser(
        "initial-sync",
        help="copy the master side's existing rows of a map in pages (resumable; every refused row reported)",
    )
    parser.add_argument("name", metavar="NAME", help="the table map")
    parser.add_argument("--master", choices=("finance", "dataverse"), help="the side that masters the map's rows")
    parser.add_argument("--page-size", type=int, default=initial_sync.DEFAULT_PAGE_SIZE, metavar="N", help="rows per page (1 to 1000, default %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue the map's unfinished run from its checkpoint")
    parser.add_argument("--status", action="store_true", help="show the map's latest run; start nothing")
    parser.add_argument("--no-wait", action="store_true", help="return once the first page command is sent")
    parser.add_argument("--timeout", type=seconds, default=3600, metavar="SECONDS", help="how long to follow the run (default %(default)s)")
    parser.add_argument("--as", dest="operator", metavar="NAME", help="who starts it (default: the OS user)")
    parser.add_argument("--json", action="store_true", help="print the run as JSON")
    parser.set_defaults(run=exit_status(lambda args, settings: run(args, settings, bridge)))


def run(args: argparse.Namespace, settings: Settings, bridge_of: Callable[[Settings], Any]) -> int:
    if args.status:
        with bridge_of(settings) as bridge:
            progress = initial_sync.status(bridge, args.name)
        if progress is None:
            raise Stop(ExitCode.FAILED, f"{args.name} has had no initial sync")
        return report(progress, args.json)
    if args.master is None:
        raise Stop(ExitCode.USAGE, "--master finance|dataverse is required to start or resume an initial sync")
    if not 1 <= args.page_size <= 1000:
        raise Stop(ExitCode.USAGE, "--page-size must be between 1 and 1000 (a message carries at most 1,000 rows)")
    try:
        initial_sync.export_for(args.name, Side(args.master))
    except initial_sync.InitialSyncRefused as error:
        raise Stop(ExitCode.USAGE, str(error)) from None
    if settings.embedded_broker:
        raise Stop(
            ExitCode.CONFIGURATION,
            "the embedded broker lives inside one process (dualwrite demo); set DUALWRITE_BROKER_URL to a redis:// "
            "or amqp:// URL to run an initial sync",
        )
    master = Side(args.master)
    with bridge_of(settings) as bridge:
        started = start(args, settings, bridge, master)
        if args.no_wait:
            return report(started.run, args.json)
        progress = follow(bridge, started.run, args.timeout, quiet=args.json)
    return report(progress, args.json)


def start(args: argparse.Namespace, settings: Settings, bridge: Any, master: Side) -> initial_sync.Started:
    from contracts.catalog import default_registry
    from workers.runtime import SPECS

    master_database = open_database(SPECS[master], settings)
    broker = make_broker(settings)
    try:
        return initial_sync.start(
            bridge=bridge,
            master_database=master_database,
            broker=broker,
            registry=default_registry(),
            ring=key_ring(settings),
            map_name=args.name,
            master=master,
            page_size=args.page_size,
            operator=operator_name(args.operator),
            resume=args.resume,
        )
    except initial_sync.InitialSyncRefused as error:
        raise Stop(ExitCode.USAGE, str(error)) from None
    except BROKER_UNAVAILABLE as error:
        raise Stop(
            ExitCode.UNAVAILABLE,
            f"broker unavailable at {redact_url(settings.broker_url)}: {redact_text(error)}; the run is recorded, "
            "`--resume` sends its page command",
        ) from None
    finally:
        broker.close()
        master_database.dispose()


def follow(bridge: Any, run: RunProgress, timeout: float, *, quiet: bool) -> RunProgress:
    """The run once settled, a progress line on stderr meanwhile; the run as it is on a timeout."""
    line = CounterLine("synced rows", minimum=1)
    total = run.total_rows or 0

    def shown(progress: RunProgress) -> None:
        if not quiet and total:
            line(min(progress.rows_read, total), total)

    try:
        return initial_sync.wait_for(bridge, run.run_id, timeout=timeout, on_progress=shown)
    except initial_sync.Timeout:
        line.finish()
        current = initial_sync.status(bridge, run.map)
        assert current is not None
        return current
    finally:
        line.finish()


def report(progress: RunProgress, as_json: bool) -> int:
    status = ExitCode.OK if progress.settled and not progress.failures else ExitCode.FAILED
    if as_json:
        print_json({**progress.as_json(), "settled": progress.settled})
        return status
    where = "finished" if progress.finished else f"unfinished, next page {progress.next_page}"
    print(
        f"initial sync {progress.run_id} of {progress.map} from {progress.master}: {where}; "
        f"{progress.pages} page(s), {progress.rows_read} row(s) read"
        + (f" of {progress.total_rows}" if progress.total_rows is not None else "")
        + f", {progress.rows_carried} carried, {progress.rows_superseded} superseded by newer live changes, "
        f"{progress.rows_failed} refused"
    )
    for failure in progress.failures:
        print(f"  refused {', '.join(failure['key'])} (page {failure['page']}): {failure['reason']}")
    if not progress.finished:
        print(f"  checkpoint: after {', '.join(progress.checkpoint or []) or 'the start'}; `--resume` continues from there")
    return status
