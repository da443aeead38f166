"""Staff edges of the Subscriptions context, one module per aggregate (each registers its admin).

Nothing here writes a model directly: forms collect input and call a command,
actions call a command per selected row. Status and prices of a subscription
are never editable fields.
"""

from subscriptions.admin import customers, plans, price_migrations, subscriptions, usage

__all__ = ["customers", "plans", "price_migrations", "subscriptions", "usage"]
