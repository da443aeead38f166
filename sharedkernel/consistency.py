"""Read your writes: the middleware that makes a client's request run, before it answers, the
reactions whose results that client can read in its next call (``sharedkernel.bus``, contract step 6).

Without it, ``POST /customers/`` followed at once by ``PUT /customers/{id}/payment-method/`` answered
404 for a fifth of a second: Billing opens the account from ``CustomerRegistered`` on a worker. With
it, the request that committed ``CustomerRegistered`` opens the account itself (or waits for the
worker that already holds that delivery), so the answer the client gets is never ahead of what it
can read. Reactions that take time by nature (tax, charging, e-mail, webhooks) stay on the workers.
"""

from __future__ import annotations

from sharedkernel.bus import serving_a_client


class ReadYourWritesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with serving_a_client():
            return self.get_response(request)
