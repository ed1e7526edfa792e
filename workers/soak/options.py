"""What one soak run does: the load, the faults and how long they are spread over."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from workers.bench.options import BROKERS, BadOptions

#: The fault kinds, in the order the table lists them.
FAULT_KINDS = ("kill", "broker-restart", "broker-loss", "db-restart", "conn-kill")


@dataclass(frozen=True)
class SoakOptions:
    #: Expense lines posted over the run (``--lines``); ``reports`` = lines / lines_per_report, rounded up.
    lines: int = 20_000
    lines_per_report: int = 25
    legal_entities: int = 3
    projects: int = 4
    broker: str = "redis"
    #: How many of each fault (``--kills`` ...).
    kills: int = 20
    broker_restarts: int = 3
    broker_losses: int = 1
    db_restarts: int = 2
    connection_kills: int = 10
    #: Queued messages one broker-loss fault deletes.
    messages_per_loss: int = 3
    #: Seconds the posting and the faults are spread over (``--duration``).
    duration: float = 240.0
    seed: int = 13
    processes: int = 2
    threads: int = 8
    import_interval: float = 0.1
    #: The generous deadline for every document to reach project cost after the last post, seconds.
    timeout: float = 600.0
    keep: bool = False
    worker_log_level: str = "INFO"

    @property
    def reports(self) -> int:
        return math.ceil(self.lines / self.lines_per_report)

    @property
    def expected_lines(self) -> int:
        return self.reports * self.lines_per_report

    def fault_counts(self) -> dict[str, int]:
        return {
            "kill": self.kills,
            "broker-restart": self.broker_restarts,
            "broker-loss": self.broker_losses,
            "db-restart": self.db_restarts,
            "conn-kill": self.connection_kills,
        }

    @property
    def broker_label(self) -> str:
        return "RabbitMQ" if self.broker == "amqp" else "Redis"

    def check(self) -> "SoakOptions":
        """Raise BadOptions naming the first option out of range; returns the options when fine."""
        from workers.bench.load import COMPANIES

        if self.broker not in BROKERS:
            raise BadOptions(f"--broker must be one of {', '.join(BROKERS)}, not {self.broker!r}")
        ranges = {
            "--lines": (self.lines, 1, 10_000_000),
            "--lines-per-report": (self.lines_per_report, 1, 200),
            "--legal-entities": (self.legal_entities, 1, len(COMPANIES)),
            "--projects": (self.projects, 1, 100),
            "--kills": (self.kills, 0, 10_000),
            "--broker-restarts": (self.broker_restarts, 0, 1_000),
            "--broker-losses": (self.broker_losses, 0, 1_000),
            "--db-restarts": (self.db_restarts, 0, 1_000),
            "--connection-kills": (self.connection_kills, 0, 10_000),
            "--messages-per-loss": (self.messages_per_loss, 1, 10_000),
            "--processes": (self.processes, 1, 16),
            "--threads": (self.threads, 1, 256),
        }
        for name, (value, low, high) in ranges.items():
            if not low <= value <= high:
                raise BadOptions(f"{name} must be between {low:,} and {high:,}, not {value:,}")
        if not 1 <= self.duration <= 86_400:  # nan is refused too
            raise BadOptions(f"--duration must be between 1 and 86,400 seconds, not {self.duration}")
        if not 0 < self.timeout < float("inf"):
            raise BadOptions("--timeout must be a positive number of seconds")
        if not 0 < self.import_interval <= 60:
            raise BadOptions(f"--import-interval must be above 0 and at most 60 seconds, not {self.import_interval}")
        return self

    def as_json(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["reports"] = self.reports
        return shown
