"""The baseline: a bare dramatiq no-op actor on the same Redis, in a namespace and queue of its own.

``python -m workers.bench.noop --redis-url URL --threads 8`` runs one worker process (dramatiq's
default middleware, nothing of ours) until SIGTERM; :func:`measure_noop` enqueues N messages and
times them from the first enqueue until the queue holds nothing, in flight or waiting.
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
from dramatiq.brokers.redis import RedisBroker

NAMESPACE = "dualwrite-bench-noop"
QUEUE = "noop"
READY = "noop worker ready"


def noop() -> None:
    """Does nothing: what is measured is dramatiq and Redis."""


def make_broker(redis_url: str) -> tuple[RedisBroker, dramatiq.Actor[Any, Any]]:
    broker = RedisBroker(url=redis_url, namespace=NAMESPACE)
    actor = dramatiq.Actor(noop, broker=broker, actor_name="noop", queue_name=QUEUE, priority=0, options={"max_retries": 0})
    return broker, actor


def serve(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.bench.noop", description="the bench's no-op dramatiq worker")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    broker, _ = make_broker(args.redis_url)
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
    redis_url: str, messages: int, threads: int, *, timeout: float, check: Callable[[], None], progress: Callable[[str], None]
) -> NoopResult:
    """Enqueue ``messages`` no-op messages (the worker already running) and time them until all are processed."""
    broker, actor = make_broker(redis_url)
    try:
        start = time.monotonic()
        for _ in range(messages):
            broker.enqueue(actor.message())
        enqueued = time.monotonic()
        progress(f"baseline: {messages:,} no-op messages enqueued in {enqueued - start:.2f} s; waiting until processed")
        deadline = enqueued + timeout
        while broker.do_qsize(QUEUE) > 0:  # waiting, delayed and in-flight (unacknowledged) messages
            if time.monotonic() > deadline:
                from workers.bench.services import BenchFailed

                raise BenchFailed(f"the no-op worker did not process {messages:,} messages within {timeout:g} s")
            check()
            time.sleep(0.005)
        end = time.monotonic()
    finally:
        broker.close()
    return NoopResult(messages=messages, threads=threads, enqueue_seconds=enqueued - start, seconds=end - start)


if __name__ == "__main__":
    sys.exit(serve())
