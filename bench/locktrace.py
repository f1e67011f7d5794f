"""Who waits for SQLite's write lock, and who holds it: `bench/submit.py --trace-locks`.

Installed by bench/bench_settings.py in every process of the service when
BENCH_LOCK_TRACE names a directory: each transaction of the default database appends
one line to <directory>/<pid>.log with the process kind (web: gunicorn, cluster: the
django-q2 cluster, serve: the supervisor, other: set-up commands), where the transaction was opened (the innermost frame in orders/ or django_q/),
how long its BEGIN waited for the write lock and how long it then held it until
COMMIT or ROLLBACK returned. Statements outside a transaction (autocommit) are not
counted. For diagnosis only: it costs a stack walk per transaction.
"""

import os
import sys
import time
import traceback
from collections import defaultdict
from pathlib import Path

_KINDS = [("gunicorn", "web"), ("qcluster", "cluster"), (" serve", "serve")]


def install(directory: str, engine: str) -> None:
    from django.db.utils import load_backend

    wrapper = load_backend(engine).DatabaseWrapper
    Path(directory).mkdir(parents=True, exist_ok=True)
    out = open(Path(directory) / f"{os.getpid()}.log", "a", buffering=1)
    command = " ".join(sys.argv)
    kind = next((k for w, k in _KINDS if w in command), "other")
    begin, commit, rollback = (
        wrapper._start_transaction_under_autocommit,
        wrapper._commit,
        wrapper._rollback,
    )

    def site() -> str:
        for frame in reversed(traceback.extract_stack(limit=40)):
            if "/orders/" in frame.filename or "/django_q/" in frame.filename:
                return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.name}"
        return "other"

    def traced_begin(self):
        where = site()  # before asking, so as not to count the stack walk as holding
        asked = time.perf_counter()
        begin(self)
        self._lock_trace = (asked, time.perf_counter(), where)

    def ended(self):
        trace = getattr(self, "_lock_trace", None)
        if trace is not None:
            self._lock_trace = None
            asked, got, where = trace
            out.write(f"{kind} {where} {(got - asked) * 1000:.3f} {(time.perf_counter() - got) * 1000:.3f}\n")

    def traced_commit(self):
        try:
            return commit(self)
        finally:
            ended(self)

    def traced_rollback(self):
        try:
            return rollback(self)
        finally:
            ended(self)

    wrapper._start_transaction_under_autocommit = traced_begin
    wrapper._commit = traced_commit
    wrapper._rollback = traced_rollback


def report(directory: str, *, top: int = 8) -> list[str]:
    """A table of the traced transactions by process kind and site, most held first."""
    rows: dict[tuple[str, str], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for path in Path(directory).glob("*.log"):
        for line in path.read_text().splitlines():
            kind, where, wait, hold = line.split()
            rows[(kind, where)][0].append(float(wait))
            rows[(kind, where)][1].append(float(hold))

    def pct(values, p):
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    lines = [
        f"{'process':8s} {'transaction opened in':40s} {'count':>6s} {'wait p50':>9s} {'wait p99':>9s} "
        f"{'hold p50':>9s} {'hold p99':>9s} {'held, s':>8s}"
    ]
    for (kind, where), (waits, holds) in sorted(rows.items(), key=lambda item: -sum(item[1][1]))[:top]:
        lines.append(
            f"{kind:8s} {where:40s} {len(waits):6d} {pct(waits, 50):9.1f} {pct(waits, 99):9.1f} "
            f"{pct(holds, 50):9.1f} {pct(holds, 99):9.1f} {sum(holds) / 1000:8.1f}"
        )
    return lines
