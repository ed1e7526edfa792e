"""``dualwrite maps``: the table maps, their state, version, counts and activity; pause, resume, stop, start, activate."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from contracts.envelope import Side
from contracts.maps import MAPS, map_declaration
from shared.settings import Settings
from shared.side import open_database
from shared.side_database import SideDatabase
from shared.waiting import Timeout, wait_until
from workers.bridge import map_control
from workers.bridge.activity import activity_log
from workers.bridge.map_states import MapState, MapStateError, read_states
from workers.cli.dlq_command import Stop, exit_status
from workers.cli import initial_sync_command
from workers.cli.arguments import seconds
from workers.cli.exit_codes import ExitCode
from workers.cli.output import print_json, print_table
from workers.cli.progress import CounterLine
from workers.operations.audit import operator_name

DEFAULT_LIMIT = 50
DEFAULT_WAIT = 300.0


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "maps",
        help="table maps: state, version, counts, activity log; pause, resume, stop, start, activate",
        description="The dual-write table maps as the bridge runs them (declared in contracts/maps.yaml).",
    )
    actions = parser.add_subparsers(dest="maps_action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="each map with its state, version, counts, held messages and last error")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=run_list)

    log = actions.add_parser("log", help="a map's activity log, newest first")
    log.add_argument("name", metavar="NAME", help="the table map, e.g. msdyn_expenses")
    log.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N", help=f"at most N entries (default {DEFAULT_LIMIT})")
    log.add_argument("--kind", action="append", default=[], metavar="KIND", help="only these kinds (applied, failed, held, released, state, alert...); repeatable")
    log.add_argument("--json", action="store_true", help="print JSON")
    log.set_defaults(run=run_log)

    for action, state, text in (
        ("pause", MapState.PAUSED, "hold the map's messages (nothing applied, nothing lost, no time limit)"),
        ("resume", MapState.RUNNING, "release held messages in the order published, before any new one"),
        ("stop", MapState.STOPPED, "refuse the map's new messages (dead-lettered with the reason)"),
        ("start", MapState.RUNNING, "run a stopped or not-running map again"),
    ):
        command = actions.add_parser(action, help=text)
        command.add_argument("name", metavar="NAME", help="the table map")
        command.add_argument("--reason", help="why, shown in `maps list` and the activity log")
        if action == "resume":
            command.add_argument("--wait", action="store_true", help="wait until the bridge has released every held message, with progress")
            command.add_argument("--timeout", type=seconds, default=DEFAULT_WAIT, metavar="SECONDS", help=f"how long --wait waits (default {DEFAULT_WAIT:g})")
        _add_operator(command)
        command.set_defaults(run=run_change, target_state=state, action=action)

    activate = actions.add_parser("activate", help="run another version of the map's contract; older queued or held messages are upcast to it")
    activate.add_argument("name", metavar="NAME", help="the table map")
    activate.add_argument("--version", type=int, required=True, metavar="N", help="the contract version to run")
    _add_operator(activate)
    activate.set_defaults(run=run_activate)
    initial_sync_command.add_action(actions, _bridge)


def _add_operator(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as", dest="operator", metavar="NAME", help="who, for the audit log (default: the OS user)")
    parser.add_argument("--json", action="store_true", help="print JSON")


@contextmanager
def _bridge(settings: Settings) -> Iterator[SideDatabase]:
    from workers.runtime import SPECS

    url = settings.database_url("bridge")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        raise Stop(
            ExitCode.UNAVAILABLE,
            f"no bridge database at {parsed.render_as_string(hide_password=True)}: set DUALWRITE_DATA_DIR or DUALWRITE_BRIDGE_DB_URL",
        )
    bridge = open_database(SPECS[Side.BRIDGE], settings)
    try:
        yield bridge
    except (OperationalError, ProgrammingError) as error:
        if "map_states" in str(error) or "held_messages" in str(error) or "map_activity" in str(error):
            raise Stop(ExitCode.SCHEMA_BEHIND, "the bridge database has no table-map tables yet: run `dualwrite db upgrade`") from None
        raise Stop(ExitCode.UNAVAILABLE, f"bridge database unavailable: {error.orig}") from None
    except DBAPIError as error:
        raise Stop(ExitCode.UNAVAILABLE, f"bridge database unavailable: {error.orig}") from None
    finally:
        bridge.dispose()


def _known(name: str) -> None:
    try:
        map_declaration(name)
    except KeyError as error:
        raise Stop(ExitCode.USAGE, str(error.args[0])) from None


# -- list and log --------------------------------------------------------------------------------


@exit_status
def run_list(args: argparse.Namespace, settings: Settings) -> int:
    with _bridge(settings) as bridge, bridge.engine.connect() as connection:
        statuses = read_states(connection)
    declarations = {each.name: each for each in MAPS}
    if args.json:
        print_json([{**s.as_json(), **_declared(declarations[s.map])} for s in statuses])
        return ExitCode.OK
    print_table(
        ["MAP", "DIRECTION", "STATE", "VERSION", "APPLIED", "FAILED", "HELD", "LAST ERROR", "REASON"],
        [
            [
                s.map,
                f"{declarations[s.map].source} -> {declarations[s.map].target}",
                s.state.value,
                s.active_version,
                s.applied,
                s.failed,
                s.held,
                _short(f"{s.last_error_at:%Y-%m-%d %H:%M:%S} {s.last_error}" if s.last_error and s.last_error_at else s.last_error),
                _short(s.reason),
            ]
            for s in statuses
        ],
    )
    return ExitCode.OK


def _declared(declaration: Any) -> dict[str, Any]:
    return {
        "source": declaration.source.value,
        "target": declaration.target.value,
        "master": declaration.master.value,
        "contract": declaration.contract,
        "declared_version": declaration.version,
        "key": list(declaration.key),
        "alerts": [rule.describe() + f" -> {rule.action}" for rule in declaration.alerts],
    }


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[: width - 3] + "..."


@exit_status
def run_log(args: argparse.Namespace, settings: Settings) -> int:
    _known(args.name)
    if args.limit < 1:
        raise Stop(ExitCode.USAGE, "--limit takes a number greater than 0")
    with _bridge(settings) as bridge, bridge.engine.connect() as connection:
        entries = activity_log(connection, args.name, limit=args.limit, kinds=args.kind)
    if args.json:
        print_json([entry.as_json() for entry in entries])
        return ExitCode.OK
    if not entries:
        print(f"no activity for {args.name}")
        return ExitCode.OK
    print_table(
        ["WHEN (UTC)", "KIND", "MESSAGE", "CORRELATION", "KEY", "DETAIL"],
        [
            [f"{e.at:%Y-%m-%d %H:%M:%S.%f}"[:23], e.kind, e.message_id, e.correlation_id, _short(e.key, 50), _short(_detail(e.detail), 80)]
            for e in entries
        ],
    )
    return ExitCode.OK


def _detail(detail: Any) -> str:
    if isinstance(detail, dict):
        return ", ".join(f"{key}={value}" for key, value in detail.items() if value is not None)
    return "" if detail is None else str(detail)


# -- changes -------------------------------------------------------------------------------------


@exit_status
def run_change(args: argparse.Namespace, settings: Settings) -> int:
    _known(args.name)
    operator = operator_name(args.operator)
    with _bridge(settings) as bridge:
        try:
            change = map_control.set_map_state(
                bridge, args.name, args.target_state, by=operator, reason=args.reason, action=args.action
            )
        except MapStateError as error:
            raise Stop(ExitCode.FAILED, str(error)) from None
        left = change.held
        if args.action == "resume" and getattr(args, "wait", False) and left:
            left = _wait_for_release(bridge, args.name, change.held, args.timeout)
    if args.json:
        print_json({**change.as_json(), "held": left})
    else:
        print(_said(args.action, change, left))
    return ExitCode.OK


def _said(action: str, change: map_control.MapChange, left: int) -> str:
    if not change.changed:
        return f"{change.map} is already {change.after}; nothing changed"
    line = f"{change.map}: {change.before} -> {change.after}"
    if change.after == MapState.PAUSED.value:
        return f"{line}; its messages are held until `dualwrite maps resume {change.map}`"
    if change.after == MapState.RUNNING.value and change.held:
        if left == 0:
            return f"{line}; {change.held} held messages released in the order published"
        return f"{line}; the bridge releases the {left} held messages in the order published, before any new one"
    return line


def _wait_for_release(bridge: SideDatabase, name: str, total: int, timeout: float) -> int:
    """Wait, showing progress, until a bridge worker has released the map's held messages."""
    progress = CounterLine("released")
    left = total

    def released() -> bool:
        nonlocal left
        left = map_control.held(bridge, name)
        progress(total - left, total)
        return left == 0

    try:
        wait_until(released, timeout=timeout, interval=0.2, what=f"the release of {name}'s held messages")
    except Timeout:
        raise Stop(
            ExitCode.FAILED,
            f"{name}: {left} of {total} held messages not released after {timeout:g} s; is a bridge worker running?",
        ) from None
    finally:
        progress.finish()
    return left


@exit_status
def run_activate(args: argparse.Namespace, settings: Settings) -> int:
    _known(args.name)
    operator = operator_name(args.operator)
    with _bridge(settings) as bridge:
        try:
            change = map_control.activate(bridge, args.name, args.version, by=operator)
        except MapStateError as error:
            raise Stop(ExitCode.USAGE, str(error)) from None
    if args.json:
        print_json(change.as_json())
    elif change.changed:
        print(f"{change.map}: version {change.version_before} -> {change.version}; older messages are upcast to it")
    else:
        print(f"{change.map} already runs version {change.version}; nothing changed")
    return ExitCode.OK
