"""Losing queued messages on purpose: what a broker restarted without persistence, or a failover
that drops the last writes, does to a queue.

``lose_queued_messages(broker_url, queue_name, count)`` takes up to ``count`` messages waiting on
``queue_name`` off the broker for good and returns their message ids (the envelope's id: a lone
part's own id, or the id of a message combining several parts; ``lost_part_ids`` lists the parts
either way). The workers see nothing: no dead letter, no error, the messages are simply gone, so
the documents they carried stay half-way until the repair (``dualwrite reconcile --repair``,
workers/operations/lost_messages.py) sends them again from the sender's outbox.

- **Redis**: one Lua script pops the ids at the head of the queue's list (the oldest ready
  messages) and deletes their entries from ``<ns>:<queue>.msgs``, atomically: a message no worker
  has fetched is lost whole, and one a worker fetched meanwhile is not touched (it is no longer
  on the list). Messages in flight or delayed for a retry are never taken.
- **RabbitMQ**: ``basic.get`` of up to ``count`` messages of the work queue, each acknowledged
  unread: the broker forgets them as a lost queue would. ``purge_queue`` empties a whole queue
  (``queue.purge``), as a node that lost its queue's contents does.

Only for tests and ``dualwrite soak`` on brokers of their own: never point it at a deployment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis
from kombu import Connection

from shared.outbox_batches import carried_parts

#: dramatiq's Redis namespace (``RedisBroker``'s default, the one the workers use).
REDIS_NAMESPACE = "dramatiq"

#: KEYS[1] = the queue's list, KEYS[2] = its message hash; ARGV[1] = how many. The messages' data.
_LOSE_SCRIPT = """
local lost = {}
for _ = 1, tonumber(ARGV[1]) do
    local id = redis.call("lpop", KEYS[1])
    if not id then
        break
    end
    lost[#lost + 1] = redis.call("hget", KEYS[2], id) or ""
    redis.call("hdel", KEYS[2], id)
end
return lost
"""


@dataclass(frozen=True)
class LostMessage:
    """A message taken off the broker: its id, and the ids of the parts (outbox rows) it carried."""

    message_id: str
    part_ids: tuple[str, ...]


def lose_queued_messages(broker_url: str, queue_name: str, count: int, *, namespace: str = REDIS_NAMESPACE) -> list[str]:
    """Take up to ``count`` ready messages of ``queue_name`` off the broker for good; their message ids."""
    return [lost.message_id for lost in lose_queued(broker_url, queue_name, count, namespace=namespace)]


def lose_queued(broker_url: str, queue_name: str, count: int, *, namespace: str = REDIS_NAMESPACE) -> list[LostMessage]:
    """As :func:`lose_queued_messages`, with the parts each lost message carried."""
    if count < 1:
        return []
    if broker_url.startswith(("redis://", "rediss://")):
        return _lose_on_redis(broker_url, queue_name, count, namespace)
    if broker_url.startswith(("amqp://", "amqps://")):
        return _lose_on_rabbitmq(broker_url, queue_name, count)
    raise ValueError("lose_queued_messages takes a redis:// or amqp:// broker URL (the embedded broker lives in its process)")


def purge_queue(broker_url: str, queue_name: str) -> int:
    """RabbitMQ: empty the work queue (``queue.purge``); how many ready messages it lost."""
    if not broker_url.startswith(("amqp://", "amqps://")):
        raise ValueError("purge_queue takes an amqp:// broker URL")
    with Connection(broker_url, connect_timeout=5) as connection:
        channel = connection.channel()
        try:
            return int(channel.queue_purge(queue_name) or 0)
        finally:
            channel.close()


def _lose_on_redis(url: str, queue_name: str, count: int, namespace: str) -> list[LostMessage]:
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
    try:
        key = f"{namespace}:{queue_name}"
        lost = client.eval(_LOSE_SCRIPT, 2, key, f"{key}.msgs", count)
    finally:
        client.close()
    return [_lost(data) for data in lost]


def _lose_on_rabbitmq(url: str, queue_name: str, count: int) -> list[LostMessage]:
    lost: list[LostMessage] = []
    with Connection(url, connect_timeout=5) as connection:
        channel = connection.channel()
        channel.auto_decode = False
        try:
            for _ in range(count):
                message = channel.basic_get(queue=queue_name, no_ack=False)
                if message is None:
                    break
                channel.basic_ack(message.delivery_tag)
                lost.append(_lost(message.body))
        finally:
            channel.close()
    return lost


def _lost(data: bytes | str) -> LostMessage:
    """The dramatiq message the bytes hold: its id ("" when none) and its envelope's parts."""
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return LostMessage("", ())
    if not isinstance(message, dict):
        return LostMessage("", ())
    message_id = str(message.get("message_id", ""))
    args = message.get("args")
    body = args[0] if isinstance(args, list) and args and isinstance(args[0], str) else ""
    return LostMessage(message_id, carried_parts(message_id, body) if body else (message_id,))
