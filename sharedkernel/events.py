"""Domain events: the published language between contexts.

A context declares each event it publishes as a frozen dataclass subclassing
:class:`Event` in its own ``events.py``; the dataclass fields *are* the payload,
documented there. Fields hold JSON-friendly values or value objects (Money, UnitRate,
EmailAddress, datetime, Decimal, UUID, nested dataclasses); :meth:`Event.payload`
turns them into plain JSON and :meth:`Event.from_payload` reads them back, so a
payload always survives a JSON round trip.

Consumers in other contexts never import these classes. They receive a
:class:`DomainEvent` envelope whose ``payload`` is plain JSON and translate it
in their own ``acl.py``.

Versioning: when a payload changes shape, bump ``event_version`` and register an
:func:`upcaster` from the old version; stored events are upcast on read, so every
handler only ever sees the current shape.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar

from sharedkernel.values import EmailAddress, Money, UnitRate

# -- the envelope -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class DomainEvent:
    """What is stored and what every subscriber receives (seeds/002 envelope)."""

    event_id: str
    event_type: str
    event_version: int
    occurred_on: datetime
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    payload: dict
    correlation_id: str
    causation_id: str | None = None
    position: int | None = None
    test_clock_id: str | None = None

    @property
    def context(self) -> str:
        return self.event_type.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.event_type.split(".", 1)[1]

    def to_json(self) -> dict:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "event_version": self.event_version,
            "occurred_on": self.occurred_on.astimezone(UTC).isoformat(),
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "aggregate_version": self.aggregate_version,
            "payload": self.payload,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "position": self.position,
        }


# -- event declarations ---------------------------------------------------------

EVENT_CLASSES: dict[str, type[Event]] = {}


class Event:
    """Base of every published event dataclass.

    Subclasses set ``event_type`` ("<context>.<PastTenseName>"),
    ``aggregate_type`` and ``aggregate_id_field`` (the payload field holding the
    aggregate's id), and are declared ``@dataclass(frozen=True)``.
    """

    event_type: ClassVar[str] = ""
    event_version: ClassVar[int] = 1
    aggregate_type: ClassVar[str] = ""
    aggregate_id_field: ClassVar[str] = ""
    #: Public events are sent to customers' webhook endpoints.
    public: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.event_type:
            if cls.event_type in EVENT_CLASSES and EVENT_CLASSES[cls.event_type].__qualname__ != cls.__qualname__:
                raise RuntimeError(f"Event type {cls.event_type} declared twice.")
            EVENT_CLASSES[cls.event_type] = cls

    @property
    def aggregate_id(self) -> str:
        return str(getattr(self, self.aggregate_id_field))

    def payload(self) -> dict:
        return {name: encode(getattr(self, name)) for name in _field_names(type(self))}

    @classmethod
    def from_payload(cls, data: dict) -> Event:
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in data:
                kwargs[f.name] = decode(hints[f.name], data[f.name])
        return cls(**kwargs)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, looked up once per class (a usage batch encodes a thousand totals)."""
    return tuple(f.name for f in dataclasses.fields(cls))


def encode(value: Any) -> Any:
    """Turn a value object (or a structure of them) into plain JSON."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        raise TypeError("Event payloads never carry floats; use Decimal.")
    if isinstance(value, (Money, UnitRate)):
        return value.to_json()
    if isinstance(value, EmailAddress):
        return value.value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("Event timestamps must be timezone-aware.")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return encode(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: encode(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, (list, tuple)):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {str(key): encode(item) for key, item in value.items()}
    raise TypeError(f"Cannot put {type(value).__name__} into an event payload.")


#: How a value of each of these types is read back from the JSON :func:`encode` wrote.
_READERS: dict[type, Callable[[Any], Any]] = {
    Money: Money.from_json,
    UnitRate: UnitRate.from_json,
    EmailAddress: EmailAddress,
    datetime: datetime.fromisoformat,
    date: date.fromisoformat,
    Decimal: Decimal,
    uuid.UUID: uuid.UUID,
}


def decode(hint: Any, value: Any) -> Any:
    """Read a JSON value back into the type its field declares."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        non_none = [a for a in args if a is not type(None)]
        return decode(non_none[0], value)
    if value is None:
        return None
    if origin in (list, tuple):
        item = args[0] if args else Any
        decoded = [decode(item, v) for v in value]
        return tuple(decoded) if origin is tuple else decoded
    if origin is dict:
        value_hint = args[1] if len(args) == 2 else Any
        return {k: decode(value_hint, v) for k, v in value.items()}
    if hint is Any:
        return value
    read = _READERS.get(hint) if isinstance(hint, type) else None
    if read is not None:
        return read(value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if dataclasses.is_dataclass(hint):
        nested = typing.get_type_hints(hint)
        return hint(**{f.name: decode(nested[f.name], value.get(f.name)) for f in dataclasses.fields(hint)})
    return value


# -- versioning -------------------------------------------------------------------

Upcaster = Callable[[dict], dict]
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(event_type: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function turning a ``from_version`` payload into ``from_version + 1``."""

    def register(fn: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        if key in _UPCASTERS:
            raise RuntimeError(f"Upcaster for {event_type} v{from_version} registered twice.")
        _UPCASTERS[key] = fn
        return fn

    return register


def upcast(event_type: str, version: int, payload: dict) -> tuple[int, dict]:
    """Apply registered upcasters until the payload is at the newest known version."""
    while (event_type, version) in _UPCASTERS:
        payload = _UPCASTERS[(event_type, version)](dict(payload))
        version += 1
    return version, payload
