"""A RabbitMQ node of one's own, to restart and take away while workers run on it.

``PrivateRabbitmq`` runs a second RabbitMQ node on this machine (no plugins) with its own name,
AMQP port, distribution port, data and log directories, configuration file and Erlang cookie, all
in a temporary directory, so the machine's node is never touched. The system configuration
(``/etc/rabbitmq/rabbitmq.conf``) pins its listener to 5672 and would make a second node fail with
``eaddrinuse``: this node reads only its own file. Durable queues and persistent messages live in
its data directory, so a restart keeps them, as a deployment's node does.

Faults it plays::

    with PrivateRabbitmq() as node:       # started (10-30 s the first time); stopped and removed at the end
        node.url                          # amqp://guest:guest@127.0.0.1:PORT/%2F
        node.vhost_url(node.add_vhost())  # a fresh vhost of its own, if a test wants one
        node.restart()                    # the whole node stopped and started again (same data)
        node.restart_app()                # rabbitmqctl stop_app / start_app: the Erlang VM stays up
        node.pause(30)                    # the application stopped for 30 s (connections refused), then started
        node.pause(30, frozen=True)       # SIGSTOP for 30 s (connections hang), then SIGCONT
        with node.outage():               # unreachable while the block runs, back after it
            ...

It needs ``rabbitmq-server`` and ``rabbitmqctl`` (``/usr/lib/rabbitmq/bin`` when the packaged
wrappers would switch users) and the machine's ``epmd`` (the one the system node started does).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import pika
import pika.exceptions

from shared.waiting import wait_until
from workers.faults import Outages, free_port, port_open

#: How long a node may take to start or stop (the first start initialises its database: 10-30 s here).
START_TIMEOUT = 120.0
#: Where the Debian/Ubuntu package keeps the scripts its /usr/sbin wrappers call as the rabbitmq user.
PACKAGE_BIN = Path("/usr/lib/rabbitmq/bin")


class PrivateRabbitmqError(Exception):
    """The private node would not start or stop (its log's last lines are in the message)."""


def _tool(name: str) -> str:
    packaged = PACKAGE_BIN / name
    if packaged.exists():
        return str(packaged)
    found = shutil.which(name)
    if found is None:
        raise PrivateRabbitmqError(f"{name} not found: a private RabbitMQ node cannot be run here")
    return found


class PrivateRabbitmq(Outages):
    """One RabbitMQ node ``name@localhost`` on ``127.0.0.1:port``, everything in ``directory``."""

    def __init__(self, *, port: int | None = None, directory: Path | None = None, name: str | None = None) -> None:
        self.port = port or free_port()
        self.dist_port = free_port()
        self.node = f"{name or 'dualwrite-' + uuid.uuid4().hex[:8]}@localhost"
        self._own_directory = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="dualwrite-rabbitmq-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False
        atexit.register(self.close)
        self._write_configuration()

    @property
    def url(self) -> str:
        """The default vhost's URL (guest/guest: allowed from 127.0.0.1)."""
        return self.vhost_url("/")

    def vhost_url(self, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    @property
    def environment(self) -> dict[str, str]:
        """What ``rabbitmq-server`` and ``rabbitmqctl`` need to find this node and only this one."""
        d = self.directory
        return {
            **{key: value for key, value in os.environ.items() if not key.startswith("RABBITMQ_")},
            "HOME": str(d),  # the Erlang cookie lives here: this node's own
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "node.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
        }

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _write_configuration(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            # a worker's connection beats every 10 s: a frozen node is noticed within ~20 s
            "heartbeat = 10\n"
        )
        (self.directory / "rabbitmq-env.conf").write_text("ERL_EPMD_ADDRESS=127.0.0.1\n")
        (self.directory / "advanced.config").write_text("[].\n")

    # -- life --------------------------------------------------------------------------------------

    def start(self) -> "PrivateRabbitmq":
        """Start the node (on the same data if it ran before); returns when it accepts AMQP connections."""
        if self.running:
            return self
        with open(self.directory / "server.out", "ab") as out:
            self.process = subprocess.Popen(
                [_tool("rabbitmq-server")],
                env=self.environment,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.frozen = False
        try:
            wait_until(self._accepts, timeout=START_TIMEOUT, interval=0.2, what=f"private RabbitMQ node {self.node} accepting AMQP")
        except Exception as error:
            self._kill()
            raise PrivateRabbitmqError(f"{error}\n{self._log_tail()}") from None
        return self

    def stop(self) -> None:
        """Stop the node (``rabbitmqctl stop``) and wait for its process to end."""
        if self.process is None:
            return
        if self.frozen:
            self.unfreeze()
        if self.running:
            self.ctl("stop", check=False)
            try:
                self.process.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._kill()
                raise PrivateRabbitmqError(f"private RabbitMQ node {self.node} did not stop\n{self._log_tail()}") from None
        self.process = None

    def restart(self) -> None:
        """The whole node stopped and started again, on the same data: what a broker restart does to clients."""
        self.stop()
        self.start()

    def stop_app(self) -> None:
        """The RabbitMQ application stopped, the Erlang VM left running: every connection closes, new ones are refused."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        wait_until(self._accepts, timeout=START_TIMEOUT, interval=0.2, what=f"private RabbitMQ node {self.node} accepting AMQP")

    def restart_app(self) -> None:
        """``rabbitmqctl stop_app`` then ``start_app``: a quick restart of the broker inside its VM."""
        self.stop_app()
        self.start_app()

    def freeze(self) -> None:
        """SIGSTOP the Erlang VM: connections stay open, nothing answers (until the clients' heartbeats give up)."""
        pid = self._vm_pid()
        if pid is not None and not self.frozen:
            os.kill(pid, signal.SIGSTOP)
            self.frozen = True

    def unfreeze(self) -> None:
        pid = self._vm_pid()
        if pid is not None and self.frozen:
            os.kill(pid, signal.SIGCONT)
        self.frozen = False

    def go_down(self) -> None:
        """Unreachable for an outage (:meth:`Outages.outage`)."""
        self.stop_app()

    def come_back(self) -> None:
        self.start_app()

    def add_vhost(self, vhost: str | None = None) -> str:
        """A vhost (a fresh name if none given) in which guest may do everything; its name."""
        vhost = vhost or f"dualwrite-{uuid.uuid4().hex[:10]}"
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return vhost

    def ctl(self, *args: str, check: bool = True, timeout: float = START_TIMEOUT) -> str:
        """``rabbitmqctl -n NODE ARGS`` against this node; its output."""
        done = subprocess.run(
            [_tool("rabbitmqctl"), "-q", "-n", self.node, *args],
            env=self.environment, cwd=self.directory, capture_output=True, text=True, timeout=timeout,
        )
        if check and done.returncode != 0:
            raise PrivateRabbitmqError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def close(self) -> None:
        """Stop the node (killing it if it will not stop) and remove its directory, if we made it."""
        try:
            if self.running:
                try:
                    self.stop()
                except (PrivateRabbitmqError, subprocess.TimeoutExpired):
                    pass
            self._kill()
        finally:
            if self._own_directory:
                shutil.rmtree(self.directory, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------------

    def _accepts(self) -> bool:
        if not self.running:
            code = self.process.returncode if self.process else None
            raise PrivateRabbitmqError(f"private RabbitMQ node {self.node} exited with {code}")
        if not port_open(self.port):
            return False
        try:
            parameters = pika.URLParameters(self.url)
            parameters.socket_timeout = 5
            parameters.blocked_connection_timeout = 5
            pika.BlockingConnection(parameters).close()
            return True
        except pika.exceptions.AMQPError:
            return False

    def _vm_pid(self) -> int | None:
        try:
            return int((self.directory / "node.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _kill(self) -> None:
        """SIGKILL the node's process group (the VM, epmd excepted: the system's, started before)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGCONT)
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=30)
        self.frozen = False

    def _log_tail(self, lines: int = 30) -> str:
        texts = []
        for path in [self.directory / "server.out", *sorted((self.directory / "log").glob("*.log"))]:
            try:
                texts.append(f"== {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
            except OSError:
                continue
        return "\n".join(texts) or "(no log)"

    def __enter__(self) -> "PrivateRabbitmq":
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
        atexit.unregister(self.close)
