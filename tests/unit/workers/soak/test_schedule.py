"""The soak's fault plan and its waves of posts: seeded, complete, inside the run."""

from __future__ import annotations

import pytest

from workers.bench.options import BadOptions
from workers.soak.options import FAULT_KINDS, SoakOptions
from workers.soak.run import waves
from workers.soak.schedule import LEAD, LOSS_LATEST, SIDES, TAIL, plan

COUNTS = {"kill": 20, "broker-restart": 3, "broker-loss": 1, "db-restart": 2, "conn-kill": 10}


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    first = plan(COUNTS, 120.0, seed=7)

    assert plan(COUNTS, 120.0, seed=7) == first
    assert [f.at for f in plan(COUNTS, 120.0, seed=8)] != [f.at for f in first]


def test_every_fault_asked_for_is_planned_once_in_time_order_inside_the_run() -> None:
    faults = plan(COUNTS, 120.0, seed=13)

    assert {kind: sum(f.kind == kind for f in faults) for kind in FAULT_KINDS} == COUNTS
    assert [f.number for f in faults] == list(range(1, len(faults) + 1))
    assert [f.at for f in faults] == sorted(f.at for f in faults)
    assert all(120.0 * LEAD <= f.at <= 120.0 * (1 - TAIL) for f in faults)
    assert all(f.at <= 120.0 * LOSS_LATEST for f in faults if f.kind == "broker-loss")


def test_kills_take_turns_over_the_sides_and_alternate_group_and_child() -> None:
    kills = sorted((f for f in plan({"kill": 6}, 60.0, seed=1)), key=lambda f: f.number)
    targets = [f.target for f in kills]

    assert all(target is not None for target in targets)
    sides = [t.split("/")[0] for t in targets]  # type: ignore[union-attr]
    modes = [t.split("/")[1] for t in targets]  # type: ignore[union-attr]
    assert {side: sides.count(side) for side in SIDES} == dict.fromkeys(SIDES, 2)
    assert sorted(modes) == ["child"] * 3 + ["group"] * 3
    assert all(f.target is None for f in plan({"db-restart": 2, "conn-kill": 2}, 60.0, seed=1))


def test_an_unknown_fault_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds: flood"):
        plan({"flood": 1}, 60.0, seed=1)


def test_waves_post_every_report_once_spread_over_the_duration() -> None:
    schedule = waves(800, 120.0)

    numbers = [n for _, first, last in schedule for n in range(first, last + 1)]
    assert numbers == list(range(1, 801))
    assert len(schedule) == 120
    assert schedule[0][0] == 0.0 and schedule[-1][0] < 120.0
    # fewer reports than seconds: one report a wave
    assert waves(3, 60.0) == [(0.0, 1, 1), (20.0, 2, 2), (40.0, 3, 3)]


def test_the_acceptance_run_is_the_default_and_options_out_of_range_are_refused() -> None:
    options = SoakOptions().check()
    assert (options.expected_lines, options.kills, options.broker_restarts, options.broker_losses, options.db_restarts) == (20_000, 20, 3, 1, 2)
    assert SoakOptions(lines=1001, lines_per_report=25).reports == 41
    for changes, message in [({"lines": 0}, "--lines"), ({"broker": "kafka"}, "--broker"), ({"duration": 0}, "--duration"), ({"kills": -1}, "--kills")]:
        with pytest.raises(BadOptions, match=message):
            SoakOptions(**changes).check()  # type: ignore[arg-type]
