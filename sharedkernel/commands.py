"""The ``@command`` decorator every application service wears.

A command is one transaction: load, call the aggregate, save, publish. Called
from an edge (view, API, admin, beat job) it opens a *durable* transaction, so
nobody can nest it inside a larger one by accident. Called by a policy, it joins
the handler's transaction (inside a savepoint), because the handler's ledger
entry must commit together with the command's effect.

Every command declares the aggregate it acts on and the events it may record::

    @command(aggregate="Subscription", records=("subscriptions.PlanChanged",))
    def change_plan(*, subscription_id, plan_id, clock=None): ...

The declaration registers it in :data:`sharedkernel.declarations.COMMANDS` (the blue and yellow
stickies of the board, "Recorded by" in docs/EVENTS.md), and the event store checks it whenever the
command runs: an event appended inside the command that ``records`` does not name is refused under
tests and DEBUG (:func:`sharedkernel.declarations.check_recorded`).

``own_transaction=False`` is for pipeline steps that run only inside a transaction someone else owns
(a policy's handler transaction), or that manage their own short transactions around a call to the
outside: they are registered and checked, but opened no transaction of theirs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import transaction

from sharedkernel.bus import in_handler_transaction
from sharedkernel.declarations import CommandSpec, location_of, register_command, running

P = ParamSpec("P")
R = TypeVar("R")


def _summary(fn: Callable) -> str:
    return (fn.__doc__ or "").strip().split("\n\n", 1)[0].replace("\n", " ")


def command(
    fn: Callable[P, R] | None = None,
    *,
    aggregate: str | None = None,
    records: tuple[str, ...] | None = None,
    name: str | None = None,
    own_transaction: bool = True,
):
    """Register ``fn`` as a command on ``aggregate`` recording (at most) ``records``; see the module."""
    if records is not None:
        records = tuple(records)

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        full_name = name or f"{fn.__module__.split('.')[0]}.{fn.__name__}"
        spec = CommandSpec(
            name=full_name,
            context=full_name.split(".", 1)[0],
            aggregate=aggregate,
            records=records,
            location=location_of(fn),
            summary=_summary(fn),
        )
        register_command(spec)

        if own_transaction:

            @functools.wraps(fn)
            def run(*args: P.args, **kwargs: P.kwargs) -> R:
                with transaction.atomic(durable=not in_handler_transaction()), running(spec):
                    return fn(*args, **kwargs)

        else:

            @functools.wraps(fn)
            def run(*args: P.args, **kwargs: P.kwargs) -> R:
                with running(spec):
                    return fn(*args, **kwargs)

        run.command = spec  # type: ignore[attr-defined]
        return run

    return wrap(fn) if fn is not None else wrap
