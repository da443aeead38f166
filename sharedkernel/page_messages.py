"""What a customer page says after it ran a command for the customer."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages

from sharedkernel.errors import DomainError


def say_outcome(request, run: Callable[[], object], done: str) -> bool:
    """Run ``run`` (a command) and say ``done`` on the next page, or why the command refused.
    True when it was done."""
    try:
        run()
    except DomainError as exc:
        messages.error(request, exc.message)
        return False
    messages.success(request, done)
    return True
