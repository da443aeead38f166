"""API-key authentication without a query per request.

DRF's ``TokenAuthentication`` looks the key and its user up in the database on every
request, and the customer scoping then looks up which customer the user acts for:
two queries, 26 % of a ``GET /subscriptions/{id}/`` in ``bench/api_load.py``.

``CachedTokenAuthentication`` keeps what it found per process for
``API_TOKEN_CACHE_SECONDS`` (default 10): the user (with the customer it acts for)
and the token. Each request gets its own copy of the user, so nothing one request
sets on it reaches another. Deleting or re-creating a key, deactivating a user or
changing a customer login forgets the entries of that process at once; other
processes stop accepting a revoked key within the TTL at the latest. Set the TTL to
0 to look every request up again.
"""

from __future__ import annotations

import copy
import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from sharedkernel.api.permissions import customer_id_of
from sharedkernel.models import CustomerLogin

_entries: dict[str, tuple[float, object, Token]] = {}
_lock = threading.Lock()
_MAX_ENTRIES = 10_000


class CachedTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``, answered from this process's cache while it is fresh."""

    def authenticate_credentials(self, key):
        ttl = float(getattr(settings, "API_TOKEN_CACHE_SECONDS", 10))
        now = time.monotonic()
        entry = _entries.get(key)
        if entry is not None and entry[0] > now:
            return copy.copy(entry[1]), entry[2]
        user, token = super().authenticate_credentials(key)  # raises AuthenticationFailed
        if ttl > 0:
            if not user.is_staff:
                customer_id_of(user)  # remembered on the user, so the scoping needs no query either
            with _lock:
                if len(_entries) >= _MAX_ENTRIES:
                    _entries.clear()
                _entries[key] = (now + ttl, user, token)
            user = copy.copy(user)
        return user, token


def forget(*, key: str | None = None, user_id=None) -> None:
    """Forget the cached entries of a key, or of every key of a user."""
    with _lock:
        for cached_key, (_, user, _) in list(_entries.items()):
            if cached_key == key or (user_id is not None and user.pk == user_id):
                del _entries[cached_key]


def forget_all() -> None:
    with _lock:
        _entries.clear()


def _token_changed(sender, instance, **kwargs):
    forget(key=instance.key, user_id=instance.user_id)


def _user_changed(sender, instance, **kwargs):
    forget(user_id=instance.pk)


def _login_changed(sender, instance, **kwargs):
    forget(user_id=instance.user_id)


post_save.connect(_token_changed, sender=Token, dispatch_uid="api-token-cache-token-saved")
post_delete.connect(_token_changed, sender=Token, dispatch_uid="api-token-cache-token-deleted")
post_save.connect(_user_changed, sender=get_user_model(), dispatch_uid="api-token-cache-user-saved")
post_delete.connect(_user_changed, sender=get_user_model(), dispatch_uid="api-token-cache-user-deleted")
post_save.connect(_login_changed, sender=CustomerLogin, dispatch_uid="api-token-cache-login-saved")
post_delete.connect(_login_changed, sender=CustomerLogin, dispatch_uid="api-token-cache-login-deleted")
