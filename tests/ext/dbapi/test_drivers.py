"""Network driver integrations (PyMySQL, pg8000, psycopg2, psycopg, mysql-connector).

No database server runs here, so each driver connects to a loopback port that refuses: the
driver's own error must reach the caller unchanged and the attempt must be recorded as a
``connect`` subsegment with the connection's ``sql`` fields and never its password. Drivers that
are not installed are skipped.
"""
import importlib
import json
import socket

import pytest

from aws_like_sdk.core import patcher
from aws_like_sdk.ext._patching import is_wrapped
from aws_like_sdk.ext.dbapi2 import XRayTracedConn
from tests.support.udp_sink import walk

PASSWORD = 'hunter2-never-recorded'


@pytest.fixture
def refused_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connections are refused at once
    return port


def _pymysql(port):
    import pymysql
    return pymysql, 'connect', lambda: pymysql.connect(host='127.0.0.1', port=port, user='bob', password=PASSWORD,
                                                       database='shop', connect_timeout=2)


def _pg8000(port):
    import pg8000
    return pg8000, 'connect', lambda: pg8000.connect('bob', host='127.0.0.1', port=port, password=PASSWORD,
                                                     database='shop', timeout=2)


def _psycopg2(port):
    import psycopg2
    dsn = 'host=127.0.0.1 port=%d user=bob password=%s dbname=shop connect_timeout=2' % (port, PASSWORD)
    return psycopg2, 'connect', lambda: psycopg2.connect(dsn)


def _psycopg(port):
    import psycopg
    url = 'postgresql://bob:%s@127.0.0.1:%d/shop' % (PASSWORD, port)
    return psycopg, 'connect', lambda: psycopg.connect(url, connect_timeout=2)


def _mysql(port):
    import mysql.connector
    return mysql.connector, 'connect', lambda: mysql.connector.connect(
        host='127.0.0.1', port=port, user='bob', password=PASSWORD, database='shop', connection_timeout=2)


DRIVERS = {
    'pymysql': ('pymysql', _pymysql, 'mysql://bob@127.0.0.1:{port}/shop', 'MySQL', 'PyMySQL'),
    'pg8000': ('pg8000', _pg8000, 'postgresql://bob@127.0.0.1:{port}/shop', 'PostgreSQL', 'Pg8000'),
    'psycopg2': ('psycopg2', _psycopg2, 'postgresql://bob@127.0.0.1:{port}/shop', 'PostgreSQL', 'Psycopg 2'),
    'psycopg': ('psycopg', _psycopg, 'postgresql://bob@127.0.0.1:{port}/shop', 'PostgreSQL', 'Psycopg 3'),
    'mysql': ('mysql.connector', _mysql, 'mysql://bob@127.0.0.1:{port}/shop', 'MySQL', 'MySQL-Connector'),
}


@pytest.fixture(params=sorted(DRIVERS))
def driver(request, refused_port):
    name = request.param
    library, factory, url, db_type, driver_version = DRIVERS[name]
    pytest.importorskip(library)
    ext = importlib.import_module('aws_like_sdk.ext.%s' % name)
    module, attr, connect = factory(refused_port)
    original = getattr(module, attr)
    ext.patch()
    yield {'name': name, 'module': module, 'attr': attr, 'connect': connect, 'original': original, 'ext': ext,
           'url': url.format(port=refused_port), 'database_type': db_type, 'driver_version': driver_version}
    ext.unpatch()
    assert getattr(module, attr) is original


def _error_of(call):
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - any driver error is what we compare
        return exc
    raise AssertionError('connecting to a refused port succeeded')


def test_refused_connect_raises_the_drivers_error_and_is_recorded(xray, udp_sink, driver):
    module, attr = driver['module'], driver['attr']
    assert is_wrapped(module, attr)
    setattr(module, attr, driver['original'])
    try:
        expected = _error_of(driver['connect'])
    finally:
        driver['ext'].unpatch()
        driver['ext'].patch()
    with xray.in_segment('connect-%s' % driver['name']):
        actual = _error_of(driver['connect'])
    assert type(actual) is type(expected)
    (doc,) = udp_sink.wait_for(1)
    (sub,) = [entity for entity, _ in walk(doc)][1:]
    assert sub['name'] == 'connect' and sub['namespace'] == 'remote' and sub['fault'] is True
    assert sub['sql'] == {'url': driver['url'], 'user': 'bob', 'database_type': driver['database_type'],
                          'driver_version': driver['driver_version']}
    assert sub['cause']['exceptions'][0]['type'] == type(expected).__name__
    assert PASSWORD not in json.dumps(doc)


def test_connect_outside_a_segment_is_untraced(xray, udp_sink, driver, caplog_sdk):
    xray.context.context_missing = 'RUNTIME_ERROR'
    error = _error_of(driver['connect'])
    assert 'aws_like_sdk' not in type(error).__module__
    assert udp_sink.settle(quiet=0.1) == []
    assert 'cannot find the current segment' not in caplog_sdk.text


def test_patch_is_idempotent_and_registered_with_the_patcher(driver):
    module, attr = driver['module'], driver['attr']
    wrapper = getattr(module, attr)
    driver['ext'].patch()
    assert getattr(module, attr) is wrapper
    driver['ext'].unpatch()
    patcher.patch([driver['name']])
    try:
        assert driver['name'] in patcher._PATCHED_MODULES
        assert is_wrapped(module, attr)
    finally:
        patcher.unpatch([driver['name']])
    assert driver['name'] not in patcher._PATCHED_MODULES
    assert getattr(module, attr) is driver['original']
    driver['ext'].patch()


def test_connection_details_failure_still_returns_a_traced_connection(monkeypatch):
    """The connection-details reader may fail on a driver we have not seen; the app keeps its connection."""
    from aws_like_sdk.ext._dbdriver import traced_connect

    class Conn:
        def cursor(self):
            return object()

    def params(args, kwargs):
        raise KeyError('odd argument shape')

    def details(conn, meta):
        raise AttributeError('odd connection')

    wrapper = traced_connect('oddity', params, details)
    conn = wrapper(lambda *a, **k: Conn(), None, (), {})
    assert isinstance(conn, XRayTracedConn) and isinstance(conn.__wrapped__, Conn)


@pytest.mark.parametrize('name, args, kwargs, expected', [
    ('pymysql', (), {'host': 'db', 'port': 3307, 'user': b'app', 'password': 'x', 'db': 'orders'},
     {'url': 'mysql://app@db:3307/orders', 'user': 'app'}),
    ('pymysql', (), {'unix_socket': '/run/mysqld.sock', 'user': 'app'}, {'user': 'app'}),
    ('pg8000', ('app',), {'host': '::1', 'password': 'x'}, {'url': 'postgresql://app@[::1]:5432/', 'user': 'app'}),
    ('psycopg2', ('host=db user=app password=x',), {'dbname': 'orders', 'port': 6432},
     {'url': 'postgresql://app@db:6432/orders', 'user': 'app'}),
    ('psycopg', ('postgresql://app:x@db/orders',), {'user': 'admin'},
     {'url': 'postgresql://admin@db/orders', 'user': 'admin'}),
    ('mysql', (), {'user': 'app', 'password': 'x', 'database': 'orders'},
     {'url': 'mysql://app@127.0.0.1:3306/orders', 'user': 'app', 'name': '127.0.0.1'}),
])
def test_connection_parameters_become_sql_fields(name, args, kwargs, expected):
    pytest.importorskip(DRIVERS[name][0])
    ext_patch = importlib.import_module('aws_like_sdk.ext.%s.patch' % name)
    meta = ext_patch._params_meta(args, kwargs)
    assert {k: v for k, v in meta.items() if k in expected and v} == expected
    assert 'x' not in [v for v in meta.values()]
    assert 'password' not in meta


def test_psycopg2_scope_functions_get_the_real_objects():
    psycopg2 = pytest.importorskip('psycopg2')
    import psycopg2.extensions
    import psycopg2.sql

    ext_patch = importlib.import_module('aws_like_sdk.ext.psycopg2.patch')
    sites = ext_patch._scope_sites()
    assert (psycopg2.extensions, 'register_type') in sites and (psycopg2.sql.Identifier, 'as_string') in sites
    received = []

    def scope_taker(obj, scope=None):
        received.append(scope)
        return 'ok'

    sentinel = object()
    wrapped = ext_patch._pass_real_objects(scope_taker, None, (1, XRayTracedConn(sentinel)), {})
    assert wrapped == 'ok' and received[-1] is sentinel
    ext_patch._pass_real_objects(scope_taker, None, (1,), {'scope': XRayTracedConn(sentinel)})
    assert received[-1] is sentinel
    ext_patch.patch()
    try:
        assert all(is_wrapped(owner, attr) for owner, attr in sites)
        assert psycopg2.sql.SQL('select 1').as_string(XRayTracedConn(sentinel)) == 'select 1'
    finally:
        ext_patch.unpatch()
    assert not any(is_wrapped(owner, attr) for owner, attr in sites)
