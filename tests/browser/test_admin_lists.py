"""Staff lists and money on demo data, in a real browser (issue 13): every admin list fits a
1280 px window, and the lists that were too wide (plans, payments, dunning, webhooks) fit by
their columns, with no id, code, date or word broken over lines; a negative amount shows one
minus sign everywhere a customer or staff member reads it."""

from __future__ import annotations

import re
import socket

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from billing.models import Invoice
from config.demo import seed
from subscriptions.models import Plan, Subscription
from tests.browser.conftest import shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FITTED = [
    "/admin/subscriptions/plan/",
    "/admin/billing/payment/",
    "/admin/billing/dunningqueue/",
    "/admin/notifications/webhookdelivery/",
    "/admin/notifications/webhookendpoint/",
]

#: Words (and the compact dates and clipped ids) of list cells that a line break cuts in two.
BROKEN_WORDS = """() => {
  const broken = [];
  const lines = (rects) => new Set([...rects].filter(r => r.width > 0).map(r => Math.round(r.top))).size;
  for (const cell of document.querySelectorAll('#result_list tbody td, #result_list tbody th')) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode())) {
      const words = /\\S+/g;
      let m;
      while ((m = words.exec(node.textContent))) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        if (lines(range.getClientRects()) > 1) broken.push(cell.className + ': ' + m[0]);
      }
    }
    for (const whole of cell.querySelectorAll('.moment, .clip')) {
      if (lines(whole.getClientRects()) > 1) broken.push(cell.className + ': ' + whole.textContent);
    }
  }
  return broken;
}"""

#: A sign from a template next to the number's own: "−-5.00", "--5.00", "- −5.00", "+−5".
DOUBLE_SIGN = re.compile(r"[-−–+]\s?[-−–]\s?\d")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _seed(months: int = 4) -> None:
    seed(months=months, customers=8, base=f"http://127.0.0.1:{_free_port()}", log=lambda *_: None)


def _page_as(browser, live_server, user, width: int = 1280):
    client = Client()
    client.force_login(user)
    context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page = context.new_page()
    page.set_default_timeout(15_000)
    return context, page


def test_every_admin_list_fits_1280_px_and_the_wide_ones_break_no_word(browser, live_server):
    # given the demo's data and a staff member at 1280 px
    _seed()
    context, page = _page_as(browser, live_server, get_user_model().objects.get(username="admin"))
    page.goto("/admin/")
    lists = page.eval_on_selector_all(
        "#content-main table th[scope=row] a", "links => [...new Set(links.map(a => a.getAttribute('href')))]"
    )
    assert set(FITTED) <= set(lists)
    problems = []
    for path in lists:
        # when they open each list
        page.goto(path)
        # then the page is no wider than the window, and the list no wider than its box
        wider = page.evaluate("document.documentElement.scrollWidth") - 1280
        clipped = page.evaluate(
            "(() => { const r = document.querySelector('#changelist .results');"
            " return r ? r.scrollWidth - r.clientWidth : 0; })()"
        )
        if wider > 0 or (path in FITTED and clipped > 0):
            problems.append(f"{path}: {wider} px wider than the window, the list {clipped} px wider than its box")
        if path in FITTED:
            shot(page, "admin-list-" + path.strip("/").replace("/", "-"))
            # and no id, code, date or word of a fitted list is broken over lines
            assert page.locator("#result_list tbody tr").count() > 0, path
            problems += [f"{path}: broken {word}" for word in page.evaluate(BROKEN_WORDS)]
    context.close()
    assert problems == []


def test_a_negative_amount_shows_one_minus_sign_on_customer_and_staff_pages(browser, live_server):
    # given the demo: the demo customer's prorated invoice, its credit used on renewals, a downgrade credit
    _seed(months=5)
    user = get_user_model().objects.get(email="demo@example.com")
    sub = Subscription.objects.get(customer__email="demo@example.com")
    invoices = list(Invoice.objects.filter(customer_id=sub.customer_id).exclude(status="draft"))
    assert {line.kind for i in invoices for line in i.lines.all()} >= {"proration", "credit"}
    customer_pages = ["/billing/invoices/", *(f"/billing/invoices/{i.id}/" for i in invoices)]
    customer_pages += [
        f"/billing/subscriptions/{sub.id}/change-plan/?plan={plan.id}" for plan in Plan.objects.exclude(pk=sub.plan_id)
    ]
    staff_pages = [f"/admin/billing/invoice/{i.id}/change/" for i in invoices] + ["/admin/billing/creditentry/"]
    seen, doubled = 0, []
    for who, pages in ((user, customer_pages), (get_user_model().objects.get(username="admin"), staff_pages)):
        context, page = _page_as(browser, live_server, who)
        for path in pages:
            # when they read the page
            page.goto(path)
            text = page.inner_text("body")
            seen += len(re.findall(r"[-−]\d", text))
            # then every negative amount carries exactly one sign
            doubled += [f"{path}: {m.group(0)}" for m in DOUBLE_SIGN.finditer(text)]
        context.close()
    assert seen > 0 and doubled == []
