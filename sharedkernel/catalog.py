"""The event catalogue, built from the code: never a hand-kept list.

Every published event is an :class:`~sharedkernel.events.Event` subclass (registered in
``EVENT_CLASSES`` when its module is imported, which Django's app loading does), every reaction
an ``@reacts_to`` handler (``sharedkernel.bus.HANDLERS``), every upcaster an ``@upcaster``.
:func:`catalog` reads those registries at runtime (the kernel imports no context) and
:func:`render_markdown` writes docs/EVENTS.md (``manage.py event_catalog``; ``--check`` in CI).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from dataclasses import dataclass

from django.apps import apps

from sharedkernel import bus, events


@dataclass(frozen=True)
class Field:
    name: str
    type: str


@dataclass(frozen=True)
class EventEntry:
    event_type: str
    context: str
    version: int
    aggregate_type: str
    public: bool
    fields: tuple[Field, ...]
    upcasters: tuple[int, ...]  # the versions upcast from
    subscribers: tuple[str, ...]
    location: str


def load_declarations() -> None:
    """Import each app's ``events`` and ``policies`` modules, where the declarations live."""
    for config in apps.get_app_configs():
        for module in ("events", "policies"):
            try:
                importlib.import_module(f"{config.name}.{module}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{config.name}.{module}":
                    raise


def _type_name(hint) -> str:
    text = hint.__name__ if isinstance(hint, type) and not typing.get_args(hint) else str(hint)
    return text.replace("typing.", "").replace("datetime.", "").replace("decimal.", "").replace("uuid.", "")


def _location(obj) -> str:
    try:
        return f"{obj.__module__}:{inspect.getsourcelines(obj)[1]}"
    except (OSError, TypeError):
        return obj.__module__


def catalog() -> list[EventEntry]:
    load_declarations()
    entries = []
    for event_type, cls in sorted(events.EVENT_CLASSES.items()):
        hints = typing.get_type_hints(cls)
        entries.append(
            EventEntry(
                event_type=event_type,
                context=event_type.split(".", 1)[0],
                version=cls.event_version,
                aggregate_type=cls.aggregate_type,
                public=cls.public,
                fields=tuple(Field(f.name, _type_name(hints[f.name])) for f in dataclasses.fields(cls)),
                upcasters=tuple(sorted(v for (t, v) in events._UPCASTERS if t == event_type)),
                subscribers=tuple(h.name for h in bus.subscribers_for(event_type)),
                location=_location(cls),
            )
        )
    return entries


def render_markdown() -> str:
    entries = catalog()
    lines = [
        "# Event catalogue",
        "",
        "Generated from the code by `manage.py event_catalog` (do not edit; CI runs `--check`).",
        "",
    ]
    for context in dict.fromkeys(e.context for e in entries):
        lines += [f"## {context}", ""]
        for e in (e for e in entries if e.context == context):
            upcasters = ", ".join(f"v{v}→v{v + 1}" for v in e.upcasters) or "none"
            lines += [
                f"### `{e.event_type}` v{e.version}",
                "",
                f"- Aggregate: {e.aggregate_type or '—'}; publisher: {e.context}; "
                f"{'public (webhooks)' if e.public else 'internal'}; declared in `{e.location.split(':')[0]}`",
                f"- Upcasters: {upcasters}",
                f"- Subscribers: {', '.join(f'`{s}`' for s in e.subscribers) or 'none'}",
                "",
                "| Field | Type |",
                "|---|---|",
                *(f"| `{f.name}` | `{f.type}` |" for f in e.fields),
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"
