"""sqlite3 integration against real database files."""
import json
import sqlite3

import pytest

from aws_like_sdk.ext import dbapi2
from aws_like_sdk.ext._patching import is_wrapped
from aws_like_sdk.ext.sqlite3 import patch, unpatch
from aws_like_sdk.ext.sqlite3.patch import XRayTracedSQLite
from tests.support.udp_sink import walk


@pytest.fixture
def patched():
    original = sqlite3.connect
    patch()
    yield
    unpatch()
    assert sqlite3.connect is original


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / 'inventory.db')


def subsegments(udp_sink):
    (doc,) = udp_sink.wait_for(1)
    return [entity for entity, _ in walk(doc)][1:]


def test_queries_are_named_after_the_database_with_the_sqlite_version(xray, udp_sink, patched, db_path):
    with xray.in_segment('inventory'):
        conn = sqlite3.connect(db_path)
        assert isinstance(conn, XRayTracedSQLite)
        conn.execute('create table stock (sku text, qty integer)')
        conn.executemany('insert into stock values (?, ?)', [('a-1', 3), ('b-2', 4)])
        rows = conn.cursor().execute("select sku from stock where qty > 3 and sku like 'b%'").fetchall()
        conn.executescript('create index qty_idx on stock (qty); analyze;')
        conn.commit()
        conn.close()
    assert rows == [('b-2',)]
    subs = subsegments(udp_sink)
    assert [s['name'] for s in subs] == [db_path] * 4
    for sub in subs:
        assert sub['namespace'] == 'remote'
        assert sub['sql']['database_type'] == 'sqlite3'
        assert sub['sql']['database_version'] == sqlite3.sqlite_version
    assert [s['sql']['sanitized_query'] for s in subs] == [
        'create table stock (sku text, qty integer)', 'insert into stock values (?, ?)',
        'select sku from stock where qty > ? and sku like ?', 'create index qty_idx on stock (qty); analyze;']


def test_database_given_by_keyword_path_or_bytes(xray, udp_sink, patched, tmp_path):
    import pathlib
    with xray.in_segment('names'):
        sqlite3.connect(database=':memory:').execute('select 1')
        sqlite3.connect(pathlib.Path(tmp_path / 'p.db')).execute('select 1')
        sqlite3.connect(str(tmp_path / 'b.db').encode()).execute('select 1')
        sqlite3.connect('file::memory:?cache=shared', uri=True).execute('select 1')
    names = [s['name'] for s in subsegments(udp_sink)]
    assert names == [':memory:', str(tmp_path / 'p.db'), str(tmp_path / 'b.db'), 'file::memory:cache=shared']


def test_with_block_keeps_tracing_and_commits(xray, udp_sink, patched, db_path):
    with xray.in_segment('tx'):
        with sqlite3.connect(db_path) as conn:
            assert isinstance(conn, XRayTracedSQLite)
            conn.execute('create table t (v)')
            conn.execute('insert into t values (1)')
    check = sqlite3.connect(db_path)
    assert check.execute('select count(*) from t').fetchone() == (1,)
    assert len(subsegments(udp_sink)) == 2


def test_errors_propagate_unchanged_and_are_recorded(xray, udp_sink, patched):
    conn = sqlite3.connect(':memory:')
    with xray.in_segment('errors'):
        with pytest.raises(sqlite3.OperationalError, match='no such table: missing'):
            conn.execute('select * from missing')
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute('select ?', ())
    subs = subsegments(udp_sink)
    assert [s['cause']['exceptions'][0]['type'] for s in subs] == ['OperationalError', 'ProgrammingError']
    assert all(s['fault'] for s in subs)


def test_connect_errors_are_the_drivers_own(patched, tmp_path):
    with pytest.raises(sqlite3.OperationalError, match='unable to open database file'):
        sqlite3.connect(str(tmp_path / 'no' / 'such' / 'dir.db'))


def test_stream_sql_and_parameters(xray, udp_sink, patched):
    conn = sqlite3.connect(':memory:')
    xray.stream_sql = False
    with xray.in_segment('no-text'):
        conn.execute("select 'top-secret' where 1 = ?", ('param-secret',))
    xray.stream_sql = 'raw'
    with xray.in_segment('raw'):
        conn.execute("select 'visible' where 1 = ?", ('param-secret',))
    docs = {d['name']: d for d in udp_sink.wait_for(2)}
    assert 'sanitized_query' not in docs['no-text']['subsegments'][0]['sql']
    assert docs['raw']['subsegments'][0]['sql']['sanitized_query'] == "select 'visible' where 1 = ?"
    assert 'top-secret' not in json.dumps(docs) and 'param-secret' not in json.dumps(docs)


def test_patch_is_idempotent_and_connections_survive_unpatch(xray, udp_sink):
    original = sqlite3.connect
    patch()
    wrapper = sqlite3.connect
    patch()
    assert sqlite3.connect is wrapper and is_wrapped(sqlite3, 'connect')
    conn = sqlite3.connect(':memory:')
    unpatch()
    assert sqlite3.connect is original
    with xray.in_segment('survivor'):
        conn.execute('select 1')
        sqlite3.connect(':memory:').execute('select 2')
    assert len(subsegments(udp_sink)) == 1


def test_failing_instrumentation_never_breaks_queries(xray, udp_sink, patched, monkeypatch, caplog_sdk):
    def broken_begin(*args, **kwargs):
        raise RuntimeError('recorder bug')

    monkeypatch.setattr(xray, 'begin_subsegment', broken_begin)
    conn = sqlite3.connect(':memory:')
    with xray.in_segment('broken'):
        assert conn.execute('select 42').fetchone() == (42,)
        with pytest.raises(sqlite3.OperationalError):
            conn.execute('select nope')
    assert 'failed; the call proceeds untraced' in caplog_sdk.text
    (doc,) = udp_sink.wait_for(1)
    assert 'subsegments' not in doc


def test_failing_connect_wrapper_returns_the_plain_connection(patched, monkeypatch, caplog_sdk):
    import importlib
    patch_module = importlib.import_module('aws_like_sdk.ext.sqlite3.patch')

    class Exploding(dbapi2.XRayTracedConn):
        def __init__(self, conn, meta=None):
            raise RuntimeError('proxy bug')

    monkeypatch.setattr(patch_module, 'XRayTracedSQLite', Exploding)
    conn = sqlite3.connect(':memory:')
    assert type(conn) is sqlite3.Connection
    assert conn.execute('select 1').fetchone() == (1,)
