"""Fixtures of the Subscriptions tests."""

from __future__ import annotations

import pytest

from tests.subscriptions.api import PLAN


@pytest.fixture
def plan(staff):
    response = staff.post("/api/v1/plans/", PLAN, format="json")
    assert response.status_code == 201, response.content
    return response.json()
