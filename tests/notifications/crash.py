"""A process of its own, on the test database, that a test can SIGKILL half-way (as a worker dies)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from tests.conftest import ARTIFACTS, ROOT, _database_url


class Doomed:
    """Runs ``code`` (after ``django.setup()``) in a child process with the test database and ``env``."""

    def __init__(self, code: str, **env: str):
        from django.conf import settings
        from django.db import connection

        self.code = code
        self.env = dict(os.environ)
        self.env.update(
            DATABASE_URL=_database_url(connection.settings_dict),
            DJANGO_SETTINGS_MODULE="config.settings",
            TESTING="1",
            EVENT_DISPATCH="manual",  # nothing to a broker: the test runs what follows itself
            SUBSCRIPTIONHUB_VAR_DIR=str(settings.VAR_DIR),
            **env,
        )
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / "doomed-process.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Doomed:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"import django\ndjango.setup()\n{self.code}"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def kill_when(self, condition: Callable[[], bool], timeout: float = 60) -> None:
        """SIGKILL the process as soon as ``condition()`` holds (no cleanup runs: no rollback, no close)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"The process ended before it could be killed; see {self.log_path}")
            if time.monotonic() > deadline:
                raise AssertionError(f"Condition not reached after {timeout}s; see {self.log_path}")
            time.sleep(0.005)
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
