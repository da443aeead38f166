from django.core.management.base import BaseCommand

from config import demo


class Command(BaseCommand):
    help = "Create demo plans, customers and months of history through the real commands and jobs."

    def add_arguments(self, parser):
        parser.add_argument("--months", type=int, default=6)
        parser.add_argument("--customers", type=int, default=36)

    def handle(self, *args, **options):
        demo.seed(months=options["months"], customers=options["customers"], log=self.stdout.write)
