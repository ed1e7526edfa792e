"""``--initial-sync ROWS``: the rows per second of an initial sync, as an operator starts one.

The map is ``msdyn_transactioncategories`` (Dataverse masters transaction categories; finance
makes four shared categories of each). ROWS categories ``IS0000001``... are written straight
into Dataverse's own store in bulk (``workers.dataverse.repository``), as rows older than the
integration would be: nothing is published for them. Then the run is started the way
``dualwrite maps initial-sync msdyn_transactioncategories --master dataverse`` starts it
(``workers.operations.initial_sync.start``: the run recorded in the bridge, the map
``initializing``, the first page command to Dataverse) and timed until finance holds every row
(its expense-class shared category), and until the bridge has the run finished and settled.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from contracts.envelope import Side
from contracts.transaction_categories import MSDYN_TRANSACTIONCATEGORIES
from workers.bench import measure
from workers.bench.load import chunks
from workers.bench.prepare import Pipeline
from workers.bench.services import BenchFailed
from workers.dataverse.repository import save_transaction_categories
from workers.finance import tables as fin
from workers.operations import initial_sync

MAP = MSDYN_TRANSACTIONCATEGORIES.name
MASTER = Side.DATAVERSE
PREFIX = "IS"
#: Rows per insert while loading the master's store (untimed).
LOAD_CHUNK = 5_000


def category_rows(count: int, start: int = 1) -> list[dict[str, Any]]:
    """The transaction categories the phase loads: ``IS0000001``... (codes of the contract's pattern)."""
    return [
        {"category": f"{PREFIX}{n:07d}", "name": f"Initial sync category {n}", "description": None}
        for n in range(start, start + count)
    ]


@dataclass
class InitialSyncResult:
    rows: int
    page_size: int
    #: Start command -> finance holds every row.
    seconds: float
    #: Start command -> the bridge has the run finished and every row carried or superseded.
    settled_seconds: float
    load_seconds: float
    run: dict[str, Any]
    cpu: dict[str, float]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "table_map": MAP,
            "master": MASTER.value,
            "rows": self.rows,
            "page_size": self.page_size,
            "load_seconds": round(self.load_seconds, 3),
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "settled_seconds": round(self.settled_seconds, 3),
            "run": self.run,
            "cpu_seconds": self.cpu,
        }


def synced_rows(pipeline: Pipeline) -> int:
    """The phase's categories finance holds (one expense-class shared category each)."""
    shared = fin.shared_categories.c
    return pipeline.scalar(
        "finance",
        select(func.count()).where(shared.transaction_class == "expense", shared.category.startswith(PREFIX, autoescape=True)),
    ) or 0


def initial_sync_phase(pipeline: Pipeline, rows: int, page_size: int, *, broker_cpu: str) -> InitialSyncResult:
    """Load ``rows`` categories into Dataverse's store, start the initial sync, time it until finance holds them all."""
    dataverse = pipeline.database("dataverse")
    loading = time.monotonic()
    for batch in chunks(category_rows(rows), LOAD_CHUNK):
        with dataverse.engine.begin() as connection:
            save_transaction_categories(connection, batch)
    load_seconds = time.monotonic() - loading
    pipeline.progress(f"initial sync: {rows:,} transaction categories written to Dataverse's store in {load_seconds:.1f} s (untimed)")

    workers = [process.pid for process in pipeline.services.processes]
    cpu_before = measure.cpu_snapshot(workers, broker=broker_cpu)
    first = time.time()
    started = initial_sync.start(
        bridge=pipeline.database("bridge"),
        master_database=dataverse,
        broker=pipeline.broker,
        registry=pipeline.registry,
        ring=pipeline.ring,
        map_name=MAP,
        master=MASTER,
        page_size=page_size,
        operator="dualwrite bench",
    )
    run_id = started.run.run_id
    pipeline.progress(
        f"initial sync: run {run_id} of {MAP} from {MASTER.value} started ({started.run.total_rows:,} rows on the master, "
        f"pages of {page_size}); waiting until finance holds all {rows:,}"
    )
    deadline = first + pipeline.timeout
    last_shown = time.monotonic()
    done = 0
    while True:
        done = synced_rows(pipeline)
        if done >= rows:
            end = time.time()
            cpu_after = measure.cpu_snapshot(workers, broker=broker_cpu)
            break
        pipeline.check()
        if time.time() > deadline:
            raise BenchFailed(f"initial sync: finance holds {done:,} of {rows:,} rows after {pipeline.timeout:g} s (--timeout)")
        if time.monotonic() - last_shown >= 2:
            pipeline.progress(f"  initial sync: {done:,}/{rows:,} rows in finance")
            last_shown = time.monotonic()
        time.sleep(0.05)
    try:
        progress = initial_sync.wait_for(pipeline.database("bridge"), run_id, timeout=max(deadline - time.time(), 1.0))
    except initial_sync.Timeout:
        raise BenchFailed(f"initial sync: run {run_id} not finished in the bridge within {pipeline.timeout:g} s (--timeout)") from None
    settled = time.time()
    if progress.failures:
        raise BenchFailed(f"initial sync: {progress.rows_failed} row(s) refused by the master, first: {progress.failures[0]}")
    return InitialSyncResult(
        rows=rows,
        page_size=page_size,
        seconds=end - first,
        settled_seconds=settled - first,
        load_seconds=load_seconds,
        run={
            "run_id": run_id,
            "pages": progress.pages,
            "rows_read": progress.rows_read,
            "rows_carried": progress.rows_carried,
            "rows_superseded": progress.rows_superseded,
            "rows_failed": progress.rows_failed,
        },
        cpu=per_rows(measure.cpu_used(cpu_before, cpu_after, rows, os.cpu_count() or 1)),
    )


def per_rows(cpu: dict[str, float]) -> dict[str, float]:
    """measure.cpu_used's figures, named for rows rather than expense lines."""
    shown = dict(cpu)
    shown["per_1000_rows"] = shown.pop("per_1000_lines")
    shown["capacity_rows_per_second"] = shown.pop("capacity_lines_per_second")
    return shown
