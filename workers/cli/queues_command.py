"""``dualwrite queues``: every queue's depth, with the table map and direction it belongs to.

On Redis, the messages in flight are told apart by who holds them: a live worker, or a dead one
(its heartbeat older than ``DUALWRITE_HEARTBEAT_TIMEOUT_MS``: killed, crashed), whose messages a
live worker's maintenance pass puts back on the queue within seconds. Each dead holder is listed
under the table, with the age of its last heartbeat; ``--json`` lists every holder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from shared.redaction import redact_text, redact_url
from shared.settings import Settings
from workers.cli.arguments import MAX_SECONDS
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json, print_table
from workers.operations.broker_queues import BROKER_ERRORS, BrokerQueues, EmbeddedBrokerOutOfReach, open_broker_queues
from workers.operations.queue_depths import QueueDepth, queue_depths

DEFAULT_WATCH_SECONDS = 2.0
CLEAR_SCREEN = "\033[H\033[2J"


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "queues",
        help="ready, delayed, in-flight and dead messages of every queue",
        description="Every queue of every table map and side: ready, delayed, in flight, dead, the age of "
        "the oldest ready message, and the map and direction it belongs to. On Redis, messages in flight "
        "held by dead worker processes (heartbeat older than DUALWRITE_HEARTBEAT_TIMEOUT_MS) are counted "
        "apart and their holders listed.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON (one document per refresh with --watch)")
    parser.add_argument(
        "--watch", nargs="?", type=float, const=DEFAULT_WATCH_SECONDS, metavar="SECONDS",
        help=f"refresh every SECONDS (default {DEFAULT_WATCH_SECONDS:g}) until Ctrl-C",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.watch is not None and not 0 < args.watch <= MAX_SECONDS:  # nan and inf too
        fail(f"--watch takes a number of seconds greater than 0 (at most {MAX_SECONDS:g})")
        return ExitCode.USAGE
    try:
        broker = open_broker_queues(settings)
    except EmbeddedBrokerOutOfReach as error:
        fail(str(error))
        return ExitCode.CONFIGURATION
    try:
        if args.watch is None:
            _show(broker, as_json=args.json, one_line=False)
            return ExitCode.OK
        # With --watch --json, one JSON document per line, for a script reading the stream.
        watch(lambda: _show(broker, as_json=args.json, one_line=True), args.watch, clear=not args.json and sys.stdout.isatty())
        return ExitCode.OK
    except BROKER_ERRORS as error:
        fail(f"broker unavailable at {redact_url(settings.broker_url)}: {type(error).__name__}: {redact_text(error)}")
        return ExitCode.UNAVAILABLE
    finally:
        broker.close()


def watch(refresh: Callable[[], None], seconds: float, *, clear: bool, rounds: int | None = None) -> None:
    """Refresh every ``seconds`` until Ctrl-C (or ``rounds`` times)."""
    done = 0
    try:
        while rounds is None or done < rounds:
            if clear:
                sys.stdout.write(CLEAR_SCREEN)
            refresh()
            sys.stdout.flush()
            done += 1
            if rounds is None or done < rounds:
                time.sleep(seconds)
    except KeyboardInterrupt:
        pass


def _show(broker: BrokerQueues, *, as_json: bool, one_line: bool) -> None:
    depths = queue_depths(broker, datetime.now(UTC))
    if not as_json:
        _table(broker, depths)
        return
    document = {
        "broker": broker.kind,
        "at": datetime.now(UTC).isoformat(),
        "in_flight": broker.in_flight_meaning,
        "queues": [depth.as_json() for depth in depths],
    }
    if one_line:
        print(json.dumps(document, default=str))
    else:
        print_json(document)


def _table(broker: BrokerQueues, depths: list[QueueDepth]) -> None:
    print_table(
        ["QUEUE", "MAP", "DIRECTION", "READY", "DELAYED", "IN FLIGHT", "DEAD", "OLDEST READY", "CONSUMERS"],
        [
            [
                d.queue.name, d.queue.table_map or "(commands)", d.queue.direction, d.counts.ready,
                _known(d.counts.delayed), _in_flight(d), d.counts.dead,
                _age(d.oldest_ready_age, d.counts.ready, broker), _known(d.counts.consumers),
            ]
            for d in depths
        ],
    )
    print(f"{broker.kind} at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC; in flight: {broker.in_flight_meaning}")
    dead = [(d.queue.name, holder) for d in depths for holder in d.counts.holders if holder.dead]
    if dead:
        print()
        print("In flight, held by dead worker processes (heartbeat older than the timeout): back on the queue at the")
        print("next maintenance pass of a live worker consuming it")
        print_table(
            ["QUEUE", "WORKER", "MESSAGES", "LAST HEARTBEAT", "BACK ON THE QUEUE"],
            [[name, holder.worker_id, holder.messages, _heartbeat(holder.heartbeat_age), _requeue(holder.requeue_within)] for name, holder in dead],
        )


def _in_flight(depth: QueueDepth) -> str:
    """In flight, and how many of those dead workers hold: ``5 (3 dead)``."""
    if depth.counts.in_flight is None:
        return "n/a"
    if depth.counts.in_flight_dead:
        return f"{depth.counts.in_flight} ({depth.counts.in_flight_dead} dead)"
    return str(depth.counts.in_flight)


def _heartbeat(age: float | None) -> str:
    return "none" if age is None else f"{_duration(age)} ago"


def _requeue(within: float | None) -> str:
    # Maintenance looks for dead workers among the heartbeats only: one with none is never found.
    return "not by itself (no heartbeat)" if within is None else f"within {within:g} s"


def _known(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def _age(seconds: float | None, ready: int, broker: BrokerQueues) -> str:
    if seconds is None:
        return "n/a" if ready and broker.kind != "redis" else "-"
    return _duration(seconds)


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole >= 86_400:
        return f"{whole // 86_400}d{whole % 86_400 // 3_600:02d}h"
    if whole >= 3_600:
        return f"{whole // 3_600}h{whole % 3_600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{seconds:.1f}s"
