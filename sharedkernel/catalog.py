"""The event catalogue, built from the code: never a hand-kept list.

Every published event is an :class:`~sharedkernel.events.Event` subclass (registered in
``EVENT_CLASSES`` when its module is imported, which Django's app loading does), every reaction
an ``@reacts_to`` handler (``sharedkernel.bus.HANDLERS``), every upcaster an ``@upcaster``, every
command a ``@command(aggregate=..., records=...)`` and every outside system an ``external_system(...)``
(``sharedkernel.declarations``). :func:`catalog` and :func:`registry` read those registries at runtime
(the kernel imports no context) and :func:`render_markdown` writes docs/EVENTS.md
(``manage.py event_catalog``; ``--check`` in CI).

Handlers declared ``replay_safe`` are read models (projections, green stickies); the others are
policies (purple). Which commands a policy issues is read from its code: the commands its function
(and the module's helpers it calls) names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps

from sharedkernel import bus, declarations, events


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
    recorded_by: tuple[str, ...] = ()  # the commands that declare it


def load_declarations() -> None:
    """Import each app's ``events`` and ``policies`` modules, where the declarations live."""
    for config in apps.get_app_configs():
        for module in ("events", "policies", "commands", "ports", "adapters", "acl", "mail", "webhooks"):
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
                recorded_by=tuple(
                    sorted(c.name for c in declarations.COMMANDS.values() if event_type in (c.records or ()))
                ),
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
                f"- Recorded by: {', '.join(f'`{c}`' for c in e.recorded_by) or 'no command (a handler)'}",
                f"- Subscribers: {', '.join(f'`{s}`' for s in e.subscribers) or 'none'}",
                "",
                "| Field | Type |",
                "|---|---|",
                *(f"| `{f.name}` | `{f.type}` |" for f in e.fields),
                "",
            ]
    lines += _render_commands()
    return "\n".join(lines).rstrip() + "\n"


def _render_commands() -> list[str]:
    reg = registry()
    lines = ["## Commands", "", "| Command | Aggregate | Records | Declared in |", "|---|---|---|---|"]
    for c in reg.commands:
        recorded = ", ".join(f"`{r}`" for r in c.records or ()) or "—"
        lines.append(f"| `{c.name}` | {c.aggregate or '—'} | {recorded} | `{c.location.split(':')[0]}` |")
    lines += ["", "## Policies and read models", "", "| Handler | Kind | Reacts to | Issues |", "|---|---|---|---|"]
    for h in (h for h in reg.handlers if h.events):  # a handler of no declared event (a test's) is left out
        reacts = "every public event" if h.patterns == ("*",) else ", ".join(f"`{t}`" for t in h.events)
        issues = ", ".join(f"`{c}`" for c in h.issues) or "—"
        lines.append(f"| `{h.name}` | {'read model' if h.read_model else 'policy'} | {reacts} | {issues} |")
    lines += ["", "## External systems", "", "| System | Context | Port |", "|---|---|---|"]
    lines += [f"| {x.name} | {x.context} | `{x.port}` |" for x in reg.external_systems]
    return [*lines, ""]


# -- the rest of the wall: commands, policies, read models, outside systems ----------------------


@dataclass(frozen=True)
class HandlerEntry:
    name: str
    context: str
    patterns: tuple[str, ...]
    events: tuple[str, ...]  # the known event types it subscribes to
    read_model: bool
    issues: tuple[str, ...]  # the commands a policy calls
    location: str
    summary: str


@dataclass(frozen=True)
class Registry:
    events: list[EventEntry]
    commands: list[declarations.CommandSpec]
    handlers: list[HandlerEntry]
    external_systems: list[declarations.ExternalSystem]

    @property
    def aggregates(self) -> dict[str, list[str]]:
        """Context → its aggregates, from the command declarations."""
        found: dict[str, list[str]] = {}
        for c in self.commands:
            if c.aggregate and c.aggregate not in found.setdefault(c.context, []):
                found[c.context].append(c.aggregate)
        return found


def _names_in(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_in(const)
    return names


def issued_commands(fn: Callable, *, depth: int = 3, seen: set | None = None) -> set[str]:
    """The commands ``fn`` calls, by name: those it names (``commands.suspend_subscription``) and
    those its own context's helpers name, a few calls deep."""
    seen = seen if seen is not None else set()
    fn = inspect.unwrap(fn)
    code = getattr(fn, "__code__", None)
    if code is None or fn in seen:
        return set()
    seen.add(fn)
    names, scope = _names_in(code) | set(code.co_freevars), dict(getattr(fn, "__globals__", {}))
    for var, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
        with contextlib.suppress(ValueError):  # an empty cell
            scope[var] = cell.cell_contents
    candidates = [scope[n] for n in names if n in scope]
    candidates += [getattr(m, n) for m in candidates if isinstance(m, types.ModuleType) for n in names if hasattr(m, n)]
    found = set()
    for obj in candidates:
        spec = getattr(obj, "command", None)
        if isinstance(spec, declarations.CommandSpec):
            found.add(spec.name)
        elif depth and inspect.isfunction(obj) and obj.__module__.split(".")[0] == fn.__module__.split(".")[0]:
            found |= issued_commands(obj, depth=depth - 1, seen=seen)
    return found


def registry() -> Registry:
    entries = catalog()
    known = [e.event_type for e in entries]
    handlers = [
        HandlerEntry(
            name=h.name,
            context=h.context,
            patterns=h.patterns,
            events=tuple(t for t in known if h.subscribes_to(t)),
            read_model=h.replay_safe,
            issues=tuple(sorted(issued_commands(h.fn))),
            location=_location(h.fn),
            summary=(h.fn.__doc__ or "").strip().split("\n\n", 1)[0].replace("\n", " "),
        )
        for h in sorted(bus.HANDLERS.values(), key=lambda h: h.name)
    ]
    return Registry(
        events=entries,
        commands=sorted(declarations.COMMANDS.values(), key=lambda c: c.name),
        handlers=handlers,
        external_systems=sorted(declarations.EXTERNAL_SYSTEMS.values(), key=lambda x: (x.context, x.name)),
    )
