"""Relay latency: from a command's commit to the first handler of its event done (committed).

    python bench/relay_latency.py [samples]

On a fresh database (DATABASE_URL's server, BENCH_DB_NAME, default ``bench_relay``) and a flushed
BENCH_REDIS_URL (default redis://127.0.0.1:6379/15; broker and cache of the bench's processes only),
with WORKERS worker processes (as in bench/bill_run.py): ``samples`` times, a customer registers
(CustomerRegistered → Billing's account, the welcome e-mail, Analytics' name). The clock starts in the
commit's first after-commit hook and stops when the bench sees one of that event's deliveries DONE
(a delivery is marked done in the handler's own transaction, so seeing it means the handler committed).
Printed: p50/p99/max, idle and then loaded (a second process registering RELAY_LOAD_RATE customers a
second, default 20 — each about four deliveries — on the same workers).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BENCH_DB_NAME", "bench_relay")

from bench import bill_run  # noqa: E402  (its database, Redis and worker helpers)

#: The loaded system: customers registered at this steady rate per second by a second process. A
#: loader as fast as it can go only measures how long the backlog it builds has grown (unbounded).
LOAD_RATE = float(os.environ.get("RELAY_LOAD_RATE", "20"))
LOADER = f"""
import time, uuid
from subscriptions import commands
next_at = time.monotonic()
while True:
    commands.register_customer(name="Load", email=f"l{{uuid.uuid4().hex}}@bench.example", currency="USD", country="US")
    next_at += 1 / {LOAD_RATE}
    time.sleep(max(0.0, next_at - time.monotonic()))
"""


def measure(samples: int) -> list[float]:
    from sharedkernel.bus import dispatch_committed
    from sharedkernel.models import EventDelivery, StoredEvent
    from sharedkernel.signals import events_committed
    from subscriptions import commands

    started: list[float] = []

    def mark(**kwargs):
        started.append(time.perf_counter())

    # the clock starts when the commit is announced, before the bus dispatches (receivers run in order)
    events_committed.disconnect(dispatch_uid="bench.relay_latency")
    events_committed.disconnect(dispatch_uid="sharedkernel.dispatch_committed")
    events_committed.connect(mark, dispatch_uid="bench.relay_latency", weak=False)
    events_committed.connect(dispatch_committed, dispatch_uid="sharedkernel.dispatch_committed")
    out = []
    for i in range(samples):
        started.clear()
        customer, _ = commands.register_customer(
            name=f"C{i}", email=f"r{uuid.uuid4().hex}@bench.example", currency="USD", country="US"
        )
        position = StoredEvent.objects.filter(aggregate_id=str(customer.pk)).values_list("pk", flat=True).first()
        deadline = time.monotonic() + 60
        while not EventDelivery.objects.filter(event_id=position, status="done").exists():
            if time.monotonic() > deadline:
                raise SystemExit("no handler done after 60 s")
            time.sleep(0.001)
        out.append((time.perf_counter() - started[0]) * 1000)
        time.sleep(0.02)
    return out


def report(label: str, ms: list[float]) -> None:
    q = statistics.quantiles(ms, n=100, method="inclusive")  # never past the max
    print(f"{label:>8} {len(ms):>7} {q[49]:>8.1f} {q[98]:>8.1f} {max(ms):>8.1f}", flush=True)


def one(samples: int) -> None:
    bill_run.setup_django()
    from django.db import connections

    connections.close_all()
    count_dir = tempfile.mkdtemp(prefix="relay-")
    workers = bill_run.start_workers(count_dir)
    loader = None
    try:
        measure(5)  # warm-up: connections, imports
        report("idle", measure(samples))
        loader = subprocess.Popen(
            [sys.executable, "-c", f"import django\ndjango.setup()\n{LOADER}"],
            cwd=ROOT,
            env=dict(os.environ, DEBUG="0"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(3)
        report(f"{LOAD_RATE:g}/s", measure(samples))
    finally:
        if loader is not None:
            loader.terminate()
            loader.wait(timeout=30)
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=30)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        os.environ.update(bill_run.BENCH_ENV)
        one(int(sys.argv[2]))
    else:
        samples = int(sys.argv[1]) if len(sys.argv) > 1 else 200
        print(f"relay latency: commit → first handler done, {bill_run.WORKERS} worker processes, ms")
        print(f"{'system':>8} {'samples':>7} {'p50':>8} {'p99':>8} {'max':>8}")
        bill_run.recreate_database()
        bill_run.flush_redis()
        code = subprocess.run(
            [sys.executable, __file__, "--one", str(samples)], cwd=ROOT, env=dict(os.environ, **bill_run.BENCH_ENV)
        )
        raise SystemExit(code.returncode)
