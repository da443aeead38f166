"""What a new user meets in the first minute: the verification mail, the health check (issue 13)."""

from __future__ import annotations

import uuid

import pytest
from django.core import mail
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_verification_mail_greets_from_the_configured_site():
    # when a visitor signs up (a fresh address: allauth rate-limits confirmation mail per address)
    email = f"ada-{uuid.uuid4().hex[:8]}@example.org"
    response = Client().post(
        "/accounts/signup/",
        {
            "email": email,
            "password1": "Correct-Horse-42",
            "password2": "Correct-Horse-42",
            "name": "Ada Lovelace",
            "currency": "EUR",
            "country": "DE",
            "region": "",
        },
    )
    assert response.status_code in (200, 302)
    # then the verification mail names SubscriptionHub and its address, not Django's example.com
    assert mail.outbox, response.content.decode()[:3000]
    message = mail.outbox[-1]
    text = message.subject + message.body
    assert "example.com" not in text
    assert "SubscriptionHub" in message.body
    assert "localhost:8000" in message.body
