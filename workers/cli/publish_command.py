"""``dualwrite publish CONTRACT FILE|-``: validate a document against its contract, then enqueue it."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

from pydantic import ValidationError

from contracts.catalog import default_registry, publish_queue
from contracts.envelope import Envelope
from contracts.registry import describe_validation_error
from shared.broker import BROKER_UNAVAILABLE, make_broker
from shared.errors import ConfigurationError, InvalidContract, PermanentError
from shared.redaction import redact_text, redact_url
from shared.settings import Settings
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json
from shared.signatures import key_ring
from workers.upstream import publish, publish_envelope

def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "publish",
        help="validate a JSON document against a contract and enqueue it",
        description=(
            "FILE holds the payload ({\"rows\": [...]}); with --envelope it holds a whole envelope. "
            "Nothing is enqueued unless the document validates."
        ),
    )
    parser.add_argument("contract", help="contract name, e.g. create_expense_categories")
    parser.add_argument("file", help="JSON file, or - for standard input")
    parser.add_argument("--version", type=int, help="contract version of the document (default: newest)")
    parser.add_argument("--legal-entity", help="owning company (required by company-scoped contracts)")
    parser.add_argument("--correlation-id", help="the business document (default: a new id)")
    parser.add_argument("--message-id", type=uuid.UUID, help="idempotency key (default: a new UUID)")
    parser.add_argument("--envelope", action="store_true", help="FILE is a complete envelope (its source must be upstream)")
    parser.add_argument(
        "--as",
        dest="sender",
        metavar="SYSTEM",
        help="the upstream system that signs it (contracts/senders.yaml; default: the first allowed the "
        "contract whose key this process holds)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if settings.embedded_broker:
        fail(
            "the embedded broker lives inside one process (dualwrite demo); "
            "set DUALWRITE_BROKER_URL to a redis:// or amqp:// URL to publish"
        )
        return ExitCode.CONFIGURATION
    if args.version is not None and args.version < 1:  # 0 would silently mean "the newest"
        fail(f"bad --version: contract versions start at 1, not {args.version}; nothing was enqueued")
        return ExitCode.USAGE
    try:
        document = _read_document(args.file)
    except OSError as error:
        fail(f"cannot read {args.file}: {error.strerror or error}")
        return ExitCode.INVALID_INPUT
    except UnicodeDecodeError as error:
        fail(f"{args.file}: not UTF-8 text ({error.reason} at byte {error.start}); nothing was enqueued")
        return ExitCode.INVALID_INPUT
    except ValueError as error:
        fail(str(error))
        return ExitCode.INVALID_INPUT
    registry = default_registry()
    broker = make_broker(settings)
    try:
        envelope = _publish(args, settings, broker, registry, document)
    except PermanentError as error:
        fail(f"{type(error).__name__}: {error}; nothing was enqueued")
        return ExitCode.INVALID_INPUT
    except ValidationError as error:  # an option the envelope refuses: --legal-entity 'US PM'
        fail(f"{_bad_options(error)}; nothing was enqueued")
        return ExitCode.USAGE
    except ConfigurationError as error:  # no signing key of an upstream system allowed the contract
        fail(f"{error}; nothing was enqueued")
        return ExitCode.CONFIGURATION
    except BROKER_UNAVAILABLE as error:
        fail(f"broker unavailable at {redact_url(settings.broker_url)}: {redact_text(error)}")
        return ExitCode.UNAVAILABLE
    finally:
        broker.close()
    queue = publish_queue(registry.get(envelope.contract))
    result = {
        "message_id": str(envelope.message_id),
        "contract": envelope.contract,
        "version": envelope.version,
        "queue": queue.name,
        "correlation_id": envelope.correlation_id,
        "legal_entity": envelope.legal_entity,
    }
    if args.json:
        print_json(result)
    else:
        print(f"published {envelope.contract} v{envelope.version} as {envelope.message_id} to {queue.name}")
    return ExitCode.OK


def _read_document(file: str) -> Any:
    text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{file}: not valid JSON: {error}") from None


def _publish(args: argparse.Namespace, settings: Settings, broker: Any, registry: Any, document: Any) -> Envelope:
    if args.envelope:
        try:
            envelope = Envelope.model_validate(document)
        except ValidationError as error:
            raise _invalid(describe_validation_error(error, "envelope.")) from None
        if envelope.contract != args.contract:
            raise _invalid(f"envelope.contract is {envelope.contract!r}, not {args.contract!r}")
        return publish_envelope(broker, registry, envelope, ring=key_ring(settings), sender=args.sender)
    if not isinstance(document, dict):
        raise _invalid("the payload must be a JSON object with a 'rows' list")
    message_id = args.message_id or uuid.uuid4()
    return publish(
        broker,
        registry,
        args.contract,
        document,
        version=args.version,
        legal_entity=args.legal_entity,
        correlation_id=args.correlation_id or f"upstream:{message_id}",
        message_id=message_id,
        ring=key_ring(settings),
        sender=args.sender,
    )


#: The envelope field each option sets.
OPTIONS = {
    "legal_entity": "--legal-entity",
    "correlation_id": "--correlation-id",
    "message_id": "--message-id",
    "version": "--version",
    "contract": "CONTRACT",
}


def _bad_options(error: ValidationError) -> str:
    """``bad --legal-entity: String should match pattern ...``: the option and what is wrong, one line."""
    problems = []
    for each in error.errors(include_url=False, include_input=False, include_context=False):
        field = str(each["loc"][0]) if each["loc"] else ""
        problems.append(f"bad {OPTIONS.get(field, field or 'option')}: {each['msg']}")
    return "; ".join(problems) or "bad option"


def _invalid(message: str) -> InvalidContract:
    return InvalidContract(message)
