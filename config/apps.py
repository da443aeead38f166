from urllib.parse import urlparse

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


def _name_the_site(**kwargs) -> None:
    """django.contrib.sites starts as "example.com"; allauth's mails greet with its name. Name and
    domain come from settings (SITE_NAME, SITE_URL), after every migrate."""
    from django.contrib.sites.models import Site

    domain = urlparse(settings.SITE_URL).netloc or "localhost"
    Site.objects.update_or_create(pk=settings.SITE_ID, defaults={"domain": domain, "name": settings.SITE_NAME})
    Site.objects.clear_cache()


class ConfigAppConfig(AppConfig):
    """The composition root: demo data and the all-in-one run command live here."""

    name = "config"
    label = "config"
    verbose_name = "SubscriptionHub"

    def ready(self) -> None:
        from config import wiring

        wiring.wire()
        from django.apps import apps

        # after django.contrib.sites made its default Site (its handler is connected first)
        sites = apps.get_app_config("sites")
        post_migrate.connect(_name_the_site, sender=sites, dispatch_uid="config.name_the_site")
