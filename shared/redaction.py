"""Secrets out of everything printed or logged: the password of a broker or database URL becomes ``***``.

A URL can reach a person in many ways: a command naming the broker it could not reach, a health
check, a configuration error, an exception from redis, pika or psycopg that quotes its target, a
traceback. Two functions cover them all:

- :func:`redact_url` takes one URL and hides its password, however malformed the URL is;
- :func:`redact_text` takes any text (an exception message, a log line, a traceback), hides the
  password of every URL in it, and every known secret wherever it appears on its own.

The passwords of the process's own URLs are remembered once its settings are read
(:func:`remember_secrets`): text that quotes a password without its URL (an error naming what it
was given) is redacted too. The CLI's error lines and every log line go through :func:`redact_text`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

MASK = "***"

#: ``scheme://``, then the rest of the URL up to whitespace or a quote.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
#: ``password=...`` in a query string or a libpq keyword string (``host=db password=secret``).
_PASSWORD_PARAMETER = re.compile(r"(?i)(\b(?:password|passwd|pwd|pass)=)('[^']*'|[^&;#\s'\"]*)")

_known: set[str] = set()

#: A remembered secret shorter than this is hidden inside URLs only: replacing every "pw" or "1" in
#: every line would garble the text and protect nothing such a password could.
MIN_FREE_TEXT_SECRET = 4


def _userinfo_end(rest: str) -> int:
    """Where the ``user:password`` of ``rest`` (a URL after its ``scheme://``) ends: at its ``@``; -1 when it has none.

    Parsers read a password in two ways: up to the last ``@`` of the authority, which ends at the
    first ``/``, ``?`` or ``#`` (urllib, redis-py, pika), or up to the first ``@`` whatever comes
    before it (SQLAlchemy: a password may hold ``/``). The wider of the two is hidden.
    """
    authority_end = len(rest)
    for delimiter in "/?#":
        found = rest.find(delimiter)
        if found != -1:
            authority_end = min(authority_end, found)
    at = rest.rfind("@", 0, authority_end)
    if at != -1:
        return at
    colon = rest.find(":", 0, authority_end)
    if colon == -1:
        return -1
    at = rest.find("@", colon)
    if at == -1:
        return -1
    host, port = rest[:colon], rest[colon + 1 : authority_end]
    if host and port.isdigit():  # host:port/path?...@...: an @ further on, not a password
        return -1
    return at


def redact_url(url: object) -> str:
    """``url`` with its password replaced by ``***`` (``amqp://user:***@host/vhost``); anything else as it is.

    Never raises, whatever it is given: a URL too malformed to parse is redacted as well as it
    can be, and a password in a ``password=`` parameter is hidden too.
    """
    text = url if isinstance(url, str) else str(url)
    match = _SCHEME.match(text)
    if match is not None:
        scheme, rest = text[: match.end()], text[match.end() :]
        at = _userinfo_end(rest)
        if at != -1:
            userinfo = rest[:at]
            colon = userinfo.find(":")
            if colon != -1 and colon < len(userinfo) - 1:
                rest = userinfo[: colon + 1] + MASK + rest[at:]
        text = scheme + rest
    if "=" in text:
        text = _PASSWORD_PARAMETER.sub(lambda m: m[1] + MASK, text)
    return text


def url_secrets(*urls: str | None) -> set[str]:
    """The passwords of ``urls``, as written and percent-decoded (an error may quote either)."""
    found: set[str] = set()
    for url in urls:
        if not url:
            continue
        match = _SCHEME.match(url)
        if match is not None:
            rest = url[match.end() :]
            at = _userinfo_end(rest)
            if at != -1:
                userinfo = rest[:at]
                colon = userinfo.find(":")
                if colon != -1 and colon < len(userinfo) - 1:
                    found.add(userinfo[colon + 1 :])
        found.update(m[2].strip("'") for m in _PASSWORD_PARAMETER.finditer(url) if m[2].strip("'"))
    found |= {unquote(secret) for secret in found}
    return {secret for secret in found if secret and secret != MASK}


def remember_secrets(*urls: str | None) -> None:
    """Hide the passwords of ``urls`` from everything :func:`redact_text` redacts from now on (logs, errors)."""
    remember_passwords(url_secrets(*urls))


def remember_passwords(secrets: Iterable[str]) -> None:
    """Hide ``secrets`` from everything :func:`redact_text` redacts from now on."""
    _known.update(secret for secret in secrets if secret and secret != MASK)


def forget_secrets() -> None:
    """Forget every remembered secret (tests)."""
    _known.clear()


def redact_text(text: object, secrets: Iterable[str] = ()) -> str:
    """``text`` with the password of every URL in it, and each of ``secrets`` and the remembered
    secrets wherever they appear (those of at least :data:`MIN_FREE_TEXT_SECRET` characters),
    replaced by ``***``. Never raises."""
    try:
        result = text if isinstance(text, str) else str(text)
    except Exception:  # a broken __str__: say what it was, not what it holds
        return f"<{type(text).__name__}>"
    if "://" in result:
        result = _URL.sub(lambda m: redact_url(m[0]), result)
    if "=" in result:
        result = _PASSWORD_PARAMETER.sub(lambda m: m[1] + MASK, result)
    # Longest first: a secret that contains another is hidden whole.
    wanted = {secret for secret in (*secrets, *_known) if len(secret) >= MIN_FREE_TEXT_SECRET}
    for secret in sorted(wanted, key=len, reverse=True):
        if secret in result:
            result = result.replace(secret, MASK)
    return result


def redact_values(value: object) -> object:
    """``value`` (a log line's fields) with every string in it redacted; other values as they are."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_values(item) for item in value) if not hasattr(value, "_fields") else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    shown = repr(value)
    redacted = redact_text(shown)
    return value if redacted == shown else redacted
