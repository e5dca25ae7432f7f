"""Scratch PostgreSQL databases for the benchmarks: created fresh for a run, dropped afterwards."""

from __future__ import annotations

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def database_recreate(name: str) -> None:
    """Drop `name` if it exists (closing its connections), then create it empty."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


def database_drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
