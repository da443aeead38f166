"""The production settings with bench/api_urls.py as the URL conf (adds the bare view)."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.api_urls"
