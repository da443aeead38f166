"""Persistence of the Subscriptions context where the ORM is not enough (fast SQL and its SQLite twins)."""
