"""Putting envelopes on the broker as signed dramatiq messages.

The dramatiq message id is the envelope's message id, so operators see one id everywhere and a
resend of the same outbox row is recognised by the consumer's inbox. Every message is signed by
its sender (``shared.signatures``): the signature travels in the dramatiq message's options.

A send the broker cannot take (unreachable, restarting) raises one of ``BROKER_UNAVAILABLE``, and
tells the broker's availability, which logs the outage once (``shared.broker_outage``): an outbox
keeps the rows and its sweeper sends them later, a command exits 4 (UNAVAILABLE).
"""

from __future__ import annotations

import time
from typing import Any

import dramatiq

from contracts.envelope import Envelope
from contracts.queues import Queue
from shared.broker_outage import BROKER_UNAVAILABLE
from shared.signatures import Signer


def dramatiq_message(
    queue_name: str, actor_name: str, message_id: str, body: str, options: dict[str, Any] | None = None
) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=queue_name,
        actor_name=actor_name,
        args=(body,),
        kwargs={},
        options=options or {},
        message_id=message_id,
        message_timestamp=int(time.time() * 1000),
    )


class Publisher:
    """Sends envelopes (already validated) to their queues, signed by one sender."""

    def __init__(self, broker: dramatiq.Broker, signer: Signer) -> None:
        self.broker = broker
        self.signer = signer

    def send_raw(
        self, queue_name: str, actor_name: str, message_id: str, body: str, *, options: dict[str, Any] | None = None
    ) -> None:
        """``options`` go in the dramatiq message's options too (a dead letter's replay is marked there)."""
        signed = {**(options or {}), **self.signer.options(body)}
        availability = getattr(self.broker, "availability", None)  # the brokers of shared.broker have one
        try:
            self.broker.enqueue(dramatiq_message(queue_name, actor_name, message_id, body, signed))
        except BROKER_UNAVAILABLE as error:
            if availability is not None:
                availability.failed(error, operation=f"send to {queue_name}")
            raise
        if availability is not None:
            availability.answered()

    def send(self, queue: Queue, envelope: Envelope) -> None:
        self.send_raw(queue.name, queue.actor_name, str(envelope.message_id), envelope.model_dump_json())
