"""``dualwrite reconcile``: prove, per legal entity, that finance and Dataverse agree to the cent,
and that every part sent reached its receiver; ``--repair`` sends the lost ones again.

Without ``--repair`` it is a check: the business comparison of ``workers.reconcile``, and, hop by
hop, the parts sent more than ``--older-than`` seconds ago that their receiver never applied,
dead-lettered or held and that the broker no longer holds (``workers.operations.lost_messages``).
Either finding makes it exit 1.

``--repair`` hands every lost part back to its sender's outbox, whose sweeper sends it again;
audited and counted. It does not compare the sides: the documents it re-sent are on their way, so
run ``dualwrite reconcile`` once the pipeline is idle. ``--dry-run`` reports what it would send.
``--every SECONDS`` repeats the repair until SIGTERM or Ctrl-C (the periodic check compose.yaml
runs as its ``repair`` service), serving ``dualwrite_lost_messages_resent`` at
``DUALWRITE_METRICS_PORT`` when it is set.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from shared import migrations
from shared.settings import Settings
from shared.side import open_database
from shared.side_database import SideDatabase
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json, print_table

SIDES = ("finance", "dataverse", "bridge")


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "reconcile",
        help="check that both sides agree, per legal entity, and that no message was lost; --repair re-sends lost ones",
        description="Compares finance and Dataverse per legal entity, and finds the parts sent more than "
        "--older-than seconds ago that never reached their receiver (lost by the broker). --repair sends those "
        "again from their sender's outbox, audited; --every repeats it.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--repair", action="store_true", help="send the lost parts again through their senders' outboxes (audited)"
    )
    parser.add_argument(
        "--older-than", type=float, metavar="SECONDS", default=None,
        help="a part counts as lost once sent this long ago (default: DUALWRITE_LOST_AFTER_SECONDS)",
    )
    parser.add_argument(
        "--lookback", type=float, metavar="SECONDS", default=None,
        help="check parts sent within this many seconds (default: DUALWRITE_LOST_LOOKBACK_SECONDS)",
    )
    parser.add_argument("--dry-run", action="store_true", help="with --repair: report what would be sent, send nothing")
    parser.add_argument(
        "--every", type=float, metavar="SECONDS", default=None,
        help="with --repair: repeat every SECONDS until SIGTERM or Ctrl-C (the periodic check)",
    )
    parser.add_argument("--as", dest="operator", metavar="NAME", help="who, for the audit log (default: the OS user)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    older_than = settings.lost_after_seconds if args.older_than is None else args.older_than
    lookback = settings.lost_lookback_seconds if args.lookback is None else args.lookback
    if older_than < 0 or lookback <= 0 or lookback <= older_than:
        fail("--older-than takes 0 or more seconds, and --lookback more seconds than --older-than")
        return ExitCode.USAGE
    if (args.dry_run or args.every is not None) and not args.repair:
        fail("--dry-run and --every go with --repair")
        return ExitCode.USAGE
    if args.every is not None and args.every <= 0:
        fail("--every takes a number of seconds greater than 0")
        return ExitCode.USAGE
    if args.repair:
        from shared.logging import configure_logging

        configure_logging(settings.log_level, settings.log_format)  # on stderr: stdout is the result
    databases = _open(settings)
    try:
        try:
            for database in databases.values():
                migrations.upgrade(database)
        except OperationalError as error:
            fail(f"database unavailable: {error.orig}")
            return ExitCode.UNAVAILABLE
        if args.every is not None:
            return _repair_every(args, settings, databases, older_than, lookback)
        if args.repair:
            return _repair_once(args, settings, databases, older_than, lookback)
        return _check(args, settings, databases, older_than, lookback)
    finally:
        for database in databases.values():
            database.dispose()


def _open(settings: Settings) -> dict[str, SideDatabase]:
    from workers.runtime import SPECS

    return {side.value: open_database(spec, settings) for side, spec in SPECS.items()}


# -- the check ------------------------------------------------------------------------------------


def _check(args: argparse.Namespace, settings: Settings, databases: Mapping[str, SideDatabase], older_than: float, lookback: float) -> int:
    from workers.operations.lost_messages import check_deliveries
    from workers.reconcile import reconcile

    try:
        companies = reconcile(databases["finance"], databases["dataverse"])
        with _broker(settings) as (parts_on_queue, broker):
            deliveries = check_deliveries(
                databases, older_than=older_than, lookback=lookback, parts_on_queue=parts_on_queue, broker=broker
            )
    except OperationalError as error:
        fail(f"database unavailable: {error.orig}")
        return ExitCode.UNAVAILABLE
    ok = bool(companies) and all(company.ok for company in companies) and not deliveries.lost
    if args.json:
        print_json({"ok": ok, "legal_entities": [company.as_json() for company in companies], "deliveries": deliveries.as_json()})
    else:
        print_report(companies, ok, deliveries)
    return ExitCode.OK if ok else ExitCode.FAILED


def print_report(companies: list, ok: bool, deliveries: Any = None) -> None:
    print_table(
        ["COMPANY", "CUR", "INTEGRATION ACCT", "PROJECT COST", "COST ACTUALS", "LINES", "EXPENSES", "ACTUALS", "JOURNAL", "PROJ TX", "OK"],
        [
            [
                c.legal_entity, c.accounting_currency, c.expense_integration_balance, c.project_cost_balance,
                c.cost_actuals_total, *c.counts.values(), "yes" if c.ok else "NO",
            ]
            for c in companies
        ],
    )
    for company in companies:
        for problem in company.problems:
            print(f"{company.legal_entity}: {problem}")
    if deliveries is not None:
        print_deliveries(deliveries)
    print("ok" if ok else "NOT RECONCILED")


def print_deliveries(deliveries: Any) -> None:
    """The hops that lost parts (a table), or one line saying none did."""
    sent = sum(each.sent for each in deliveries.queues)
    if not deliveries.lost:
        print(
            f"deliveries: every part sent {deliveries.older_than:g} s to {deliveries.lookback:g} s ago reached its "
            f"receiver ({sent} checked; broker: {deliveries.broker})"
        )
        return
    print()
    print_table(
        ["SENDER", "QUEUE", "RECEIVER", "SENT", "APPLIED", "DEAD", "HELD", "ON BROKER", "LOST", "RESENT"],
        [
            [each.sender, each.queue, each.receiver, each.sent, each.applied, each.dead_lettered, each.held,
             each.on_broker, len(each.lost), each.resent]
            for each in deliveries.queues
            if each.lost
        ],
    )
    print(f"broker: {deliveries.broker}")
    for problem in deliveries.problems():
        print(problem)


# -- the repair -----------------------------------------------------------------------------------


def _repair(settings: Settings, databases: Mapping[str, SideDatabase], repair: Any, metrics: Any = None) -> Any:
    from workers.operations.lost_messages import repair_lost_messages

    with _broker(settings, needed=True) as (parts_on_queue, broker):
        return repair_lost_messages(databases, repair, parts_on_queue=parts_on_queue, broker=broker, metrics=metrics)


def _repair_once(args: argparse.Namespace, settings: Settings, databases: Mapping[str, SideDatabase], older_than: float, lookback: float) -> int:
    from workers.operations.audit import operator_name
    from workers.operations.broker_queues import BROKER_ERRORS
    from workers.operations.lost_messages import Repair

    repair = Repair(older_than=older_than, lookback=lookback, operator=operator_name(args.operator), dry_run=args.dry_run)
    try:
        check = _repair(settings, databases, repair)
    except (OperationalError, DBAPIError) as error:
        fail(f"database unavailable: {error.orig}")
        return ExitCode.UNAVAILABLE
    except BROKER_ERRORS as error:
        fail(f"broker unavailable (nothing re-sent: the senders could not send it either): {error}")
        return ExitCode.UNAVAILABLE
    ok = not check.problems() if not args.dry_run else not check.lost
    if args.json:
        print_json({"ok": ok, "dry_run": args.dry_run, "deliveries": check.as_json()})
    elif check.skipped:
        print(f"nothing done: {check.skipped}")
    else:
        print_deliveries(check)
        if args.dry_run:
            print(f"dry run: {check.lost} lost part(s) found, none sent again")
        else:
            print(
                f"{check.resent} lost part(s) handed back to their senders' outboxes, sent again at their next sweep; "
                "run `dualwrite reconcile` once the pipeline is idle"
            )
    return ExitCode.OK if ok else ExitCode.FAILED


def _repair_every(args: argparse.Namespace, settings: Settings, databases: Mapping[str, SideDatabase], older_than: float, lookback: float) -> int:
    """The periodic check: a repair every ``--every`` seconds until SIGTERM or SIGINT; a failed run is
    logged and the next one runs as usual (the repair is safe to repeat)."""
    from shared.logging import get_logger
    from shared.metrics import Metrics, MetricsExporter
    from workers.operations.audit import operator_name
    from workers.operations.lost_messages import Repair
    from workers.stop_signals import stop_signal_within, stop_signals_blocked

    log = get_logger("workers.cli.reconcile_command")
    repair = Repair(
        older_than=older_than, lookback=lookback, operator=operator_name(args.operator or "periodic check"),
        audit_every_run=False, dry_run=args.dry_run, automatic=True,
    )
    metrics = Metrics()
    with stop_signals_blocked():
        exporter = MetricsExporter.start(metrics.registry, settings.metrics_address, settings.metrics_port) if settings.metrics_port else None
        log.info("lost-message repair started", every_seconds=args.every, older_than_seconds=older_than)
        try:
            while True:
                try:
                    check = _repair(settings, databases, repair, metrics)
                    log.info("lost-message repair ran", lost=check.lost, resent=check.resent, skipped=check.skipped)
                except Exception as error:  # noqa: BLE001 - logged; the next run happens as usual
                    log.warning("lost-message repair failed; it runs again at the next interval", error=str(error))
                if stop_signal_within(args.every):
                    break
        finally:
            if exporter is not None:
                exporter.stop()
    log.info("lost-message repair stopped")
    return ExitCode.OK


class _broker:
    """The broker's view of its queues for the check: (parts_on_queue, a word for the report).

    Embedded: the broker lives in the workers' process, out of reach. Unreachable: a check goes on
    without it (parts not applied count as lost, the report says so); a repair (``needed``) raises.
    """

    def __init__(self, settings: Settings, *, needed: bool = False) -> None:
        self.settings, self.needed, self.queues = settings, needed, None

    def __enter__(self) -> tuple[Any, str]:
        from workers.operations.broker_queues import BROKER_ERRORS, open_broker_queues
        from workers.operations.lost_messages import broker_parts

        if self.settings.embedded_broker:
            return None, "embedded: out of reach of this command; parts not applied count as lost"
        try:
            self.queues = open_broker_queues(self.settings)
            parts_on_queue, word = broker_parts(self.queues)
            if parts_on_queue is not None:
                self.queues.client.ping()
            else:  # RabbitMQ: reachable, though it cannot tell what its queues hold
                self.queues.connection.ensure_connection(max_retries=1)
        except BROKER_ERRORS:
            if self.needed:
                raise
            self._close()
            return None, "unreachable: parts not applied count as lost"
        return parts_on_queue, word

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self.queues is not None:
            self.queues.close()
            self.queues = None
