"""What several benches do the same way: the environment of a bench that delivers nothing
(``EVENT_DISPATCH=manual``), an API server on a free port, and rows seeded in bulk as the
contexts' own commands would have left them (a customer; an active subscription).

The row builders import Django models, so call them only after ``django.setup()``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def manual_dispatch_environment(db_url: str) -> None:
    """The bench process's settings: its own database, no debug, events stored but not delivered."""
    os.environ.update(
        DATABASE_URL=db_url,
        DEBUG="0",
        SECRET_KEY=os.environ.get("SECRET_KEY") or uuid.uuid4().hex,
        EVENT_DISPATCH="manual",
        DJANGO_SETTINGS_MODULE="config.settings",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(port: int, workers: int, env: dict, *options: str) -> subprocess.Popen:
    """gunicorn serving config.wsgi on 127.0.0.1:``port`` with ``workers`` processes."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            *options,
        ],
        cwd=ROOT,
        env=env,
    )


def customer_row(
    i: int,
    *,
    currency: str,
    country: str,
    created_at,
    name: str | None = None,
    region: str = "",
    has_payment_method: bool = False,
):
    """Customer ``i`` (``c<i>@bench.example``) as Customer.register makes it, its CustomerRegistered
    recorded (not stored: a bench that needs the other contexts' copies builds them from it), unsaved,
    for a bulk_create."""
    from subscriptions.models import Customer
    from subscriptions.values import CustomerDetails

    details = CustomerDetails(
        name=name or f"Customer {i}", email=f"c{i}@bench.example", currency=currency, country=country, region=region
    )
    customer = Customer.register(details, at=created_at)
    customer.note_payment_method(present=has_payment_method)
    customer.version = 1  # as save_aggregate leaves a new row
    return customer


def active_subscription_row(customer, plan, *, price_minor: int, start, end, created_at=None, **fields):
    """An active subscription of ``customer`` to ``plan`` in its currency, in a period from ``start``
    (its billing anchor) to ``end``, unsaved, for a bulk_create."""
    from subscriptions.models import Subscription

    return Subscription(
        id=uuid.uuid4(),
        customer=customer,
        plan=plan,
        currency=customer.currency,
        price_minor=price_minor,
        interval=plan.interval,
        status="active",
        billing_anchor=start,
        current_period_start=start,
        current_period_end=end,
        created_at=created_at or start,
        version=1,
        **fields,
    )
