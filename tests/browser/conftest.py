"""Headless Chromium (Debian's, driven by Playwright) against the live test server."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from tests.conftest import ARTIFACTS

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def link_in_last_mail(pattern: str) -> str:
    from django.core import mail

    assert mail.outbox, "no e-mail was sent"
    match = re.search(pattern, mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(0)


def log_in(page, live_server, user) -> None:
    """``user``'s session in the browser (logged in through Django's test client, not the form)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def customer_with_login(
    username: str, name: str, email: str, *, currency="USD", country="GB", card="pm_card_visa", handled=None
):
    """A customer who can log in (password ``Correct-Horse-42``), registered by Subscriptions'
    command and, with ``card``, given a working card. ``handled`` waits for what registering recorded
    (by default the real worker's handling; ``drain`` in a test without a worker)."""
    from django.contrib.auth import get_user_model

    from billing import commands as billing
    from subscriptions import commands as subs
    from tests.conftest import wait_until_handled

    user = get_user_model().objects.create_user(username, email, "Correct-Horse-42")
    customer, _ = subs.register_customer(name=name, email=email, currency=currency, country=country, user=user)
    (handled or wait_until_handled)()
    if card:
        billing.update_payment_method(customer_id=str(customer.id), token=card)
    return user, customer
