"""Putting envelopes on the broker as dramatiq messages.

The dramatiq message id is the envelope's message id, so operators see one id everywhere and a
resend of the same outbox row is recognised by the consumer's inbox.
"""

from __future__ import annotations

import time

import dramatiq

from contracts.envelope import Envelope
from contracts.queues import Queue


def dramatiq_message(queue_name: str, actor_name: str, message_id: str, body: str) -> dramatiq.Message:
    return dramatiq.Message(
        queue_name=queue_name,
        actor_name=actor_name,
        args=(body,),
        kwargs={},
        options={},
        message_id=message_id,
        message_timestamp=int(time.time() * 1000),
    )


class Publisher:
    """Sends envelopes (already validated) to their queues."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    def send_raw(self, queue_name: str, actor_name: str, message_id: str, body: str) -> None:
        self.broker.enqueue(dramatiq_message(queue_name, actor_name, message_id, body))

    def send(self, queue: Queue, envelope: Envelope) -> None:
        self.send_raw(queue.name, queue.actor_name, str(envelope.message_id), envelope.model_dump_json())
