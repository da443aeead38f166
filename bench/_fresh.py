"""The empty database every bench starts from, on the server of the caller's DATABASE_URL.

``database(default_name)`` names it (``BENCH_DB_NAME`` or the bench's default) and
``recreate(...)`` drops and creates it, so a bench never writes into the caller's own
database and two engineers benching at once only need two names.
"""

from __future__ import annotations

import os


def database(default_name: str) -> tuple[str, str, str]:
    """(the caller's DATABASE_URL, the bench database's name, its URL)."""
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    name = os.environ.get("BENCH_DB_NAME", default_name)
    return base, name, base.rsplit("/", 1)[0] + "/" + name


def recreate(base_url: str, name: str) -> None:
    """Drop ``name`` (closing its connections) and create it empty, through the server's ``postgres``."""
    import psycopg

    with psycopg.connect(base_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
