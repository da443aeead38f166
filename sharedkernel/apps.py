from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class SharedKernelConfig(AppConfig):
    name = "sharedkernel"
    verbose_name = "Event plumbing"

    def ready(self) -> None:
        # Every process (web, worker, beat, shell) must know all published
        # events, all subscribed handlers and all scheduled jobs before the
        # first event is appended: deliveries are created from this registry.
        from sharedkernel import bus, tasks  # noqa: F401  (connects the signal receiver, registers tasks)
        from sharedkernel.api.fields import refuse_non_strings_as_text

        refuse_non_strings_as_text()

        autodiscover_modules("events", "policies", "jobs")
