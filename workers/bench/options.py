"""What one bench run measures, and on which servers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.engine import make_url

from shared.redaction import redact_text, redact_url, url_secrets

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
#: The RabbitMQ server of ``--broker amqp``; the bench creates a throwaway vhost on it (any path given is replaced).
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672"
BROKERS = ("redis", "amqp")

#: The throwaway databases, one per side, dropped and recreated at every start.
DATABASE_NAMES = {
    "finance": "dualwrite_bench_finance",
    "dataverse": "dualwrite_bench_dataverse",
    "bridge": "dualwrite_bench_bridge",
}


class BadOptions(ValueError):
    """The options cannot make a run (the message says why)."""


@dataclass(frozen=True)
class BenchOptions:
    #: 25,000 lines by default: about 25 s of sustained load, so the pipeline's fill and drain (a
    #: second or so: the first actuals reach finance after 0.5 s) do not decide the throughput.
    reports: int = 1000
    lines: int = 25
    legal_entities: int = 3
    projects: int = 4
    threads: int = 8
    processes: int = 1
    light: int = 30
    reports_per_post: int = 1
    noop_messages: int = 20_000
    import_interval: float = 0.1
    redis_url: str = DEFAULT_REDIS_URL
    postgres_url: str = DEFAULT_POSTGRES_URL
    timeout: float = 300.0
    keep: bool = False
    worker_log_level: str = "INFO"
    #: The broker the workers and the no-op baseline run on: ``redis`` (--redis-url) or ``amqp`` (--amqp-url).
    broker: str = "redis"
    amqp_url: str = DEFAULT_AMQP_URL
    #: Seconds of the idle phase after the run (every worker idle; CPU per process); 0 skips it.
    idle_seconds: float = 5.0
    #: Rows of the initial sync phase (msdyn_transactioncategories, Dataverse -> finance); 0 skips it.
    initial_sync: int = 0
    initial_sync_page_size: int = 500
    #: py-spy on every worker process through the throughput phase.
    profile: bool = False
    #: Where the profiles go (None: a new directory under the system's temporary directory, kept).
    profile_dir: str | None = None

    def check(self) -> "BenchOptions":
        """Raise BadOptions naming the first option out of range; returns the options when fine."""
        from workers.bench.load import COMPANIES

        if self.broker not in BROKERS:
            raise BadOptions(f"--broker must be one of {', '.join(BROKERS)}, not {self.broker!r}")
        if self.broker == "amqp":
            self._check_amqp_url()
        if self.redis_url.startswith("embedded://"):
            raise BadOptions(
                "the bench measures real services and refuses the embedded broker: it lives inside one process, "
                "and the workers run as separate processes; pass --redis-url redis://HOST:PORT/DB (a db number "
                "of its own: the bench flushes it)"
            )
        if not self.redis_url.startswith(("redis://", "rediss://")):
            raise BadOptions(
                f"--redis-url must be redis:// or rediss:// (Redis only; for RabbitMQ pass --broker amqp --amqp-url), "
                f"not {redact_url(self.redis_url)!r}"
            )
        try:
            import redis.connection

            redis.connection.parse_url(self.redis_url)
        except ValueError as error:
            raise BadOptions(f"--redis-url is not a Redis URL: {redact_text(error, url_secrets(self.redis_url))}") from None
        try:
            backend = make_url(self.postgres_url).get_backend_name()
        except Exception as error:  # noqa: BLE001 - any parse error is the user's URL
            raise BadOptions(f"--postgres-url is not a database URL: {redact_text(error, url_secrets(self.postgres_url))}") from None
        if backend != "postgresql":
            raise BadOptions(
                f"--postgres-url must be a postgresql:// URL (an admin connection), not {redact_url(self.postgres_url)!r}"
            )
        ranges = {
            "--reports": (self.reports, 1, 100_000),
            "--lines": (self.lines, 1, 1000),
            "--legal-entities": (self.legal_entities, 1, len(COMPANIES)),
            "--projects": (self.projects, 1, 999),
            "--threads": (self.threads, 1, 256),
            "--processes": (self.processes, 1, 64),
            "--light": (self.light, 0, 10_000),
            "--reports-per-post": (self.reports_per_post, 1, 1000),
            "--noop-messages": (self.noop_messages, 1, 10_000_000),
            "--initial-sync": (self.initial_sync, 0, 10_000_000),
            "--initial-sync-page-size": (self.initial_sync_page_size, 1, 1000),
        }
        for name, (value, low, high) in ranges.items():
            if not low <= value <= high:
                raise BadOptions(f"{name} must be between {low:,} and {high:,}, not {value:,}")
        if not 0 < self.import_interval <= 60:
            raise BadOptions(f"--import-interval must be above 0 and at most 60 seconds, not {self.import_interval}")
        if not 0 < self.timeout < float("inf"):  # nan too: a deadline of nan never passes
            raise BadOptions("--timeout must be a positive number of seconds")
        if not 0 <= self.idle_seconds <= 3600:  # nan is refused too
            raise BadOptions(f"--idle-seconds must be between 0 and 3,600, not {self.idle_seconds}")
        return self

    def _check_amqp_url(self) -> None:
        from urllib.parse import urlsplit

        url = self.amqp_url
        if url.startswith("embedded://"):
            raise BadOptions(
                "the bench measures real services and refuses the embedded broker: it lives inside one process, "
                "and the workers run as separate processes; pass --amqp-url with the amqp:// URL of a RabbitMQ server"
            )
        if not url.startswith(("amqp://", "amqps://")):
            raise BadOptions(f"--amqp-url must be amqp:// or amqps://, not {redact_url(url)!r}")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is no number
        except ValueError as error:
            raise BadOptions(f"--amqp-url is not an AMQP URL: {redact_text(error, url_secrets(url))}") from None
        if not parts.hostname:
            raise BadOptions(f"--amqp-url names no host: {redact_url(url)!r}")
        if parts.query or parts.fragment:
            raise BadOptions(
                f"--amqp-url takes no parameters (the bench adds its own vhost to it): {redact_url(url)!r}"
            )

    @property
    def broker_label(self) -> str:
        """The broker's name for people: Redis or RabbitMQ."""
        return "RabbitMQ" if self.broker == "amqp" else "Redis"

    @property
    def expected_lines(self) -> int:
        """Expense lines of the throughput phase (every generated line is on a project, so every one travels)."""
        return self.reports * self.lines

    def database_url(self, side: str) -> str:
        """The throwaway database of one side, on the server of --postgres-url."""
        return make_url(self.postgres_url).set(database=DATABASE_NAMES[side]).render_as_string(hide_password=False)

    def as_json(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["postgres_url"] = make_url(self.postgres_url).render_as_string(hide_password=True)
        shown["redis_url"] = redact_url(self.redis_url)
        shown["amqp_url"] = redact_url(self.amqp_url)
        return shown
