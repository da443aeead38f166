"""PaymentGateway adapters: an offline sandbox and Stripe (through the official package).

Both translate into PaymentResult / RefundResult / PaymentMethodInfo; no gateway
type leaks into the domain.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict, deque

import stripe
from django.conf import settings

from billing.values import (
    GatewayNoAnswer,
    InvalidPaymentMethod,
    PaymentMethodInfo,
    PaymentOutcome,
    PaymentResult,
    RefundResult,
)
from sharedkernel.outside import ensure_outside_transaction
from sharedkernel.values import Money

logger = logging.getLogger(__name__)


class SandboxGateway:
    """Test card tokens of API.md, answered in-process and deterministically.

    pm_card_visa succeeds; pm_card_chargeDeclined and pm_card_insufficientFunds
    decline; pm_card_processingError is a transient gateway error. The same
    idempotency key always gets the same answer and the same reference.
    """

    CARDS = {
        "pm_card_visa": ("visa", "4242", None),
        "pm_card_mastercard": ("mastercard", "4444", None),
        "pm_card_chargeDeclined": ("visa", "0002", ("card_declined", "Your card was declined.")),
        "pm_card_insufficientFunds": ("visa", "9995", ("insufficient_funds", "Your card has insufficient funds.")),
        "pm_card_processingError": (
            "visa",
            "0119",
            ("processing_error", "An error occurred while processing the card."),
        ),
    }

    #: How many answers it remembers per process (Stripe keeps keys for 24 h).
    REMEMBERED = 200_000

    def __init__(self) -> None:
        self._answers: OrderedDict[str, PaymentResult | RefundResult] = OrderedDict()
        self._lock = threading.Lock()
        #: Charges that moved (pretend) money: (idempotency key, amount, description), newest last.
        self.charges: deque[tuple[str, Money, str]] = deque(maxlen=self.REMEMBERED)

    def describe(self, token: str) -> PaymentMethodInfo:
        ensure_outside_transaction("payment gateway describe")
        if token not in self.CARDS:
            raise InvalidPaymentMethod(
                f"Unknown payment method {token!r}. Sandbox test tokens: {', '.join(sorted(self.CARDS))}."
            )
        brand, last4, _ = self.CARDS[token]
        return PaymentMethodInfo(token=token, brand=brand, last4=last4)

    def _once(self, key: str, answer):
        """Like Stripe: the first answer to a key is the answer to every repeat of it, and only the
        first call has an effect."""
        with self._lock:
            if key in self._answers:
                self._answers.move_to_end(key)
                return self._answers[key], False
            result = answer()
            self._answers[key] = result
            if len(self._answers) > self.REMEMBERED:
                self._answers.popitem(last=False)
            return result, True

    def charge(self, *, amount: Money, token: str, idempotency_key: str, description: str) -> PaymentResult:
        ensure_outside_transaction("payment gateway charge")
        result, first = self._once(f"charge:{idempotency_key}", lambda: self._answer(amount, token, idempotency_key))
        if first and result.succeeded:
            self.charges.append((idempotency_key, amount, description))
        return result

    def _answer(self, amount: Money, token: str, idempotency_key: str) -> PaymentResult:
        reference = "ch_sandbox_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
        if token not in self.CARDS:
            return PaymentResult(PaymentOutcome.DECLINED, "", "invalid_payment_method", "No usable payment method.")
        _, _, failure = self.CARDS[token]
        raw = {"id": reference, "amount": amount.minor_units, "currency": amount.currency, "token": token}
        if failure is None:
            return PaymentResult(PaymentOutcome.SUCCEEDED, reference, raw=raw | {"status": "succeeded"})
        code, message = failure
        outcome = PaymentOutcome.ERROR if code == "processing_error" else PaymentOutcome.DECLINED
        return PaymentResult(outcome, reference, code, message, raw=raw | {"status": "failed", "code": code})

    def refund(self, *, charge_reference: str, amount: Money, idempotency_key: str) -> RefundResult:
        ensure_outside_transaction("payment gateway refund")
        reference = "re_sandbox_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
        result, _ = self._once(
            f"refund:{idempotency_key}",
            lambda: RefundResult(
                True, reference, raw={"id": reference, "charge": charge_reference, "amount": amount.minor_units}
            ),
        )
        return result


class StripeGateway:
    """Stripe PaymentIntents through the official ``stripe`` package.

    STRIPE_API_KEY and (for tests against a local fake) STRIPE_API_BASE come from
    settings. Card errors are declines; connection, rate-limit and 5xx errors are
    transient. Idempotency keys are passed to Stripe, so a retried charge after a
    crash never charges twice.
    """

    def __init__(self) -> None:
        api_base = getattr(settings, "STRIPE_API_BASE", "") or None
        self.client = stripe.StripeClient(
            getattr(settings, "STRIPE_API_KEY", ""),
            base_addresses={"api": api_base} if api_base else {},
            max_network_retries=2,
        )

    def describe(self, token: str) -> PaymentMethodInfo:
        ensure_outside_transaction("Stripe payment_methods.retrieve")
        try:
            method = self.client.v1.payment_methods.retrieve(token)
        except stripe.InvalidRequestError as exc:
            raise InvalidPaymentMethod(exc.user_message or str(exc)) from None
        data = method.to_dict()
        card = data.get("card") or {}
        return PaymentMethodInfo(
            token=token, brand=card.get("brand") or data.get("type", ""), last4=card.get("last4", "")
        )

    def charge(self, *, amount: Money, token: str, idempotency_key: str, description: str) -> PaymentResult:
        ensure_outside_transaction("Stripe payment_intents.create")
        params = {
            "amount": amount.minor_units,
            "currency": amount.currency.lower(),
            "payment_method": token,
            "confirm": True,
            "off_session": True,
            "description": description,
        }
        try:
            intent = self.client.v1.payment_intents.create(params=params, options={"idempotency_key": idempotency_key})
        except stripe.CardError as exc:
            error = exc.error
            code = (error.decline_code or error.code or "card_declined") if error else "card_declined"
            intent = getattr(error, "payment_intent", None) if error else None
            return PaymentResult(
                PaymentOutcome.DECLINED,
                intent.id if intent is not None else "",
                code,
                exc.user_message or str(exc),
                raw=exc.json_body or {},
            )
        except stripe.APIConnectionError as exc:  # no answer (after the client's own retries): unknown
            raise GatewayNoAnswer(str(exc) or "Stripe unreachable") from exc
        except stripe.IdempotencyError as exc:  # the same key is being answered right now
            raise GatewayNoAnswer(str(exc) or "Another request with this key is in progress") from exc
        except (stripe.RateLimitError, stripe.APIError) as exc:
            logger.warning("Stripe unavailable: %s", exc)
            return PaymentResult(PaymentOutcome.ERROR, "", "gateway_unavailable", str(exc) or "Stripe unavailable")
        raw = intent.to_dict() if hasattr(intent, "to_dict") else dict(intent)
        if intent.status == "succeeded":
            return PaymentResult(PaymentOutcome.SUCCEEDED, intent.id, raw=raw)
        return PaymentResult(
            PaymentOutcome.DECLINED,
            intent.id,
            intent.status,
            f"Payment not completed (status {intent.status}).",
            raw=raw,
        )

    def refund(self, *, charge_reference: str, amount: Money, idempotency_key: str) -> RefundResult:
        ensure_outside_transaction("Stripe refunds.create")
        try:
            refund = self.client.v1.refunds.create(
                params={"payment_intent": charge_reference, "amount": amount.minor_units},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            return RefundResult(False, "", exc.user_message or str(exc))
        return RefundResult(
            refund.status in ("succeeded", "pending"),
            refund.id,
            raw=refund.to_dict() if hasattr(refund, "to_dict") else dict(refund),
        )
