"""Local stand-ins for external services, on loopback only (no network in tests)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlparse


class LoopbackServer:
    """Serves a handler class on 127.0.0.1:<free port>, in a daemon thread while the ``with`` block runs."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeServer(LoopbackServer):
    """A stand-in service on loopback; ``requests`` records what came in."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.requests: list[dict] = []
        outer = self

        class Recording(handler):
            server_state = outer

            def log_message(self, *args):  # keep test output quiet
                pass

        super().__init__(Recording)
        self.url = f"http://127.0.0.1:{self.port}"


class JsonHandler(BaseHTTPRequestHandler):
    server_state: FakeServer

    def reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def record(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        url = urlparse(self.path)
        entry = {
            "method": self.command,
            "path": url.path,
            "query": {k: v[0] for k, v in parse_qs(url.query).items()},
            "form": {k: v[0] for k, v in parse_qs(raw).items()},
            "headers": dict(self.headers),
        }
        self.server_state.requests.append(entry)
        return entry


class FakeStripe(JsonHandler):
    """Enough of Stripe's v1 API for PaymentIntents, PaymentMethods and Refunds.

    pm_ok succeeds; pm_declined is a 402 card_error (insufficient_funds); pm_down answers 500.
    A repeated Idempotency-Key gets the first answer again, as Stripe does.
    """

    answered: dict[str, tuple[int, dict]] = {}

    def do_GET(self):
        entry = self.record()
        pm = entry["path"].rsplit("/", 1)[-1]
        if entry["path"].startswith("/v1/payment_methods/") and pm in ("pm_ok", "pm_declined", "pm_down"):
            return self.reply(
                200,
                {
                    "id": pm,
                    "object": "payment_method",
                    "type": "card",
                    "card": {"brand": "visa", "last4": "4242" if pm == "pm_ok" else "9995"},
                },
            )
        return self.reply(
            404,
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "message": f"No such PaymentMethod: '{pm}'",
                }
            },
        )

    def do_POST(self):
        entry = self.record()
        key = entry["headers"].get("Idempotency-Key")
        if key and key in self.answered:
            return self.reply(*self.answered[key])
        answer = self.answer(entry)
        if key and answer[0] < 500:
            self.answered[key] = answer
        return self.reply(*answer)

    def answer(self, entry) -> tuple[int, dict]:
        form = entry["form"]
        number = len(self.server_state.requests)
        if entry["path"] == "/v1/payment_intents":
            pm = form.get("payment_method")
            if pm == "pm_down":
                return 500, {"error": {"type": "api_error", "message": "Something went wrong on Stripe's end."}}
            intent = {
                "id": f"pi_{number}",
                "object": "payment_intent",
                "amount": int(form["amount"]),
                "currency": form["currency"],
                "payment_method": pm,
            }
            if pm == "pm_declined":
                return 402, {
                    "error": {
                        "type": "card_error",
                        "code": "card_declined",
                        "decline_code": "insufficient_funds",
                        "message": "Your card has insufficient funds.",
                        "payment_intent": intent | {"status": "requires_payment_method"},
                    }
                }
            return 200, intent | {"status": "succeeded"}
        if entry["path"] == "/v1/refunds":
            return 200, {
                "id": f"re_{number}",
                "object": "refund",
                "status": "succeeded",
                "amount": int(form["amount"]),
                "payment_intent": form["payment_intent"],
            }
        return 404, {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}


class FakeTaxApi(JsonHandler):
    """GET /rates?country=&region= → {"rate", "name"}; US-FAIL answers 503 (every time)."""

    def do_GET(self):
        entry = self.record()
        country, region = entry["query"].get("country"), entry["query"].get("region", "")
        if entry["path"] != "/rates":
            return self.reply(404, {"error": "not found"})
        if region == "FAIL":
            return self.reply(503, {"error": "overloaded"})
        if region == "JUNK":
            return self.reply(200, {"rate": "lots"})
        rates = {("US", "CA"): ("0.0725", "California sales tax"), ("DE", ""): ("0.19", "Umsatzsteuer")}
        rate, name = rates.get((country, region), ("0", "No tax"))
        return self.reply(200, {"rate": rate, "name": name})
