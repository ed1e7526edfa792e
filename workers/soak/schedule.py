"""When each fault strikes: a seeded plan, made before the run. Pure, no I/O.

Every fault of every kind gets a moment drawn uniformly from the middle of the run (after the
first ``LEAD`` and before the last ``TAIL`` of ``--duration``, so the flow is loaded before the
first fault and the last one still meets traffic; a broker loss, which needs messages waiting,
in the first half). The same seed and options give the same plan,
so a failing run can be replayed. Kills take turns over the sides (finance, Dataverse, bridge,
starting at a seeded side) and alternate between killing one worker process of a side (its
supervisor starts another) and the whole process group (supervisor and children, as a container
runtime kills them: the soak starts the side again, as ``restart: unless-stopped`` does).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from workers.soak.options import FAULT_KINDS

SIDES = ("finance", "dataverse", "bridge")
#: ``group``: the supervisor and its worker processes; ``child``: one worker process of the supervisor.
KILL_MODES = ("group", "child")
#: Shares of the run before the first and after the last fault.
LEAD, TAIL = 0.05, 0.10
#: A broker loss strikes in the first half: it needs messages waiting, so posts must still be coming
#: (a restart or a kill waiting for its side can push the faults after it well past their moment).
LOSS_LATEST = 0.5


@dataclass(frozen=True)
class PlannedFault:
    number: int
    kind: str
    #: Seconds after the first post.
    at: float
    #: A kill's side and mode (``finance/group``); None for the other kinds.
    target: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def plan(counts: dict[str, int], duration: float, seed: int) -> list[PlannedFault]:
    """Every fault of ``counts`` (kind -> how many) at a seeded moment of ``duration`` seconds, in time order."""
    unknown = set(counts) - set(FAULT_KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    rng = random.Random(f"soak/{seed}")
    low, high = duration * LEAD, duration * (1 - TAIL)
    drawn: list[tuple[float, str, str | None]] = []
    first_side = rng.randrange(len(SIDES))
    for kind in FAULT_KINDS:
        for index in range(counts.get(kind, 0)):
            at = round(rng.uniform(low, duration * LOSS_LATEST if kind == "broker-loss" else high), 3)
            target = None
            if kind == "kill":
                target = f"{SIDES[(first_side + index) % len(SIDES)]}/{KILL_MODES[index % len(KILL_MODES)]}"
            drawn.append((at, kind, target))
    drawn.sort(key=lambda fault: (fault[0], FAULT_KINDS.index(fault[1])))
    return [PlannedFault(number, kind, at, target) for number, (at, kind, target) in enumerate(drawn, start=1)]
