"""Each Billing command's docstring names the events its ``@command(records=...)`` declares, so a reader
of billing/commands/ sees what a command records without reading the declaration's machinery."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import billing.commands

MODULES = [
    importlib.import_module(f"billing.commands.{m.name}") for m in pkgutil.iter_modules(billing.commands.__path__)
]


def billing_commands():
    for module in MODULES:
        for _, fn in inspect.getmembers(module, inspect.isfunction):
            spec = getattr(fn, "command", None)
            if spec is not None and fn.__module__ == module.__name__:
                yield fn, spec


def test_every_command_docstring_names_the_events_it_records():
    missing = {}
    for fn, spec in billing_commands():
        doc = fn.__doc__ or ""
        names = [t.split(".", 1)[1] for t in spec.records]
        absent = [n for n in names if n not in doc] if names else ([] if "Records no event" in doc else ["(none)"])
        if absent:
            missing[spec.name] = absent
    assert not missing, missing
    assert len(list(billing_commands())) >= 18  # every @command of billing/commands/ is read
