import os

from django.core.management.base import BaseCommand

from config import demo


class Command(BaseCommand):
    help = "Create demo plans, customers and months of history through the real commands and jobs."

    def add_arguments(self, parser):
        parser.add_argument("--months", type=int, default=6)
        parser.add_argument("--customers", type=int, default=36)
        parser.add_argument(
            "--base-url",
            default=os.environ.get("DEMO_BASE_URL", "http://127.0.0.1:8000"),
            help="The address the demo will be served on: the demo customer's webhook endpoint is its "
            "/demo/webhook-receiver/ (served by this command while it loads the history).",
        )

    def handle(self, *args, **options):
        demo.seed(
            months=options["months"], customers=options["customers"], base=options["base_url"], log=self.stdout.write
        )
