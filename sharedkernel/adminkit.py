"""Admin building blocks for command-driven model admins."""

from __future__ import annotations

from django.contrib import admin


class CommandDrivenAdmin(admin.ModelAdmin):
    """A ModelAdmin whose forms save by calling a command.

    Django wraps the add/change view in ``transaction.atomic``; our commands
    open their own durable transaction (they must not be nested), so the view
    runs without the wrapper. The command is the transaction.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return self._changeform_view(request, object_id, form_url, extra_context)
