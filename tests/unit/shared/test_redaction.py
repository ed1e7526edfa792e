"""URL passwords and the configured secrets never reach a person: each URL form, malformed ones, text, log lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from shared.logging import configure_logging, get_logger
from shared.redaction import forget_secrets, redact_text, redact_url, redact_values, remember_secrets, url_secrets
from shared.settings import Settings
from workers.cli.configuration import describe_validation_error

SECRET = "Sup3r-secret"


@pytest.fixture(autouse=True)
def no_remembered_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


URLS = {
    "amqp": (f"amqp://user:{SECRET}@rabbit:5672/vhost", "amqp://user:***@rabbit:5672/vhost"),
    "amqps": (f"amqps://user:{SECRET}@rabbit/vhost", "amqps://user:***@rabbit/vhost"),
    "redis, password only": (f"redis://:{SECRET}@redis:6379/0", "redis://:***@redis:6379/0"),
    "rediss, user and password": (f"rediss://user:{SECRET}@redis:6380/1", "rediss://user:***@redis:6380/1"),
    "postgresql": (f"postgresql://app:{SECRET}@db:5432/finance", "postgresql://app:***@db:5432/finance"),
    "postgresql+psycopg": (f"postgresql+psycopg://app:{SECRET}@db/finance", "postgresql+psycopg://app:***@db/finance"),
    "percent-encoded": ("redis://:p%40ss%2Fword@redis/0", "redis://:***@redis/0"),
    "an @ in the password": ("redis://user:p@ss@redis/0", "redis://user:***@redis/0"),
    "a / in the password (SQLAlchemy reads it so)": ("postgresql://app:pa/ss@db/finance", "postgresql://app:***@db/finance"),
    "password in the query": (f"postgresql://db/finance?user=app&password={SECRET}", "postgresql://db/finance?user=app&password=***"),
    "no password": ("redis://redis:6379/0", "redis://redis:6379/0"),
    "user, no password": ("amqp://guest@rabbit/", "amqp://guest@rabbit/"),
    "an @ in the query, not a password": ("postgresql://db:5432/finance?application_name=a@b", "postgresql://db:5432/finance?application_name=a@b"),
    "embedded": ("embedded://", "embedded://"),
    "sqlite": ("sqlite:////var/lib/dualwrite/finance.sqlite3", "sqlite:////var/lib/dualwrite/finance.sqlite3"),
    "not a URL": ("not a url at all", "not a url at all"),
    "broken IPv6 host": ("redis://:pw12@[::1/0", "redis://:***@[::1/0"),
    "empty": ("", ""),
}


@pytest.mark.parametrize("case", list(URLS), ids=list(URLS))
def test_redact_url_hides_the_password_and_keeps_the_rest(case: str) -> None:
    url, expected = URLS[case]

    assert redact_url(url) == expected


def test_redact_url_never_raises_whatever_it_is_given() -> None:
    for odd in (None, 42, b"redis://:pw@h", "://", "redis://", "redis://:@h", "a://b:c", "x" * 10_000 + "://"):
        assert isinstance(redact_url(odd), str)


def test_url_secrets_are_the_passwords_as_written_and_decoded() -> None:
    assert url_secrets("redis://:p%40ss@h/0", None, "amqp://guest@h/") == {"p%40ss", "p@ss"}


def test_redact_text_hides_every_url_password_and_each_secret_given() -> None:
    text = (
        f"Error 111 connecting to redis://:{SECRET}@redis:1/0. "
        f"could not connect (amqp://u:other-secret@rabbit/v), auth {SECRET} refused; "
        f"conninfo host=db password={SECRET} user=app"
    )

    shown = redact_text(text, [SECRET])

    assert SECRET not in shown and "other-secret" not in shown
    assert "redis://:***@redis:1/0" in shown and "amqp://u:***@rabbit/v" in shown and "password=***" in shown


def test_remembered_secrets_are_hidden_from_any_text_until_forgotten() -> None:
    remember_secrets(f"postgresql://app:{SECRET}@db/finance", "embedded://", None)

    assert redact_text(f"the server said: no such password {SECRET!r}") == "the server said: no such password '***'"
    forget_secrets()
    assert SECRET in redact_text(f"{SECRET}")


def test_a_short_password_is_hidden_in_urls_only_not_in_every_word() -> None:
    remember_secrets("redis://:ab@redis/0")

    assert redact_text("lab redis://:ab@redis/0") == "lab redis://:***@redis/0"


def test_redact_values_walks_a_log_lines_fields() -> None:
    fields = {"url": f"amqp://u:{SECRET}@h/v", "nested": [f"redis://:{SECRET}@h"], "count": 3, "error": ValueError(f"amqp://u:{SECRET}@h")}

    shown = redact_values(fields)

    assert SECRET not in json.dumps(shown, default=str)
    assert shown["count"] == 3


def test_every_log_line_and_its_traceback_is_redacted() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    remember_secrets(f"postgresql://app:{SECRET}@db/finance")
    log = get_logger("test")
    try:
        raise ConnectionError(f"Error connecting to redis://:{SECRET}@redis:1/0")
    except ConnectionError:
        log.exception("broker unreachable", url=f"redis://:{SECRET}@redis:1/0", detail=f"password is {SECRET}")
    logging.getLogger("a.library").error("connecting to amqp://guest:%s@rabbit/v failed", SECRET)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert SECRET not in stream.getvalue()
    assert lines[0]["url"] == "redis://:***@redis:1/0" and "redis://:***@redis:1/0" in lines[0]["exception"]
    assert lines[1]["event"] == "connecting to amqp://guest:***@rabbit/v failed"


def test_a_settings_error_names_the_variable_never_the_value() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(broker_url=f"ftp://user:{SECRET}@host/x", worker_threads=0)

    message = describe_validation_error(raised.value)

    assert SECRET not in message and "ftp://" not in message
    assert "DUALWRITE_BROKER_URL: must start with redis://" in message
    assert "DUALWRITE_WORKER_THREADS: Input should be greater than or equal to 1" in message
