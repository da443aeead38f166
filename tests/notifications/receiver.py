"""A webhook receiver on loopback that verifies signatures the way docs/webhooks.md tells integrators to."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

from tests.fakes.servers import LoopbackServer


def verify(secret: str, raw_body: bytes, header: str) -> bool:
    """The receiver's side, written from the docs (not imported from the code under test)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - t) > 300:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


class Receiver(LoopbackServer):
    """Answers each POST with the next of ``answers`` (then 200), optionally slowly or with a redirect."""

    def __init__(self, *, answers: list[int] | None = None, delay: float = 0.0, location: str = ""):
        self.secret = ""
        self.answers = list(answers or [])
        self.delay, self.location = delay, location
        self.received: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.received.append(
                        {
                            "event": json.loads(raw) if raw else None,
                            "headers": dict(self.headers),
                            "verified": verify(outer.secret, raw, self.headers.get("SubscriptionHub-Signature", "")),
                        }
                    )
                    answer = outer.answers.pop(0) if outer.answers else 200
                if outer.delay:
                    time.sleep(outer.delay)
                self.send_response(answer)
                if outer.location:
                    self.send_header("Location", outer.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(Handler)
        self.url = f"http://127.0.0.1:{self.port}/hooks"

    def types(self) -> list[str]:
        with self.lock:
            return [r["event"]["event_type"] for r in self.received if r["event"]]
