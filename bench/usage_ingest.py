"""Usage ingestion benchmark through the real API process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/usage_ingest.py \
        [RECORDS=1000000] [CLIENTS=4]

From an empty PostgreSQL database (``bench_usage``, or BENCH_DB_NAME, dropped and
re-created on DATABASE_URL's server): 2,000 active subscriptions on metered plans,
then gunicorn serving the app (``API_WORKERS`` processes, default 4; Redis at
BENCH_REDIS_URL for the throttle's cache) and CLIENTS client processes POSTing
batches of 1,000 records to /api/v1/usage/ (1 % of them repeats of keys already
sent, so deduplication is exercised). Prints records/s, p50/p99 request latency,
the freshness lag: how long after a POST returns the GET usage endpoint shows it
(p50/p99 over sampled calls), and the CPU spent per 1,000 records by the API
workers, their PostgreSQL backends and the clients (what the rate is made of on a
shared machine). Then the same records one per POST (SINGLE_SECONDS), side by side.
BENCH_PROFILE=<file> attaches py-spy to the API workers for the batch phase.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _common, _fresh  # noqa: E402

BASE_DB, DB_NAME, DB_URL = _fresh.database("bench_usage")
SUBSCRIPTIONS = 2000
API_WORKERS = int(os.environ.get("API_WORKERS", "4"))
SINGLE_SECONDS = float(os.environ.get("SINGLE_SECONDS", "20"))
PROFILE = os.environ.get("BENCH_PROFILE")  # a file name: py-spy records the API workers in the batch phase
PROFILE_FORMAT = os.environ.get("BENCH_PROFILE_FORMAT", "raw")  # raw (collapsed stacks), speedscope, flamegraph
ENV = dict(
    os.environ,
    DATABASE_URL=DB_URL,
    DEBUG="0",
    SECRET_KEY=secrets.token_hex(16),
    ALLOWED_HOSTS="127.0.0.1",
    REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
    EVENT_DISPATCH="manual",
    API_THROTTLE_USER="100000000/hour",
    API_THROTTLE_ANON="100000000/hour",
    LOG_LEVEL="WARNING",
    DJANGO_SETTINGS_MODULE="config.settings",
    DB_CONN_MAX_AGE="3600",  # one backend per worker for the whole run, so its CPU can be read
)


def prepare() -> tuple[str, list[str]]:
    _fresh.recreate(BASE_DB, DB_NAME)
    os.environ.update(ENV)
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from sharedkernel.values import Money
    from subscriptions import commands
    from subscriptions.models import Customer, Subscription

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_user("bench", "bench@example.com", "x", is_staff=True)
    token = Token.objects.create(user=staff).key
    plan = commands.define_plan(
        code="api-m",
        name="API",
        tier="professional",
        interval="month",
        trial_days=0,
        prices=[Money("50.00", "USD")],
        included_usage={"api_calls": 1_000_000, "storage_gb": 100},
        overage_rates={"api_calls": [Money("0.01", "USD")], "storage_gb": [Money("0.10", "USD")]},
    )
    now = timezone.now()
    customers, subs = [], []
    for i in range(SUBSCRIPTIONS):
        c = _common.customer_row(i, name=f"C{i}", currency="USD", country="GB", created_at=now)
        customers.append(c)
        subs.append(
            _common.active_subscription_row(
                c, plan, price_minor=5000, start=now - timedelta(days=1), end=now + timedelta(days=29), created_at=now
            )
        )
    Customer.objects.bulk_create(customers)
    Subscription.objects.bulk_create(subs)
    return token, [str(s.id) for s in subs]


def client(args) -> dict:
    import requests

    base, token, sub_ids, requests_to_send, batch, seed, probe, start_at = args
    rng = random.Random(seed)
    session = requests.Session()
    session.headers.update({"Authorization": f"Token {token}", "Content-Type": "application/json"})
    latencies, lags, sent_keys, accepted, duplicates = [], [], [], 0, 0
    now = datetime.now(UTC)
    bodies = []  # built before the clock starts, so the client's own work is not measured
    for n in range(requests_to_send):
        records = []
        for k in range(batch):
            if sent_keys and rng.random() < 0.01:
                sub, key = rng.choice(sent_keys)  # a retry of something already sent
            else:
                sub, key = rng.choice(sub_ids), f"{seed}-{n}-{k}"
                sent_keys.append((sub, key))
            records.append(
                {
                    "subscription": sub,
                    "metric": "api_calls",
                    "quantity": rng.randint(1, 20),
                    "timestamp": (now - timedelta(seconds=rng.randint(0, 3600))).isoformat(),
                    "idempotency_key": key,
                }
            )
        bodies.append((records, json.dumps(records if batch > 1 else records[0])))
    time.sleep(max(0.0, start_at - time.time()))
    started, cpu_started = time.time(), time.process_time()
    for n, (records, body) in enumerate(bodies):
        t0 = time.perf_counter()
        response = session.post(f"{base}/api/v1/usage/", data=body)
        latencies.append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
        result = response.json()
        accepted += result["accepted"]
        duplicates += result["duplicates"]
        if probe and n % 10 == 0:  # freshness: does GET show what was just accepted?
            sub = records[-1]["subscription"]
            expected = sum(r["quantity"] for r in records if r["subscription"] == sub)
            t1 = time.perf_counter()
            while True:
                got = session.get(f"{base}/api/v1/subscriptions/{sub}/usage/").json()["metrics"]
                used = next(m["used"] for m in got if m["metric"] == "api_calls")
                if used >= expected:
                    break
            lags.append(time.perf_counter() - t1)
    return {
        "latencies": latencies,
        "lags": lags,
        "accepted": accepted,
        "duplicates": duplicates,
        "started": started,
        "ended": time.time(),
        "cpu": time.process_time() - cpu_started,
    }


def run(base, token, sub_ids, *, records: int, clients: int, batch: int, seconds: float | None = None) -> dict:
    per_client = max(1, records // batch // clients)
    if seconds is not None:  # single-record mode: a fixed number of calls sized to ~seconds
        per_client = max(1, int(seconds * 60))
    start_at = time.time() + 5 + per_client * batch / 40_000  # time for every client to build its bodies
    args = [(base, token, sub_ids, per_client, batch, 1000 + i, i == 0, start_at) for i in range(clients)]
    with mp.get_context("spawn").Pool(clients) as pool:
        results = pool.map(client, args)
    wall = max(r["ended"] for r in results) - min(r["started"] for r in results)
    lat = sorted(x for r in results for x in r["latencies"])
    lags = sorted(x for r in results for x in r["lags"])
    sent = sum(len(r["latencies"]) for r in results) * batch
    return {
        "sent": sent,
        "accepted": sum(r["accepted"] for r in results),
        "duplicates": sum(r["duplicates"] for r in results),
        "rate": sent / wall,
        "p50": statistics.median(lat),
        "p99": lat[int(0.99 * (len(lat) - 1))],
        "lag50": statistics.median(lags) if lags else float("nan"),
        "lag99": lags[int(0.99 * (len(lags) - 1))] if lags else float("nan"),
        "wall": wall,
        "client_cpu": sum(r["cpu"] for r in results),
    }


def cpu_seconds(pids) -> float:
    """user + system CPU of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def worker_pids(server_pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()]


def backend_pids() -> list[int]:
    """The PostgreSQL backends serving the bench's database (the API workers' connections)."""
    import psycopg

    with psycopg.connect(DB_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [DB_NAME]
        ).fetchall()
    return [pid for (pid,) in rows]


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    token, sub_ids = prepare()
    port = _common.free_port()
    server = _common.start_api(port, API_WORKERS, ENV, "--log-level", "warning")
    base = f"http://127.0.0.1:{port}"
    try:
        import requests

        for _ in range(100):
            try:
                requests.get(f"{base}/healthz", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)
        profiler = None
        if PROFILE:  # py-spy on every gunicorn worker, during the batch phase only
            profiler = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(server.pid),
                    "--subprocesses",
                    "--rate",
                    "100",
                    "--format",
                    PROFILE_FORMAT,
                    "--output",
                    PROFILE,
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
            )
            time.sleep(1)
        requests.get(f"{base}/api/v1/subscriptions/{sub_ids[0]}/usage/", headers={"Authorization": f"Token {token}"})
        workers = worker_pids(server.pid)
        backends = backend_pids()  # persistent connections (CONN_MAX_AGE): the ones the batch phase uses
        cpu_before = cpu_seconds(workers), cpu_seconds(backends)
        batch = run(base, token, sub_ids, records=total, clients=clients, batch=1000)
        backends = sorted(set(backends) | set(backend_pids()))
        cpu_after = cpu_seconds(workers), cpu_seconds(backends)
        batch["worker_cpu"], batch["backend_cpu"] = (a - b for a, b in zip(cpu_after, cpu_before, strict=True))
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        single = run(base, token, sub_ids, records=0, clients=clients, batch=1, seconds=SINGLE_SECONDS)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"usage ingest: {SUBSCRIPTIONS} subscriptions, gunicorn × {API_WORKERS}, {clients} client processes, "
        f"PostgreSQL {DB_URL}"
    )
    print(
        f"{'mode':<16} {'records':>9} {'accepted':>9} {'dupes':>7} {'records/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'fresh p50 ms':>12} {'fresh p99 ms':>12}"
    )
    per_batch = 1000 * 1000 / batch["sent"]  # ms of CPU per 1,000 records
    print(
        f"CPU per 1,000 records in the batch phase: API workers {batch['worker_cpu'] * per_batch:.1f} ms, "
        f"their PostgreSQL backends {batch['backend_cpu'] * per_batch:.1f} ms, "
        f"clients {batch['client_cpu'] * per_batch:.1f} ms (wall {batch['wall']:.1f} s on {os.cpu_count()} cores)"
    )
    for name, r in (("batch of 1000", batch), ("single record", single)):
        print(
            f"{name:<16} {r['sent']:>9} {r['accepted']:>9} {r['duplicates']:>7} {r['rate']:>10.0f} "
            f"{r['p50'] * 1000:>8.1f} {r['p99'] * 1000:>8.1f} {r['lag50'] * 1000:>12.1f} {r['lag99'] * 1000:>12.1f}"
        )


if __name__ == "__main__":
    main()
