"""The broker of a bench run: a Redis db of its own (flushed), or a throwaway RabbitMQ vhost.

Both are reached the way operators reach them (``workers.operations.broker_queues``): the queue
counts the bench waits on are ``dualwrite queues``' counts. What AMQP cannot count (messages
delivered to a worker and not acked yet) is asked of the RabbitMQ server itself, through the
tool that made the vhost: the management API or ``rabbitmqctl``.

The RabbitMQ vhost is made and deleted with the management plugin's HTTP API
(``http://HOST:15672``, the URL's user and password) when it answers, else with ``rabbitmqctl``
when the server is on this machine (it needs the node's Erlang cookie: root or the rabbitmq user).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import dramatiq
import redis

from shared.redaction import redact_text, redact_url
from workers.bench.options import BenchOptions
from workers.operations.broker_queues import BrokerQueues, broker_queues_for

#: The management plugin's port, where the bench looks for its HTTP API.
MANAGEMENT_PORT = 15672
#: Prefix of the bench's vhosts (``dualwrite-bench-<10 hex digits>``).
VHOST_PREFIX = "dualwrite-bench-"


class BrokerUnavailable(Exception):
    """The broker cannot be reached, or the bench cannot make its vhost there (the message says why)."""


class BenchBroker(ABC):
    """The broker of one run, as the bench prepares, watches and cleans it."""

    #: ``--broker``'s value, the name people read, and the key of its CPU in the figures.
    kind: str
    label: str
    cpu_key: str
    #: The server's process name (``/proc/<pid>/comm``): its CPU is counted in the run's.
    server_comm: str
    #: Whether the operators' queue counts include messages fetched and not acked yet.
    counts_in_flight: bool

    def __init__(self, options: BenchOptions) -> None:
        self.options = options
        #: Whether the run changed anything on the broker that clean-up undoes.
        self.touched = False

    @property
    @abstractmethod
    def url(self) -> str:
        """The URL the workers, the publisher and the baseline use (DUALWRITE_BROKER_URL)."""

    @property
    def shown_url(self) -> str:
        return redact_url(self.url)

    @abstractmethod
    def check_reachable(self) -> None:
        """Raise BrokerUnavailable when the server does not answer."""

    @abstractmethod
    def prepare(self) -> str:
        """Give the run a clean place on the broker; what was done, for the progress line."""

    @abstractmethod
    def clean_up(self) -> None:
        """Undo :meth:`prepare` (only when it ran)."""

    def queues(self, broker: dramatiq.Broker) -> BrokerQueues:
        """The operators' access to the queues of this run's broker (``dualwrite queues``)."""
        return broker_queues_for(broker, self.url)

    def unsettled(self) -> int | None:
        """Messages ready or delivered-and-unacked on the server, every work and retry queue
        (dead letters not counted); None when :meth:`queues`' counts say it all."""
        return None


class RedisBench(BenchBroker):
    kind, label, cpu_key, server_comm, counts_in_flight = "redis", "Redis", "redis", "redis-server", True

    @property
    def url(self) -> str:
        return self.options.redis_url

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def check_reachable(self) -> None:
        try:
            client = self.client()
            try:
                client.ping()
            finally:
                client.close()
        except redis.exceptions.RedisError as error:
            raise BrokerUnavailable(f"Redis at {self.shown_url} cannot be reached: {error}") from None

    def flush(self) -> None:
        self.touched = True
        client = self.client()
        try:
            client.flushdb()
        finally:
            client.close()

    def prepare(self) -> str:
        self.flush()
        return f"Redis {self.shown_url} flushed"

    def clean_up(self) -> None:
        if self.touched:  # only a db this run has used
            self.flush()


# -- RabbitMQ -------------------------------------------------------------------------------------


class VhostAdmin(ABC):
    """What the bench asks of the RabbitMQ server beyond AMQP: vhosts, and every queue's counts."""

    #: How it is done, for the progress line.
    how: str

    @abstractmethod
    def add_vhost(self, vhost: str, user: str) -> None:
        """Create ``vhost`` and give ``user`` every permission on it."""

    @abstractmethod
    def delete_vhost(self, vhost: str) -> None: ...

    @abstractmethod
    def queue_counts(self, vhost: str) -> dict[str, tuple[int, int]]:
        """Every queue of the vhost: (messages ready, messages delivered and not acked)."""


class ManagementApi(VhostAdmin):
    """The management plugin's HTTP API (``rabbitmq_management``), with the AMQP URL's credentials."""

    def __init__(self, base_url: str, user: str, password: str, *, opener: Callable[..., object] = urllib.request.urlopen) -> None:
        self.base_url = base_url.rstrip("/")
        self.how = f"the management API at {self.base_url}"
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self._open = opener

    def request(self, method: str, path: str, body: object = None, *, timeout: float = 30.0) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=self._headers)
        with self._open(request, timeout=timeout) as response:  # type: ignore[attr-defined]
            text = response.read()
        return json.loads(text) if text else None

    def answers(self) -> bool:
        try:
            self.request("GET", "/api/whoami", timeout=3)
            return True
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def add_vhost(self, vhost: str, user: str) -> None:
        name = quote(vhost, safe="")
        self.request("PUT", f"/api/vhosts/{name}", {})
        self.request("PUT", f"/api/permissions/{name}/{quote(user, safe='')}", {"configure": ".*", "write": ".*", "read": ".*"})

    def delete_vhost(self, vhost: str) -> None:
        self.request("DELETE", f"/api/vhosts/{quote(vhost, safe='')}")

    def queue_counts(self, vhost: str) -> dict[str, tuple[int, int]]:
        rows = self.request("GET", f"/api/queues/{quote(vhost, safe='')}?columns=name,messages_ready,messages_unacknowledged")
        return {
            row["name"]: (int(row.get("messages_ready") or 0), int(row.get("messages_unacknowledged") or 0))
            for row in rows or []  # type: ignore[union-attr]
        }


class Rabbitmqctl(VhostAdmin):
    """``rabbitmqctl`` on this machine (the RabbitMQ node here; needs its Erlang cookie)."""

    how = "rabbitmqctl"

    def __init__(self, run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> None:
        self._run = run

    def call(self, *args: str, timeout: float = 120) -> str:
        done = self._run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise BrokerUnavailable(f"rabbitmqctl {' '.join(args)}: {(done.stderr or done.stdout).strip()}")
        return done.stdout

    def add_vhost(self, vhost: str, user: str) -> None:
        self.call("add_vhost", vhost)
        self.call("set_permissions", "-p", vhost, user, ".*", ".*", ".*")

    def delete_vhost(self, vhost: str) -> None:
        self.call("delete_vhost", vhost)

    def queue_counts(self, vhost: str) -> dict[str, tuple[int, int]]:
        output = self.call("list_queues", "-p", vhost, "--no-table-headers", "name", "messages_ready", "messages_unacknowledged")
        return parse_list_queues(output)


def parse_list_queues(output: str) -> dict[str, tuple[int, int]]:
    """``rabbitmqctl list_queues name messages_ready messages_unacknowledged`` (tab-separated) as counts."""
    counts = {}
    for line in output.splitlines():
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 3:
            continue
        name, ready, unacked = fields
        try:
            counts[name] = (int(ready or 0), int(unacked or 0))
        except ValueError:  # a header or a note, not a queue
            continue
    return counts


def is_loopback(host: str | None) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def vhost_url(base_url: str, vhost: str) -> str:
    """``base_url`` (any vhost path and parameters dropped) on ``vhost``."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))


def management_url(amqp_url: str) -> str:
    parts = urlsplit(amqp_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"http://{host}:{MANAGEMENT_PORT}"


def unsettled_messages(counts: dict[str, tuple[int, int]]) -> int:
    """Messages ready or unacked on every queue but the dead-letter queues (``.XQ``), which no worker consumes."""
    return sum(ready + unacked for name, (ready, unacked) in counts.items() if not name.endswith(".XQ"))


class RabbitmqBench(BenchBroker):
    kind, label, cpu_key, server_comm, counts_in_flight = "amqp", "RabbitMQ", "rabbitmq", "beam.smp", False

    def __init__(self, options: BenchOptions, admin: VhostAdmin | None = None) -> None:
        super().__init__(options)
        self.vhost = f"{VHOST_PREFIX}{uuid.uuid4().hex[:10]}"
        self.admin = admin
        parts = urlsplit(options.amqp_url)
        self.user = unquote(parts.username or "guest")
        self._password = unquote(parts.password or "guest")

    @property
    def url(self) -> str:
        return vhost_url(self.options.amqp_url, self.vhost)

    def check_reachable(self) -> None:
        from kombu import Connection

        parts = urlsplit(self.options.amqp_url)
        url = self.options.amqp_url if parts.path not in ("", "/") else vhost_url(self.options.amqp_url, "/")
        connection = Connection(url, connect_timeout=5)
        try:
            connection.connect()
        except Exception as error:  # noqa: BLE001 - whatever kombu/amqp raise, the server is not usable
            raise BrokerUnavailable(
                f"RabbitMQ at {redact_url(self.options.amqp_url)} cannot be reached: {redact_text(error)}"
            ) from None
        finally:
            connection.release()
        if self.admin is None:
            self.admin = self._find_admin()

    def _find_admin(self) -> VhostAdmin:
        api = ManagementApi(management_url(self.options.amqp_url), self.user, self._password)
        if api.answers():
            return api
        host = urlsplit(self.options.amqp_url).hostname
        if shutil.which("rabbitmqctl") and is_loopback(host):
            return Rabbitmqctl()
        raise BrokerUnavailable(
            f"the bench cannot make a throwaway vhost on RabbitMQ at {redact_url(self.options.amqp_url)}: no management API "
            f"answers at {api.base_url} (plugin rabbitmq_management, user {self.user}) and "
            + ("rabbitmqctl is not on PATH" if not shutil.which("rabbitmqctl") else f"rabbitmqctl reaches only this machine's node, not {host}")
        )

    def prepare(self) -> str:
        assert self.admin is not None, "check_reachable() first"
        self.touched = True
        self.admin.add_vhost(self.vhost, self.user)
        return f"RabbitMQ vhost {self.vhost} created with {self.admin.how} ({self.shown_url})"

    def clean_up(self) -> None:
        if self.touched and self.admin is not None:
            self.admin.delete_vhost(self.vhost)
            self.touched = False

    def unsettled(self) -> int | None:
        assert self.admin is not None
        return unsettled_messages(self.admin.queue_counts(self.vhost))


def bench_broker(options: BenchOptions) -> BenchBroker:
    return RabbitmqBench(options) if options.broker == "amqp" else RedisBench(options)
