"""Who may write what: the authorization table, declared as data in ``contracts/senders.yaml``.

A sender is a side (``finance``, ``dataverse``, ``bridge``), an upstream system declared in the
file, or ``operator``. Each signs with keys of its own (``shared.keys``); a receiver hears a
message only when the key's sender may write that contract to that queue:

- a table map's ``<map>.<side>-to-bridge`` hears that side, ``<map>.bridge-to-<side>`` the bridge;
- a command queue hears, per contract, the upstream systems given that command, or the side the
  ``internal`` section names;
- operators (replays and edits of dead letters) are heard everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.catalog import COMMAND_QUEUES, CONTRACTS
from contracts.envelope import Side
from contracts.queues import TABLE_MAPS, Queue, all_queues
from contracts.registry import Kind

DECLARATIONS = Path(__file__).with_name("senders.yaml")

OPERATOR = "operator"
SIDES: tuple[str, ...] = (Side.FINANCE.value, Side.DATAVERSE.value, Side.BRIDGE.value)
SENDER_NAME = r"^[a-z][a-z0-9-]{0,39}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpstreamSystem(_Frozen):
    description: str = ""
    commands: tuple[str, ...] = Field(min_length=1)


class _Declarations(_Frozen):
    internal: dict[str, tuple[str, ...]]
    upstream: dict[str, UpstreamSystem]


@dataclass(frozen=True)
class Authorization:
    """Which senders each queue hears, per contract (``None`` key: any contract of the queue)."""

    by_queue: dict[str, dict[str | None, frozenset[str]]]
    upstream: dict[str, UpstreamSystem]

    def senders(self, queue_name: str, contract: str | None = None) -> frozenset[str]:
        """Who may write ``contract`` (any contract, when None) to the queue; operators always may."""
        rules = self.by_queue.get(queue_name, {})
        if contract is None:
            heard = frozenset().union(*rules.values()) if rules else frozenset()
        else:
            heard = rules.get(contract, frozenset()) | rules.get(None, frozenset())
        return heard | {OPERATOR}

    def upstream_for(self, contract: str) -> list[str]:
        """The upstream systems that may send a command, in declaration order."""
        return [name for name, system in self.upstream.items() if contract in system.commands]

    def is_internal(self, contract: str) -> bool:
        """Sent only by the workers (a table map's rows, or an internal command): never by ``publish``."""
        return not self.upstream_for(contract)

    @property
    def senders_with_keys(self) -> tuple[str, ...]:
        """Everyone who signs: the sides, each upstream system, the operators."""
        return (*SIDES, *self.upstream, OPERATOR)


def source_of(sender: str) -> Side | None:
    """The envelope ``source`` a sender's messages carry (None: an operator may resend any)."""
    if sender == OPERATOR:
        return None
    if sender in SIDES:
        return Side(sender)
    return Side.UPSTREAM


def build_authorization(text: str, where: str = "senders.yaml") -> Authorization:
    try:
        declared = _Declarations.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as error:
        raise ValueError(f"{where}: {error}") from None
    commands = {c.name for c in CONTRACTS if c.kind is Kind.COMMAND}
    problems: list[str] = []
    for name, system in declared.upstream.items():
        if not re.match(SENDER_NAME, name) or name in (*SIDES, OPERATOR):
            problems.append(f"upstream system {name!r}: a lower-case name other than a side's or 'operator'")
        for contract in system.commands:
            if contract not in commands or contract in declared.internal:
                problems.append(f"upstream system {name!r}: {contract!r} is not an upstream command")
    for contract, senders in declared.internal.items():
        if contract not in commands:
            problems.append(f"internal: {contract!r} is not a command contract")
        problems += [f"internal: {contract!r}: {s!r} is not a side" for s in senders if s not in SIDES]
    given = set(declared.internal) | {c for system in declared.upstream.values() for c in system.commands}
    problems += [f"command {c!r}: nobody may send it (declare it internal or give it to an upstream system)" for c in sorted(commands - given)]
    if problems:
        raise ValueError(f"{where}: " + "; ".join(problems))

    by_queue: dict[str, dict[str | None, frozenset[str]]] = {queue.name: {} for queue in all_queues()}
    for each in TABLE_MAPS:
        for queue in each.queues:
            sender = Side.BRIDGE.value if queue.name.split(".")[-1].startswith("bridge-to-") else _writer(queue)
            by_queue[queue.name][None] = frozenset({sender})
    for contract, queue in COMMAND_QUEUES.items():
        senders = set(declared.internal.get(contract, ()))
        senders |= {name for name, system in declared.upstream.items() if contract in system.commands}
        by_queue[queue.name][contract] = frozenset(senders)
    return Authorization(by_queue=by_queue, upstream=dict(declared.upstream))


def _writer(queue: Queue) -> str:
    """``msdyn_expenses.finance-to-bridge`` is written by finance."""
    return queue.name.rsplit(".", 1)[1].split("-to-")[0]


@cache
def authorization() -> Authorization:
    """The declared table, checked against the contracts and queues at first use."""
    return build_authorization(DECLARATIONS.read_text(encoding="utf-8"))
