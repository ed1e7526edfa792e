"""Whatever bytes reach a queue, nothing stalls: good messages around them are applied, and each bad
one ends as a dead letter with its reason, on the embedded default, Redis and RabbitMQ.

The bytes are written with the brokers' own clients (Redis HSET and RPUSH, AMQP basic_publish),
as anyone with access to the broker can, so dramatiq's encoder never sees them first.
"""

from __future__ import annotations

import gc
import json
import logging
import random
import resource
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pika
import pytest
from sqlalchemy import select

from contracts.envelope import Side, new_envelope
from contracts.queues import DATAVERSE_COMMANDS, Queue
from shared.keys import SigningKey
from shared.signatures import key_ring, seal
from shared.waiting import wait_until
from tests.integration.operators import settings_for
from tests.integration.support import DATAVERSE, System
from workers.dataverse import tables as dataverse_tables
from workers.operations.broker_queues import broker_queues_for
from workers.runtime import Runtime

WAIT = 60.0
QUEUE = DATAVERSE_COMMANDS
MAX_BYTES = 64 * 1024


@pytest.fixture(
    params=[
        pytest.param("embedded"),
        pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.postgres]),
        pytest.param("rabbitmq", marks=[pytest.mark.rabbitmq, pytest.mark.postgres]),
    ]
)
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[System]:
    """The three workers, messages over 64 KiB refused, on the embedded default, Redis or RabbitMQ."""
    with ExitStack() as cleanup:
        settings = settings_for(request, request.param, tmp_path / "data", cleanup)
        settings = settings.model_copy(update={"max_message_bytes": MAX_BYTES})
        runtime = Runtime(settings)
        try:
            runtime.create_tables()
            runtime.start()
            yield System(runtime, request.param)
        finally:
            runtime.stop()


def put_bytes(system: System, queue: Queue, raw: bytes, redis_id: str | None = None) -> None:
    """Write bytes onto a work queue with the broker's own client, bypassing dramatiq."""
    broker = system.runtime.broker
    if system.backend == "rabbitmq":
        connection = pika.BlockingConnection(pika.URLParameters(system.runtime.settings.broker_url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish("", queue.name, raw, pika.BasicProperties(delivery_mode=2), mandatory=True)
        finally:
            connection.close()
        return
    redis_id = redis_id or str(uuid.uuid4())
    with broker.client.pipeline(transaction=True) as multi:
        multi.hset(f"dramatiq:{queue.name}.msgs", redis_id, raw)
        multi.rpush(f"dramatiq:{queue.name}", redis_id)
        multi.execute()


def dramatiq_fields(body: Any, **changes: Any) -> dict[str, Any]:
    fields = {
        "queue_name": QUEUE.name,
        "actor_name": QUEUE.actor_name,
        "args": [body],
        "kwargs": {},
        "options": {},
        "message_id": str(uuid.uuid4()),
        "message_timestamp": int(time.time() * 1000),
    }
    return {**fields, **changes}


def good_message(system: System, code: str, sender: str = "project-operations", **changes: Any) -> tuple[bytes, str]:
    """A signed create_transaction_categories, as the README's wire format tells a publisher to write it."""
    envelope = new_envelope(
        contract="create_transaction_categories", version=1, source=Side.UPSTREAM,
        payload={"rows": [{"category": code, "name": code.title()}]}, correlation_id=f"hostile:{code}",
    )
    body = envelope.model_dump_json()
    signature = seal(key_ring(system.runtime.settings).signer(sender), body)
    fields = dramatiq_fields(body, message_id=str(envelope.message_id), options=signature)
    return json.dumps({**fields, **changes}).encode(), str(envelope.message_id)


#: label -> (bytes, the reason the dead letter must give); built per test (ids are fresh).
def hostile_inputs(system: System) -> dict[str, tuple[bytes, str]]:
    deep = "[" * 100_000 + "]" * 100_000
    # A signed envelope whose payload nests 5,000 deep: heard, then refused by the contract
    nested_body = json.dumps({"message_id": str(uuid.uuid4()), "contract": "create_transaction_categories"})[:-1]
    nested_body += ', "payload": ' + "[" * 5_000 + "]" * 5_000 + "}"
    signature = seal(key_ring(system.runtime.settings).signer("project-operations"), nested_body)
    nested = json.dumps(dramatiq_fields(nested_body, options=signature)).encode()
    inputs = {
        "nested envelope": (nested, "InvalidContract"),
        "not json": (b"this is not json {", "not JSON"),
        "not utf-8": (b"\xff\xfe\x00garbage", "not"),
        "json array": (b"[1, 2, 3]", "JSON list, not an object"),
        "deeply nested": (deep.encode(), "not a dramatiq message"),
        "no args": (json.dumps({k: v for k, v in dramatiq_fields("x").items() if k != "args"}).encode(), "no args"),
        "no actor_name": (json.dumps({k: v for k, v in dramatiq_fields("x").items() if k != "actor_name"}).encode(), "no actor_name"),
        "unknown actor": (json.dumps(dramatiq_fields("x", actor_name="receive_nothing")).encode(), "no actor 'receive_nothing'"),
        "other queue": (json.dumps(dramatiq_fields("x", queue_name="finance.commands")).encode(), "addressed to queue 'finance.commands'"),
        "two args": (json.dumps(dramatiq_fields("x", args=["a", "b"])).encode(), "exactly one string"),
        "dict arg": (json.dumps(dramatiq_fields({"a": 1})).encode(), "exactly one string"),
        "kwargs": (json.dumps(dramatiq_fields("x", kwargs={"a": 1})).encode(), "exactly one string"),
        "bad id": (json.dumps(dramatiq_fields("x", message_id="x" * 500)).encode(), "is not a lower-case UUID"),
        "steering option": (json.dumps(dramatiq_fields("x", options={"max_age": 1})).encode(), "option 'max_age'"),
        "huge": (json.dumps(dramatiq_fields("x" * (MAX_BYTES + 10))).encode(), "over the limit"),
        "unsigned envelope": (json.dumps(dramatiq_fields("{}")).encode(), "unsigned message"),
        "untrusted key": (stranger_signed(system), "unknown signing key 'stranger-1'"),
        "wrong sender": (good_message(system, "WRONGSENDER", sender="expense-management")[0], "expense-management may not write queue"),
    }
    inputs.update({f"tampered {n}": (raw, "does not match the message") for n, raw in enumerate(tampered(system, 12))})
    return inputs


def stranger_signed(system: System) -> bytes:
    """Signed by a key nobody trusts, under the right sender's name."""
    message, _ = good_message(system, "STRANGER")
    fields = json.loads(message)
    fields["options"] = seal(SigningKey.generate("project-operations", "stranger-1"), fields["args"][0])
    return json.dumps(fields).encode()


def tampered(system: System, count: int) -> list[bytes]:
    """Signed messages with one character of the envelope changed after signing (seeded, so a
    failure can be replayed): the outer message stays valid, the signature no longer matches."""
    generator = random.Random(1103)
    found = []
    for number in range(count):
        message, _ = good_message(system, f"TAMPER{number:02d}")
        fields = json.loads(message)
        body = fields["args"][0]
        position = generator.randrange(len(body))
        replacement = generator.choice([c for c in "0123456789ABCDEFXYZabcxyz-:. " if c != body[position]])
        fields["args"][0] = body[:position] + replacement + body[position + 1 :]
        found.append(json.dumps(fields).encode())
    return found


def dead_letters(system: System) -> list[Any]:
    return system.dead_letters(DATAVERSE)


def categories(system: System) -> set[str]:
    return {row.category for row in system.rows(DATAVERSE, select(dataverse_tables.transaction_categories.c.category))}


def test_bad_bytes_are_dead_lettered_with_their_reason_and_good_messages_around_them_are_applied(hostile: System) -> None:
    system = hostile
    inputs = hostile_inputs(system)
    good_ids: list[str] = []
    # Given good messages interleaved with every kind of bad bytes
    for index, (raw, _) in enumerate(inputs.values()):
        message, message_id = good_message(system, f"GOOD{index:02d}")
        put_bytes(system, QUEUE, message)
        good_ids.append(message_id)
        put_bytes(system, QUEUE, raw)
    # ... and, on Redis, a good message whose redis_message_id is not the id it is stored under
    if system.backend != "rabbitmq":
        message, message_id = good_message(system, "LIAR")
        lying = json.loads(message)
        lying["options"]["redis_message_id"] = str(uuid.uuid4())
        put_bytes(system, QUEUE, json.dumps(lying).encode())
        good_ids.append(message_id)

    # Then every good message is applied, and every bad one is a dead letter naming its fault
    wait_until(lambda: all(system.applied(DATAVERSE, m) == 1 for m in good_ids), timeout=WAIT, what="good messages applied")
    wait_until(lambda: len(dead_letters(system)) == len(inputs), timeout=WAIT, what="every bad message recorded")
    reasons = [f"{row.error_type}: {row.error}" for row in dead_letters(system)]
    for label, (_, reason) in inputs.items():
        assert any(reason in each for each in reasons), f"{label}: no dead letter says {reason!r} in {reasons}"
    assert {row.attempts for row in dead_letters(system)} == {1}
    assert all(len(row.body) <= 64 * 1024 for row in dead_letters(system))

    # And no queue is stalled: nothing ready, delayed or held in flight, on any queue
    system.settle()
    queues = broker_queues_for(system.runtime.broker, system.runtime.settings.broker_url)
    try:
        counts = queues.counts([QUEUE.name])[QUEUE.name]
    finally:
        queues.close()
    assert (counts.ready, counts.delayed, counts.in_flight or 0) == (0, 0, 0)
    assert categories(system) == {f"GOOD{i:02d}" for i in range(len(inputs))} | ({"LIAR"} if system.backend != "rabbitmq" else set())

    # And each refusal was counted by its reason, for an alert to key on
    refused = {
        sample.labels["reason"]: sample.value
        for metric in system.runtime.metrics.refusals.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["queue"] == QUEUE.name
    }
    by_type = Counter(row.error_type for row in dead_letters(system))
    assert refused == {
        "malformed": by_type["Malformed"], "unauthenticated": by_type["Unauthenticated"], "forbidden": by_type["Forbidden"]
    }


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1024 / 1024


@pytest.mark.parametrize("hostile", ["redis"], indirect=True)
def test_memory_stays_flat_over_thousands_of_bad_messages(hostile: System, caplog: pytest.LogCaptureFixture) -> None:
    """RSS of the process running all three workers, after a warm-up, over three floods of 1,000 refused messages.

    pytest keeps every log record of a test in memory for its report (a refusal logs a warning):
    that would be the harness growing, not the workers, so records are not made here.
    """
    caplog.set_level(logging.CRITICAL)
    system = hostile
    kinds = [raw for raw, _ in hostile_inputs(system).values() if len(raw) < 20_000]

    def flood(count: int) -> None:
        before = len(dead_letters(system))
        for index in range(count):
            put_bytes(system, QUEUE, kinds[index % len(kinds)])
        wait_until(lambda: len(dead_letters(system)) == before + count, timeout=120, interval=0.2, what=f"{count} refusals recorded")

    flood(500)  # warm-up: caches, pools, metric children
    samples = []
    for _ in range(3):
        gc.collect()
        samples.append(rss_mb())
        flood(1_000)
    gc.collect()
    samples.append(rss_mb())
    # A leak grows with every batch; the allocator's one-off growth (arenas, caches) does not recur.
    steps = [round(after - before, 1) for before, after in zip(samples, samples[1:])]
    print(f"RSS {samples[0]:.1f} MB, growth per 1,000 bad messages: {steps}")
    assert min(steps) < 5 and steps[-1] < 10, f"RSS grew {steps} MB per 1,000 bad messages"
