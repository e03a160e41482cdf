"""SQLAlchemy fixtures: file-backed SQLite databases in tmp_path and the core patch, always undone."""
import pytest
import sqlalchemy as sa

from aws_like_sdk.ext import sqlalchemy_core


@pytest.fixture
def engine(tmp_path):
    eng = sa.create_engine('sqlite:///%s' % (tmp_path / 'app.db'))
    with eng.begin() as conn:
        conn.exec_driver_sql('CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)')
    yield eng
    eng.dispose()


@pytest.fixture
def patched():
    sqlalchemy_core.patch()
    yield
    sqlalchemy_core.unpatch()
