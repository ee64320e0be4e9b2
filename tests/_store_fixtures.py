"""Store fixtures shared by the store, concurrency and io tests: every store test runs on
SQLite and, marked ``postgres``, on PostgreSQL in a fresh, uniquely named schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from tunegate.store import Store

__all__ = ["pg_schema", "store", "store_url"]


@contextmanager
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh schema in the test database; yields a URL whose search_path is that schema."""
    schema = f"tg_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in pg_url else "?"
        yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with pg_schema(request.getfixturevalue("pg_url")) as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    st = Store(store_url)
    yield st
    st.close()
