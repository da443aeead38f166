"""Errors a command raises when the domain refuses it.

Each carries a stable snake_case ``code`` (the API's error code, answered with
409) and a sentence a person can read. Contexts subclass :class:`DomainError`
for their own rules.
"""

from __future__ import annotations


class DomainError(Exception):
    """A domain rule refused the command. The API answers 409 with ``code``."""

    code = "domain_rule"
    status = 409

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class InvalidTransition(DomainError):
    code = "invalid_transition"


class ConcurrentUpdate(DomainError):
    """Someone else changed the aggregate between our read and our write."""

    code = "concurrent_update"

    def __init__(self, aggregate: str, aggregate_id: object, expected_version: int) -> None:
        super().__init__(
            f"{aggregate} {aggregate_id} was changed by someone else (expected version "
            f"{expected_version}); reload it and try again.",
            details={"aggregate_id": str(aggregate_id), "expected_version": expected_version},
        )


class NotFound(DomainError):
    code = "not_found"
    status = 404


class InvalidInput(DomainError):
    """Input that is well-formed but not acceptable (answered 400)."""

    code = "validation_error"
    status = 400
