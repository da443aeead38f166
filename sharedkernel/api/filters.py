"""The list filters of every viewset (django-filter), applied to lists only.

DRF runs the filter backends inside ``get_object`` too, and django-filter builds a
form class and validates it for every request — 12 % of ``GET /subscriptions/{id}/``
in ``bench/api_load.py`` — though a query string filter on one object's URL has no
meaning here (scoping to the caller's own rows is ``get_queryset``'s work, never a
filter's). Detail routes (``retrieve`` and ``@action(detail=True)``) skip them.

A filter given with no value (``?subscription=``) is a 400 naming it: django-filter reads an
empty value as "no filter" (an HTML form's empty field), which would answer a client's mistyped
filter with every row.
"""

from __future__ import annotations

import django_filters
from django import forms
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError


class ListFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request, queryset, view):
        if getattr(view, "detail", False):
            return queryset
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            empty = {
                name: ["Give a value, or leave the parameter out to list everything."]
                for name in filterset_class.base_filters
                if name in request.query_params and not any(v.strip() for v in request.query_params.getlist(name))
            }
            if empty:
                raise ValidationError(empty)
        return super().filter_queryset(request, queryset, view)


class _TrueOrFalse(forms.Field):
    """``true`` or ``false`` (also ``1``/``0``, any case); anything else is refused, where
    django-filter's boolean would read ``?archived=null`` as "no filter"."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise forms.ValidationError("Give true or false.", code="invalid")


@extend_schema_field(OpenApiTypes.BOOL)
class TrueOrFalseFilter(django_filters.BooleanFilter):
    field_class = _TrueOrFalse


class WholeNumberFilter(django_filters.Filter):
    """A whole number (``?after=0.5`` is refused, where django-filter's NumberFilter reads 0.5);
    the schema takes its type from the model field it filters."""

    field_class = forms.IntegerField
