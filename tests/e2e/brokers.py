"""The brokers the compose workers are run on locally, each with a publisher that uses no dramatiq.

Each plain publisher writes a message exactly as the README's wire format tells a system in
another language to, so the end-to-end test proves the README as well as the workers.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import queue
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pika
import pika.exceptions
import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

RABBITMQ_URL = os.environ.get("DUALWRITE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

#: publish(envelope_json, queue_name, actor_name, signature options)
PlainPublish = Callable[[str, str, str, dict[str, str]], None]


def signature_options(keys_dir: Path, sender: str, envelope_json: str) -> dict[str, str]:
    """The README's few lines of Python: sign the envelope's exact bytes with the sender's Ed25519 key."""
    key = next(k for p in sorted(keys_dir.glob("*.key")) if (k := json.loads(p.read_text()))["sender"] == sender)
    private_key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(key["private_key"]))
    signature = base64.b64encode(private_key.sign(envelope_json.encode("utf-8"))).decode("ascii")
    return {"dualwrite_key": key["id"], "dualwrite_signature": signature}


class BrokerUnavailable(Exception):
    """Raised when a broker cannot be reached or prepared for a test."""


@dataclass(frozen=True)
class Broker:
    name: str
    url: str
    publish_plain: PlainPublish


def dramatiq_message(envelope_json: str, queue: str, actor: str, options: dict[str, str]) -> str:
    return json.dumps(
        {
            "queue_name": queue,
            "actor_name": actor,
            "args": [envelope_json],
            "kwargs": {},
            "options": options,
            "message_id": json.loads(envelope_json)["message_id"],
            "message_timestamp": int(time.time() * 1000),
        }
    )


def redis_publisher(client: redis.Redis) -> PlainPublish:
    def publish(envelope_json: str, queue: str, actor: str, signature: dict[str, str]) -> None:
        redis_message_id = str(uuid.uuid4())
        message = dramatiq_message(envelope_json, queue, actor, {"redis_message_id": redis_message_id, **signature})
        with client.pipeline(transaction=True) as multi:  # MULTI ... EXEC
            multi.hset(f"dramatiq:{queue}.msgs", redis_message_id, message)
            multi.rpush(f"dramatiq:{queue}", redis_message_id)
            multi.execute()

    return publish


def amqp_publisher(url: str) -> PlainPublish:
    def publish(envelope_json: str, queue: str, actor: str, signature: dict[str, str]) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                exchange="",
                routing_key=queue,
                body=dramatiq_message(envelope_json, queue, actor, signature),
                properties=pika.BasicProperties(delivery_mode=2),
                mandatory=True,
            )
        finally:
            connection.close()

    return publish


def _rabbitmqctl(*args: str) -> None:
    if shutil.which("rabbitmqctl") is None:
        raise BrokerUnavailable("rabbitmqctl not found: a throwaway vhost cannot be made")
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BrokerUnavailable(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")


class _Vhosts:
    """Throwaway vhosts for one base URL, made one ahead and deleted behind, off the tests' path.

    Each ``rabbitmqctl`` boots an Erlang VM (half a second, more on a busy machine), three per vhost.
    One background thread runs them in order: while a test uses its vhost, the next test's is made
    (add_vhost, set_permissions) and the last test's deleted. Whatever waits when the process
    exits (a spare vhost, deletions) is done before it exits.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.work: queue.Queue[tuple[Future[str | None], Callable[[], str | None]]] = queue.Queue()
        self.spare: Future[str | None] | None = None
        self.pending: list[Future[str | None]] = []
        threading.Thread(target=self._run, name="throwaway-vhosts", daemon=True).start()
        atexit.register(self.close)

    def _run(self) -> None:
        while True:
            future, work = self.work.get()
            try:
                future.set_result(work())
            except BaseException as error:  # handed to whoever waits on it
                future.set_exception(error)
            finally:
                self.work.task_done()

    def _submit(self, work: Callable[[], str | None]) -> Future[str | None]:
        future: Future[str | None] = Future()
        self.work.put((future, work))
        return future

    def _make(self) -> str:
        vhost = f"dualwrite-e2e-{uuid.uuid4().hex[:10]}"
        _rabbitmqctl("add_vhost", vhost)
        try:
            _rabbitmqctl("set_permissions", "-p", vhost, urlsplit(self.base_url).username or "guest", ".*", ".*", ".*")
        except BrokerUnavailable:
            _rabbitmqctl("delete_vhost", vhost)
            raise
        return vhost

    def take(self) -> str:
        """A fresh vhost with the base URL's user allowed everything in it; the next one is made meanwhile."""
        made, self.spare = self.spare or self._submit(self._make), self._submit(self._make)
        vhost = made.result()
        assert vhost is not None
        return vhost

    def delete(self, vhost: str) -> None:
        """Deleted in the background; a deletion that failed is raised here, at the next one."""
        done = [future for future in self.pending if future.done()]
        self.pending = [future for future in self.pending if not future.done()]
        self.pending.append(self._submit(lambda: _rabbitmqctl("delete_vhost", vhost)))
        for future in done:
            future.result()

    def close(self) -> None:
        spare, self.spare = self.spare, None
        if spare is not None:
            try:
                self.delete(spare.result())
            except BrokerUnavailable:
                pass
        self.work.join()


_VHOSTS: dict[str, _Vhosts] = {}


@contextmanager
def throwaway_vhost(base_url: str = RABBITMQ_URL) -> Iterator[str]:
    """An AMQP URL of a fresh vhost on the local RabbitMQ, deleted afterwards (see :class:`_Vhosts`).

    Queues of the same names in other tests' vhosts are never touched.
    """
    try:
        pika.BlockingConnection(pika.URLParameters(base_url)).close()
    except pika.exceptions.AMQPError as error:
        raise BrokerUnavailable(f"RabbitMQ at {base_url}: {type(error).__name__}: {error}") from None
    parts = urlsplit(base_url)
    vhosts = _VHOSTS.get(base_url) or _VHOSTS.setdefault(base_url, _Vhosts(base_url))
    vhost = vhosts.take()
    try:
        yield urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))
    finally:
        vhosts.delete(vhost)
