"""The baseline: a bare dramatiq no-op actor on the run's broker, in a queue of its own.

``python -m workers.bench.noop --broker-url URL --threads 8`` runs one worker process (dramatiq's
default middleware, nothing of ours) until SIGTERM; :func:`measure_noop` enqueues N messages and
times them from the first enqueue until all are processed.

- Redis (a namespace of its own): until the queue holds nothing, in flight or waiting
  (``do_qsize``: dramatiq keeps a fetched message until it is acked).
- RabbitMQ (the run's vhost): AMQP does not count delivered, unacked messages, so the worker is
  started with ``--expect N`` and prints ``ACKED`` with the wall-clock time once it has acked N
  (a counter in ``after_ack``: a lock and an addition per message, nothing else of ours); the
  messages are published as dramatiq's defaults do, without publisher confirms.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

NAMESPACE = "dualwrite-bench-noop"
QUEUE = "noop"
READY = "noop worker ready"
#: ``ACKED <messages> <time.time()>``: the worker acked the messages it was told to --expect.
ACKED = "ACKED"


def noop() -> None:
    """Does nothing: what is measured is dramatiq and the broker."""


def make_broker(url: str) -> tuple[dramatiq.Broker, dramatiq.Actor[Any, Any]]:
    """dramatiq's own broker for ``url`` (redis:// or amqp://), with its default middleware, and the no-op actor."""
    broker: dramatiq.Broker
    if url.startswith(("amqp://", "amqps://")):
        broker = RabbitmqBroker(url=url)
    else:
        broker = RedisBroker(url=url, namespace=NAMESPACE)
    actor = dramatiq.Actor(noop, broker=broker, actor_name="noop", queue_name=QUEUE, priority=0, options={"max_retries": 0})
    return broker, actor


class AckCounter(Middleware):
    """Prints ``ACKED N <time>`` once ``expect`` messages were acked (what AMQP cannot count from outside)."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.acked = 0
        self._lock = threading.Lock()

    def after_ack(self, broker: dramatiq.Broker, message: dramatiq.Message[Any]) -> None:
        with self._lock:
            self.acked += 1
            if self.acked == self.expect:
                print(f"{ACKED} {self.acked} {time.time():.6f}", flush=True)


def acked_at(log_text: str, messages: int) -> float | None:
    """The time the worker printed for ``ACKED <messages>``, or None before it did."""
    for line in log_text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == ACKED and fields[1] == str(messages):
            return float(fields[2])
    return None


def serve(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.bench.noop", description="the bench's no-op dramatiq worker")
    parser.add_argument("--broker-url", "--redis-url", dest="broker_url", required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--expect", type=int, help="print ACKED N TIME once N messages were acked")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    broker, _ = make_broker(args.broker_url)
    if args.expect:
        broker.add_middleware(AckCounter(args.expect))
    worker = dramatiq.Worker(broker, queues={QUEUE}, worker_threads=args.threads)
    worker.start()
    print(READY, flush=True)
    stopping.wait()
    worker.stop()
    broker.close()
    return 0


@dataclass(frozen=True)
class NoopResult:
    messages: int
    threads: int
    enqueue_seconds: float
    seconds: float

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "processes": 1,
            "threads": self.threads,
            "enqueue_seconds": round(self.enqueue_seconds, 3),
            "seconds": round(self.seconds, 3),
            "messages_per_second": round(self.messages_per_second, 1),
        }


def measure_noop(
    url: str,
    messages: int,
    threads: int,
    *,
    timeout: float,
    check: Callable[[], None],
    progress: Callable[[str], None],
    acked: Callable[[], float | None] | None = None,
) -> NoopResult:
    """Enqueue ``messages`` no-op messages (the worker already running) and time them until all are processed.

    On Redis the queue's own count tells (waiting, delayed and in-flight messages); elsewhere
    ``acked()`` returns the wall-clock time the worker acked the last of them (None before).
    """
    from workers.bench.services import BenchFailed

    broker, actor = make_broker(url)
    try:
        start, wall_start = time.monotonic(), time.time()
        for _ in range(messages):
            broker.enqueue(actor.message())
        enqueued = time.monotonic()
        progress(f"baseline: {messages:,} no-op messages enqueued in {enqueued - start:.2f} s; waiting until processed")
        deadline = enqueued + timeout
        while True:
            if isinstance(broker, RedisBroker):
                if broker.do_qsize(QUEUE) == 0:  # waiting, delayed and in-flight (unacknowledged) messages
                    seconds = time.monotonic() - start
                    break
            else:
                assert acked is not None, "RabbitMQ: the worker's ACKED line tells when all were processed"
                at = acked()
                if at is not None:
                    seconds = at - wall_start
                    break
            if time.monotonic() > deadline:
                raise BenchFailed(f"the no-op worker did not process {messages:,} messages within {timeout:g} s")
            check()
            time.sleep(0.005)
    finally:
        broker.close()
    return NoopResult(messages=messages, threads=threads, enqueue_seconds=enqueued - start, seconds=seconds)


if __name__ == "__main__":
    sys.exit(serve())
