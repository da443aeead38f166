"""Correlation of a whole chain: request → command → events → handlers → ….

A request (or a beat job) opens a chain with a fresh correlation id; every event
recorded inside it carries that id, and every handler of such an event runs with
the event's correlation id and the event as causation. The log filter puts the
id on every log line, so ``grep <id>`` shows a chain end to end.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cause:
    correlation_id: str
    causation_id: str | None = None
    test_clock_id: str | None = None


_current: ContextVar[Cause | None] = ContextVar("sharedkernel_cause", default=None)
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def current_cause() -> Cause:
    """The cause in effect; outside any chain a fresh correlation id starts one."""
    cause = _current.get()
    if cause is None:
        cause = Cause(correlation_id=new_correlation_id())
        _current.set(cause)
    return cause


def current_correlation_id() -> str | None:
    cause = _current.get()
    return cause.correlation_id if cause else None


@contextlib.contextmanager
def caused_by(cause: Cause) -> Iterator[Cause]:
    token = _current.set(cause)
    try:
        yield cause
    finally:
        _current.reset(token)


@contextlib.contextmanager
def new_chain(*, test_clock_id: str | None = None, correlation_id: str | None = None) -> Iterator[Cause]:
    with caused_by(Cause(correlation_id or new_correlation_id(), None, test_clock_id)) as cause:
        yield cause


class CorrelationIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = current_correlation_id() or "-"
        return True


class CorrelationIdMiddleware:
    """Start a chain per request; honour a caller's ``X-Correlation-ID``."""

    header = "HTTP_X_CORRELATION_ID"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.META.get(self.header, "")
        correlation_id = supplied if _VALID_ID.match(supplied) else new_correlation_id()
        with new_chain(correlation_id=correlation_id):
            request.correlation_id = correlation_id
            response = self.get_response(request)
        response["X-Correlation-ID"] = correlation_id
        return response
