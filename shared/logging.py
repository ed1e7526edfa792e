"""structlog set-up: JSON lines, with the correlation id and message id bound on every line.

Handlers never pass ids around for logging: the consumer binds them in context variables for the
duration of a message, and every line logged meanwhile (ours, dramatiq's, SQLAlchemy's) carries
them. Every line carries the ``pid`` of the process that wrote it too: with ``--processes N`` the
processes of a worker share one stream.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

from shared.redaction import redact_text, redact_values


def configure_logging(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    """Route structlog and the standard library through one JSON (or console) renderer."""
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_pid,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _redact,  # after the traceback is text: an exception may quote a URL with its password
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # dramatiq logs every retry at INFO; keep it, but quiet the chatty pika internals.
    logging.getLogger("pika").setLevel(logging.WARNING)


def log_warnings_redacted() -> None:
    """For a command that sets no logging up: what Python prints by itself when a logger has no handler
    (its last-resort handler: WARNING and above, on stderr) keeps doing so, with URL passwords and the
    process's secrets as ``***``."""
    if not isinstance(logging.lastResort, _RedactingStderrHandler):
        logging.lastResort = _RedactingStderrHandler(logging.WARNING)


class _RedactingStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Python's last-resort handler (``sys.stderr`` at the time of each line), redacting."""

    def __init__(self, level: int) -> None:
        logging.Handler.__init__(self, level)

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def _add_pid(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """The writing process's id, asked for on each line (never kept: a forked child logs with the
    set-up its parent made, and must not log the parent's pid). Lines about another process name it
    otherwise (the supervisor's ``child_pid``)."""
    event_dict["pid"] = os.getpid()
    return event_dict


def _redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Every line, ours and the libraries', with URL passwords and the process's secrets as ``***``."""
    return {key: redact_values(value) for key, value in event_dict.items()}


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


bind_message_context = structlog.contextvars.bound_contextvars
