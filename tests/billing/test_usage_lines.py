"""Billing's overage lines: quantity × the unit rate from UsageCalculated, rounded once per line."""

from __future__ import annotations

from billing.acl.subscriptions import PlanFacts, UsageFacts
from billing.commands import usage_lines
from sharedkernel.values import Money, UnitRate


def calculated(*metrics: dict) -> dict:
    return {
        "subscription_id": "6a1f5e1e-0000-4000-8000-000000000002",
        "customer_id": "6a1f5e1e-0000-4000-8000-000000000001",
        "plan_name": "API",
        "currency": "USD",
        "period": {"start": "2025-05-01T00:00:00+00:00", "end": "2025-06-01T00:00:00+00:00"},
        "metrics": list(metrics),
        "final": False,
    }


def metric(name, used, included, rate):
    return {"metric": name, "used": used, "included": included, "overage": max(0, used - included), "rate": rate}


def test_each_line_is_quantity_times_the_fine_rate_rounded_half_up_once():
    facts = UsageFacts.from_payload(
        calculated(
            metric("api_calls", 1_001_001, 1000, {"amount": "0.000125", "currency": "USD"}),
            metric("exports", 3, 0, {"amount": "0.004999", "currency": "USD"}),
            metric("halves", 4, 0, {"amount": "0.00125", "currency": "USD"}),
            metric("seats", 2, 5, {"amount": "1.00", "currency": "USD"}),  # not over: no line
        )
    )
    lines = {line.metric: line for line in usage_lines(facts)}
    assert set(lines) == {"api_calls", "exports", "halves"}
    assert (lines["api_calls"].quantity, lines["api_calls"].amount) == (1_000_001, Money("125.00", "USD"))
    assert lines["exports"].amount == Money("0.01", "USD")  # 0.014997, not 3 × 0.00
    assert lines["halves"].amount == Money("0.01", "USD")  # 0.005 rounds up
    assert "at 0.000125 USD each" in lines["api_calls"].description


def test_events_stored_before_rates_were_finer_still_read():
    # UsageCalculated and PlanCreated payloads of old wrote the rate as Money at the minor digits
    old = UsageFacts.from_payload(calculated(metric("api_calls", 1500, 1000, {"amount": "0.01", "currency": "USD"})))
    assert old.metrics[0].rate == UnitRate("0.01", "USD")
    assert [line.amount for line in usage_lines(old)] == [Money("5.00", "USD")]
    plan = PlanFacts.from_payload(
        {
            "plan_id": "p",
            "code": "api-m",
            "name": "API",
            "interval": "month",
            "prices": [{"amount": "50.00", "currency": "USD"}],
            "overage_rates": {"api_calls": [{"amount": "0.01", "currency": "USD"}]},
        }
    )
    assert plan.overage_rates == {"api_calls": {"USD": "0.01"}}


def test_pages_show_one_minus_sign_and_the_pdf_its_ascii_twin():
    """A credit line reads "−22.48 USD" on every page (the typographic minus, grouped), the PDF
    the same figure with "-" (its fonts have no U+2212), and a positive amount has no sign."""
    from billing.documents import _money
    from sharedkernel.templatetags.formatting import money

    assert money(Money("-22.48", "USD")) == "\u221222.48 USD"
    assert money({"amount": "-1234.5", "currency": "KWD"}) == "\u22121,234.500 KWD"
    assert money(Money("4600", "EUR")) == "4,600.00 EUR"
    assert _money(Money("-22.48", "USD")) == "-22.48 USD"
    assert _money(Money("1234", "JPY")) == "1,234 JPY"
