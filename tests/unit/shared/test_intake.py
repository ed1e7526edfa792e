"""What a queue takes in: a message of ours, or Malformed with the reason (shared.intake)."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import dramatiq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.broker import make_broker
from shared.dead_letters import copy_digest, received_digest
from shared.errors import Malformed
from shared.intake import KEPT_BYTES, Intake, Refusal, _json_object
from shared.settings import Settings

QUEUE, ACTOR = "dataverse.commands", "receive_dataverse_commands"


@pytest.fixture(scope="module")
def intake() -> Intake:
    broker = make_broker(Settings())
    dramatiq.Actor(lambda body: None, broker=broker, actor_name=ACTOR, queue_name=QUEUE, priority=0, options={})
    return Intake(broker, max_bytes=64 * 1024)


def fields(**changes: Any) -> bytes:
    message = {
        "queue_name": QUEUE, "actor_name": ACTOR, "args": ["{}"], "kwargs": {}, "options": {"dualwrite_key": "k"},
        "message_id": str(uuid.uuid4()), "message_timestamp": 1_700_000_000_000,
    }
    return json.dumps({**message, **changes}).encode()


def test_a_message_of_ours_passes(intake: Intake) -> None:
    message = intake.check(fields(), QUEUE)
    assert (message.actor_name, message.args, message.options) == (ACTOR, ("{}",), {"dualwrite_key": "k"})
    retry = intake.check(fields(queue_name=QUEUE + ".DQ", options={"eta": 5, "retries": 2}), QUEUE + ".DQ")
    assert retry.queue_name == QUEUE + ".DQ"


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 50_000, "nested too deeply"),
        (b'"text"', "JSON str, not an object"),
        (fields(extra=1), "unknown field(s) 'extra'"),
        (fields(queue_name="finance.commands"), "addressed to queue 'finance.commands'"),
        (fields(actor_name="receive_finance_commands"), "no actor 'receive_finance_commands'"),
        (fields(actor_name=["x"]), "no actor <list>"),
        (fields(args=[]), "exactly one string"),
        (fields(args=[{"a": 1}]), "exactly one string"),
        (fields(kwargs={"x": 1}), "exactly one string"),
        (fields(message_id="ABC"), "is not a lower-case UUID"),
        (fields(message_timestamp="now"), "message_timestamp"),
        (fields(message_timestamp=True), "message_timestamp"),
        (fields(options=[]), "options must be an object"),
        (fields(options={"on_failure": "x"}), "option 'on_failure' is not one this system sets"),
        (fields(options={"retries": "9"}), "option 'retries' must be a int"),
        (fields(options={"eta": True}), "option 'eta'"),
        (fields(args=["x" * 70_000]), "over the limit"),
    ],
)
def test_anything_else_is_malformed_with_its_reason(intake: Intake, raw: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as refused:
        intake.check(raw, QUEUE)
    assert reason in str(refused.value)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_no_bytes_crash_the_check(intake: Intake, raw: bytes) -> None:
    try:
        intake.check(raw, QUEUE)
    except Malformed:
        pass


def test_a_message_taken_in_carries_the_digest_of_its_very_bytes_and_a_copy_of_it_does_not(intake: Intake) -> None:
    # Two messages with one id but other bytes: the digest (recorded with a dead letter's reason) tells them apart
    message_id = str(uuid.uuid4())
    raw, other = fields(message_id=message_id), fields(message_id=message_id, args=['{"evil": 1}'])
    message, impostor = intake.check(raw, QUEUE), intake.check(other, QUEUE)
    assert received_digest(message) == copy_digest(raw) == hashlib.sha256(raw).hexdigest()
    assert received_digest(impostor) == copy_digest(other) != received_digest(message)
    assert received_digest(dramatiq.broker.MessageProxy(message)) == copy_digest(raw)
    assert received_digest(message.copy(options={"retries": 1})) is None  # a retry is other bytes


def test_a_refusal_keeps_the_first_bytes_escaped_and_says_it_was_recorded(intake: Intake) -> None:
    recorded: list[Refusal] = []
    intake.on_refused = recorded.append
    try:
        raw = b"\x00\xff" + b"x" * (KEPT_BYTES + 10)
        assert intake.refuse(raw, QUEUE + ".DQ", Malformed("not JSON")) is True
    finally:
        intake.on_refused = None
    (refusal,) = recorded
    assert (refusal.queue_name, refusal.size, refusal.reason) == (QUEUE, len(raw), "not JSON")
    assert refusal.digest == copy_digest(raw)  # of all the bytes, not only those kept
    assert refusal.kept.startswith("\\x00\\xff") and "\x00" not in refusal.kept
    assert len(refusal.kept) <= KEPT_BYTES + 8
    assert intake.refuse(raw, QUEUE, Malformed("x")) is False  # nobody records: the caller keeps it in the broker


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.booleans())
def test_the_intake_reads_json_exactly_as_json_loads_does(value: Any, ascii_only: bool) -> None:
    raw = json.dumps({"value": value}, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert _json_object(raw) == json.loads(raw.decode("utf-8", "surrogatepass"))


def test_a_surrogate_escaped_alone_is_read_as_json_loads_reads_it() -> None:
    assert _json_object(b'{"value": "\\ud800"}') == {"value": "\ud800"}
