"""The demo's webhook receiver while its history is loaded.

The demo customer's endpoint is this app's own ``/demo/webhook-receiver/`` at the demo's address
(``DEMO_BASE_URL``). While ``seed`` loads months of history no web server runs yet, so the seeder
serves that one path itself on that address, and lets the address guard pass exactly that origin
(``WEBHOOK_ALLOWED_ORIGINS``) with the receiver on (``DEMO_WEBHOOK_RECEIVER``) for as long as it
runs: the deliveries the history makes are received, signatures checked, instead of retrying.
Both settings are back as they were afterwards; nothing else is allowed past the guard, and
production never runs the seeder. ``make run`` then passes the same two settings to its web
server and worker, so later deliveries reach the same receiver.
"""

from __future__ import annotations

import contextlib
import threading
from urllib.parse import urlparse

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

RECEIVER_PATH = "/demo/webhook-receiver/"


def base_url() -> str:
    return getattr(settings, "DEMO_BASE_URL", "http://127.0.0.1:8000").rstrip("/")


def receiver_url(base: str) -> str:
    return f"{base.rstrip('/')}{RECEIVER_PATH}"


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # the seeder prints its own summary
        pass


def _only_the_receiver(app):
    def serve(environ, start_response):
        if environ.get("PATH_INFO") != RECEIVER_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Only the demo's webhook receiver is served while the demo loads."]
        return app(environ, start_response)

    return serve


@contextlib.contextmanager
def serving(base: str, *, log=print):
    """Serve the demo receiver on ``base``'s host and port, and allow that origin, until exit."""
    parsed = urlparse(base)
    previous = (settings.WEBHOOK_ALLOWED_ORIGINS, settings.DEMO_WEBHOOK_RECEIVER)
    settings.WEBHOOK_ALLOWED_ORIGINS = [*previous[0], base]
    settings.DEMO_WEBHOOK_RECEIVER = True
    server = None
    try:
        server = ThreadedWSGIServer((parsed.hostname, parsed.port or 80), _Quiet, allow_reuse_address=True)
    except OSError as exc:  # the port is taken: whatever listens there answers (or the delivery retries)
        log(f"The demo's webhook receiver cannot listen on {base} ({exc}); its deliveries retry until it answers.")
    try:
        if server is not None:
            server.set_app(_only_the_receiver(WSGIHandler()))
            threading.Thread(target=server.serve_forever, name="demo-webhook-receiver", daemon=True).start()
        yield receiver_url(base)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        settings.WEBHOOK_ALLOWED_ORIGINS, settings.DEMO_WEBHOOK_RECEIVER = previous
