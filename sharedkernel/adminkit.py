"""Admin building blocks for command-driven model admins."""

from __future__ import annotations

from django.contrib import admin
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timezone import localtime


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


def render_add_page(modeladmin, request, form, *, title: str, template: str):
    """An add page of its own (a form that calls a command instead of saving a model), in the
    admin's frame: site header, breadcrumbs and the model's name."""
    context = {
        **modeladmin.admin_site.each_context(request),
        "form": form,
        "title": title,
        "opts": modeladmin.model._meta,
    }
    return render(request, template, context)


# -- list columns that fit a 1280 px window (templates/admin/base_site.html) ----------------------


def format_moment(value) -> str:
    """A date-time as a list shows it: "2026-12-02 17:49", on one line (``.moment`` never wraps)."""
    return format_html('<span class="moment">{}</span>', date_format(localtime(value), "Y-m-d H:i")) if value else "—"


def moment_column(field: str, description: str):
    """A list column for the date-time ``field``, compact (:func:`format_moment`), sortable."""

    @admin.display(description=description, ordering=field)
    def column(obj):
        return format_moment(getattr(obj, field))

    column.__name__ = field  # the cells keep their field-<name> class
    return column


def clipped_column(field: str, description: str, *, ordering: str | None = None):
    """A list column for a long id or URL: one line, cut with an ellipsis, the whole value in
    its tooltip (a long id broken over several lines is what made lists unreadable)."""

    @admin.display(description=description, ordering=ordering or field)
    def column(obj):
        value = getattr(obj, field)
        return format_html('<span class="clip" title="{}">{}</span>', value, value) if value else "—"

    column.__name__ = field
    return column
