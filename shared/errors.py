"""The error taxonomy every worker shares.

Two families decide what happens to a message that fails:

- :class:`PermanentError` goes straight to the dead-letter queue with its reason; retrying
  cannot help (a bad contract, an unknown version, a broken business rule).
- :class:`TransientError` (and any exception we did not classify) is retried with exponential
  backoff, then dead-lettered when the retries run out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class DualWriteError(Exception):
    """Root of every error the project raises on purpose."""


class PermanentError(DualWriteError):
    """Raised when a message can never succeed as it is; it is dead-lettered at once."""


class InvalidContract(PermanentError):
    """Raised when a message does not match its contract (bad JSON, a missing or unknown field)."""


class UnknownContract(PermanentError):
    """Raised when a message names a contract the registry does not know."""


class UnknownContractVersion(PermanentError):
    """Raised when a message names a version its contract does not have."""


class WrongQueue(PermanentError):
    """Raised when a message arrives on a queue whose consumer does not handle its contract."""


class BusinessRuleViolation(PermanentError):
    """Raised when a command or row breaks a rule of the business (wrong company, disabled category)."""


class PartsFailed(PermanentError):
    """Raised when some parts of a message carrying several documents failed for good and the others
    were applied: the message is dead-lettered with each failed part's reason, and a replay applies
    only the failed parts (the others are in the inbox)."""

    def __init__(self, failed: "list[tuple[Any, PermanentError]]", parts: int) -> None:
        self.failed = failed
        reasons = "; ".join(
            f"part {part.message_id} ({part.correlation_id}): {type(error).__name__}: {error}" for part, error in failed
        )
        super().__init__(f"{len(failed)} of the message's {parts} parts failed, the others were applied: {reasons}")


class Refused(PermanentError):
    """Raised when a message is not heard at all: it is not a message, or not from a sender the queue
    trusts. Nothing of it is applied; it is dead-lettered at once with its ``reason`` (an alert keys on it),
    and it never counts as a table map's failure (a stranger must not be able to pause a map)."""

    reason = "refused"


class Unauthenticated(Refused):
    """Raised when a message has no valid signature: unsigned, an unknown or revoked key, or bytes that
    are not what the key signed (forged or tampered)."""

    reason = "unauthenticated"


class Forbidden(Refused):
    """Raised when a message is signed by a known key whose sender may not write this queue or this
    contract, or whose sender is not the envelope's ``source``."""

    reason = "forbidden"


class ConflictingDuplicate(Refused):
    """Raised when a message id already applied arrives again with other bytes: a replay with another payload."""

    reason = "conflicting duplicate"


class Malformed(Refused):
    """Raised when the bytes on a queue are not a message this system sends (not JSON, not a dramatiq
    message, the wrong actor or arguments, too large); they are taken off the queue and kept, size-capped."""

    reason = "malformed"


class TransientError(DualWriteError):
    """Raised when a failure may pass by itself (a lock timeout, a service restarting)."""


class NotYet(TransientError):
    """Raised when a message arrived before one it depends on (approve before submit); retried later."""


class DatabaseUnavailable(TransientError):
    """Raised when a side's database stayed unreachable longer than a consumer waits for it
    (``DUALWRITE_DATABASE_OUTAGE_WAIT_SECONDS``): the message is retried like any transient failure.
    A shorter outage is waited out without counting a retry (``shared.database_outage``)."""


class ConfigurationError(DualWriteError):
    """Raised when settings are missing or inconsistent; the process cannot start."""


def error_kind(exc: BaseException) -> str:
    """The family an exception belongs to, as operators read it in dead letters."""
    return "permanent" if isinstance(exc, PermanentError) else "transient"


class Refusals:
    """Collects the problem of every row of a batch, so one error names them all.

    A batch with any broken rule is refused for good; one whose only problems are messages that
    have not arrived yet (:class:`NotYet`) is retried later.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.problems: list[tuple[str, BusinessRuleViolation | NotYet]] = []

    @contextmanager
    def row(self, where: str = "") -> Iterator[None]:
        try:
            yield
        except (BusinessRuleViolation, NotYet) as problem:
            self.problems.append((where, problem))

    def raise_if_any(self) -> None:
        if not self.problems:
            return
        text = "; ".join(f"{where}: {problem}" if where else str(problem) for where, problem in self.problems)
        if any(isinstance(problem, PermanentError) for _, problem in self.problems):
            raise BusinessRuleViolation(f"{self.what} refused, nothing written: {text}")
        raise NotYet(f"{self.what} waits, nothing written: {text}")


def refuse_if_any(problems: list[str], what: str) -> None:
    """Raise one BusinessRuleViolation naming every problem, so an operator fixes all in one go."""
    if problems:
        raise BusinessRuleViolation(f"{what} refused, nothing written: " + "; ".join(problems))
