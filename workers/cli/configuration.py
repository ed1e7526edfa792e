"""Reading the ``DUALWRITE_*`` settings for a command: one clear line for a bad value, never the value itself.

pydantic's own message quotes the input (``input_value='amqp://user:secret@...'``): a broker
password would be printed by a typo in its scheme. :func:`load_settings` names the variable and
the problem only, and checks what pydantic cannot: that each URL is one its client can parse and
that the log level exists. Every URL's password is remembered for redaction (shared/redaction.py)
as soon as the settings are read, so no later error or log line shows it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from shared.redaction import redact_text, remember_passwords, remember_secrets, url_secrets
from shared.settings import EMBEDDED, Settings

ENV_PREFIX = "DUALWRITE_"
SIDES = ("finance", "dataverse", "bridge")


class BadConfiguration(Exception):
    """Raised when a ``DUALWRITE_*`` setting is missing, malformed or inconsistent; the message names it, never its value."""


def environment_secrets(environ: Mapping[str, str] | None = None) -> set[str]:
    """The passwords in every ``DUALWRITE_*`` variable that holds a URL (read before the settings validate)."""
    environ = os.environ if environ is None else environ
    return url_secrets(*(value for name, value in environ.items() if name.upper().startswith(ENV_PREFIX) and "://" in value))


def describe_validation_error(error: ValidationError, names: Mapping[str, str] | None = None, secrets: Iterable[str] = ()) -> str:
    """``DUALWRITE_BROKER_URL: must start with redis://...; DUALWRITE_WORKER_THREADS: ...``: each field and
    what is wrong with it, without the value given (pydantic's ``str(error)`` quotes it)."""
    problems = []
    for each in error.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in each["loc"]) or "settings"
        name = (names or {}).get(field, f"{ENV_PREFIX}{field.upper()}")
        message = str(each["msg"]).removeprefix("Value error, ")
        problems.append(f"{name}: {message}")
    return redact_text("; ".join(problems) or "invalid settings", secrets)


def load_settings(**overrides: Any) -> Settings:
    """The settings of the environment (and ``overrides``), checked; :class:`BadConfiguration` otherwise."""
    from pydantic_settings import SettingsError

    secrets = environment_secrets()
    remember_passwords(secrets)  # before anything can fail and print
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        raise BadConfiguration(describe_validation_error(error, secrets=secrets)) from None
    except SettingsError as error:
        raise BadConfiguration(redact_text(error, secrets)) from None
    remember_settings_secrets(settings)
    check_settings(settings)
    return settings


def remember_settings_secrets(settings: Settings) -> None:
    """Hide the passwords of the settings' URLs from every error line and log line of this process."""
    remember_secrets(settings.broker_url, *(getattr(settings, f"{side}_db_url") for side in SIDES))


def check_settings(settings: Settings) -> None:
    """What pydantic does not check: the log level exists, each URL is one its client can read."""
    level = settings.log_level.upper()
    if not isinstance(logging.getLevelName(level), int):
        raise BadConfiguration(f"{ENV_PREFIX}LOG_LEVEL: unknown level {settings.log_level!r}; use DEBUG, INFO, WARNING or ERROR")
    try:
        check_broker_url(settings.broker_url)
    except ValueError as error:
        raise BadConfiguration(f"{ENV_PREFIX}BROKER_URL: {redact_text(error)}") from None
    for side in SIDES:
        url = getattr(settings, f"{side}_db_url")
        if url is None:
            continue
        try:
            check_database_url(url)
        except ValueError as error:
            raise BadConfiguration(f"{ENV_PREFIX}{side.upper()}_DB_URL: {redact_text(error)}") from None


def check_broker_url(url: str) -> None:
    """Raise ValueError (naming the problem, never the password) when redis-py or pika cannot read ``url``."""
    if url == EMBEDDED:
        return
    try:
        if url.startswith(("amqp://", "amqps://")):
            import pika

            pika.URLParameters(url)
        else:
            import redis.connection

            redis.connection.parse_url(url)
    except Exception as error:  # each client has its own ways of refusing a URL
        raise ValueError(f"not a broker URL its client can read: {redact_text(error, url_secrets(url))}") from None


def check_database_url(url: str) -> None:
    """Raise ValueError (naming the problem, never the password) when SQLAlchemy cannot read ``url``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except NoSuchModuleError:
        raise ValueError("not a database SQLAlchemy knows: use a postgresql:// URL") from None
    except (ArgumentError, ValueError, TypeError) as error:
        shown = redact_text(error, url_secrets(url))
        raise ValueError(f"not a SQLAlchemy database URL: {shown}") from None
