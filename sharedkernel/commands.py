"""The ``@command`` decorator every application service wears.

A command is one transaction: load, call the aggregate, save, publish. Called
from an edge (view, API, admin, beat job) it opens a *durable* transaction, so
nobody can nest it inside a larger one by accident. Called by a policy, it joins
the handler's transaction (inside a savepoint), because the handler's ledger
entry must commit together with the command's effect.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import transaction

from sharedkernel.bus import in_handler_transaction

P = ParamSpec("P")
R = TypeVar("R")


def command(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with transaction.atomic(durable=not in_handler_transaction()):
            return fn(*args, **kwargs)

    return run
