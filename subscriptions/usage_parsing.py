"""Reading a batch of usage records off the wire: each record checked field by field (plain Python).

What a record may say is the caller's problem; whether the subscription may count it (its status,
its plan's metrics, the open period and the grace window) is the usage aggregate's
(:class:`subscriptions.models.usage.MeteredSubscription`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from subscriptions.values import MAX_QUANTITY

MAX_BATCH = 1000

#: A subscription id as PostgreSQL prints it; any other spelling goes through ``uuid.UUID``.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    errors: list[dict] = field(default_factory=list)

    def refuse(self, index: int, field_name: str, code: str, message: str) -> None:
        self.errors.append({"index": index, "field": field_name, "code": code, "message": message})


def parse_record(index: int, raw, result: IngestResult):
    """One record checked field by field, in a fixed order (the first failing field is the one
    reported): (subscription id, metric, quantity, time, idempotency key), or None when refused.
    A thousand of these run per call, so the common case takes the shortest path."""
    if not isinstance(raw, dict):
        result.refuse(index, "", "invalid", "Each record is an object.")
        return None
    sub_id = raw.get("subscription")
    if type(sub_id) is not str or _CANONICAL_UUID(sub_id) is None:
        try:
            sub_id = str(uuid.UUID(str(sub_id)))
        except ValueError:
            result.refuse(index, "subscription", "invalid", "subscription must be a subscription id.")
            return None
    metric, key, quantity, stamp = (
        raw.get("metric"),
        raw.get("idempotency_key"),
        raw.get("quantity"),
        raw.get("timestamp"),
    )
    if not isinstance(metric, str) or not metric:
        result.refuse(index, "metric", "required", "metric is required.")
        return None
    if not isinstance(key, str) or not 0 < len(key) <= 100:
        result.refuse(index, "idempotency_key", "required", "idempotency_key is a string of 1–100 characters.")
        return None
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        result.refuse(index, "quantity", "invalid", "quantity is a whole number.")
        return None
    if quantity < 0:
        result.refuse(index, "quantity", "negative", "quantity must not be negative.")
        return None
    if quantity > MAX_QUANTITY:
        result.refuse(index, "quantity", "too_large", f"quantity is at most {MAX_QUANTITY:,} per record.")
        return None
    try:
        at = datetime.fromisoformat(stamp if type(stamp) is str else str(stamp))
    except ValueError:
        result.refuse(index, "timestamp", "invalid", "timestamp is an ISO 8601 time with offset.")
        return None
    if at.tzinfo is None:
        result.refuse(index, "timestamp", "invalid", "timestamp needs a UTC offset.")
        return None
    return sub_id, metric, quantity, at, key
