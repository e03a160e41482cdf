"""Database subsegments from the execute wrapper installed by patch_db()."""
import logging
import platform
import sqlite3

import pytest

from tests.ext.django.helpers import only_segment, subsegments


def _queries(segment):
    return [sub for sub in subsegments(segment) if sub.get('namespace') == 'remote']


def test_every_query_is_a_remote_subsegment_with_sql_block(client, udp_sink, django_project):
    response = client.get('/items/1/')
    assert response.status_code == 200
    (query,) = _queries(only_segment(udp_sink))
    assert query['name'] == 'execute'
    sql = query['sql']
    assert sql['database_type'] == 'sqlite'
    assert sql['url'] == 'sqlite://%s/default.sqlite3' % django_project
    assert sql['database_version'] == sqlite3.sqlite_version
    assert sql['driver_version'] == 'sqlite3 %s' % platform.python_version()
    assert sql['sanitized_query'].startswith('SELECT "shop_item"."id"')
    assert 'user' not in sql  # SQLite has no USER
    assert 'preparation' not in sql


def test_two_databases_each_get_their_subsegments(client, udp_sink, django_project):
    response = client.get('/two-databases/')
    assert response.status_code == 200
    queries = _queries(only_segment(udp_sink))
    urls = [query['sql']['url'] for query in queries]
    assert urls.count('sqlite://%s/default.sqlite3' % django_project) >= 2  # insert + count
    assert urls.count('sqlite://%s/other.sqlite3' % django_project) >= 2
    assert any(q['sql']['sanitized_query'].startswith('INSERT INTO "shop_item"') for q in queries)


def test_literals_are_sanitized_and_parameters_never_recorded(client, udp_sink):
    client.get('/raw-sql/')
    segment = only_segment(udp_sink)
    queries = _queries(segment)
    assert [q['name'] for q in queries] == ['execute', 'execute', 'executemany']
    texts = [q['sql']['sanitized_query'] for q in queries]
    assert texts[0] == "SELECT name FROM shop_item WHERE name = ? AND price > ?"
    assert texts[1] == 'SELECT name FROM shop_item WHERE name = %s'
    assert texts[2] == 'INSERT INTO shop_item (name, price) VALUES (%s, %s)'
    dumped = repr(segment)
    assert 'top secret' not in dumped and 'param-secret' not in dumped and '> 42' not in dumped


def test_stream_sql_raw_records_text_as_written(client, udp_sink, django_xray):
    django_xray.stream_sql = 'raw'
    client.get('/raw-sql/')
    texts = [q['sql']['sanitized_query'] for q in _queries(only_segment(udp_sink))]
    assert texts[0] == "SELECT name FROM shop_item WHERE name = 'top secret' AND price > 42"
    assert 'param-secret' not in repr(texts)


def test_stream_sql_false_records_no_text(client, udp_sink, django_xray):
    django_xray.stream_sql = False
    client.get('/raw-sql/')
    queries = _queries(only_segment(udp_sink))
    assert queries and all('sanitized_query' not in q['sql'] for q in queries)
    assert all(q['sql']['database_type'] == 'sqlite' for q in queries)


def test_failing_query_records_exception_and_django_sees_the_original_error(django_xray, udp_sink):
    from django.db import OperationalError
    from django.test import Client
    with pytest.raises(OperationalError, match='no_such_table'):
        Client().get('/bad-sql/')
    segment = only_segment(udp_sink)
    (query,) = _queries(segment)
    assert query['fault'] is True
    assert query['cause']['exceptions'][0]['type'] == 'OperationalError'
    assert query['sql']['sanitized_query'] == 'SELECT * FROM no_such_table'


@pytest.mark.parametrize('strategy', ['RUNTIME_ERROR', 'LOG_ERROR', 'IGNORE_ERROR'])
def test_queries_outside_a_segment_never_raise_or_emit(django_xray, udp_sink, caplog, strategy):
    from django.db import connection

    from tests.ext.django.project.shop.models import Item
    django_xray.context.context_missing = strategy
    with caplog.at_level(logging.DEBUG, logger='aws_like_sdk'):
        Item.objects.create(name='outside')
        assert Item.objects.filter(name='outside').exists()
        with connection.cursor() as cursor:
            cursor.execute('SELECT 1')
    assert udp_sink.settle(quiet=0.1) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_unsampled_request_records_no_queries(client, udp_sink):
    response = client.get('/items/1/', HTTP_X_AMZN_TRACE_ID='Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0')
    assert response.status_code == 200
    assert udp_sink.settle(quiet=0.1) == []


def test_query_inside_manual_segment_and_subsegment(django_xray, udp_sink):
    from tests.ext.django.project.shop.models import Item
    with django_xray.in_segment('job'):
        with django_xray.in_subsegment('batch'):
            list(Item.objects.all()[:1])
    segment = only_segment(udp_sink)
    (batch,) = segment['subsegments']
    assert batch['name'] == 'batch'
    assert [sub['name'] for sub in batch['subsegments']] == ['execute']


def test_wrapper_installed_once_per_connection_and_outermost(django_xray):
    from django.db import connection

    from aws_like_sdk.ext.django.db import patch_db, xray_execute_wrapper
    connection.ensure_connection()
    patch_db()
    patch_db()
    assert connection.execute_wrappers.count(xray_execute_wrapper) == 1

    def user_wrapper(execute, sql, params, many, context):
        return execute(sql, params, many, context)

    with connection.execute_wrapper(user_wrapper):
        connection.close()
        connection.ensure_connection()  # reconnect inside the user's block fires connection_created
        assert connection.execute_wrappers[0] is xray_execute_wrapper
    # The user's block popped its own wrapper, not ours.
    assert connection.execute_wrappers == [xray_execute_wrapper]


def test_unpatch_and_repatch(django_xray, udp_sink):
    from django.db import connection

    from aws_like_sdk.ext.django.db import patch_db, unpatch_db, xray_execute_wrapper
    from tests.ext.django.project.shop.models import Item
    unpatch_db()
    try:
        assert xray_execute_wrapper not in connection.execute_wrappers
        with django_xray.in_segment('unpatched'):
            Item.objects.count()
        assert 'subsegments' not in only_segment(udp_sink)
    finally:
        patch_db()
    udp_sink.clear()
    with django_xray.in_segment('patched'):
        Item.objects.count()
    assert [sub['name'] for sub in only_segment(udp_sink)['subsegments']] == ['execute']


def test_connection_meta_of_a_networked_database():
    from aws_like_sdk.ext.django import db

    class FakeConnection:
        vendor = 'postgresql'
        settings_dict = {'HOST': 'db.example.com', 'PORT': 5432, 'USER': 'app user', 'PASSWORD': 's3cret',
                         'NAME': 'shop'}
        Database = None
        connection = None

    meta = db._connection_meta(FakeConnection())
    assert meta['name'] == 'db.example.com'
    assert meta['url'] == 'postgresql://app%20user@db.example.com:5432/shop'
    block = db._sql_block(FakeConnection(), "SELECT 1 WHERE a = 'x'", True, succeeded=True)
    assert block == {'url': 'postgresql://app%20user@db.example.com:5432/shop', 'user': 'app user',
                     'database_type': 'postgresql', 'sanitized_query': 'SELECT ? WHERE a = ?'}
    assert 's3cret' not in repr(block)


def test_host_setting_names_the_subsegment(django_xray, udp_sink):
    from django.db import connections
    connection = connections['other']
    saved = dict(connection.settings_dict)
    connection.__dict__.pop(db_meta_attr(), None)
    connection.settings_dict['HOST'] = 'replica.internal'  # SQLite ignores HOST; the name follows it
    connection.settings_dict['USER'] = 'reader'
    try:
        with django_xray.in_segment('job'):
            with connection.cursor() as cursor:
                cursor.execute('SELECT 1')
    finally:
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
        connection.__dict__.pop(db_meta_attr(), None)
    (query,) = only_segment(udp_sink)['subsegments']
    assert query['name'] == 'replica.internal'
    assert query['sql']['user'] == 'reader'


def db_meta_attr():
    from aws_like_sdk.ext.django import db
    return db._META_ATTR


def test_traced_cursor_records_once_and_keeps_results(django_xray, udp_sink):
    from django.db import connection

    from aws_like_sdk.ext.django.db import DjangoXRayTracedCursor
    with django_xray.in_segment('manual'):
        with DjangoXRayTracedCursor(connection.cursor(), {'name': 'custom'}) as cursor:
            cursor.execute("SELECT 'x', %s", [1])
            assert cursor.fetchone() == ('x', 1)
    (query,) = only_segment(udp_sink)['subsegments']
    assert query['name'] == 'custom'
    assert query['sql']['sanitized_query'] == 'SELECT ?, %s'


def test_traced_cursor_outside_segment_is_transparent(django_xray, udp_sink):
    from django.db import connection

    from aws_like_sdk.ext.django.db import DjangoXRayTracedCursor
    django_xray.context.context_missing = 'RUNTIME_ERROR'
    cursor = DjangoXRayTracedCursor(connection.cursor())
    cursor.execute('SELECT 2')
    assert cursor.fetchone() == (2,)
    cursor.close()
    assert udp_sink.settle(quiet=0.1) == []


def test_broken_instrumentation_does_not_change_query_result(django_xray, udp_sink, monkeypatch):
    from aws_like_sdk.ext.django import db
    from tests.ext.django.project.shop.models import Item

    def explode(*args, **kwargs):
        raise RuntimeError('instrumentation bug')

    monkeypatch.setattr(db, '_record_query', explode)
    Item.objects.create(name='kept')
    with django_xray.in_segment('job'):
        assert Item.objects.filter(name='kept').exists()


@pytest.mark.parametrize('url,expected', [
    ('sqlite:///var/db/app.sqlite3', 'sqlite:///var/db/app.sqlite3'),
    ('sqlite:///file:memorydb_default?mode=memory&cache=shared', 'sqlite:///file:memorydb_default'),
    ('postgresql://bob:pw@db.example.com:5432/app', 'postgresql://bob@db.example.com:5432/app'),
])
def test_strip_url_credentials_keeps_empty_authority(url, expected):
    # Regression: urlunsplit turned 'sqlite:///path' into 'sqlite:/path' (fixed in ext/_sql.py).
    from aws_like_sdk.ext._sql import strip_url_credentials
    assert strip_url_credentials(url) == expected


def test_connections_opened_in_other_threads_are_traced(django_xray, udp_sink):
    import threading

    from django.db import connections
    from django.test import Client

    def serve(n):
        try:
            Client().get('/items/%d/' % n)
        finally:
            connections.close_all()  # this thread's connections; each thread opened its own

    threads = [threading.Thread(target=serve, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    docs = udp_sink.wait_for(4)
    assert len(docs) == 4
    for doc in docs:
        assert [sub['name'] for sub in doc['subsegments']] == ['execute']
