"""What the code declares about itself beyond events and handlers: its commands and the outside
systems it talks to. The board and the catalogue read these registries (the kernel imports no
context; each declaration sits next to the code it describes and registers when imported).

* :class:`CommandSpec` — written by ``@command(aggregate=..., records=...)``
  (:mod:`sharedkernel.commands`): the blue sticky, the yellow aggregate it acts on, and the
  orange events it may record.
* :class:`ExternalSystem` — :func:`external_system` next to a port or adapter: the lilac sticky.

The declaration of what a command records is checked while it runs: :func:`check_recorded`, called
by the event store for every append, compares the events appended inside a running command with its
``records``. An undeclared event is an error under tests and DEBUG (``COMMAND_RECORDS_CHECK=raise``)
and a logged error in production, where a wrong declaration must not stop billing.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandSpec:
    name: str  # "subscriptions.change_plan"
    context: str
    aggregate: str | None  # None: not declared (a bare ``@command``, refused by the declaration test)
    records: tuple[str, ...] | None
    location: str
    summary: str = ""

    @property
    def declared(self) -> bool:
        return self.aggregate is not None and self.records is not None


@dataclass(frozen=True)
class ExternalSystem:
    name: str
    context: str
    port: str  # where it is reached from in the code: "billing.ports:PaymentGateway"
    location: str
    description: str = ""


COMMANDS: dict[str, CommandSpec] = {}
EXTERNAL_SYSTEMS: dict[str, ExternalSystem] = {}

#: (command name, event type) seen appended inside a running command, in this process.
OBSERVED: set[tuple[str, str]] = set()


class UndeclaredEvent(RuntimeError):
    """A command recorded an event its ``@command(records=...)`` does not name."""


def location_of(obj) -> str:
    obj = inspect.unwrap(obj)
    try:
        return f"{obj.__module__}:{inspect.getsourcelines(obj)[1]}"
    except (OSError, TypeError):
        return getattr(obj, "__module__", "")


def register_command(spec: CommandSpec) -> None:
    known = COMMANDS.get(spec.name)
    if known is not None and known.location != spec.location:
        raise RuntimeError(f"Command name {spec.name} declared twice ({known.location}, {spec.location}).")
    COMMANDS[spec.name] = spec


def external_system(name: str, *, context: str, port: object = None, description: str = ""):
    """Declare an outside system (payment gateway, tax API, SMTP, webhook receivers) next to the port
    or adapter that reaches it: ``external_system("Tax API", context="billing", port=TaxCalculator)``,
    or as a decorator of the function that makes the call. Returns the port (or the decorator)."""

    def declare(target: object) -> object:
        label = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
        where = target if isinstance(target, str) else location_of(target)
        EXTERNAL_SYSTEMS[name] = ExternalSystem(
            name=name, context=context, port=label, location=where, description=description
        )
        return target

    return declare(port) if port is not None else declare


_running: ContextVar[CommandSpec | None] = ContextVar("sharedkernel_running_command", default=None)


@contextlib.contextmanager
def running(spec: CommandSpec | None) -> Iterator[None]:
    """While ``spec``'s function runs (``None``: no command, as in a handler's own transaction)."""
    token = _running.set(spec)
    try:
        yield
    finally:
        _running.reset(token)


def running_command() -> CommandSpec | None:
    return _running.get()


def check_recorded(event_types: Iterable[str]) -> None:
    """Called by the event store for each append: are these events declared by the running command?"""
    spec = _running.get()
    if spec is None:
        return
    types = set(event_types)
    OBSERVED.update((spec.name, t) for t in types)
    if spec.records is None:
        return  # undeclared command: the declaration test names it
    undeclared = sorted(types - set(spec.records))
    if not undeclared:
        return
    message = (
        f"Command {spec.name} ({spec.location}) recorded {', '.join(undeclared)}, which its "
        f"@command(records=...) does not declare."
    )
    if getattr(settings, "COMMAND_RECORDS_CHECK", "raise") == "raise":
        raise UndeclaredEvent(message)
    logger.error(message)
