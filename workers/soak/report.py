"""What a soak found: the table per fault, the hops, the balances, the dead letters, the verdict.

Lost and doubled expense lines are counted once in the ``total`` row. In a fault's row they count
when the line's report was in flight while that fault was in effect: the report's window (its post
published .. it was done, or the end of the run) overlaps the fault's (injected .. recovered, or
the end of the run). A line can so count in several rows; the total is the truth, the rows say
which faults to suspect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.bench.measure import percentile
from workers.soak.check import DeadLetter, HopCheck
from workers.soak.faults import InjectedFault
from workers.soak.options import FAULT_KINDS


@dataclass
class FaultRow:
    kind: str
    planned: int
    injected: int
    failed_injections: int
    lost: int
    doubled: int
    recovered: int
    recovery_p50: float | None
    recovery_max: float | None

    def as_json(self) -> dict[str, Any]:
        return vars(self).copy()


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def fault_rows(
    faults: list[InjectedFault],
    planned: dict[str, int],
    report_windows: dict[str, tuple[float, float]],
    lost_lines: set[str],
    doubled_lines: set[str],
    end: float,
) -> list[FaultRow]:
    """One row per fault kind planned (see the module's docstring for how lines are attributed)."""
    rows = []
    for kind in FAULT_KINDS:
        if not planned.get(kind):
            continue
        mine = [f for f in faults if f.kind == kind]
        happened = [f for f in mine if f.error is None]
        windows = [(f.injected_at, f.recovered_at if f.recovered_at is not None else end) for f in happened]

        def hit(line: str) -> bool:
            report = line.rpartition("-")[0]
            window = report_windows.get(report)
            return window is not None and any(overlaps(window, each) for each in windows)

        recoveries = [f.recovery_seconds for f in happened if f.recovery_seconds is not None]
        rows.append(
            FaultRow(
                kind=kind,
                planned=planned[kind],
                injected=len(happened),
                failed_injections=len(mine) - len(happened),
                lost=sum(1 for line in lost_lines if hit(line)),
                doubled=sum(1 for line in doubled_lines if hit(line)),
                recovered=len(recoveries),
                recovery_p50=round(percentile(recoveries, 50), 1) if recoveries else None,
                recovery_max=round(max(recoveries), 1) if recoveries else None,
            )
        )
    return rows


@dataclass
class SoakResult:
    command: str
    options: dict[str, Any]
    broker: str
    reports: int
    expected_lines: int
    faults: list[InjectedFault]
    rows: list[FaultRow]
    hops: list[HopCheck]
    lost_lines: int
    doubled_lines: int
    reconciliation: list[dict[str, Any]]
    dead_letters: list[DeadLetter]
    #: Top-level worker exits the soak did not cause (it started the side again).
    unexpected_exits: list[dict[str, Any]] = field(default_factory=list)
    #: Operator repairs (``dualwrite reconcile --repair``) the soak ran while the flow was stuck.
    repairs: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Every document reached project cost before the deadline.
    finished: bool = True

    @property
    def reconcile_ok(self) -> bool:
        return bool(self.reconciliation) and all(company["ok"] for company in self.reconciliation)

    @property
    def ok(self) -> bool:
        return self.lost_lines == 0 and self.doubled_lines == 0 and self.reconcile_ok and all(h.ok for h in self.hops)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "command": self.command,
            "broker": self.broker,
            "options": self.options,
            "reports": self.reports,
            "expected_lines": self.expected_lines,
            "finished": self.finished,
            "lost_lines": self.lost_lines,
            "doubled_lines": self.doubled_lines,
            "reconcile_ok": self.reconcile_ok,
            "table": [row.as_json() for row in self.rows],
            "hops": [hop.as_json() for hop in self.hops],
            "reconciliation": self.reconciliation,
            "dead_letters": [letter.as_json() for letter in self.dead_letters],
            "faults": [fault.as_json() for fault in self.faults],
            "unexpected_exits": self.unexpected_exits,
            "repairs": self.repairs,
            "timings": self.timings,
            "notes": self.notes,
        }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def summary(result: SoakResult) -> list[str]:
    """The table and the checks, for people."""
    out = [
        f"dualwrite soak on {result.broker} (private servers): {result.reports:,} reports, {result.expected_lines:,} expense lines",
        f"  {result.command}",
        "",
        f"{'fault':<16}{'count':>7}{'lost':>7}{'doubled':>9}{'recovery p50':>14}{'max':>10}  not recovered",
    ]
    for row in result.rows:
        count = f"{row.injected}" + (f"/{row.planned}" if row.injected != row.planned else "")
        out.append(
            f"{row.kind:<16}{count:>7}{row.lost:>7}{row.doubled:>9}{_seconds(row.recovery_p50):>14}{_seconds(row.recovery_max):>10}"
            f"  {row.injected - row.recovered}"
        )
    out.append(f"{'total':<16}{sum(r.injected for r in result.rows):>7}{result.lost_lines:>7}{result.doubled_lines:>9}")
    out += ["", "hops (expected / found / missing / doubled):"]
    for hop in result.hops:
        mark = "ok  " if hop.ok else "FAIL"
        extra = f", {len(hop.unexpected)} unexpected" if hop.unexpected else ""
        out.append(f"  {mark} {hop.hop:<22}{hop.expected:>8,} {hop.found:>8,} {len(hop.missing):>6,} {sum(hop.doubled.values()):>6,}{extra}")
        for label, keys in (("missing", hop.missing), ("doubled", list(hop.doubled))):
            if keys:
                out.append(f"       {label}: {', '.join(str(k) for k in keys[:8])}{' ...' if len(keys) > 8 else ''}")
    out += ["", "balances (reconcile, per legal entity):"]
    for company in result.reconciliation:
        mark = "ok  " if company["ok"] else "FAIL"
        detail = "; ".join(company["problems"]) or (
            f"integration {company['expense_integration_balance']}, project cost {company['project_cost_balance']} = "
            f"cost actuals {company['cost_actuals_total']} {company['accounting_currency']}, vouchers balanced, "
            f"{company['counts']['posted_project_expense_lines']:,} lines everywhere"
        )
        out.append(f"  {mark} {company['legal_entity']}: {detail}")
    out.append("")
    if result.dead_letters:
        out.append(f"dead letters: {sum(d.count for d in result.dead_letters)}")
        for letter in result.dead_letters:
            out.append(f"  {letter.side}: {letter.count} x {letter.contract} from {letter.queue}: {letter.error_type}: {letter.error[:160]}")
    else:
        out.append("dead letters: 0 on every side")
    failed = [f for f in result.faults if f.error]
    for fault in failed:
        out.append(f"fault #{fault.planned.number} {fault.kind} could not be injected: {fault.error}")
    for exit_ in result.unexpected_exits:
        out.append(f"unexpected exit: the {exit_['side']} worker exited with {exit_['status']} at +{exit_['offset']:.1f} s; started again")
    for repair in result.repairs:
        out.append(f"operator repair at +{repair['offset']:.1f} s (flow stuck): {repair['summary']}")
    out += result.notes
    timings = result.timings
    if timings:
        out.append(
            f"posting {timings.get('posting_seconds', 0):.0f} s, then every document at project cost after "
            f"{timings.get('drain_seconds', 0):.0f} s more; run {timings.get('total_seconds', 0):.0f} s"
        )
    verdict = "ok" if result.ok else "FAIL"
    out.append(
        f"{verdict}: {result.lost_lines} lost, {result.doubled_lines} doubled, reconcile {'ok' if result.reconcile_ok else 'FAILED'}"
        + ("" if result.finished else " (not every document reached project cost before the deadline)")
    )
    return out
