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


class TransientError(DualWriteError):
    """Raised when a failure may pass by itself (a lock timeout, a service restarting)."""


class NotYet(TransientError):
    """Raised when a message arrived before one it depends on (approve before submit); retried later."""


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
