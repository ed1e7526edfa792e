"""The bench's brokers: the RabbitMQ vhost URL, and what the server says about its queues (no server needed)."""

from __future__ import annotations

import io
import json
import subprocess
from typing import Any

import pytest

from workers.bench.brokers import (
    ManagementApi,
    RabbitmqBench,
    Rabbitmqctl,
    RedisBench,
    bench_broker,
    is_loopback,
    management_url,
    parse_list_queues,
    unsettled_messages,
    vhost_url,
)
from workers.bench.options import BenchOptions


def test_the_broker_follows_the_option() -> None:
    redis_run = bench_broker(BenchOptions())
    amqp_run = bench_broker(BenchOptions(broker="amqp"))

    assert isinstance(redis_run, RedisBench) and redis_run.url == "redis://127.0.0.1:6379/13"
    assert (redis_run.label, redis_run.cpu_key, redis_run.server_comm, redis_run.counts_in_flight) == ("Redis", "redis", "redis-server", True)
    assert isinstance(amqp_run, RabbitmqBench)
    assert (amqp_run.label, amqp_run.cpu_key, amqp_run.server_comm, amqp_run.counts_in_flight) == ("RabbitMQ", "rabbitmq", "beam.smp", False)


def test_the_workers_run_in_the_throwaway_vhost() -> None:
    broker = RabbitmqBench(BenchOptions(broker="amqp", amqp_url="amqp://bench:pw@rabbit:5672/%2F"))

    assert broker.vhost.startswith("dualwrite-bench-") and len(broker.vhost) == len("dualwrite-bench-") + 10
    assert broker.url == f"amqp://bench:pw@rabbit:5672/{broker.vhost}"
    assert broker.shown_url == f"amqp://bench:***@rabbit:5672/{broker.vhost}"
    assert broker.user == "bench"
    assert RabbitmqBench(BenchOptions(broker="amqp")).vhost != broker.vhost


def test_vhost_and_management_urls() -> None:
    assert vhost_url("amqp://guest:guest@127.0.0.1:5672", "a b/c") == "amqp://guest:guest@127.0.0.1:5672/a%20b%2Fc"
    assert vhost_url("amqps://u:p@host:5671/old", "/") == "amqps://u:p@host:5671/%2F"
    assert management_url("amqp://guest:guest@127.0.0.1:5672") == "http://127.0.0.1:15672"
    assert management_url("amqp://u:p@[::1]:5672") == "http://[::1]:15672"


@pytest.mark.parametrize(("host", "local"), [("127.0.0.1", True), ("localhost", True), ("::1", True), ("rabbitmq", False), ("10.0.0.5", False), (None, False)])
def test_rabbitmqctl_only_reaches_this_machine(host: str | None, local: bool) -> None:
    assert is_loopback(host) is local


def test_list_queues_output_is_parsed_and_dead_letters_do_not_count() -> None:
    output = "finance.commands\t0\t3\nfinance.commands.DQ\t1\t0\nfinance.commands.XQ\t7\t0\nnot a queue line\nname\tmessages_ready\tmessages_unacknowledged\n"

    counts = parse_list_queues(output)

    assert counts == {"finance.commands": (0, 3), "finance.commands.DQ": (1, 0), "finance.commands.XQ": (7, 0)}
    assert unsettled_messages(counts) == 4
    assert unsettled_messages({"noop": (0, 0), "q.XQ": (5, 0)}) == 0


def test_rabbitmqctl_commands() -> None:
    calls: list[list[str]] = []

    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout="q\t2\t1\n", stderr="")

    tool = Rabbitmqctl(run=run)
    tool.add_vhost("dualwrite-bench-1", "guest")
    counts = tool.queue_counts("dualwrite-bench-1")
    tool.delete_vhost("dualwrite-bench-1")

    assert calls == [
        ["rabbitmqctl", "-q", "add_vhost", "dualwrite-bench-1"],
        ["rabbitmqctl", "-q", "set_permissions", "-p", "dualwrite-bench-1", "guest", ".*", ".*", ".*"],
        ["rabbitmqctl", "-q", "list_queues", "-p", "dualwrite-bench-1", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"],
        ["rabbitmqctl", "-q", "delete_vhost", "dualwrite-bench-1"],
    ]
    assert counts == {"q": (2, 1)}


def test_rabbitmqctl_failure_says_why() -> None:
    from workers.bench.brokers import BrokerUnavailable

    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 69, stdout="", stderr="Error: unable to perform an operation on node")

    with pytest.raises(BrokerUnavailable, match="add_vhost .*unable to perform"):
        Rabbitmqctl(run=run).add_vhost("v", "guest")


class _Response(io.BytesIO):
    def __enter__(self) -> "_Response":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def test_management_api_requests() -> None:
    sent: list[tuple[str, str, Any, str]] = []

    def opener(request: Any, timeout: float) -> _Response:
        body = json.loads(request.data) if request.data else None
        sent.append((request.get_method(), request.full_url, body, request.get_header("Authorization")))
        if request.full_url.endswith("messages_unacknowledged"):
            return _Response(json.dumps([{"name": "q", "messages_ready": 1, "messages_unacknowledged": 2}, {"name": "new"}]).encode())
        return _Response(b"")

    api = ManagementApi("http://127.0.0.1:15672/", "guest", "guest", opener=opener)
    api.add_vhost("dualwrite-bench-1", "guest")
    counts = api.queue_counts("dualwrite-bench-1")
    api.delete_vhost("dualwrite-bench-1")

    assert [(method, url, body) for method, url, body, _ in sent] == [
        ("PUT", "http://127.0.0.1:15672/api/vhosts/dualwrite-bench-1", {}),
        ("PUT", "http://127.0.0.1:15672/api/permissions/dualwrite-bench-1/guest", {"configure": ".*", "write": ".*", "read": ".*"}),
        ("GET", "http://127.0.0.1:15672/api/queues/dualwrite-bench-1?columns=name,messages_ready,messages_unacknowledged", None),
        ("DELETE", "http://127.0.0.1:15672/api/vhosts/dualwrite-bench-1", None),
    ]
    assert {auth for *_, auth in sent} == {"Basic Z3Vlc3Q6Z3Vlc3Q="}
    assert counts == {"q": (1, 2), "new": (0, 0)}


def test_the_vhost_is_deleted_only_when_this_run_made_it() -> None:
    made: list[str] = []

    class Admin(Rabbitmqctl):
        how = "test"

        def add_vhost(self, vhost: str, user: str) -> None:
            made.append(f"+{vhost}")

        def delete_vhost(self, vhost: str) -> None:
            made.append(f"-{vhost}")

    broker = RabbitmqBench(BenchOptions(broker="amqp"), admin=Admin())
    broker.clean_up()
    assert made == [] and not broker.touched

    assert broker.prepare().startswith(f"RabbitMQ vhost {broker.vhost} created with test")
    assert broker.touched
    broker.clean_up()
    broker.clean_up()
    assert made == [f"+{broker.vhost}", f"-{broker.vhost}"]
