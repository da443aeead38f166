"""What every flow test starts from: a staff member's API client, with the real worker running."""

from __future__ import annotations

import pytest

from tests.helpers import api_client, staff_user


@pytest.fixture
def staff(flow):
    """An API client holding a staff member's token, with the real worker running."""
    return api_client(staff_user())
