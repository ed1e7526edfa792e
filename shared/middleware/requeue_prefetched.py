"""Puts back on its queue what a stopping Redis consumer had prefetched but never handed out."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import Middleware
from dramatiq.worker import ConsumerThread

from shared.logging import get_logger

log = get_logger(__name__)


class RequeuePrefetched(Middleware):
    """dramatiq's Redis consumer fetches several messages at a time into its acks set. When its
    thread stops, those it has not yet handed to a worker thread stay there: another process's
    broker gives them back only once this one's heartbeat has timed out, and a worker restarted on
    the same broker (the embedded one) never does. On a graceful stop they go back at once."""

    def before_consumer_thread_shutdown(self, broker: dramatiq.Broker, thread: ConsumerThread) -> None:
        requeue = getattr(thread.consumer, "requeue_prefetched", None)  # shared.broker's Redis consumer
        if requeue is None:
            return
        count = requeue()
        if count:
            log.info("prefetched messages put back on their queue", queue=thread.queue_name, messages=count)
