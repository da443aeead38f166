from django.apps import AppConfig


class ConfigAppConfig(AppConfig):
    """The composition root: demo data and the all-in-one run command live here."""

    name = "config"
    label = "config"
    verbose_name = "SubscriptionHub"
