"""Counts dead letters per side, queue, table map and contract, as Prometheus metrics."""

from __future__ import annotations

import json
from collections.abc import Mapping

import dramatiq
from dramatiq.middleware import Middleware

from contracts.queues import Queue
from shared.errors import Refused, error_kind
from shared.metrics import Metrics


class DeadLetterMetrics(Middleware):
    """Must be added *before* dramatiq's Retries, like the dead-letter ledger: "after" hooks run in
    reverse order, and Retries is the one that decides whether a failure is final."""

    def __init__(self, metrics: Metrics, queues: Mapping[str, Queue], known_contracts: frozenset[str]) -> None:
        self.metrics = metrics
        self.queues = queues  # queue name -> the queue, for the ones this process consumes
        #: Label values come only from here: a contract name read from a stranger's bytes would let
        #: anyone who can write to the broker grow the metrics without bound.
        self.known_contracts = known_contracts

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *, result=None, exception=None) -> None:  # noqa: ANN001
        if exception is None or not message.failed:
            return
        queue = self.queues.get(message.queue_name)
        if queue is not None:
            self.metrics.dead_lettered(queue, _contract(message.args, self.known_contracts), error_kind(exception))
            if isinstance(exception, Refused):
                self.metrics.refused(queue, exception.reason)


def _contract(args: tuple, known: frozenset[str]) -> str | None:
    """The envelope's contract name, when the body is a JSON object naming a contract we know."""
    try:
        envelope = json.loads(args[0]) if args and isinstance(args[0], str) else None
    except (ValueError, RecursionError):
        return None
    contract = envelope.get("contract") if isinstance(envelope, dict) else None
    return contract if isinstance(contract, str) and contract in known else None
