"""Argument types the commands share: argparse refuses a bad value with one line and exit status 2.

``type=float`` alone takes ``nan``, ``inf`` and ``-5``: a wait with a NaN deadline never ends, a
sleep of ``inf`` raises. These types name the option's problem instead.
"""

from __future__ import annotations

import argparse
import logging
import math

#: A day: the longest wait or refresh interval any command takes.
MAX_SECONDS = 86_400.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def seconds(text: str) -> float:
    """A number of seconds from 0 to a day."""
    value = _number(text)
    if not 0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to {MAX_SECONDS:g}")
    return value


def positive_seconds(text: str) -> float:
    """A number of seconds above 0, at most a day."""
    value = _number(text)
    if not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0 and at most {MAX_SECONDS:g}")
    return value


def log_level(text: str) -> str:
    """DEBUG, INFO, WARNING, ERROR or CRITICAL, in any case."""
    if text.upper() not in LOG_LEVELS or not isinstance(logging.getLevelName(text.upper()), int):
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level ({', '.join(LOG_LEVELS)})")
    return text.upper()


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value
