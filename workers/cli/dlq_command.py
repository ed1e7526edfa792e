"""``dualwrite dlq``: dead letters grouped by cause; show one; replay, edit or purge them.

The reasons come from the three sides' ``dead_letters`` tables, the messages from the broker's
``<queue>.XQ`` as well. Listing and showing work on the embedded default too (from the SQLite
files under ``DUALWRITE_DATA_DIR``), without the broker check; a repair needs the broker the
workers use. Every repair is written to the audit log (``dualwrite audit``).

A letter's body and error are anyone's to write: whatever they hold, they are listed and shown
(a body that is not JSON as its first 2 KiB, non-printable characters escaped). Refused letters
(strangers' messages, malformed bytes) are grouped by reason and queue; they are not replayed or
edited unless the operator says they checked the sender (``--trust-sender``), and malformed
bytes never are: they can only be purged.

A letter is named by its message id (or its first characters), or by its letter id (``finance:17``,
the side and row of its reason; ``broker:<digest>`` for a broker copy without one). A sender may
reuse a message id, so one id can name several letters: the command then stops (exit 3) and lists
their letter ids to choose from. Whatever is named, only that letter's own broker copy is touched.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from contracts.senders import OPERATOR
from contracts.catalog import default_registry
from shared.dead_letters import body_cut_size
from shared.errors import PermanentError
from shared.logging import configure_logging
from shared.settings import Settings
from shared.signatures import Signer, key_ring
from shared.untrusted_json import SHOWN_CHARACTERS, fit, printable, read, shown
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json, print_table
from workers.cli.progress import CounterLine
from workers.operations.audit import AuditLog, operator_name
from workers.operations.broker_queues import (
    BROKER_ERRORS,
    EMBEDDED_OUT_OF_REACH,
    BrokerQueues,
    EmbeddedBrokerOutOfReach,
    open_broker_queues,
)
from workers.operations.dead_letter_queue import (
    LETTER_ID,
    AmbiguousId,
    DeadLetter,
    DeadLetterQueue,
    envelope_of,
    letter_id_of,
)
from workers.operations.dead_letter_records import DeadLetterLedgers, DeadLetterRecord, LedgerUnavailable
from workers.operations.dead_letter_repair import (
    TRUST_SENDER_OPTION,
    Correction,
    DeadLetterRepair,
    NotReplayable,
    RepairReport,
)

#: The widest a cell of ``dlq list`` gets (a pattern is cut, its non-printable characters escaped).
CELL_CHARACTERS = 160
ID_HELP = (
    "message id (or its first characters), or letter id (finance:17, broker:3fa9c2e1b07d; see `dlq list --json`) "
    "when one message id names several letters"
)


class Stop(Exception):
    """Raised inside a command to end it with a message and an exit status."""

    def __init__(self, status: ExitCode, message: str) -> None:
        super().__init__(message)
        self.status = status


def exit_status(run: Callable[[argparse.Namespace, Settings], int]) -> Callable[[argparse.Namespace, Settings], int]:
    """A command's Stop becomes its message on stderr and its exit status."""

    @functools.wraps(run)
    def wrapped(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return run(args, settings)
        except Stop as stop:
            fail(str(stop))
            return stop.status

    return wrapped


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "dlq",
        help="dead letters by cause; show, replay, edit or purge them",
        description="Dead letters of every side and queue, grouped by cause. Repairs are written to the audit log.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="dead letters grouped by cause, with counts and first and last seen")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=run_list)

    show = actions.add_parser("show", help="one dead letter: envelope, error, traceback, attempts, history")
    show.add_argument("message_id", metavar="ID", help=ID_HELP)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(run=run_show)

    replay = actions.add_parser(
        "replay", help="send dead letters back to their queues, upcast to the newest contract version",
        description="Each letter is upcast to the newest version of its contract and validated again; one "
        "that still fails stays dead with the new reason. Fix the cause first. Replays are signed with the "
        "operators' key: letters refused as unauthenticated or forbidden (or dead without a recorded reason) "
        f"are skipped unless {TRUST_SENDER_OPTION}; malformed ones always are (purge them).",
    )
    _add_selection(replay)
    _add_trust_sender(replay)
    _add_operator(replay)
    replay.set_defaults(run=run_replay)

    edit = actions.add_parser(
        "edit", help="replay a corrected payload in place of a dead letter's",
        description="FILE holds the corrected payload ({\"rows\": [...]}, in the original's version unless "
        "--version) or a whole envelope (a document with \"payload\"). It is validated first; the original "
        "is kept beside the edit.",
    )
    edit.add_argument("message_id", metavar="ID", help=ID_HELP)
    edit.add_argument("file", metavar="FILE", help="JSON file, or - for standard input")
    edit.add_argument("--version", type=int, help="contract version the corrected payload is written in")
    edit.add_argument("--legal-entity", help="set the envelope's legal entity")
    _add_trust_sender(edit)
    _add_operator(edit)
    edit.set_defaults(run=run_edit)

    purge = actions.add_parser(
        "purge", help="drop dead letters from the broker for good (their rows stay, marked purged)",
        description="Asks for confirmation on a terminal; without one, --yes is required.",
    )
    _add_selection(purge)
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _add_operator(purge)
    purge.set_defaults(run=run_purge)


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("message_ids", nargs="*", metavar="ID", help=ID_HELP)
    parser.add_argument("--group", metavar="G", help="every letter of this cause (the GROUP of `dlq list`)")
    parser.add_argument("--all", action="store_true", help="every dead letter")


def _add_trust_sender(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        TRUST_SENDER_OPTION, dest="trust_sender", action="store_true",
        help="send back letters refused as unauthenticated or forbidden, or dead without a recorded reason, "
        "too: they go out signed with the operators' key, so check who sent them first (malformed ones never go)",
    )


def _add_operator(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as", dest="operator", metavar="NAME", help="who, for the audit log (default: the OS user)")
    parser.add_argument("--json", action="store_true", help="print JSON")


# -- list and show -------------------------------------------------------------------------------


@exit_status
def run_list(args: argparse.Namespace, settings: Settings) -> int:
    with _command(settings, need_broker=False) as (ledgers, broker):
        queue = DeadLetterQueue(ledgers, broker)
        groups = queue.groups()
        if args.json:
            print_json({"broker_checked": broker is not None, "groups": [group.as_json() for group in groups]})
            return ExitCode.OK
        if not groups:
            print("no dead letters")
            return ExitCode.OK
        print_table(
            ["GROUP", "COUNT", "CONTRACT", "ERROR", "FIRST SEEN", "LAST SEEN", "IN BROKER", "QUEUES", "PATTERN"],
            [
                [
                    g.group_id, len(g.letters), _cell(g.cause.contract or ("-" if g.cause.refused else "?")),
                    _cell(g.cause.error_type), _when(g.first_seen), _when(g.last_seen), _in_broker(g.letters),
                    _cell(", ".join(g.queues)), _cell(g.cause.pattern),
                ]
                for g in groups
            ],
        )
        print(
            "\n`dualwrite dlq show ID` for a letter (message and letter ids: `--json`), "
            "`dualwrite dlq replay --group GROUP` once the cause is fixed"
        )
        if any(g.cause.refused for g in groups):
            print(
                "refused (not heard at all; nothing of them was applied): purge them, or find out who sent them; "
                f"unauthenticated or forbidden ones are replayed only with {TRUST_SENDER_OPTION}, malformed ones never"
            )
    return ExitCode.OK


@exit_status
def run_show(args: argparse.Namespace, settings: Settings) -> int:
    with _command(settings, need_broker=False) as (ledgers, broker):
        queue = DeadLetterQueue(ledgers, broker)
        letter = _one(queue, args.message_id, dead_only=False)
        row = None if letter is not None else _resolved_row(ledgers, args.message_id)
        try:
            if letter is not None or row is not None:
                history = ledgers.history([letter.message_id if letter is not None else row.message_id])
            else:
                history = queue.history(args.message_id)
        except AmbiguousId as error:
            raise Stop(ExitCode.INVALID_INPUT, str(error)) from None
        if letter is None and not history:
            raise Stop(ExitCode.INVALID_INPUT, f"no dead letter {args.message_id}")
        document = show_document(letter, history, row)
        if args.json:
            print_json(document)
        else:
            _print_letter(document)
    return ExitCode.OK


def _resolved_row(ledgers: DeadLetterLedgers, wanted: str) -> DeadLetterRecord | None:
    """The row a letter id (``finance:17``) names when its letter is not dead any more."""
    found = LETTER_ID.match(wanted.strip().lower())
    if found is None or found.group(1) is None:
        return None
    return ledgers.row(found.group(1), int(found.group(2)))


def show_document(
    letter: DeadLetter | None, history: list[DeadLetterRecord], row: DeadLetterRecord | None = None
) -> dict[str, Any]:
    """One letter: its latest row (the dead one; else the row named, or the last resolved), its
    envelope, and every row of its message id (other letters under that id included, each named)."""
    record = letter.record if letter and letter.record else (row or (history[-1] if history else None))
    body = letter.body if letter else record.body
    # Anyone's bytes: JSON of any shape is shown as it is; anything else (not JSON, nested too deep)
    # as its first characters, escaped, with why.
    reading = read(body)
    envelope = reading.value if reading.is_json else shown(body)
    cut = body_cut_size(body)
    document: dict[str, Any] = {
        "letter": letter.letter_id if letter else letter_id_of(record),
        "message_id": letter.message_id if letter else record.message_id,
        "dead": letter is not None,
        "group_id": letter.cause.cause_id if letter else None,
        "side": record.side if record else None,
        "queue": letter.queue_name if letter else record.queue_name,
        "actor": letter.actor_name if letter else record.actor_name,
        "contract": (letter.contract if letter else record.contract),
        "version": envelope.get("version") if isinstance(envelope, dict) else None,
        "correlation_id": record.correlation_id if record else None,
        "error_kind": record.error_kind if record else None,
        "error_type": record.error_type if record else (letter.cause.error_type if letter else None),
        "reason": letter.reason if letter else None,
        "error": record.error if record else (letter.cause.pattern if letter else None),
        "attempts": record.attempts if record else None,
        "dead_at": _iso(letter.dead_at if letter else record.dead_at),
        "in_broker": letter.in_broker if letter else None,
        "copy_digest": (letter.digest if letter else record.copy_digest),
        "outcome": record.outcome if record else None,
        "envelope": envelope,
        "envelope_problem": (
            None if reading.is_json
            else f"{reading.problem}: the first {min(len(body), SHOWN_CHARACTERS):,} of {len(body):,} characters shown as text"
        ),
        "body_cut_from": cut,
        "traceback": record.traceback if record else None,
        "history": [_history_row(row) for row in history],
    }
    return document


def _history_row(row: DeadLetterRecord) -> dict[str, Any]:
    return {
        "letter": letter_id_of(row),
        "side": row.side,
        "queue": row.queue_name,
        "dead_at": _iso(row.dead_at),
        "error_type": row.error_type,
        "error": row.error,
        "attempts": row.attempts,
        "outcome": row.outcome,
        "resolved_at": _iso(row.resolved_at),
        "resolved_by": row.resolved_by,
        "replayed_envelope": envelope_of(row.replayed_body) if row.replayed_body else None,
    }


def _print_letter(d: dict[str, Any]) -> None:
    # Every value here may come from a stranger's bytes: non-printable characters are escaped.
    state = "dead" if d["dead"] else f"not dead any more ({d['outcome']})"
    version = d["version"] if isinstance(d["version"], int) else (None if d["version"] is None else "?")
    print(_safe(f"message      {d['message_id']}  ({state}; letter {d['letter']})"))
    print(_safe(f"queue        {d['queue']}  (side {d['side']}, actor {d['actor']})"))
    print(_safe(f"contract     {d['contract']} v{version}  correlation {d['correlation_id']}"))
    print(f"died         {d['dead_at']} after {d['attempts']} attempt(s); in broker: {_yes_no(d['in_broker'])}")
    if d["group_id"]:
        print(f"group        {d['group_id']}")
    if d["reason"]:
        print(f"refused      {d['reason']}: not heard at all, nothing of it applied")
    print(_safe(f"error        {d['error_type']} ({d['error_kind']}): {d['error']}"))
    if d["envelope_problem"]:
        print(f"envelope     {d['envelope_problem']}")
        print(f"  {d['envelope']}")  # escaped by shown()
    else:
        print("envelope")
        text = json.dumps(d["envelope"], indent=2)  # ensure_ascii: control characters come out escaped
        print("\n".join(f"  {line}" for line in text.splitlines()))
    if d["body_cut_from"]:
        print(f"  (the row kept only the start of a body of {d['body_cut_from']:,} bytes)")
    if d["traceback"]:
        print("traceback")
        print("\n".join(f"  {_safe(line)}" for line in d["traceback"].rstrip().splitlines()))
    if len(d["history"]) > 1 or not d["dead"]:  # every row of the message id, each with its letter id
        print("history")
        for row in d["history"]:
            done = f"{row['outcome']} by {row['resolved_by']} at {row['resolved_at']}" if row["outcome"] else "dead"
            print(_safe(f"  {row['dead_at']}  {row['letter']}  {row['error_type']}: {row['error']}  -> {done}"))


# -- replay, edit, purge -------------------------------------------------------------------------


@exit_status
def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    with _command(settings, need_broker=True) as (ledgers, broker):
        queue = DeadLetterQueue(ledgers, broker)
        letters, target = _selection(args, queue)
        progress = CounterLine("replayed")
        try:
            report = _repair(ledgers, broker, args, settings).replay(letters, target, progress, trust_sender=args.trust_sender)
        finally:
            progress.finish()
        return _report(report, args.json, "replayed to their queues")


@exit_status
def run_edit(args: argparse.Namespace, settings: Settings) -> int:
    try:
        document = _read_document(args.file)
    except (OSError, ValueError, RecursionError) as error:
        fail(str(error))
        return ExitCode.INVALID_INPUT
    with _command(settings, need_broker=True) as (ledgers, broker):
        queue = DeadLetterQueue(ledgers, broker)
        letters = queue.letters()
        letter = _one(queue, args.message_id, dead_only=True, letters=letters)
        correction = Correction(document, source=args.file, version=args.version, legal_entity=args.legal_entity)
        try:
            report = _repair(ledgers, broker, args, settings).edit(
                letter, correction, _target([letter], letters), trust_sender=args.trust_sender
            )
        except NotReplayable as error:
            raise Stop(ExitCode.INVALID_INPUT, f"nothing was sent: {error}") from None
        except PermanentError as error:
            raise Stop(ExitCode.INVALID_INPUT, f"the correction does not validate, nothing was sent: {type(error).__name__}: {error}") from None
        return _report(report, args.json, "replayed as edited")


@exit_status
def run_purge(args: argparse.Namespace, settings: Settings) -> int:
    with _command(settings, need_broker=True) as (ledgers, broker):
        queue = DeadLetterQueue(ledgers, broker)
        letters, target = _selection(args, queue)
        if letters and not args.yes:
            confirm(f"Purge {len(letters)} dead letter(s) ({target}) from the broker for good? [y/N] ")
        progress = CounterLine("purged")
        try:
            report = _repair(ledgers, broker, args, settings).purge(letters, target, progress)
        finally:
            progress.finish()
        return _report(report, args.json, "purged")


def _selection(args: argparse.Namespace, queue: DeadLetterQueue) -> tuple[list[DeadLetter], str]:
    """The letters named by ids, --group or --all (exactly one of them), and how the audit log names them."""
    chosen = [bool(args.message_ids), args.group is not None, args.all]
    if sum(chosen) != 1:
        raise Stop(ExitCode.USAGE, "name dead letters by ID, or give --group G or --all (one of them)")
    letters = queue.letters()
    if args.all:
        return letters, "all"
    if args.group is not None:
        group = queue.group(args.group, letters)
        if group is None:
            raise Stop(ExitCode.INVALID_INPUT, f"no dead-letter group {args.group} (see `dualwrite dlq list`)")
        return list(group.letters), f"group {group.group_id}"
    found = [_one(queue, wanted, dead_only=True, letters=letters) for wanted in dict.fromkeys(args.message_ids)]
    unique = list({letter.letter_id: letter for letter in found}.values())
    return unique, _target(unique, letters)


def _target(chosen: list[DeadLetter], letters: list[DeadLetter]) -> str:
    """How the audit log names the letters chosen by id: their message ids, each with its letter id
    when another dead letter carries that message id too."""
    carriers = Counter(letter.message_id for letter in letters)
    names = [
        f"{letter.message_id} (letter {letter.letter_id})" if carriers[letter.message_id] > 1 else letter.message_id
        for letter in chosen
    ]
    return ("message " if len(chosen) == 1 else "messages ") + ", ".join(names)


def _one(queue: DeadLetterQueue, wanted: str, *, dead_only: bool, letters: list[DeadLetter] | None = None) -> DeadLetter | None:
    try:
        letter = queue.find(wanted, letters)
    except AmbiguousId as error:
        raise Stop(ExitCode.INVALID_INPUT, str(error)) from None
    if letter is None and dead_only:
        raise Stop(ExitCode.INVALID_INPUT, f"no dead letter {wanted} (see `dualwrite dlq list --json`)")
    return letter


def confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise Stop(ExitCode.USAGE, "purge asks for confirmation, and standard input is not a terminal: give --yes")
    sys.stderr.write(question)
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise Stop(ExitCode.FAILED, "nothing purged")


def _repair(ledgers: DeadLetterLedgers, broker: BrokerQueues, args: argparse.Namespace, settings: Settings) -> DeadLetterRepair:
    audit = AuditLog(ledgers.databases["bridge"])
    signer = Signer(key_ring(settings), OPERATOR)  # ConfigurationError without an operator key: exit 3
    return DeadLetterRepair(ledgers, broker, default_registry(), audit, operator_name(args.operator), signer=signer)


def _report(report: RepairReport, as_json: bool, done: str) -> int:
    """The report; exit 3 when every letter named was one that may not be sent back, 1 when some
    were not sent (skipped, or refused again), 0 otherwise."""
    if as_json:
        print_json(report.as_json())
        for skipped in report.skipped:  # on stderr too, beside the JSON a script reads
            fail(f"{skipped.message_id} (letter {skipped.letter}) not sent: {skipped.why}")
    else:
        print(_safe(f"{len(report.done)} dead letter(s) {done} ({report.target})"))
        for refusal in report.refused:
            print(_safe(f"  still dead: {refusal.message_id} (letter {refusal.letter})  {refusal.error_type}: {refusal.error}"))
        for skipped in report.skipped:
            print(_safe(f"  not sent: {skipped.message_id} (letter {skipped.letter})  {skipped.why}"))
    if report.skipped and not report.done and not report.refused:
        return ExitCode.INVALID_INPUT
    return ExitCode.FAILED if report.refused or report.skipped else ExitCode.OK


def _read_document(path: str) -> dict[str, Any]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{path}: not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{path}: a payload ({{\"rows\": [...]}}) or an envelope must be a JSON object")
    return document


# -- resources -----------------------------------------------------------------------------------


@contextmanager
def _command(settings: Settings, *, need_broker: bool) -> Iterator[tuple[DeadLetterLedgers, BrokerQueues | None]]:
    """The sides' dead-letter tables and the broker, closed afterwards; their errors become a Stop."""
    configure_logging(settings.log_level, settings.log_format)  # on stderr: stdout is the result
    try:
        broker: BrokerQueues | None = open_broker_queues(settings)
    except EmbeddedBrokerOutOfReach:
        if need_broker:
            raise Stop(ExitCode.CONFIGURATION, EMBEDDED_OUT_OF_REACH) from None
        fail("the embedded broker cannot be reached from here: broker copies are not checked (in_broker: null)")
        broker = None
    try:
        ledgers = DeadLetterLedgers.open(settings)
    except LedgerUnavailable as error:
        if broker is not None:
            broker.close()
        raise Stop(ExitCode.UNAVAILABLE, str(error)) from None
    try:
        yield ledgers, broker
    except BROKER_ERRORS as error:
        raise Stop(ExitCode.UNAVAILABLE, f"broker unavailable at {settings.broker_url}: {type(error).__name__}: {error}") from None
    except DBAPIError as error:
        raise Stop(ExitCode.UNAVAILABLE, f"database unavailable: {error.orig}") from None
    finally:
        ledgers.close()
        if broker is not None:
            broker.close()


def _cell(text: str) -> str:
    return fit(printable(text), CELL_CHARACTERS)


def _safe(text: str) -> str:
    """A line for the terminal: what a stranger wrote cannot move the cursor or change colours."""
    return printable(text)


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "?"


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None


def _in_broker(letters: tuple[DeadLetter, ...]) -> str:
    known = [letter.in_broker for letter in letters]
    if any(value is None for value in known):
        return "?"
    return f"{sum(known)}/{len(known)}"


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no (expired or removed)")
