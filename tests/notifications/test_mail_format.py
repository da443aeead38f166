"""The quick header folding writes e-mails byte for byte as Python's standard (compat32) policy does."""

from __future__ import annotations

from email.policy import compat32

import pytest
from django.conf import settings

from notifications.composition import QUICK_FOLD, TEMPLATES, Email, render

CONTEXT = {
    "name": "Zoë  O'Brien-Łukasiewicz, Customer Number Forty-Two of a Rather Long Company Name Ltd",
    "site_url": "http://localhost:8000",
    "invoice_number": "INV-2026-000123",
    "amount": "€1,234.50",
    "url": "http://localhost:8000/app/invoices/0b0e2f3c-1111-4222-8333-444455556666/",
    "plan_name": "Professional (annual)",
    "days_left": 3,
    "urgency": "Final notice",
}


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_is_written_exactly_as_the_standard_policy_writes_it(template):
    subject, text, html = render(template, CONTEXT)
    for to in ("short@example.com", "a-very-long-mailbox-name-that-goes-on-and-on@subdomain.example-company.com"):
        email = Email(subject, text, settings.DEFAULT_FROM_EMAIL, [to], headers={"Message-ID": "<1@x>"})
        email.attach_alternative(html, "text/html")
        message = email.message()
        assert message.policy is QUICK_FOLD
        quick = message.as_bytes()  # what the backends write (SMTP with linesep="\r\n")
        message.policy = compat32
        standard = message.as_bytes()
        assert quick == standard and b"Subject: " in quick


@pytest.mark.parametrize(
    "value",
    ["plain short value", "two  spaces", " leading", "tab\there", "x" * 90, "Zoë", "=?utf-8?q?x?=", ""],
)
def test_the_shortcut_and_the_general_path_agree_on_awkward_values(value):
    assert QUICK_FOLD.fold("Subject", value) == compat32.fold("Subject", value)
