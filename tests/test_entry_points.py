"""The inventory of entry points (docs/entry-points.md) is complete, and every entry point that records
an event names a test that runs outside a wrapping test transaction.

Issue 11: the staff CSV exports answered 500 because only a wrapped test ever ran them. This test
walks what a user, staff, beat or an operator can call — the URL conf, the admin's actions and
command-driven forms, the beat schedule, the Celery tasks, the management commands — and fails when
one is missing from the inventory, or when its row records events but names no committed test
(``@pytest.mark.django_db(transaction=True)``, a ``flow`` test, or the live server). It needs no
database. Its runtime twin is the event store itself: ``append`` refuses a transaction that only the
test's wrapper opened, so an edge that forgets ``@command`` fails in every test that reaches it.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver

from sharedkernel.adminkit import CommandDrivenAdmin

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "docs" / "entry-points.md"
OURS = ("config", "sharedkernel", "subscriptions", "billing", "notifications", "analytics")
#: Third-party views in which our code records events (allauth calls our adapter on confirmation).
HOOKED = ("allauth.account.views._email_verification.ConfirmEmailView",)
COMMITTED_FIXTURES = {"transactional_db", "live_server", "flow"}
NO_EVENT = "—"


def _route(prefix: str, pattern) -> str:
    text = str(pattern)
    if text.startswith("^"):  # a router's regex: ^plans/(?P<pk>[^/.]+)/archive/$
        text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", text[1:].removesuffix("$"))
    return prefix + text


def _urls(patterns, prefix="/"):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _urls(pattern.url_patterns, _route(prefix, pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield _route(prefix, pattern.pattern), pattern.callback


def _view_name(callback) -> str:
    view = getattr(callback, "view_class", None) or getattr(callback, "cls", None) or callback
    return f"{view.__module__}.{view.__qualname__}"


def url_entry_points() -> set[str]:
    found = set()
    for route, callback in _urls(get_resolver().url_patterns):
        if route.startswith("/admin/"):
            continue  # the admin's own views; its actions and forms are listed below
        name = _view_name(callback)
        if name.split(".")[0] in OURS or name in HOOKED:
            found.add(route)
    return found


def admin_entry_points() -> set[str]:
    found = set()
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label
        if label.split(".")[0] not in OURS:
            continue
        for action in model_admin.actions or ():
            found.add(f"admin {label} {action if isinstance(action, str) else action.__name__}")
        overridden = {
            name
            for name in ("save_model", "add_view")
            if getattr(type(model_admin), name) is not getattr(admin.ModelAdmin, name)
        }
        if isinstance(model_admin, CommandDrivenAdmin) or overridden:
            if (
                model_admin.has_add_permission.__func__ is admin.ModelAdmin.has_add_permission
                or "add_view" in overridden
            ):
                found.add(f"admin {label} add")
            found.add(f"admin {label} change")
    return found


def beat_entry_points() -> set[str]:
    from config.celery import SCHEDULE

    return {f"beat {name}" for name in SCHEDULE}


def task_entry_points() -> set[str]:
    from config.celery import app

    app.loader.import_default_modules()
    return {f"task {name}" for name in app.tasks if not name.startswith("celery.")}


def command_entry_points() -> set[str]:
    return {
        f"manage.py {path.stem}"
        for package in OURS
        for path in (ROOT / package / "management" / "commands").glob("*.py")
        if path.stem != "__init__"
    }


def all_entry_points() -> set[str]:
    return (
        url_entry_points() | admin_entry_points() | beat_entry_points() | task_entry_points() | command_entry_points()
    )


# -- the inventory ------------------------------------------------------------------------

CODE = re.compile(r"`([^`]+)`")
TEST_ID = re.compile(r"^tests/[\w/]+\.py::[\w:]+$")


def inventory() -> dict[str, tuple[str, list[str]]]:
    """Entry point → (its events cell, the committed tests it names), from the tables' rows."""
    rows = {}
    for line in INVENTORY.read_text().splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        key = CODE.search(cells[0])
        if key is None:
            continue  # the header
        tests = [t for t in CODE.findall(cells[-1]) if TEST_ID.match(t)]
        rows[key.group(1)] = (cells[-2], tests)
    return rows


def _marks(obj) -> list:
    marks = getattr(obj, "pytestmark", [])
    marks = marks if isinstance(marks, list) else [marks]
    return [getattr(m, "mark", m) for m in marks]


def runs_committed(test_id: str) -> bool:
    path, *names = test_id.split("::")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    target = module
    for name in names:
        target = getattr(target, name, None)
        if target is None:
            return False
    marks = _marks(module) + _marks(target)
    if any(m.name == "django_db" and m.kwargs.get("transaction") for m in marks):
        return True
    if any(m.name == "flow" for m in marks):
        return True
    return bool(COMMITTED_FIXTURES & set(inspect.signature(target).parameters))


def test_the_inventory_lists_every_entry_point_and_nothing_that_is_gone():
    listed = set(inventory())
    missing = sorted(all_entry_points() - listed)
    gone = sorted(listed - all_entry_points())
    assert not missing, f"Entry points missing from docs/entry-points.md: {missing}"
    assert not gone, f"docs/entry-points.md lists entry points that no longer exist: {gone}"


def test_every_entry_point_that_records_events_names_a_committed_test():
    uncovered, not_committed = [], []
    for key, (events, tests) in sorted(inventory().items()):
        if events == NO_EVENT:
            continue
        if not tests:
            uncovered.append(key)
        not_committed.extend(f"{key}: {t}" for t in tests if not runs_committed(t))
    assert not uncovered, f"Entry points that record events but name no committed test: {uncovered}"
    assert not not_committed, f"Named tests that are missing or run inside a test transaction: {not_committed}"


def test_the_guard_sees_the_csv_export_and_would_have_caught_issue_11():
    # the view that answered 500 is one of the walked entry points …
    assert "/staff/analytics/export/<slug:view>.csv" in url_entry_points()
    # … and a test that wraps it in the test's transaction does not count as covering it
    assert not runs_committed("tests/analytics/test_dashboards.py::test_csv_exports_are_recorded")
    assert runs_committed(
        "tests/analytics/test_exports_committed.py::"
        "test_every_csv_export_answers_with_its_csv_and_records_data_exported"
    )
