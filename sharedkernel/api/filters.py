"""The list filters of every viewset (django-filter), applied to lists only.

DRF runs the filter backends inside ``get_object`` too, and django-filter builds a
form class and validates it for every request — 12 % of ``GET /subscriptions/{id}/``
in ``bench/api_load.py`` — though a query string filter on one object's URL has no
meaning here (scoping to the caller's own rows is ``get_queryset``'s work, never a
filter's). Detail routes (``retrieve`` and ``@action(detail=True)``) skip them.
"""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend


class ListFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request, queryset, view):
        if getattr(view, "detail", False):
            return queryset
        return super().filter_queryset(request, queryset, view)
