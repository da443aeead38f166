"""Logging filters the settings install (no Django models here: logging is configured before the
apps are loaded)."""

from __future__ import annotations

import logging


class QuietProbe(logging.Filter):
    """On ``django.request``: drops the record of /healthz answering 503 (the view logged why, as a
    warning naming the failing checks)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return not (getattr(record, "status_code", None) == 503 and getattr(request, "path", "") == "/healthz")
