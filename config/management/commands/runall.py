"""Run the whole product from one command: web, worker and beat.

    python manage.py runall            # migrate, demo data on first start, then serve
    python manage.py runall --no-demo  # an empty installation

Each part is a child process whose output is prefixed with its name; Ctrl-C
stops them all. In production run them separately (see README).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from config import demo


class Command(BaseCommand):
    help = "Migrate, load demo data once, and run web + Celery worker + Celery beat together."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--no-demo", action="store_true", help="Do not load demo data.")
        parser.add_argument("--workers", type=int, default=2, help="Celery worker processes.")
        parser.add_argument(
            "--health-timeout",
            type=float,
            default=120.0,
            help="Seconds to wait for /healthz (database, broker, beat's first heartbeat) before the banner.",
        )

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        from subscriptions.models import Plan

        address = f"{options['host']}:{options['port']}"
        # the demo's webhook endpoint is this app's own receiver: allowed for this origin only
        origin = f"http://{address}"
        if not options["no_demo"] and not Plan.objects.exists():
            self.stdout.write("Loading demo data (six months of history, about a minute)…")
            demo.seed(base=origin, log=self.stdout.write)
        python = sys.executable
        parts = {
            "web": [
                python,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--bind",
                address,
                "--workers",
                "2",
                "--threads",
                "4",
                "--access-logfile",
                "-",
            ],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--concurrency",
                str(options["workers"]),
                "--loglevel",
                "INFO",
            ],
            "beat": [python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO"],
        }
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if not options["no_demo"]:
            allowed = [o for o in env.get("WEBHOOK_ALLOWED_ORIGINS", "").split(",") if o.strip()]
            env["WEBHOOK_ALLOWED_ORIGINS"] = ",".join([*allowed, origin])
            env.setdefault("DEMO_WEBHOOK_RECEIVER", "1")
        children = {
            name: subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for name, cmd in parts.items()
        }
        for name, child in children.items():
            threading.Thread(target=self._echo, args=(name, child), daemon=True).start()
        url = f"http://{address}"
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        health = self._wait_until_healthy(url, children, stopping, timeout=options["health_timeout"])
        logins = "".join(
            f"  {'Customer pages:' if i == 0 else '':<17}{url + '/app/' if i == 0 else '':<30}"
            f"login {email} / {demo.DEMO_PASSWORD}  ({what})\n"
            for i, (email, what) in enumerate(demo.DEMO_LOGINS.items())
        )
        self.stdout.write(
            (self.style.SUCCESS if health == "ok" else self.style.WARNING)(
                f"\nSubscriptionHub is running on {url}  (database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, "
                f"broker: {settings.CELERY_BROKER_URL.split(':', 1)[0]})\n"
                f"  Staff admin:     {url + '/admin/':<30}login admin / {demo.DEMO_PASSWORD}\n"
                f"{logins}"
                f"  API docs:        {url}/api/docs/\n"
                f"  Health:          {url}/healthz  ({health})\n"
                "Press Ctrl-C to stop.\n"
            )
        )
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        try:
            while not stopping.is_set():
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited with {child.returncode}; stopping everything.")
                        stopping.set()
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()

    def _wait_until_healthy(self, url: str, children: dict, stopping: threading.Event, *, timeout: float) -> str:
        """Poll /healthz until it answers 200, so the banner never announces a system that is not
        ready yet (beat's first heartbeat arrives a few seconds after its start)."""
        deadline = time.monotonic() + timeout
        last = "not answering"
        while time.monotonic() < deadline and not stopping.is_set():
            if any(child.poll() is not None for child in children.values()):
                return "a process exited"
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
                    if response.status == 200:
                        return "ok"
            except urllib.error.HTTPError as exc:
                last = exc.read().decode(errors="replace")[:300]
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)
        return f"not healthy yet: {last}"

    def _echo(self, name: str, child: subprocess.Popen) -> None:
        for line in child.stdout:
            self.stdout.write(f"{name:>6} | {line.rstrip()}")
