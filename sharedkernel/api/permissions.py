"""Who may see what: staff see everything, a customer only their own resources."""

from __future__ import annotations

import uuid

from rest_framework.permissions import SAFE_METHODS, BasePermission

from sharedkernel.models import CustomerLogin


class IsStaff(BasePermission):
    message = "This action is for staff only."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class ReadOnlyOrStaff(BasePermission):
    message = "This action is for staff only."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


def customer_id_of(user) -> uuid.UUID | None:
    """The customer a logged-in user acts for, or None (staff, or not a customer)."""
    if not user or not user.is_authenticated:
        return None
    cached = getattr(user, "_customer_id_cache", False)
    if cached is not False:
        return cached
    customer_id = CustomerLogin.objects.filter(user_id=user.pk).values_list("customer_id", flat=True).first()
    user._customer_id_cache = customer_id
    return customer_id


class CustomerScopedMixin:
    """A view mixin: staff see every row; a customer sees rows of ``customer_field``
    equal to their own id; anyone else sees nothing (so another customer's object is 404)."""

    customer_field = "customer_id"

    def scope_queryset(self, queryset):
        user = self.request.user
        if user.is_staff:
            return queryset
        customer_id = customer_id_of(user)
        if customer_id is None:
            return queryset.none()
        return queryset.filter(**{self.customer_field: customer_id})
