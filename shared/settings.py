"""Process settings, read once from ``DUALWRITE_*`` environment variables at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED = "embedded://"


class Settings(BaseSettings):
    """Everything a worker or the CLI needs to know about its environment.

    With no variables set, everything runs embedded: an in-process Redis (fakeredis with Lua) and
    SQLite files under ``data_dir``.
    """

    model_config = SettingsConfigDict(env_prefix="DUALWRITE_", extra="ignore", frozen=True)

    broker_url: str = Field(
        default=EMBEDDED, description="redis://host:port/db, amqp://user:pass@host:port/vhost, or embedded://"
    )
    finance_db_url: str | None = Field(default=None, description="SQLAlchemy URL of the finance database")
    dataverse_db_url: str | None = Field(default=None, description="SQLAlchemy URL of the Dataverse database")
    bridge_db_url: str | None = Field(default=None, description="SQLAlchemy URL of the bridge database")
    data_dir: Path = Field(default=Path(".dualwrite"), description="Folder of the embedded SQLite files")

    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_format: Literal["json", "console"] = Field(default="json", description="json for machines, console for people")

    worker_processes: int = Field(default=1, ge=1, le=64, description="Worker processes per `dualwrite worker`")
    worker_threads: int = Field(default=8, ge=1, le=256, description="Threads per worker process")
    connect_timeout_seconds: float = Field(
        default=30.0,
        ge=0,
        le=86_400,
        description="How long a starting worker retries a broker or database it cannot reach (a line logged per "
        "attempt) before it exits 4",
    )
    max_retries: int = Field(default=8, ge=0, description="Retries of a transient failure before dead-lettering")
    database_outage_wait_seconds: float = Field(
        default=300.0,
        ge=0,
        le=540,
        description="How long a consumer thread that finds its database unreachable (restarting, connections "
        "killed) holds its message and waits for the database, taking no other, before the failure counts as "
        "one of the message's retries; an outage shorter than this uses up no retry. At most 540: dramatiq's "
        "time limit ends a message after 600 s. 0: an outage counts a retry at once",
    )
    min_backoff_ms: int = Field(default=500, ge=1, description="First retry delay; doubles each retry")
    max_backoff_ms: int = Field(default=300_000, ge=1, description="Longest retry delay")
    heartbeat_timeout_ms: int = Field(
        default=10_000,
        ge=1_000,
        description="Redis: a worker process whose heartbeat is older than this is dead, and the messages it "
        "fetched go back on their queue at the next maintenance pass (every 2 s in each worker process): back "
        "within about 12 s of a SIGKILL. Every worker process refreshes its heartbeat every 0.5 s from a thread "
        "of its own, however busy its consumer threads are, so 10 s is twenty missed refreshes; a process "
        "stalled longer (frozen, swapped out) or a clock between hosts off by more than this gets its messages "
        "applied by another worker too, which the inbox makes harmless",
    )
    redis_maintenance_chance: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="Redis: broker commands per million that also run queue maintenance, besides the pass every "
        "worker process runs every 2 s (dramatiq's way, by chance; kept for deployments that set it; 0: none)",
    )
    dead_letter_ttl_days: int = Field(
        default=30, ge=1, description="How long the broker keeps dead letters (the database keeps them for good)"
    )
    outbox_sweep_seconds: float = Field(default=1.0, gt=0, description="How often the outbox relay looks for unsent messages")
    outbox_resend_after_seconds: float = Field(
        default=5.0,
        ge=0,
        description="The outbox sweeper sends unsent messages older than this (younger ones are being sent by "
        "the transaction that wrote them; what a crash left unsent goes out after this delay)",
    )
    outbox_linger_seconds: float = Field(
        default=0.05,
        ge=0,
        le=5,
        description="Under load only (other messages being applied in the process), how long committed "
        "outgoing rows may wait for the others' to leave with them in one message; idle, nothing waits. 0 never waits",
    )
    lost_after_seconds: float = Field(
        default=300.0,
        ge=0,
        description="A part sent this long ago that its receiver has not applied, dead-lettered or held, and that "
        "the broker no longer holds, counts as lost: `dualwrite reconcile` reports it and `reconcile --repair` "
        "sends it again from the sender's outbox (a part only slow is applied once all the same)",
    )
    lost_lookback_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="How far back `reconcile` looks for lost parts (outbox rows sent within this many seconds); "
        "older losses need `--lookback`",
    )

    import_interval_seconds: float = Field(
        default=2.0, gt=0, description="How often finance runs Import from staging (and posts the journals)"
    )
    import_period: Literal["day", "month", "year", "all"] = Field(
        default="month", description="Integration journals group actuals by this period"
    )
    journal_max_lines: int = Field(default=200, ge=1, le=10_000, description="Lines per integration journal header")

    keys_dir: Path | None = Field(
        default=None,
        description="Folder of the signing keys: trusted.json (every sender's public keys) and this process's "
        "private *.key files. Unset: <data_dir>/keys",
    )
    signing_keys: SecretStr | None = Field(
        default=None,
        description="Private signing keys as text (a key file's JSON, or a JSON list of them), besides the folder's; "
        "never logged",
    )
    generate_keys: bool = Field(
        default=True,
        description="Make a development ring (a key per sender, all trusted) when the key folder has no "
        "trusted.json. Set false in production, so a missing ring is an error",
    )
    max_message_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=64 * 1024,
        description="Larger messages are dead-lettered unread as malformed (a 1,000-row message is ~0.5 MB)",
    )

    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65_535,
        description="Serve Prometheus metrics at http://host:PORT/metrics; worker process N of a side "
        "uses PORT + N. Unset: no metrics endpoint",
    )
    metrics_address: str = Field(default="0.0.0.0", description="Address the metrics endpoint listens on")

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, url: str) -> str:
        if not url.startswith(("redis://", "rediss://", "amqp://", "amqps://", EMBEDDED)):
            raise ValueError("must start with redis://, rediss://, amqp://, amqps:// or be embedded://")
        return url

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url == EMBEDDED

    @property
    def key_folder(self) -> Path:
        return self.keys_dir if self.keys_dir is not None else self.data_dir / "keys"

    def database_url(self, side: str) -> str:
        """The side's database URL; an SQLite file under ``data_dir`` when none is set."""
        url = getattr(self, f"{side}_db_url")
        return url or f"sqlite:///{(self.data_dir / f'{side}.sqlite3').resolve()}"
