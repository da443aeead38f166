"""API load benchmark: four real endpoints and a bare view, 32 concurrent clients, one gunicorn.

    python bench/api_load.py [SECONDS_PER_ENDPOINT=10]

From an empty PostgreSQL database (``bench_perfapi`` on DATABASE_URL's server, or
BENCH_DB_NAME) and Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379/12):

1. set-up (not timed), through the REST API itself in-process: two plans, 32
   customers each with its own API key, a card and a paid subscription (so each
   has an invoice), events drained as the worker would;
2. gunicorn serves the app (API_WORKERS=2 sync workers, GUNICORN_ARGS to change)
   with token authentication and the default throttles on (user 6000/minute per
   key, the production default; each client uses its own customer's key);
3. for each endpoint in turn — the bare Django JsonResponse view first (the
   ceiling of this machine, gunicorn and this client together), then
   GET /subscriptions/{id}/, GET /invoices/, POST /usage/ (one record) and
   POST /subscriptions/{id}/change-plan/ (alternating two plans) — CLIENTS=32
   concurrent connections (CLIENT_PROCS processes × threads on raw sockets, no
   HTTP library in the way) send requests for SECONDS; prints req/s, p50/p99,
   status counts and the CPU the client itself used (if it is near its cores'
   share, the client, not the server, is the limit).

ENDPOINTS="GET subscription,GET invoice list" measures only those; PYSPY=/tmp/api.txt records
the gunicorn workers with py-spy (``pip install py-spy``; collapsed stacks) for the run.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _common, _fresh  # noqa: E402

BASE_DB, DB_NAME, DB_URL = _fresh.database("bench_perfapi")
API_WORKERS = int(os.environ.get("API_WORKERS", "2"))
CLIENTS = int(os.environ.get("CLIENTS", "32"))
CLIENT_PROCS = int(os.environ.get("CLIENT_PROCS", "4"))
CUSTOMERS = 32
ALL_ENDPOINTS = ("bare view", "GET subscription", "GET invoice list", "POST usage", "POST change-plan")
# ENDPOINTS="GET subscription,POST usage" measures only those (the bare view always runs first)
ENDPOINTS = ("bare view", *(e for e in os.environ.get("ENDPOINTS", ",".join(ALL_ENDPOINTS[1:])).split(",") if e))
ENV = dict(
    os.environ,
    DATABASE_URL=DB_URL,
    DEBUG="0",
    SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_hex(16),
    ALLOWED_HOSTS="127.0.0.1,testserver",
    REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
    EVENT_DISPATCH="manual",
    LOG_LEVEL="WARNING",
    DJANGO_SETTINGS_MODULE="bench.api_settings",
)


def prepare() -> list[dict]:
    _fresh.recreate(BASE_DB, DB_NAME)
    os.environ.update(ENV)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from sharedkernel.bus import drain

    call_command("migrate", verbosity=0)
    cache.clear()  # the bench's own Redis db: no throttle history from an earlier run
    staff = get_user_model().objects.create_user("bench", "bench@example.com", "x", is_staff=True)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")

    def ok(response, *codes):
        if response.status_code not in codes:
            raise RuntimeError(f"set-up: {response.status_code} {response.content[:300]!r}")
        return response.json()

    plans = []
    for code, tier, amount in (("basic-m", "basic", "19.00"), ("pro-m", "professional", "49.00")):
        plans.append(
            ok(
                api.post(
                    "/api/v1/plans/",
                    {
                        "code": code,
                        "name": code,
                        "tier": tier,
                        "interval": "month",
                        "prices": [{"amount": amount, "currency": "USD"}],
                        "included_usage": {"api_calls": 1_000_000},
                        "overage_rates": {"api_calls": [{"amount": "0.01", "currency": "USD"}]},
                    },
                    format="json",
                ),
                201,
            )["id"]
        )
    clients = []
    for i in range(CUSTOMERS):
        customer = ok(
            api.post(
                "/api/v1/customers/",
                {"name": f"C{i}", "email": f"c{i}@bench.example", "currency": "USD", "country": "GB"},
                format="json",
            ),
            201,
        )
        drain()
        own = APIClient()
        own.credentials(HTTP_AUTHORIZATION=f"Token {customer['api_key']}")
        ok(
            own.put(f"/api/v1/customers/{customer['id']}/payment-method/", {"token": "pm_card_visa"}, format="json"),
            200,
        )
        drain()
        sub = ok(own.post("/api/v1/subscriptions/", {"plan": plans[0]}, format="json"), 201)
        drain()
        clients.append({"key": customer["api_key"], "subscription": sub["id"], "plans": plans})
    invoices = ok(own.get("/api/v1/invoices/"), 200)
    if not invoices["results"]:
        raise RuntimeError("set-up: the customers have no invoice")
    return clients


def request_bytes(method: str, path: str, key: str | None, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if key:
        head += f"Authorization: Token {key}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def make_request(endpoint: str, client: dict, n: int) -> bytes:
    key, sub = client["key"], client["subscription"]
    if endpoint == "bare view":
        return request_bytes("GET", "/bench/bare/", None)
    if endpoint == "GET subscription":
        return request_bytes("GET", f"/api/v1/subscriptions/{sub}/", key)
    if endpoint == "GET invoice list":
        return request_bytes("GET", "/api/v1/invoices/", key)
    if endpoint == "POST usage":
        body = json.dumps(
            {
                "subscription": sub,
                "metric": "api_calls",
                "quantity": 1,
                "timestamp": datetime.now(UTC).isoformat(),
                "idempotency_key": uuid.uuid4().hex,
            }
        ).encode()
        return request_bytes("POST", "/api/v1/usage/", key, body)
    if endpoint == "POST change-plan":
        body = json.dumps({"plan": client["plans"][(n + 1) % 2]}).encode()
        return request_bytes("POST", f"/api/v1/subscriptions/{sub}/change-plan/", key, body)
    raise ValueError(endpoint)


def one(port: int, payload: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(payload)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return int(b"".join(chunks[:1])[9:12] or 0)


def client_process(args) -> dict:
    port, endpoint, clients, start_at, seconds = args
    results: list[tuple[list[float], Counter]] = []

    def loop(client: dict) -> None:
        latencies, codes = [], Counter()
        time.sleep(max(0.0, start_at - time.time()))
        end = start_at + seconds
        n = 0
        while time.time() < end:
            payload = make_request(endpoint, client, n)
            t0 = time.perf_counter()
            try:
                code = one(port, payload)
            except OSError:
                code = 0
            latencies.append(time.perf_counter() - t0)
            codes[code] += 1
            n += 1
        results.append((latencies, codes))

    threads = [threading.Thread(target=loop, args=(c,)) for c in clients]
    before = resource.getrusage(resource.RUSAGE_SELF)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {
        "latencies": [x for lat, _ in results for x in lat],
        "codes": sum((c for _, c in results), Counter()),
        "cpu": cpu,
    }


def measure(port: int, endpoint: str, clients: list[dict], seconds: float) -> dict:
    start_at = time.time() + 1.0
    groups = [[clients[i] for i in range(CLIENTS) if i % CLIENT_PROCS == p] for p in range(CLIENT_PROCS)]
    groups = [[{**c} for c in g] for g in groups]
    with mp.get_context("fork").Pool(CLIENT_PROCS) as pool:
        parts = pool.map(client_process, [(port, endpoint, g, start_at, seconds) for g in groups])
    lat = sorted(x for p in parts for x in p["latencies"])
    codes = sum((p["codes"] for p in parts), Counter())
    return {
        "requests": len(lat),
        "rate": len(lat) / seconds,
        "p50": lat[len(lat) // 2],
        "p99": lat[int(0.99 * (len(lat) - 1))],
        "codes": dict(sorted(codes.items())),
        "client_cpu": sum(p["cpu"] for p in parts) / seconds,
    }


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    customers = prepare()
    # 32 connections, one customer key each (the clients wrap round if CLIENTS > 32)
    clients = [customers[i % len(customers)] for i in range(CLIENTS)]
    port = _common.free_port()
    extra = os.environ.get("GUNICORN_ARGS", "").split()
    # PYSPY=out.txt samples the gunicorn workers with py-spy (collapsed stacks) for the whole run
    server = _common.start_api(port, API_WORKERS, ENV, "--backlog", "2048", "--log-level", "warning", *extra)
    rows = []
    profiler = None
    try:
        for _ in range(200):
            try:
                if one(port, request_bytes("GET", "/bench/bare/", None)) == 200:
                    break
            except OSError:
                time.sleep(0.1)
        if os.environ.get("PYSPY"):  # sample the gunicorn workers with py-spy (collapsed stacks) for the run
            pyspy = str(Path(sys.executable).with_name("py-spy"))
            profiler = subprocess.Popen(
                [
                    pyspy,
                    "record",
                    "--subprocesses",
                    "--format",
                    "raw",
                    "-o",
                    os.environ["PYSPY"],
                    "--pid",
                    str(server.pid),
                ]
            )
        for endpoint in ENDPOINTS:
            for c in clients[: CLIENT_PROCS * 2]:  # warm each worker's connection and caches
                one(port, make_request(endpoint, c, 1))
            rows.append((endpoint, measure(port, endpoint, clients, seconds)))
    finally:
        if profiler:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        server.terminate()
        server.wait(timeout=30)
    load = os.getloadavg()
    print(
        f"api load: gunicorn {API_WORKERS} sync workers {' '.join(extra)}, {CLIENTS} connections "
        f"({CLIENT_PROCS} client processes), {seconds:.0f} s each, PostgreSQL {DB_URL}, "
        f"load before/after {load[0]:.2f} (1 min)"
    )
    bare = rows[0][1]["rate"]
    print(
        f"{'endpoint':<18} {'requests':>9} {'req/s':>8} {'% bare':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'client CPU':>10}  status"
    )
    for name, r in rows:
        print(
            f"{name:<18} {r['requests']:>9} {r['rate']:>8.0f} {100 * r['rate'] / bare:>6.1f}% "
            f"{r['p50'] * 1000:>7.1f} {r['p99'] * 1000:>7.1f} {r['client_cpu']:>9.2f}c  {r['codes']}"
        )


if __name__ == "__main__":
    main()
