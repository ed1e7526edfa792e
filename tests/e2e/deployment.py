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

    def run_cli(self, *args: str) -> dict[str, Any]:
        """``python -m workers ARGS --json`` as a separate process; its JSON result."""
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

    def health_check(self, side: str, test: list[str]) -> str:
        """Run a compose health check (``["CMD", "dualwrite", "health", "--side", side]``) here; its output."""
        kind, program, *args = test
        assert (kind, program) == ("CMD", "dualwrite"), f"{side}: health check {test} cannot run outside a container"
        done = subprocess.run(
            [sys.executable, "-m", "workers", *args], cwd=self.log_dir, env=self.environment, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, f"{side} unhealthy: {done.stdout}{done.stderr}"
        return done.stdout.strip()

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

