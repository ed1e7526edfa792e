"""The broker factory: Redis, RabbitMQ, or the embedded in-process Redis, from one URL."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from importlib import resources
from typing import Any

import dramatiq
import pika.exceptions
import redis
import redis.exceptions
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.brokers.rabbitmq import RabbitmqBroker, _RabbitmqConsumer, _RabbitmqMessage
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff, current_millis, q_name
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import (
    AgeLimit,
    CurrentMessage,
    Middleware,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

# BROKER_UNAVAILABLE: what a publisher sees when the broker cannot be reached, imported from here by the commands.
from shared.broker_outage import BROKER_UNAVAILABLE, BrokerAvailability, is_broker_unavailable, quiet_broker_errors  # noqa: F401
from shared.errors import Malformed
from shared.intake import Intake
from shared.logging import get_logger
from shared.middleware.requeue_prefetched import RequeuePrefetched
from shared.settings import Settings

DAY_MS = 86_400_000

log = get_logger(__name__)

#: What a Redis client of a worker or a command waits at most for a reply, or for a connection: a
#: frozen or unreachable server ends every wait (an idle consumer's blocked ``BLPOP`` included,
#: ``_longest_wait_ms``) as a ConnectionError or TimeoutError, never a hang. redis-py 8's default,
#: set here whatever the version installed; a ``?socket_timeout=`` in the URL wins.
REDIS_SOCKET_TIMEOUT_SECONDS = 5.0


#: How often a Redis delay-queue consumer holding delayed messages polls at most, so as to hand
#: each to its queue once its eta has passed (dramatiq's consumer thread does that between polls).
#: Delay queues hold only retries waiting out their backoff, so a slower poll costs a retry at most
#: this much more wait. A delay-queue consumer holding none does not poll: the idle watch, or an
#: enqueue of this process, nudges it when its delay queue holds messages.
DELAY_QUEUE_POLL_MS = 1_000

#: An enqueue wakes at most this many idle consumers of its queue (one per worker process at
#: most is needed: the one woken fetches up to its prefetch).
WAKE_DEPTH = 8

#: How often a Redis worker process's idle watch runs (``_IdleWatch``): it refreshes the worker's
#: heartbeat (well under the shortest heartbeat timeout in use, 2 s), wakes the consumers of a
#: queue holding messages nobody woke them for (another language's publisher, which does not wake,
#: waits at most this), and nudges the consumers of delay queues holding messages.
IDLE_WAIT_MS = 500

#: How often each Redis worker process runs dramatiq's maintenance pass on the queues it consumes
#: (``_IdleWatch``, ``_RedisBroker.maintain``): a dead worker's fetched messages go back on their queue
#: at the first pass after its heartbeat is older than ``heartbeat_timeout_ms``, so at most this (and
#: one watch run) after the timeout: about 12 s after a SIGKILL with the default 10 s timeout. One
#: round trip per pass, whatever the number of queues; each process runs on a beat of its own (a
#: random phase), so N processes consuming a queue pass over it N times a period, spread out, not at
#: once. dramatiq runs it by chance instead (``redis_maintenance_chance``), which an idle system may
#: not draw for minutes.
MAINTENANCE_PERIOD_MS = 2_000

#: How long an idle Redis consumer waits for a wake-up or a nudge before it fetches anyway. The
#: idle watch wakes it whenever its queue holds messages, so this only bounds what a stalled watch
#: could cost; each idle consumer makes one round trip this often. Less where the client's socket
#: timeout would cut the blocked command short (``_longest_wait_ms``: redis-py's default is 5 s). A
#: stopping worker's consumers are woken, and from then on wait only the idle timeout between fetches.
IDLE_WAIT_LIMIT_MS = 4_000


def wake_key(namespace: str, queue_name: str) -> str:
    """The list an idle consumer of ``queue_name`` blocks on (``BLPOP``) until an enqueue pushes to it."""
    return f"{namespace}:{queue_name}.wake"


def stop_key(namespace: str, worker_id: str) -> str:
    """The list every idle consumer of one worker process blocks on too: a token there ends its wait
    (a stopping worker), where one on a queue's wake list might wake another process's consumer."""
    return f"{namespace}:__stop__.{worker_id}"


def _longest_wait_ms(client: Any) -> int:
    """``IDLE_WAIT_LIMIT_MS``, or four fifths of the client's socket timeout if that is less: a
    blocked ``BLPOP`` must answer before redis-py gives up reading its reply."""
    pool = getattr(client, "connection_pool", None)
    socket_timeout = getattr(pool, "connection_kwargs", {}).get("socket_timeout")
    if not socket_timeout:
        return IDLE_WAIT_LIMIT_MS
    return max(1, min(IDLE_WAIT_LIMIT_MS, int(socket_timeout * 800)))


def _is_delay_queue(queue_name: str) -> bool:
    return queue_name.endswith(".DQ")  # dramatiq.common.dq_name


class _RedisBroker(RedisBroker):
    """dramatiq's Redis broker, whose consumers check what they fetch (``shared.intake``), wait for
    new messages instead of polling for them, and leave the polling of an idle worker to one watch.

    dramatiq's own consumer sleeps between empty fetches, backing off up to the worker's idle
    timeout: a message enqueued meanwhile waits out the sleep, which at light load added up to
    most of a document's latency over its nine hops. Here every enqueue also pushes a token to
    the queue's wake list (``wake_key``, at most ``WAKE_DEPTH`` tokens), in the same script, and an
    idle consumer blocks on that list and fetches in the same round trip (``wait_and_fetch``): it
    fetches as soon as the enqueue is done. What no enqueue of ours woke for (another language's
    publisher, messages put back on a queue, retries in delay queues) the idle watch finds
    (``_IdleWatch``): one script per worker process every ``IDLE_WAIT_MS``, which also keeps the
    worker's heartbeat, instead of a poll per consumer.
    """

    def __init__(self, *, max_message_bytes: int, **options: Any) -> None:
        super().__init__(**options)
        self.intake = Intake(self, max_message_bytes)
        #: Set while a worker of this broker shuts down (``IdleConsumers``): idle waits shorten.
        self.stopping = False
        for name in ("redis_fetch", "redis_enqueue", "redis_watch"):
            script = resources.files("shared").joinpath(f"{name}.lua").read_bytes()
            self.scripts[name] = self.client.register_script(script)
        self.idle_watch = _IdleWatch(self)
        #: How long an idle consumer's wait may last (``IDLE_WAIT_LIMIT_MS``, ``_longest_wait_ms``).
        self.longest_wait_ms = _longest_wait_ms(self.client)
        #: Whether Redis answers, as this process last found it (``shared.broker_outage``).
        self.availability = BrokerAvailability("redis", log_outages=False)  # a worker turns logging on
        #: Per queue, the Redis ids this process fetched and has not acknowledged, rejected or put
        #: back yet: what its threads hold (``requeue_unheld``).
        self._held: dict[str, set[str]] = {}
        self._held_lock = threading.Lock()

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        self.idle_watch.watch(queue_name)
        return _CheckedRedisConsumer(self, queue_name, prefetch, timeout)

    # -- what this process holds, and what it lost track of --------------------------------------

    def hold(self, queue_name: str, redis_ids: Sequence[str]) -> None:
        with self._held_lock:
            self._held.setdefault(queue_name, set()).update(redis_ids)

    def let_go(self, queue_name: str, redis_ids: Sequence[str] | None = None) -> None:
        """These ids (all of the queue's, if None) are no longer held by a thread of this process."""
        with self._held_lock:
            held = self._held.get(queue_name)
            if held is None:
                return
            if redis_ids is None:
                held.clear()
            else:
                held.difference_update(redis_ids)

    def held(self, queue_name: str) -> frozenset[str]:
        with self._held_lock:
            return frozenset(self._held.get(queue_name, ()))

    def requeue_unheld(self, queue_name: str) -> int:
        """Put back on the queue what this worker's acks set holds for it and no thread of this
        process holds; how many. Called by a consumer before its first fetch, when it is the only
        one fetching the queue in this process.

        Such a message was fetched and then lost track of, while the worker lives on and keeps its
        heartbeat (so dramatiq's maintenance never gives it back): a fetch whose reply never came
        (Redis frozen, the connection cut after the script ran), or a delayed retry the consumer
        thread dropped on a connection error (dramatiq clears its delay queue then). Without this
        it would stay fetched until the worker process ends.
        """
        acks = f"{self.namespace}:__acks__.{self.broker_id}.{queue_name}"
        fetched = {_text(redis_id) for redis_id in self.client.smembers(acks)}
        lost = sorted(fetched - self.held(queue_name))
        if lost:
            self.do_requeue(queue_name, *lost)
            log.warning("fetched messages no thread received put back on their queue", queue=queue_name, messages=len(lost))
        return len(lost)

    def do_enqueue(self, queue_name: str, redis_message_id: str, data: bytes) -> None:
        """dramatiq's enqueue (what ``RedisBroker.enqueue`` calls), which wakes an idle consumer of
        the queue in the same round trip; an enqueue on a delay queue (a retry) nudges this
        process's consumer of it instead."""
        self._maintain_if_due(queue_name, "enqueue")
        delayed = _is_delay_queue(queue_name)
        self.scripts["redis_enqueue"](
            keys=[self.namespace], args=[queue_name, redis_message_id, data, 0 if delayed else WAKE_DEPTH]
        )
        if delayed:
            self.idle_watch.nudge(queue_name)

    def fetch_with_ids(self, queue_name: str, count: int) -> list[tuple[str, bytes]]:
        """Up to ``count`` messages moved to this worker's acks, each as (hash field id, data).

        A fetch of fewer than ``count`` emptied the queue, and dropped its wake tokens."""
        self._maintain_if_due(queue_name, "fetch")
        args = [queue_name, self.broker_id, current_millis(), count]
        return _pairs(self.scripts["redis_fetch"](keys=[self.namespace], args=args))

    def wait_and_fetch(self, queue_name: str, count: int, timeout_ms: int) -> list[tuple[str, bytes]]:
        """``fetch_with_ids`` once the queue's consumers are woken (or this worker stops, or
        ``timeout_ms`` passes), in one round trip: Redis runs a client's pipelined commands in
        order, so the fetch waits for the ``BLPOP`` before it (its heartbeat, dated from before the
        wait, moves the worker's forward only)."""
        self._maintain_if_due(queue_name, "fetch")
        fetch = self.scripts["redis_fetch"]
        with self.client.pipeline(transaction=False) as pipe:
            woken_by = [wake_key(self.namespace, queue_name), stop_key(self.namespace, self.broker_id)]
            pipe.blpop(woken_by, timeout=timeout_ms / 1000)
            # EVALSHA rather than the script object: a pipeline running a script asks Redis first
            # whether it has it (one more round trip each time).
            pipe.evalsha(fetch.sha, 1, self.namespace, queue_name, self.broker_id, current_millis(), count)
            try:
                _woken, flat = pipe.execute()
            except redis.exceptions.NoScriptError:  # Redis restarted or flushed its scripts
                return self.fetch_with_ids(queue_name, count)  # loads the script
        return _pairs(flat)

    def maintain(self, queue_names: Sequence[str]) -> None:
        """dramatiq's maintenance pass on each of these queues, in one round trip: the messages that
        dead workers (a heartbeat older than ``heartbeat_timeout``) fetched go back on the queue, a
        dead worker holding nothing more is dropped from the heartbeats, and expired dead letters
        are dropped. It is dramatiq's dispatch script fetching none (prefetch 0), which does nothing
        else; the idle watch runs it every ``MAINTENANCE_PERIOD_MS``."""
        if not queue_names:
            return
        dispatch = self.scripts["dispatch"]
        now, unpack = current_millis(), self._max_unpack_size()
        for attempt in range(2):
            with self.client.pipeline(transaction=False) as pipe:
                for queue_name in queue_names:
                    # EVALSHA rather than the script object: see wait_and_fetch
                    pipe.evalsha(
                        dispatch.sha, 1, self.namespace, "fetch", now, queue_name, self.broker_id,
                        self.heartbeat_timeout, self.dead_message_ttl, 1, unpack, 0,
                    )
                try:
                    pipe.execute()
                    return
                except redis.exceptions.NoScriptError:  # Redis restarted or flushed its scripts
                    if attempt:
                        raise
            self.client.script_load(dispatch.script)

    def _maintain_if_due(self, queue_name: str, command: str) -> None:
        """As often as dramatiq's own commands would (``maintenance_chance``: 0 by default, as the
        idle watch runs the pass on a timer), run its maintenance pass on this queue (``maintain``).
        Our scripts do not; this is dramatiq's dispatch script fetching none (prefetch 0)."""
        if self._should_do_maintenance(command):
            self.scripts["dispatch"](
                keys=[self.namespace],
                args=[
                    "fetch", current_millis(), queue_name, self.broker_id, self.heartbeat_timeout,
                    self.dead_message_ttl, 1, self._max_unpack_size(), 0,
                ],
            )

    def end_idle_waits(self, work_queues: int) -> None:
        """Wake this worker's idle consumers (one token each on its stop list, and every nudge)."""
        self.idle_watch.nudge_all()
        key = stop_key(self.namespace, self.broker_id)
        if work_queues:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.lpush(key, *[1] * work_queues)
                pipe.pexpire(key, IDLE_WAIT_LIMIT_MS * 2)  # gone even if this worker dies now
                pipe.execute()

    def forget_idle_waits(self) -> None:
        """Drop the stop tokens no consumer took (a worker restarted on this broker starts clean)."""
        self.client.delete(stop_key(self.namespace, self.broker_id))


class _IdleWatch:
    """One per worker process: what its idle consumers would otherwise each poll Redis for.

    Every ``IDLE_WAIT_MS``, one script (``redis_watch.lua``) refreshes the worker's heartbeat,
    pushes a wake token for each of its work queues that holds messages but no token, and names
    its delay queues that hold messages, whose consumers it then nudges (a ``threading.Event``
    each, which an enqueue of this process on a delay queue, and a stopping worker, set too).
    So an idle bridge (nine queues, nine delay queues) makes two round trips a second, not about
    forty-five, and no message waits longer than it did when each consumer polled.

    Every ``MAINTENANCE_PERIOD_MS`` too, before that script, dramatiq's maintenance pass on every
    queue it watches (``_RedisBroker.maintain``): a dead worker's messages are back on their queue,
    and a consumer woken for them, in the same run.

    It is a thread of its own, which never waits for a consumer or a worker thread: the heartbeat
    stays fresh while every worker thread runs a long handler (the GIL passes between threads
    every few milliseconds, even from a handler computing in Python), and while a stopping worker
    finishes its messages (the watch stops after them, ``IdleConsumers``).
    """

    def __init__(self, broker: _RedisBroker, clock: Callable[[], float] = time.monotonic) -> None:
        self.broker = broker
        self.work_queues: dict[str, None] = {}  # insertion-ordered sets
        self.delay_queues: dict[str, threading.Event] = {}
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        #: Seconds, monotonic (tests pass a clock of their own).
        self.clock = clock
        self._next_maintenance: float | None = None

    def watch(self, queue_name: str) -> None:
        """A consumer of this queue runs in this process (for good: a consumer thread restarts)."""
        if _is_delay_queue(queue_name):
            self.delay_queues.setdefault(queue_name, threading.Event())
        else:
            self.work_queues[queue_name] = None

    def nudge(self, delay_queue: str) -> None:
        event = self.delay_queues.get(delay_queue)
        if event is not None:
            event.set()

    def nudge_all(self) -> None:
        for event in list(self.delay_queues.values()):
            event.set()

    def wait_for_nudge(self, delay_queue: str, timeout_ms: int) -> None:
        """Block until this delay queue's consumer is nudged, or ``timeout_ms`` passes."""
        event = self.delay_queues.setdefault(delay_queue, threading.Event())
        event.wait(timeout_ms / 1000)
        event.clear()  # before the fetch that follows: a nudge from now on is for a later fetch

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is None:
            self._stopped.clear()
            self._thread = threading.Thread(target=self._run, name="redis-idle-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopped.set()
            thread.join()

    def _run(self) -> None:
        availability = self.broker.availability
        while not self._stopped.wait(IDLE_WAIT_MS / 1000):
            try:
                self.check()
            except Exception as error:  # noqa: BLE001 - the next run may succeed; this thread must not end
                if is_broker_unavailable(error):
                    availability.failed(error, operation="idle watch")  # logged once per outage
                else:
                    log.exception("the Redis idle watch could not run")
            else:
                availability.answered()

    def check(self) -> None:
        """One run: the maintenance pass when due (``maintenance_due``), then heartbeat, wake
        tokens and nudges (see the class)."""
        work, delay = list(self.work_queues), list(self.delay_queues)
        if not work and not delay:
            return
        broker = self.broker
        if self.maintenance_due() and broker.availability.back_for(broker.heartbeat_timeout / 1000):
            # Not within a heartbeat timeout of an outage's end: every worker's heartbeat aged while
            # Redis was away, and the others need a moment to refresh theirs; a pass now would give
            # back what live workers hold (applied twice, once ignored by the inbox: work for nothing).
            # First: a wake token for what it puts back is pushed by the script below, in this run.
            try:
                broker.maintain(work + delay)
            except redis.exceptions.ResponseError:  # the script failed (a Redis refusing KEYS, say)
                # Never at the cost of the heartbeat below: this worker would look dead to the others.
                log.exception("the Redis maintenance pass failed; a dead worker's messages are not put back")
        ready = broker.scripts["redis_watch"](
            keys=[broker.namespace], args=[broker.broker_id, current_millis(), len(work), *work, *delay]
        )
        for queue_name in ready:
            self.nudge(_text(queue_name))

    def maintenance_due(self) -> bool:
        """Whether this run makes the maintenance pass: every ``MAINTENANCE_PERIOD_MS``, from a
        random point of the first period (each process of a worker on a beat of its own). A run
        late by several periods (a stalled watch) makes one pass, and the beat goes on from there."""
        period = MAINTENANCE_PERIOD_MS / 1000
        now = self.clock()
        if self._next_maintenance is None:
            self._next_maintenance = now + random.uniform(0, period)
        if now < self._next_maintenance:
            return False
        self._next_maintenance += ((now - self._next_maintenance) // period + 1) * period
        return True


class IdleConsumers(Middleware):
    """Runs the Redis broker's idle watch while a worker runs; a stopping worker's idle consumers
    stop waiting (each is woken, and from then on waits only the idle timeout between fetches), so
    they notice the stop at once."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if isinstance(broker, _RedisBroker):
            broker.stopping = False
            broker.idle_watch.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if isinstance(broker, _RedisBroker):
            broker.stopping = True
            broker.end_idle_waits(sum(not _is_delay_queue(queue_name) for queue_name in worker.consumers))

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if isinstance(broker, _RedisBroker):
            broker.idle_watch.stop()
            broker.forget_idle_waits()


class _CheckedRedisConsumer(_RedisConsumer):
    """dramatiq's Redis consumer, fetching ids with the data: bytes that are no message of ours are
    taken off the queue and recorded (``Intake``), and a message is acknowledged by the id it
    really has in Redis, whatever its bytes claim. An idle one waits for a wake-up (a work queue)
    or a nudge (a delay queue) rather than polling."""

    broker: _RedisBroker

    #: What a lost or frozen Redis raises here (redis-py's TimeoutError is no ConnectionError): each is
    #: dramatiq's ConnectionClosed to the consumer thread, which starts a new consumer a little later
    #: and retries an acknowledgement until it goes through.
    UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

    def __init__(self, broker: _RedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        self.delayed = _is_delay_queue(queue_name)
        #: The last fetch found the queue empty (and dropped its wake tokens): wait for one first.
        self.drained = False
        #: Whether this consumer has put back what its thread lost track of (``requeue_unheld``).
        self.recovered = False

    def __next__(self) -> MessageProxy | None:
        try:
            if not self.recovered:
                # A consumer starts (a worker's start, or its thread's restart after a connection
                # error): nothing of this queue is being fetched in this process right now.
                self.broker.requeue_unheld(self.queue_name)
                self.recovered = True
            while True:
                if not self.message_cache:
                    self.message_cache = self._fetch()
                    if not self.message_cache:
                        return None
                redis_id, data = self.message_cache.pop(0)
                self.misses = 0
                message = self._checked(redis_id, data)
                if message is not None:
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
        except self.UNREACHABLE as error:
            self.broker.availability.failed(error, operation=f"fetch from {self.queue_name}")
            raise ConnectionClosed(error) from None

    def _fetch(self) -> list[tuple[str, bytes]]:
        """What to hand out next: fetched at once, or after a wait (nothing to fetch, or no room)."""
        room = self.prefetch - self.outstanding_message_count
        if room <= 0:  # every worker thread has work: soon one is done
            self._back_off(self.timeout)
            return []
        waited = self.drained and not self.delayed and not self.broker.stopping
        if waited:
            fetched = self.broker.wait_and_fetch(self.queue_name, room, self._idle_wait_ms())
        else:
            fetched = self.broker.fetch_with_ids(self.queue_name, room)
        self.broker.availability.answered()
        if fetched:
            self.broker.hold(self.queue_name, [redis_id for redis_id, _ in fetched])
        elif not waited:
            if self.delayed:
                self._wait_for_nudge()
            elif self.broker.stopping:
                # A stopping worker's consumers poll for the idle timeout instead of blocking: the
                # embedded broker (fakeredis) rounds a BLPOP's timeout up to whole seconds, and
                # each consumer would wait one out before it noticed the stop.
                self._back_off(self.timeout)
        self.drained = len(fetched) < room
        return fetched

    def _idle_wait_ms(self) -> int:
        return max(self.timeout, self.broker.longest_wait_ms)

    def _wait_for_nudge(self) -> None:
        """A delay queue is empty: wait for the idle watch's nudge, or poll while this consumer
        holds delayed messages (its thread hands them to their queue between polls)."""
        if self.outstanding_message_count or self.broker.stopping:
            self._back_off(self.timeout if self.broker.stopping else max(self.timeout, DELAY_QUEUE_POLL_MS))
        else:
            self.broker.idle_watch.wait_for_nudge(self.queue_name, self._idle_wait_ms())

    def _back_off(self, max_backoff_ms: int) -> None:
        """dramatiq's wait between polls: growing with each empty one, up to ``max_backoff_ms``.
        A delay queue's consumer waits on its nudge, which a stopping worker sets."""
        self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=max_backoff_ms)
        if self.delayed:
            self.broker.idle_watch.wait_for_nudge(self.queue_name, backoff_ms)
        else:
            time.sleep(backoff_ms / 1000)

    def _checked(self, redis_id: str, data: bytes) -> dramatiq.Message[Any] | None:
        intake = self.broker.intake
        try:
            if not data:
                raise Malformed(f"message data missing from the queue (Redis id {redis_id[:40]!r})")
            message = intake.check(data, self.queue_name)
        except Malformed as error:
            if intake.refuse(data, self.queue_name, error):
                self.broker.do_ack(self.queue_name, redis_id)
            else:
                self.broker.do_nack(self.queue_name, redis_id)
            self.broker.let_go(self.queue_name, [redis_id])
            return None
        message.options["redis_message_id"] = redis_id
        return message

    def ack(self, message: MessageProxy) -> None:
        self._settle("acknowledge", self.broker.do_ack, message)

    def nack(self, message: MessageProxy) -> None:
        self._settle("reject", self.broker.do_nack, message)

    def _settle(self, operation: str, command: Callable[..., Any], message: MessageProxy) -> None:
        """dramatiq's ack or nack, for which a frozen Redis's TimeoutError is a ConnectionClosed too:
        dramatiq then retries it until it goes through (it gave up on any other error, leaving the
        message fetched for as long as the worker lives). Either is idempotent."""
        redis_id = message.options["redis_message_id"]
        try:
            command(self.queue_name, redis_id)
        except self.UNREACHABLE as error:
            self.broker.availability.failed(error, operation=f"{operation} on {self.queue_name}")
            raise ConnectionClosed(error) from None
        finally:
            self.queued_message_ids.discard(message.message_id)
        self.broker.let_go(self.queue_name, [redis_id])
        self.broker.availability.answered()

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        redis_ids = [message.options["redis_message_id"] for message in messages]
        if redis_ids:
            self._requeue(redis_ids)

    def _requeue(self, redis_ids: list[str]) -> None:
        try:
            self.broker.do_requeue(self.queue_name, *redis_ids)
        except self.UNREACHABLE as error:  # a ConnectionClosed, which the consumer thread expects
            self.broker.availability.failed(error, operation=f"put back on {self.queue_name}")
            raise ConnectionClosed(error) from None
        self.broker.let_go(self.queue_name, redis_ids)

    def requeue_prefetched(self) -> int:
        """Put back what was fetched and not handed out (a stopping consumer); how many."""
        ids = [redis_id for redis_id, _ in self.message_cache]
        self.message_cache = []
        if ids:
            self._requeue(ids)
        return len(ids)

    def close(self) -> None:
        """The consumer thread is done with this consumer (stopping, or starting a new one after an
        error). What it fetched and did not hand out, and for a delay queue whatever its thread held
        (dramatiq drops a consumer thread's delayed messages on a connection error), is held by no
        thread any more: the next consumer puts it back on the queue (``requeue_unheld``)."""
        if self.delayed:
            self.broker.let_go(self.queue_name)
        else:
            self.broker.let_go(self.queue_name, [redis_id for redis_id, _ in self.message_cache])
        self.message_cache = []
        super().close()


class _RabbitmqBroker(RabbitmqBroker):
    """dramatiq's RabbitMQ broker, whose consumers check what they receive (``shared.intake``)."""

    def __init__(self, *, max_message_bytes: int, **options: Any) -> None:
        super().__init__(**options)
        self.intake = Intake(self, max_message_bytes)
        #: Set while a worker of this broker shuts down (``WakeOnShutdown``): idle waits shorten.
        self.stopping = False
        #: Whether RabbitMQ answers, as this process last found it (``shared.broker_outage``).
        self.availability = BrokerAvailability("rabbitmq", log_outages=False)  # a worker turns logging on

    @property
    def consumer_class(self) -> type[_RabbitmqConsumer]:
        return _CheckedRabbitmqConsumer


class _CheckedRabbitmqConsumer(_RabbitmqConsumer):
    """Bytes that are no message of ours are acknowledged off the queue and recorded (dramatiq would
    dead-letter them with no reason); kept in the broker's dead-letter queue if the record fails.

    Each consumer has a connection of its own; when it is lost (RabbitMQ restarted or unreachable)
    the consumer thread starts a new consumer every few seconds until one connects. The messages
    the lost connection delivered and no one acknowledged are delivered again by RabbitMQ (the
    inbox recognises those already applied); their acknowledgement, due on a connection that is
    gone, is not sent (``ack``)."""

    broker: _RabbitmqBroker

    def __init__(self, broker: _RabbitmqBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        try:
            super().__init__(broker, queue_name, prefetch, timeout)
        except ConnectionClosed as error:
            broker.availability.failed(error, operation=f"consume {queue_name}")
            raise
        broker.availability.answered()

    def __next__(self) -> Any:
        try:
            method, _properties, body = next(self.iterator)
            if method is None:
                return None
        except (AssertionError, pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as error:
            if getattr(error, "reply_code", None) == 404:
                self.broker.queues_pending.add(q_name(self.queue_name))
            else:
                self.broker.availability.failed(error, operation=f"consume {self.queue_name}")
            raise ConnectionClosed(error) from None
        intake = self.broker.intake
        try:
            message = intake.check(body, self.queue_name)
        except Malformed as error:
            if intake.refuse(body, self.queue_name, error):
                self.connection.add_callback_threadsafe(partial(self.channel.basic_ack, method.delivery_tag))
            else:
                self._nack(method.delivery_tag)
            return None
        self.known_tags.add(method.delivery_tag)
        return _RabbitmqMessage(method.redelivered, method.delivery_tag, message)

    def ack(self, message: Any) -> None:
        if self._delivered_on_lost_connection(message):
            return
        super().ack(message)

    def nack(self, message: Any) -> None:
        if self._delivered_on_lost_connection(message):
            return
        super().nack(message)

    def _delivered_on_lost_connection(self, message: Any) -> bool:
        """A message delivered on a connection since lost: RabbitMQ delivers it again by itself.
        dramatiq would warn for each ("not in known tags"), or, while its thread still holds the
        consumer of the lost connection, retry the acknowledgement there every 5 s until the new
        consumer is up: nothing sent on a closed connection can arrive."""
        if message._tag in self.known_tags and self.connection.is_open:
            return False
        log.info(
            "acknowledgement not sent: the message came on a connection since lost, RabbitMQ delivers it again",
            queue=self.queue_name, message_id=message.message_id,
        )
        return True


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _pairs(flat: list[bytes]) -> list[tuple[str, bytes]]:
    """A fetch script's flat reply (id, data, id, data...) as (id, data) pairs."""
    return [(_text(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2)]


class BrokerOutages(Middleware):
    """As a worker starts, dramatiq's and pika's own lines about an unreachable broker are left out
    of the log from then on (``quiet_broker_errors``): the broker's availability logs each outage
    once when it starts and once when it ends (``shared.broker_outage``)."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        availability = getattr(broker, "availability", None)
        if availability is not None:
            quiet_broker_errors(availability)


#: While the broker is unreachable, the first pause before a retry's enqueue is tried again
#: (``_Retries``); it doubles up to the longest, dramatiq's own pause between acknowledgements.
RETRY_ENQUEUE_FIRST_PAUSE_SECONDS = 0.5
RETRY_ENQUEUE_LONGEST_PAUSE_SECONDS = 5.0


class _Retries(Retries):
    """dramatiq's Retries, whose retry is not lost to a broker outage.

    A failed message with retries left is enqueued again (on its delay queue), then acknowledged.
    When the broker is unreachable dramatiq gives the retry's enqueue up (it logs the error and
    carries on), then retries the acknowledgement until the broker is back: the message would be
    acknowledged without its retry, and never applied. Here the retry's enqueue is tried again
    until it goes through, as the acknowledgement is (the worker thread waits meanwhile). Sent
    twice (a RabbitMQ confirm lost with its connection), the inbox applies it once.
    """

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        if exception is None:
            return
        super().after_process_message(_EnqueueUntilSent(broker), message, result=result, exception=exception)


class _EnqueueUntilSent:
    """The broker, as ``Retries`` uses it, with an enqueue that waits for an unreachable broker."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self._broker = broker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> dramatiq.Message[Any]:
        pause = RETRY_ENQUEUE_FIRST_PAUSE_SECONDS
        while True:
            try:
                return self._broker.enqueue(message, delay=delay)
            except BROKER_UNAVAILABLE as error:
                availability = getattr(self._broker, "availability", None)
                if availability is not None:
                    availability.failed(error, operation=f"enqueue a retry on {message.queue_name}")
                time.sleep(pause)
                pause = min(pause * 2, RETRY_ENQUEUE_LONGEST_PAUSE_SECONDS)


def standard_middleware(settings: Settings) -> list[Middleware]:
    """dramatiq's defaults, with our retry policy, plus access to the current message.

    Not Callbacks nor Pipelines: nothing here uses them, and they act on options a message carries.
    """
    return [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        _Retries(
            max_retries=settings.max_retries,
            min_backoff=settings.min_backoff_ms,
            max_backoff=settings.max_backoff_ms,
        ),
        CurrentMessage(),
        BrokerOutages(),
    ]


def make_broker(settings: Settings) -> dramatiq.Broker:
    """A broker for ``settings.broker_url``; nothing connects until the broker is used."""
    middleware = standard_middleware(settings)
    url = settings.broker_url
    if url.startswith(("amqp://", "amqps://")):
        # Publisher confirms: enqueue returns only once RabbitMQ has the message.
        return _RabbitmqBroker(
            url=url, middleware=middleware, confirm_delivery=True, max_message_bytes=settings.max_message_bytes
        )
    # Redis only: what a stopping consumer prefetched would otherwise wait out the heartbeat timeout.
    middleware.extend([RequeuePrefetched(), IdleConsumers()])
    redis_options = {
        "middleware": middleware,
        "heartbeat_timeout": settings.heartbeat_timeout_ms,
        "maintenance_chance": settings.redis_maintenance_chance,
        "dead_message_ttl": settings.dead_letter_ttl_days * DAY_MS,
        "max_message_bytes": settings.max_message_bytes,
    }
    if settings.embedded_broker:
        import fakeredis  # here: a tenth of a second of every other worker's start-up

        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        return _RedisBroker(client=client, **redis_options)
    pool = redis.ConnectionPool.from_url(
        url, socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_SOCKET_TIMEOUT_SECONDS
    )
    return _RedisBroker(client=redis.Redis(connection_pool=pool), **redis_options)
