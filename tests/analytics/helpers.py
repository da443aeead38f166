"""Subscriptions' events as Analytics' impact tests feed them (published, as Subscriptions does)."""

from __future__ import annotations

from datetime import datetime

from tests.helpers import publish


def price_migration_drafted(
    migration_id: str, plan_id: str, *, effective_from: datetime, occurred_on: datetime
) -> None:
    """A migration of every subscription of ``plan_id`` to its version 2 (no version, currency or
    subscription left out, none created after a date)."""
    publish(
        "subscriptions.PriceMigrationDrafted",
        {
            "migration_id": migration_id,
            "plan_id": plan_id,
            "to_version": 2,
            "effective_from": effective_from.isoformat(),
            "from_versions": [],
            "currencies": [],
            "subscription_ids": [],
            "created_before": None,
        },
        aggregate_type="PriceMigration",
        aggregate_id=migration_id,
        occurred_on=occurred_on,
    )
