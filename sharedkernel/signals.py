"""The one signal of the event plumbing.

``events_committed`` is sent after the transaction that appended events has
committed, with ``deliveries=[(handler_name, delivery_id), ...]``. Its only
receiver hands them to workers (:func:`sharedkernel.bus.dispatch_committed`).
No business logic hangs off signals.
"""

from django.dispatch import Signal

events_committed = Signal()
