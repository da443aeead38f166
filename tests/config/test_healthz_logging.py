"""A failing /healthz probe is one WARNING that says which check fails, not Django's
"ERROR Service Unavailable" (runall polls the page while beat starts), and beat's first heartbeat
goes as it starts."""

from __future__ import annotations

import logging

import pytest

from sharedkernel.models import Heartbeat

pytestmark = pytest.mark.django_db


def test_a_failing_probe_is_a_warning_naming_the_check_and_no_request_error(client, caplog):
    # given beat has never reported
    Heartbeat.objects.filter(name="beat").delete()

    # when the probe asks
    with caplog.at_level(logging.INFO):
        response = client.get("/healthz")

    # then it answers 503 saying why, logged once as a warning, and Django logs no error for it
    assert response.status_code == 503 and response.json()["checks"]["beat"] == "failing: beat has never reported"
    warnings = [r for r in caplog.records if r.name == "sharedkernel.health"]
    assert [(r.levelname, r.getMessage()) for r in warnings] == [
        ("WARNING", "healthz: beat failing: beat has never reported")
    ]
    assert not [r for r in caplog.records if r.name == "django.request"]


def test_other_server_errors_are_still_logged_by_django():
    # given Django's record of another page answering 503, and of the probe answering 503
    def record(path):
        r = logging.LogRecord("django.request", logging.ERROR, __file__, 1, f"Service Unavailable: {path}", (), None)
        r.status_code, r.request = 503, type("Request", (), {"path": path})()
        return r

    filters = logging.getLogger("django.request").filters

    # then only the probe's is dropped
    assert filters and all(f.filter(record("/api/v1/plans/")) for f in filters)
    assert not all(f.filter(record("/healthz")) for f in filters)


def test_beat_sends_its_first_heartbeat_as_it_starts(monkeypatch):
    # given the app's connection to the broker, recorded
    from celery import signals

    from config.celery import app

    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, *a, **kw: sent.append(name))

    # when beat starts
    signals.beat_init.send(sender=None)

    # then the heartbeat goes at once, not one 30 s interval later (/healthz and the banner wait on it)
    assert sent == ["sharedkernel.beat_heartbeat"]
