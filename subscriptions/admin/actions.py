"""The admin actions that run one command per selected row, declared in one line each."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin

from sharedkernel.adminkit import run_for_each


def command_action(description: str, label: str, command: Callable, *, key: str, **options):
    """An admin action (named by its attribute in the admin's ``actions``) that calls
    ``command(<key>=row.pk, **options)`` for each selected row and says, under ``label``, what was
    done and what was refused."""

    @admin.action(description=description)
    def action(modeladmin, request, queryset):
        run_for_each(modeladmin, request, queryset, label, lambda row: command(**{key: row.pk}, **options))

    return action
