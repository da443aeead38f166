"""The broker and the cache: Redis when ``REDIS_URL`` is set, else the embedded default (Celery's
filesystem transport and a file cache under ``var/``), so `make run` needs no server."""

from __future__ import annotations

import os
from pathlib import Path

from config.env import env_int


def redis(url: str) -> tuple[dict, dict]:
    """(CELERY_BROKER_TRANSPORT_OPTIONS, CACHES) for Redis at ``url``."""
    timeout = float(os.environ.get("REDIS_TIMEOUT_SECONDS", "1"))
    # A Redis outage must not take the API down (DRF's throttles read this cache on every request):
    # calls fall back to a local in-process store and say so in the log (sharedkernel/cache.py).
    caches = {
        "default": {
            "BACKEND": "sharedkernel.cache.FallbackRedisCache",
            "LOCATION": url,
            "OPTIONS": {
                "socket_connect_timeout": timeout,
                "socket_timeout": timeout,
                "FALLBACK_RETRY_SECONDS": env_int("CACHE_FALLBACK_RETRY_SECONDS", 5),
            },
        }
    }
    transport = {
        # A task that is not acknowledged within this time is handed to another
        # worker (acks_late). Our tasks are short; an hour leaves ample room.
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
        # A publish after commit to an unreachable Redis fails within seconds, not the OS's TCP
        # timeout: the deliveries stay for the relay and the request answers (bus.dispatch_committed).
        "socket_connect_timeout": timeout,
        "socket_timeout": 5,
    }
    return transport, caches


def embedded(broker_dir: Path, cache_dir: Path) -> tuple[dict, dict]:
    """(CELERY_BROKER_TRANSPORT_OPTIONS, CACHES) for the filesystem transport in ``broker_dir``."""
    (broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    transport = {
        "data_folder_in": str(broker_dir),
        "data_folder_out": str(broker_dir),
        "processed_folder": str(broker_dir / "processed"),
        "control_folder": str(broker_dir / "control"),  # not ./control in whatever directory we run from
        "store_processed": False,
        "polling_interval": 0.1,
    }
    caches = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(cache_dir)}}
    return transport, caches
