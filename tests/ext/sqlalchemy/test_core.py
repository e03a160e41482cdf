"""sqlalchemy_core: statement subsegments from SQLAlchemy's public engine events, against SQLite files."""
import importlib
import logging
import sqlite3
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from aws_like_sdk.core.suppression import suppress_tracing
from aws_like_sdk.ext import sqlalchemy_core
from aws_like_sdk.ext._sql import strip_url_credentials
from tests.support.udp_sink import assemble

core_patch = importlib.import_module('aws_like_sdk.ext.sqlalchemy_core.patch')


def subsegments(doc):
    return doc.get('subsegments', [])


def test_statement_subsegment_with_sql_block(xray, udp_sink, engine, patched, tmp_path):
    with xray.in_segment('request'):
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id FROM users WHERE name = 'alice' AND id > :n"), {'n': 3}).all()
    assert rows == []
    (doc,) = udp_sink.wait_for(1)
    (sub,) = subsegments(doc)
    path = str(tmp_path / 'app.db')
    assert sub['namespace'] == 'remote' and sub['name'] == path
    sql = sub['sql']
    assert sql['url'] == 'sqlite:///%s' % path
    assert sql['database_type'] == 'sqlite' and sql['driver_version'] == 'pysqlite'
    assert sql['database_version'] == sqlite3.sqlite_version
    assert sql['sanitized_query'] == 'SELECT id FROM users WHERE name = ? AND id > ?'


def test_stream_sql_modes(xray, udp_sink, engine, patched):
    stmt = "SELECT 'secret' AS s"
    for mode in (False, 'raw'):
        xray.stream_sql = mode
        with xray.in_segment('request'):
            with engine.connect() as conn:
                conn.exec_driver_sql(stmt).all()
    docs = udp_sink.wait_for(2)
    assert 'sanitized_query' not in docs[0]['subsegments'][0]['sql']
    assert docs[1]['subsegments'][0]['sql']['sanitized_query'] == stmt


def test_orm_statements_and_executemany(xray, udp_sink, engine, patched):
    with xray.in_segment('request'):
        with engine.begin() as conn:
            conn.execute(sa.text('INSERT INTO users (name) VALUES (:name)'), [{'name': 'a'}, {'name': 'b'}])
            assert conn.execute(sa.text('SELECT count(*) FROM users')).scalar() == 2
    (doc,) = udp_sink.wait_for(1)
    queries = [s['sql'].get('sanitized_query') for s in subsegments(doc)]
    assert queries == ['INSERT INTO users (name) VALUES (?)', 'SELECT count(*) FROM users']


def test_errors_are_recorded_and_reraised_unchanged(xray, udp_sink, engine, patched):
    with xray.in_segment('request'):
        with engine.connect() as conn:
            with pytest.raises(sa.exc.OperationalError) as info:
                conn.exec_driver_sql('SELECT * FROM no_such_table')
    assert 'no such table' in str(info.value)
    (doc,) = udp_sink.wait_for(1)
    (sub,) = subsegments(doc)
    assert sub['fault'] is True and sub['in_progress'] is False
    assert sub['cause']['exceptions'][0]['type'] == 'OperationalError'


def test_integrity_error_inside_transaction(xray, udp_sink, engine, patched):
    with xray.in_segment('request'):
        with pytest.raises(sa.exc.IntegrityError):
            with engine.begin() as conn:
                conn.execute(sa.text('INSERT INTO users (id, name) VALUES (1, NULL)'))
    (doc,) = udp_sink.wait_for(1)
    assert [s.get('fault') for s in subsegments(doc)] == [True]


def test_no_segment_no_subsegment_no_noise(engine, patched, xray, udp_sink, caplog_sdk):
    with engine.connect() as conn:
        assert conn.exec_driver_sql('SELECT 1').scalar() == 1
    assert udp_sink.settle(quiet=0.1) == []
    assert not [r for r in caplog_sdk.records if r.levelno >= logging.WARNING]


def test_suppressed_and_unsampled(engine, patched, xray, udp_sink):
    with xray.in_segment('request'):
        with suppress_tracing():
            with engine.connect() as conn:
                conn.exec_driver_sql('SELECT 1').all()
    with xray.in_segment('unsampled', sampling=0):
        with engine.connect() as conn:
            conn.exec_driver_sql('SELECT 1').all()
    (doc,) = udp_sink.settle(quiet=0.1)
    assert doc['name'] == 'request' and 'subsegments' not in doc


def test_patch_unpatch_idempotent(engine, xray, udp_sink):
    sqlalchemy_core.patch()
    sqlalchemy_core.patch()
    assert event.contains(Engine, 'before_cursor_execute', core_patch._before_cursor_execute)
    with xray.in_segment('one'):
        with engine.connect() as conn:
            conn.exec_driver_sql('SELECT 1').all()
    sqlalchemy_core.unpatch()
    sqlalchemy_core.unpatch()
    assert not event.contains(Engine, 'before_cursor_execute', core_patch._before_cursor_execute)
    with xray.in_segment('two'):
        with engine.connect() as conn:
            conn.exec_driver_sql('SELECT 1').all()
    docs = {d['name']: d for d in udp_sink.wait_for(2)}
    assert len(docs['one']['subsegments']) == 1 and 'subsegments' not in docs['two']


def test_engine_created_before_patch_and_no_global_growth(tmp_path, xray, udp_sink):
    import urllib.parse
    eng = sa.create_engine('sqlite:///%s' % (tmp_path / 'early.db'))
    before = len(urllib.parse.uses_netloc)
    sqlalchemy_core.patch()
    try:
        with xray.in_segment('request'):
            with eng.connect() as conn:
                for _ in range(50):
                    conn.exec_driver_sql('SELECT 1').all()
    finally:
        sqlalchemy_core.unpatch()
    udp_sink.wait_for(1)
    (doc,) = assemble(udp_sink.settle(quiet=0.1)).values()
    assert len(doc['subsegments']) == 50
    assert len(urllib.parse.uses_netloc) == before
    assert len(core_patch._engine_meta) == 0  # unpatch forgets engines; it is weak anyway
    eng.dispose()


def test_threads_each_get_their_own_parent(xray, udp_sink, engine, patched):
    def worker(name):
        with xray.in_segment(name):
            with engine.connect() as conn:
                conn.exec_driver_sql('SELECT %d' % len(name)).all()

    threads = [threading.Thread(target=worker, args=('seg-%s' % ('x' * i),)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    docs = udp_sink.wait_for(5)
    assert len(docs) == 5
    for doc in docs:
        (sub,) = doc['subsegments']
        assert sub['parent_id'] == doc['id']
        assert sub['sql']['sanitized_query'] == 'SELECT ?'


def test_broken_instrumentation_never_breaks_the_query(xray, udp_sink, engine, patched, monkeypatch, caplog_sdk):
    def explode(engine):
        raise RuntimeError('instrumentation bug')

    monkeypatch.setattr(core_patch, '_static_meta', explode)
    with xray.in_segment('request'):
        with engine.connect() as conn:
            assert conn.exec_driver_sql('SELECT 7').scalar() == 7
    (doc,) = udp_sink.wait_for(1)
    assert 'subsegments' not in doc
    assert any('SQLAlchemy statement subsegment' in r.getMessage() for r in caplog_sdk.records)


def test_url_without_password_and_host_port_name(xray):
    pytest.importorskip('psycopg')
    # Never connected: only the URL and dialect are read.
    eng = sa.create_engine('postgresql+psycopg://scott:tiger@db.example.com:5433/app?sslmode=require')
    name, meta = core_patch._static_meta(eng)
    assert name == 'db.example.com:5433'
    assert meta['url'] == 'postgresql+psycopg://scott@db.example.com:5433/app'
    assert meta['user'] == 'scott' and meta['database_type'] == 'postgresql'
    assert 'tiger' not in repr(meta)


def test_strip_url_credentials_keeps_ipv6_brackets():
    assert strip_url_credentials('mysql://u:p@[::1]:3306/db') == 'mysql://u@[::1]:3306/db'
    assert strip_url_credentials('postgresql://[2001:db8::5]/db') == 'postgresql://[2001:db8::5]/db'
