"""`make run`'s banner comes when the system is healthy (issue 13: /healthz said 503 for ~40 s after it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_banner_prints_only_when_healthz_answers_200(tmp_path):
    # given an empty installation on SQLite and the filesystem broker, as `make run` starts it
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(DEBUG="1", SUBSCRIPTIONHUB_VAR_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    child = subprocess.Popen(
        [sys.executable, "manage.py", "runall", "--no-demo", "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        # when the banner appears
        deadline = time.monotonic() + 240
        seen = []
        for line in child.stdout:
            seen.append(line)
            if "SubscriptionHub is running on" in line or time.monotonic() > deadline:
                break
        assert any("SubscriptionHub is running on" in line for line in seen), "".join(seen[-30:])
        # then /healthz answers 200 at once
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            assert response.status == 200
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
