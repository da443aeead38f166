"""Admin building blocks for command-driven model admins."""

from __future__ import annotations

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html


class CommandDrivenAdmin(admin.ModelAdmin):
    """A ModelAdmin whose forms save by calling a command.

    Django wraps the add/change view in ``transaction.atomic``; our commands
    open their own durable transaction (they must not be nested), so the view
    runs without the wrapper. The command is the transaction.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return self._changeform_view(request, object_id, form_url, extra_context)


def run_for_each(modeladmin, request, queryset, label: str, run) -> None:
    """Run a command per selected row; say what was done and why anything was refused."""
    from django.contrib import messages

    from sharedkernel.errors import DomainError

    done, refused = 0, []
    for obj in queryset:
        try:
            run(obj)
            done += 1
        except DomainError as exc:
            refused.append(f"{obj}: {exc.message}")
    if done:
        modeladmin.message_user(request, f"{label}: {done} done.", messages.SUCCESS)
    for line in refused:
        modeladmin.message_user(request, f"{label} refused — {line}", messages.WARNING)


def form_action(modeladmin, request, queryset, *, form_class, action: str, title: str, intro: str, submit: str, run):
    """An action that needs input (an amount, a reason): an intermediate page with the
    form, then ``run(obj, cleaned_data)`` — a command — for each selected row."""
    from django.shortcuts import render

    form = form_class(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        data = form.cleaned_data
        run_for_each(modeladmin, request, queryset, title, lambda obj: run(obj, data))
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "form": form,
        "objects": queryset,
        "title": title,
        "intro": intro,
        "submit": submit,
        "opts": modeladmin.model._meta,
        "action": action,
    }
    return render(request, "admin/action_form.html", context)


class ReadOnlyAdmin(admin.ModelAdmin):
    """For facts (events, invoices, usage): viewable, never added, changed or deleted here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def timeline_link(*, subscription_id=None, customer_id=None) -> str:
    """A link to the staff timeline (/staff/timeline/) of a subscription, or else of a customer:
    every stored event about it in order, with its causes and the handlers that reacted."""
    kind, key = ("subscription", subscription_id) if subscription_id else ("customer", customer_id)
    if not key:
        return "—"
    try:
        url = reverse("staff-timeline")
    except NoReverseMatch:
        return "—"
    return format_html('<a href="{}?{}={}">Event timeline of this {}</a>', url, kind, key, kind)
