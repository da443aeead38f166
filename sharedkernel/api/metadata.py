"""What ``OPTIONS`` answers on the API: the view's name, what it parses and renders, and the
input fields of the writes the caller may make.

DRF's SimpleMetadata fetches the object for PUT (``get_object``), which needs a queryset;
our views that act for a customer by id (payment method, credits, …) have none, so OPTIONS
answered 500. Describing input needs no object: permissions are checked, fields are listed.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.metadata import SimpleMetadata
from rest_framework.request import clone_request


class ApiMetadata(SimpleMetadata):
    def determine_actions(self, request, view):
        actions = {}
        for method in {"PUT", "POST"} & set(view.allowed_methods):
            view.request = clone_request(request, method)
            try:
                view.check_permissions(view.request)
                serializer_class = getattr(view, "serializer_class", None)
                if serializer_class is not None:
                    actions[method] = self.get_serializer_info(serializer_class())
            except (exceptions.APIException, PermissionDenied, Http404):
                pass
            finally:
                view.request = request
        return actions
