"""The generic DB-API proxies over a real sqlite3 database (sqlite3 itself left unpatched)."""
import json
import sqlite3

import pytest

from aws_like_sdk.core.suppression import suppress_tracing
from aws_like_sdk.ext import dbapi2
from aws_like_sdk.ext.dbapi2 import XRayTracedConn, XRayTracedCursor, add_sql_meta
from tests.support.udp_sink import walk


class ProcCursor(sqlite3.Cursor):
    """sqlite3 has no stored procedures or cursor context manager; this cursor adds both."""

    PROCEDURES = {'count_items': 'select count(*) from items', 'broken': 'select nope'}

    def callproc(self, name, params=()):
        self.execute(self.PROCEDURES[name])
        return params

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


@pytest.fixture
def raw_conn(tmp_path):
    conn = sqlite3.connect(str(tmp_path / 'shop.db'))
    conn.execute('create table items (name text, price integer)')
    conn.commit()
    yield conn
    conn.close()


def subsegments(udp_sink):
    (doc,) = udp_sink.wait_for(1)
    return [entity for entity, _ in walk(doc)][1:]


def test_execute_executemany_callproc_become_remote_subsegments(xray, udp_sink, raw_conn):
    conn = XRayTracedConn(raw_conn, {'database_type': 'SQLite', 'url': 'sqlite://bob:hunter2@localhost/shop',
                                     'user': 'bob', 'driver_version': 'sqlite3-%s' % sqlite3.version})
    with xray.in_segment('shop'):
        cur = conn.cursor()
        assert isinstance(cur, XRayTracedCursor)
        cur.execute("insert into items values ('apple', 3)")
        cur.executemany('insert into items values (?, ?)', [('pear', 4), ('plum', 5)])
        proc_cursor = conn.cursor(factory=ProcCursor)
        assert proc_cursor.callproc('count_items') == ()
        assert proc_cursor.fetchone() == (3,)
    subs = subsegments(udp_sink)
    assert [s['name'] for s in subs] == ['execute', 'executemany', 'callproc']
    for sub in subs:
        assert sub['namespace'] == 'remote'
        assert sub['sql']['database_type'] == 'SQLite'
        assert sub['sql']['url'] == 'sqlite://bob@localhost/shop'
        assert sub['sql']['user'] == 'bob'
        assert 'hunter2' not in json.dumps(sub)
    assert subs[0]['sql']['sanitized_query'] == 'insert into items values (?, ?)'
    assert subs[2]['sql']['sanitized_query'] == 'count_items'


def test_defaults_name_and_database_type_without_sharing_meta(xray, udp_sink, raw_conn):
    meta = {'name': 'orders-db'}
    named = XRayTracedConn(raw_conn, meta)
    plain = XRayTracedConn(raw_conn)
    with xray.in_segment('defaults'):
        named.cursor().execute('select 1')
        plain.cursor().execute('select 2')
        XRayTracedCursor(raw_conn.cursor()).execute('select 3')
    subs = subsegments(udp_sink)
    assert [s['name'] for s in subs] == ['orders-db', 'execute', 'execute']
    assert all(s['sql']['database_type'] == 'sqlite3' for s in subs)
    # The caller's dict is never modified (upstream wrote database_type into a shared default).
    assert meta == {'name': 'orders-db'}
    assert plain._self_xray_meta == {}


def test_parameters_are_never_recorded_and_stream_sql_decides_the_text(xray, udp_sink, raw_conn):
    conn = XRayTracedConn(raw_conn)
    query = "select * from items where name = 'literal-secret' and price > ?"
    for setting in (True, 'raw', False):
        xray.stream_sql = setting
        with xray.in_segment('stream-%s' % setting):
            conn.cursor().execute(query, ('param-secret-a',))
            conn.cursor().execute(query, ('param-secret',))
    docs = udp_sink.wait_for(3)
    by_name = {doc['name']: doc['subsegments'] for doc in docs}
    sanitized = 'select * from items where name = ? and price > ?'
    assert [s['sql'].get('sanitized_query') for s in by_name['stream-True']] == [sanitized, sanitized]
    assert [s['sql'].get('sanitized_query') for s in by_name['stream-raw']] == [query, query]
    assert [s['sql'].get('sanitized_query') for s in by_name['stream-False']] == [None, None]
    text = json.dumps(docs)
    assert 'param-secret' not in text


def test_application_errors_propagate_unchanged_and_are_recorded(xray, udp_sink, raw_conn):
    conn = XRayTracedConn(raw_conn)
    raw_error = None
    try:
        raw_conn.execute('select nope from items')
    except sqlite3.OperationalError as exc:
        raw_error = exc
    with xray.in_segment('errors'):
        with pytest.raises(sqlite3.OperationalError) as info:
            conn.cursor().execute('select nope from items')
        with pytest.raises(KeyError):
            conn.cursor(factory=ProcCursor).callproc('missing')
    assert str(info.value) == str(raw_error) and type(info.value) is type(raw_error)
    subs = subsegments(udp_sink)
    assert [s['cause']['exceptions'][0]['type'] for s in subs] == ['OperationalError', 'KeyError']
    assert all(s['fault'] for s in subs)


def test_chaining_iteration_and_context_managers_keep_the_proxy(xray, udp_sink, raw_conn):
    raw_conn.execute("insert into items values ('fig', 1)")
    conn = XRayTracedConn(raw_conn)
    with xray.in_segment('chain'):
        cur = conn.cursor()
        chained = cur.execute('select name from items')
        assert chained is cur
        assert [row for row in cur] == [('fig',)]
        with conn.cursor(factory=ProcCursor) as managed:
            assert isinstance(managed, XRayTracedCursor)
            managed.execute('select 1')
        with conn as managed_conn:
            assert managed_conn is conn
            managed_conn.cursor().execute('select 2')
        assert cur.rowcount == -1 and cur.description[0][0] == 'name'
    assert [s['name'] for s in subsegments(udp_sink)] == ['execute'] * 3


def test_no_segment_unsampled_and_suppressed_calls_are_untraced(xray, udp_sink, raw_conn, caplog_sdk):
    conn = XRayTracedConn(raw_conn)
    xray.context.context_missing = 'RUNTIME_ERROR'
    assert conn.cursor().execute('select 1').fetchall() == [(1,)]
    with xray.in_segment('unsampled', sampling=0):
        conn.cursor().execute('select 2')
    with xray.in_segment('suppressed'):
        with suppress_tracing():
            conn.cursor().execute('select 3')
    udp_sink.wait_for(1)  # the background sender may send it after the quiet spell below
    docs = udp_sink.settle(quiet=0.1)
    assert [d['name'] for d in docs] == ['suppressed'] and 'subsegments' not in docs[0]
    assert 'cannot find the current segment' not in caplog_sdk.text


def test_disabled_sdk_leaves_queries_untraced(xray, udp_sink, raw_conn):
    from aws_like_sdk import global_sdk_config
    conn = XRayTracedConn(raw_conn)
    global_sdk_config.set_sdk_enabled(False)
    with xray.in_segment('off'):
        assert conn.cursor().execute('select 7').fetchone() == (7,)
    assert udp_sink.settle(quiet=0.1) == []


def test_instrumentation_failure_is_logged_once_and_the_query_still_runs(xray, udp_sink, raw_conn, monkeypatch,
                                                                        caplog_sdk):
    def broken(query, stream_sql):
        raise RuntimeError('instrumentation bug')

    monkeypatch.setattr(dbapi2, '_query_text', broken)
    conn = XRayTracedConn(raw_conn)
    with xray.in_segment('broken'):
        assert conn.cursor().execute('select 5').fetchone() == (5,)
        assert conn.cursor().execute('select 6').fetchone() == (6,)
        with pytest.raises(sqlite3.OperationalError, match='no such column'):
            conn.cursor().execute('select nope')
    warnings = [r for r in caplog_sdk.records if 'failed; the call proceeds untraced' in r.getMessage()]
    assert len([r for r in warnings if r.levelname == 'WARNING']) == 1
    (doc,) = udp_sink.wait_for(1)
    assert 'subsegments' not in doc


def test_add_sql_meta_decorates_the_current_subsegment(xray, udp_sink):
    with xray.in_segment('manual'):
        with xray.in_subsegment('query'):
            add_sql_meta({'name': 'reports', 'database_type': 'PostgreSQL',
                          'url': 'postgresql://app:pw@db:5432/reports', 'sanitized_query': 'select ?'})
        add_sql_meta({'name': 'ignored'})  # no subsegment: nothing to do, nothing raised
    (sub,) = subsegments(udp_sink)
    assert sub['name'] == 'reports' and sub['namespace'] == 'remote'
    assert sub['sql'] == {'database_type': 'PostgreSQL', 'url': 'postgresql://app@db:5432/reports',
                          'sanitized_query': 'select ?'}
