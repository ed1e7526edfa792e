"""compose.yaml's worker services as local OS processes, and what the tests ask of them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from shared.waiting import wait_until
from tests.in_process_cli import run_dualwrite


FLOW_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


@dataclass
class WorkerProcess:
    side: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class LocalDeployment:
    """The compose workers as local processes, on the local Redis and three throwaway databases."""

    def __init__(self, environment: dict[str, str], database_urls: dict[str, str], log_dir: Path) -> None:
        self.environment = environment
        self.log_dir = log_dir
        self.workers: list[WorkerProcess] = []
        self.engines: dict[str, Engine] = {side: create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1)) for side, url in database_urls.items()}

    @property
    def keys_dir(self) -> Path:
        """The development key ring the first worker made (the default data folder, under the working folder)."""
        return self.log_dir / ".dualwrite" / "keys"

    def wait_for_key_ring(self) -> None:
        """Until the first worker to start has made the development key ring (its trust file is written last)."""
        self.wait_for("the workers' development key ring", lambda: self.assert_workers_running() or (self.keys_dir / "trusted.json").exists())

    def start(self, side: str, argv: list[str]) -> None:
        log_path = self.log_dir / f"{side}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "workers", *argv[1:]],
                env=self.environment,
                cwd=self.log_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(WorkerProcess(side, process, log_path))

    def run_process(self, *args: str) -> dict[str, Any]:
        """``python -m workers ARGS --json`` as a separate process, as compose runs a service's command; its JSON result."""
        done = subprocess.run(
            [sys.executable, "-m", "workers", *args, "--json"],
            env=self.environment,
            cwd=self.log_dir,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"dualwrite {' '.join(args)} exited {done.returncode}: {done.stderr}"
        return json.loads(done.stdout)

    def run_cli(self, *args: str) -> dict[str, Any]:
        """``dualwrite ARGS --json`` as an operator or upstream system runs it beside the deployment, with
        the workers' environment and working folder (in this process: tests/in_process_cli.py); its JSON result."""
        done = run_dualwrite([*args, "--json"], self.environment, cwd=self.log_dir)
        assert done.returncode == 0, f"dualwrite {' '.join(args)} exited {done.returncode}: {done.stderr}"
        return json.loads(done.stdout)

    def publish(self, contract: str, rows: list[dict[str, Any]], *options: str) -> dict[str, Any]:
        document = self.log_dir / f"{contract}-{uuid.uuid4().hex[:8]}.json"
        document.write_text(json.dumps({"rows": rows}))
        return self.run_cli("publish", contract, str(document), *options)

    def rows(self, side: str, statement: Any) -> list[tuple[Any, ...]]:
        """Rows of a query on a side's database; none while the worker has not created its tables."""
        self.assert_workers_running()
        try:
            with self.engines[side].connect() as connection:
                return [tuple(row) for row in connection.execute(statement)]
        except DBAPIError:
            return []

    def health_checks(self, tests: dict[str, list[str]]) -> dict[str, str]:
        """Run the sides' compose health checks (``["CMD", "dualwrite", "health", "--side", side]``) here, each
        a process of its own as a container runtime runs it, all at once; their outputs."""
        started = {}
        for side, test in tests.items():
            kind, program, *args = test
            assert (kind, program) == ("CMD", "dualwrite"), f"{side}: health check {test} cannot run outside a container"
            started[side] = subprocess.Popen(
                [sys.executable, "-m", "workers", *args], cwd=self.log_dir, env=self.environment,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
        outputs = {}
        try:
            for side, process in started.items():
                out, err = process.communicate(timeout=30)
                assert process.returncode == 0, f"{side} unhealthy: {out}{err}"
                outputs[side] = out.strip()
        finally:
            for process in started.values():
                if process.poll() is None:
                    process.kill()
                    process.communicate()
        return outputs

    def wait_for(self, what: str, condition: Any) -> Any:
        return wait_until(condition, timeout=FLOW_TIMEOUT, interval=0.1, what=what)

    def assert_workers_running(self) -> None:
        for worker in self.workers:
            code = worker.process.poll()
            assert code is None, f"worker {worker.side} exited early with {code}:\n{worker.log_tail()}"

    def terminate(self) -> dict[str, int | None]:
        """SIGTERM every worker and wait for each; their exit statuses (None: had to be killed)."""
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        statuses: dict[str, int | None] = {}
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in self.workers:
            try:
                statuses[worker.side] = worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
                statuses[worker.side] = None
        return statuses

    def close(self) -> None:
        self.terminate()
        for engine in self.engines.values():
            engine.dispose()

