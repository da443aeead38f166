"""The admin actions that run one command per selected row, declared in one line each."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin

from sharedkernel.adminkit import run_for_each


def command_action(description: str, label: str, run: Callable[[object], object]):
    """An admin action (named by its attribute in the admin's ``actions``) that calls ``run(row)`` —
    a command — for each selected row and says, under ``label``, what was done and what was refused."""

    @admin.action(description=description)
    def action(modeladmin, request, queryset):
        run_for_each(modeladmin, request, queryset, label, run)

    return action
