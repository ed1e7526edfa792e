"""SIGTERM and SIGINT, the signals that stop a worker process gracefully, taken without a handler.

A worker blocks both in its main thread before it starts any other thread, so every thread
inherits the mask and none can take them; a stop signal waits, pending, until the main thread
takes it with ``sigwait``, however early it came.

Not a Python handler that sets a ``threading.Event`` the main thread waits on: that handler runs in
the main thread between two bytecodes of ``Event.wait`` itself. A signal that lands while ``wait``
holds the Event's lock deadlocks in ``Event.set`` (one thread taking a non-reentrant lock twice); one
that lands after ``wait``'s last check for pending signals and before it blocks is never acted on.
Both leave a process waiting forever after SIGTERM (tests/unit/workers/test_stop_signals.py).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

#: The signals that stop a worker gracefully.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


@contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Hold SIGTERM and SIGINT pending in this thread and every thread it starts; put the mask back after."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def stop_requested() -> bool:
    """A stop signal is pending (under :func:`stop_signals_blocked`)."""
    return bool(STOP_SIGNALS & signal.sigpending())


def wait_for_stop_signal() -> signal.Signals:
    """Block until SIGTERM or SIGINT (held pending by :func:`stop_signals_blocked`); which one came."""
    return signal.Signals(signal.sigwait(STOP_SIGNALS))


def stop_signal_within(seconds: float) -> bool:
    """Wait at most ``seconds`` for SIGTERM or SIGINT (held pending by :func:`stop_signals_blocked`);
    True, the signal taken, when one came."""
    return signal.sigtimedwait(STOP_SIGNALS, max(seconds, 0.0)) is not None


def forget_stop_signals() -> None:
    """Take the stop signals that came while stopping (Ctrl-C reaches a child and its supervisor, which
    passes SIGTERM on): once the mask is put back, they would kill a process that stopped cleanly."""
    while stop_requested():
        signal.sigwait(STOP_SIGNALS)
