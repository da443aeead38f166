"""What the demo sells and where its customers are: plans with prices in four currencies,
tax rates and a coupon as staff would enter them, the customers' names and countries."""

from __future__ import annotations

from datetime import datetime

from billing.models import Coupon, TaxRate
from sharedkernel.clock import FixedClock
from sharedkernel.values import Money
from subscriptions import commands as subs
from subscriptions.models import Plan

PLANS = [
    # code, name, tier, interval, trial days, prices, features, included usage
    (
        "starter-monthly",
        "Starter",
        "basic",
        "month",
        14,
        ["19.00 USD", "18.00 EUR", "2500 JPY", "6.000 KWD"],
        ["1 workspace", "Email support"],
        {"api_calls": 10_000},
    ),
    (
        "pro-monthly",
        "Pro",
        "professional",
        "month",
        14,
        ["49.00 USD", "45.00 EUR", "6500 JPY", "15.000 KWD"],
        ["10 workspaces", "Priority support", "Webhooks"],
        {"api_calls": 100_000},
    ),
    (
        "pro-annual",
        "Pro (annual)",
        "professional",
        "year",
        14,
        ["490.00 USD", "450.00 EUR", "65000 JPY"],
        ["10 workspaces", "Priority support", "Webhooks", "Two months free"],
        {"api_calls": 100_000},
    ),
    (
        "team-monthly",
        "Team",
        "professional",
        "month",
        0,
        ["99.00 USD", "92.00 EUR"],
        ["Unlimited workspaces", "SSO", "Audit log"],
        {"api_calls": 500_000},
    ),
    (
        "enterprise-annual",
        "Enterprise",
        "enterprise",
        "year",
        0,
        ["4990.00 USD", "4600.00 EUR"],
        ["Dedicated support", "Custom contract", "99.95% SLA"],
        {"api_calls": 10_000_000},
    ),
]

OVERAGE = {"USD": "0.01", "EUR": "0.01", "JPY": "1", "KWD": "0.003"}  # per unit over the included quantity

NAMES = [
    "Acme Analytics",
    "Blue Harbor",
    "Cobalt Labs",
    "Delta Freight",
    "Evergreen Foods",
    "Fjord Systems",
    "Granite Health",
    "Helios Energy",
    "Iris Studio",
    "Juniper Legal",
    "Kite Robotics",
    "Lumen Media",
    "Maple Finance",
    "Nimbus Cloud",
    "Orbit Travel",
    "Pioneer Retail",
    "Quartz Security",
    "Redwood Games",
    "Summit Logistics",
    "Tidal Audio",
    "Umbra Design",
    "Vertex Bio",
    "Willow Schools",
    "Xenon Motors",
    "Yarrow Farms",
    "Zephyr Air",
    "Atlas Insurance",
    "Beacon Realty",
    "Cedar Clinics",
    "Dune Outdoor",
    "Ember Coffee",
    "Falcon Couriers",
    "Glacier Water",
    "Harbor Dental",
    "Indigo Fashion",
    "Jasper Tools",
]
COUNTRIES = [
    ("US", "CA", "USD"),
    ("US", "NY", "USD"),
    ("DE", "", "EUR"),
    ("FR", "", "EUR"),
    ("JP", "", "JPY"),
    ("KW", "", "KWD"),
    ("GB", "", "USD"),
    ("US", "TX", "USD"),
]


def plans(now: datetime) -> list[Plan]:
    made = []
    for code, name, tier, interval, trial, prices, features, usage in PLANS:
        existing = Plan.objects.filter(code=code).first()
        if existing:
            made.append(existing)
            continue
        money = [Money(*p.split()) for p in prices]
        rates = {"api_calls": [Money(OVERAGE[m.currency], m.currency) for m in money]}
        made.append(
            subs.define_plan(
                code=code,
                name=name,
                tier=tier,
                interval=interval,
                trial_days=trial,
                prices=money,
                features=features,
                included_usage=usage,
                overage_rates=rates,
                clock=FixedClock(now),
            )
        )
    return made


def billing_configuration() -> None:
    """Tax rates and a coupon, as staff would enter them in the admin."""
    rates = [
        ("US", "CA", "0.0725", "California sales tax"),
        ("US", "NY", "0.08875", "New York sales tax"),
        ("US", "TX", "0.0625", "Texas sales tax"),
        ("DE", "", "0.19", "Umsatzsteuer"),
        ("FR", "", "0.20", "TVA"),
        ("JP", "", "0.10", "Consumption tax"),
    ]
    for country, region, rate, name in rates:
        TaxRate.objects.get_or_create(country=country, region=region, defaults={"rate": rate, "name": name})
    Coupon.objects.get_or_create(
        code="WELCOME20",
        defaults={"name": "Welcome", "percent_off": 20, "duration": "repeating", "duration_in_periods": 3},
    )
