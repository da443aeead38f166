"""TaxCalculator adapters: the TaxRate table staff edit (default), and an HTTP tax API.

Neither ever invents a rate: the HTTP adapter raises TaxUnavailable after its
retries, and the invoice waits as a draft until a retry succeeds.
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation

import requests
from django.conf import settings
from django.core.cache import cache
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from billing.values import Jurisdiction, TaxCalculation, TaxUnavailable
from sharedkernel.outside import ensure_outside_transaction
from sharedkernel.values import Money

logger = logging.getLogger(__name__)

EXEMPT_REASON = "Customer is tax exempt"


def _exempt(amount: Money, jurisdiction: Jurisdiction) -> TaxCalculation:
    return TaxCalculation(Decimal(0), Money.zero(amount.currency), str(jurisdiction), "Tax exempt", True, EXEMPT_REASON)


def _apply(rate: Decimal, amount: Money, jurisdiction: Jurisdiction, name: str) -> TaxCalculation:
    return TaxCalculation(rate, amount.times(rate), str(jurisdiction), name)


class _OneByOne:
    def calculate_many(self, requests):
        results = []
        for amount, jurisdiction, exempt in requests:
            try:
                results.append(self.calculate(amount=amount, jurisdiction=jurisdiction, exempt=exempt))
            except TaxUnavailable as exc:
                results.append(exc)
        return results


class TaxRateTable(_OneByOne):
    """Rates from the TaxRate table: the region's rate, else the country's, else none.

    A jurisdiction with no rate means the business collects no tax there (0,
    named so on the invoice) — that is configuration, not a guess.
    """

    def calculate(self, *, amount: Money, jurisdiction: Jurisdiction, exempt: bool) -> TaxCalculation:
        # a table, not a network call — but it stands in for one, so paths that would call a tax API
        # inside a transaction fail in the tests that use it
        ensure_outside_transaction("tax calculator calculate")
        if exempt:
            return _exempt(amount, jurisdiction)
        from billing.models import TaxRate

        return self._with(TaxRate.for_jurisdiction(jurisdiction), amount, jurisdiction)

    def calculate_many(self, requests):
        """One query for all the jurisdictions of a batch."""
        ensure_outside_transaction("tax calculator calculate_many")
        from billing.models import TaxRate

        rates = TaxRate.for_jurisdictions({j for _, j, exempt in requests if not exempt})
        return [_exempt(amount, j) if exempt else self._with(rates.get(j), amount, j) for amount, j, exempt in requests]

    @staticmethod
    def _with(rate, amount: Money, jurisdiction: Jurisdiction) -> TaxCalculation:
        if rate is None:
            return TaxCalculation(
                Decimal(0), Money.zero(amount.currency), str(jurisdiction), f"No tax collected in {jurisdiction}"
            )
        return _apply(rate.rate, amount, jurisdiction, rate.name)


class HttpTaxCalculator(_OneByOne):
    """An external tax API: GET {TAX_API_URL}/rates?country=US&region=CA →
    {"rate": "0.0725", "name": "California sales tax"}.

    Timeout TAX_API_TIMEOUT seconds, retries with backoff on connection errors and
    5xx, rates cached for TAX_API_CACHE_SECONDS per jurisdiction.
    """

    def __init__(self) -> None:
        self.base_url = getattr(settings, "TAX_API_URL", "").rstrip("/")
        self.timeout = float(getattr(settings, "TAX_API_TIMEOUT", 3))
        self.cache_seconds = int(getattr(settings, "TAX_API_CACHE_SECONDS", 3600))
        self.session = requests.Session()
        retry = Retry(
            total=int(getattr(settings, "TAX_API_RETRIES", 2)),
            backoff_factor=0.2,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=("GET",),
            raise_on_status=False,
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        key = getattr(settings, "TAX_API_KEY", "")
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def calculate(self, *, amount: Money, jurisdiction: Jurisdiction, exempt: bool) -> TaxCalculation:
        ensure_outside_transaction("tax API calculate")
        if exempt:
            return _exempt(amount, jurisdiction)
        rate, name = self._rate(jurisdiction)
        return _apply(rate, amount, jurisdiction, name)

    def _rate(self, jurisdiction: Jurisdiction) -> tuple[Decimal, str]:
        key = f"billing:tax-rate:{self.base_url}:{jurisdiction}"
        cached = cache.get(key)
        if cached is not None:
            return Decimal(cached[0]), cached[1]
        if not self.base_url:
            raise TaxUnavailable("TAX_API_URL is not configured.")
        try:
            response = self.session.get(
                f"{self.base_url}/rates",
                params={"country": jurisdiction.country, "region": jurisdiction.region},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise TaxUnavailable(f"Tax API unreachable: {exc.__class__.__name__}") from None
        if response.status_code != 200:
            raise TaxUnavailable(f"Tax API answered {response.status_code}.")
        try:
            body = response.json()
            rate = Decimal(str(body["rate"]))
            name = str(body.get("name") or f"Tax {jurisdiction}")
        except (ValueError, KeyError, TypeError, InvalidOperation):
            raise TaxUnavailable("Tax API answered something that is not a rate.") from None
        if not Decimal(0) <= rate < Decimal(1):
            raise TaxUnavailable(f"Tax API answered an impossible rate {rate}.")
        cache.set(key, (str(rate), name), self.cache_seconds)
        return rate, name
