from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sharedkernel.catalog import render_markdown


class Command(BaseCommand):
    help = "Write docs/EVENTS.md from the code (events, payload fields, versions, upcasters, subscribers)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Fail when the committed file is out of date.")
        parser.add_argument("--output", default=str(Path(settings.BASE_DIR) / "docs" / "EVENTS.md"))

    def handle(self, *args, check=False, output=None, **options):
        path = Path(output)
        text = render_markdown()
        if check:
            if not path.exists() or path.read_text() != text:
                raise CommandError(f"{path} is out of date: run `manage.py event_catalog`.")
            self.stdout.write(f"{path} is up to date.")
            return
        path.write_text(text)
        self.stdout.write(f"Wrote {path}.")
