"""ext.pymongo against a MongoDB wire-protocol server on loopback."""
import datetime
import importlib
import json
import threading

import pytest

pytest.importorskip('pymongo')

import pymongo  # noqa: E402
from pymongo import monitoring  # noqa: E402
from pymongo.errors import AutoReconnect, OperationFailure  # noqa: E402

from aws_like_sdk.core import patcher  # noqa: E402
from aws_like_sdk.core.suppression import suppress_tracing  # noqa: E402
from aws_like_sdk.ext import pymongo as ext_pymongo  # noqa: E402
from aws_like_sdk.ext.pymongo.patch import XRayCommandListener  # noqa: E402
from tests.ext.http._support import subsegments_of  # noqa: E402

_SECRET = 'card-4111-1111'


def _micros(n):
    return datetime.timedelta(microseconds=n)


def _client(server, **kwargs):
    return pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000,
                               socketTimeoutMS=3000, **kwargs)


def test_commands_give_remote_subsegments_without_documents(xray, udp_sink, mongo_server, mongo_client):
    host, port = mongo_server.address
    with xray.in_segment('seg'):
        assert mongo_client.admin.command('ping')['ok'] == 1.0
        mongo_client.shop.orders.insert_one({'_id': 1, 'card': _SECRET})
        found = list(mongo_client.shop.orders.find({'card': _SECRET}))
    assert found == [{'_id': 1, 'card': _SECRET}]
    segment, subs = subsegments_of(udp_sink)
    assert [s['name'] for s in subs] == ['admin@%s:%d' % (host, port)] + ['shop@%s:%d' % (host, port)] * 2
    for sub, command in zip(subs, ('ping', 'insert', 'find')):
        assert sub['namespace'] == 'remote' and sub['parent_id'] == segment['id']
        notes = sub['annotations']
        assert notes['mongodb_command_name'] == command
        assert notes['mongodb_connection_id'] == '%s:%d' % (host, port)
        assert isinstance(notes['mongodb_request_id'], int) and isinstance(notes['mongodb_operation_id'], int)
        assert notes['mongodb_duration_micros'] >= 0
        assert sub['sql']['database_type'] == 'MongoDB'
        assert sub['sql']['driver_version'] == 'pymongo %s' % pymongo.version
        assert 'metadata' not in sub and 'fault' not in sub and 'cause' not in sub
    ping, insert, find = subs
    assert ping['annotations']['mongodb_database_name'] == 'admin' and 'mongodb_collection' not in ping['annotations']
    assert insert['annotations']['mongodb_collection'] == find['annotations']['mongodb_collection'] == 'orders'
    assert insert['sql']['url'] == 'mongodb://%s:%d/shop' % (host, port)
    assert _SECRET not in json.dumps(subs)


def test_full_documents_only_when_asked(xray, udp_sink, mongo_server, patched_pymongo):
    patched_pymongo.patch(record_full_documents=True)
    client = _client(mongo_server)
    try:
        with xray.in_segment('seg'):
            client.shop.orders.insert_one({'_id': 1, 'card': _SECRET})
            list(client.shop.orders.find({'_id': 1}))
    finally:
        client.close()
    _, (insert, find) = subsegments_of(udp_sink)
    assert insert['metadata']['default']['mongodb_command']['documents'] == [{'_id': 1, 'card': _SECRET}]
    assert insert['metadata']['default']['mongodb_reply'] == {'n': 1, 'ok': 1.0}
    assert find['metadata']['default']['mongodb_command']['filter'] == {'_id': 1}
    assert find['metadata']['default']['mongodb_reply']['cursor']['firstBatch'] == [{'_id': 1, 'card': _SECRET}]


def test_server_error_recorded_as_remote_without_its_message(xray, udp_sink, mongo_server, mongo_client):
    command = {'fail': 1, 'code': 11000, 'codeName': 'DuplicateKey', 'errmsg': 'dup key: { card: "%s" }' % _SECRET}
    with pytest.raises(OperationFailure) as untraced:
        mongo_client.shop.command(dict(command))
    with xray.in_segment('seg'):
        with pytest.raises(OperationFailure) as traced:
            mongo_client.shop.command(dict(command))
    assert type(traced.value) is type(untraced.value) and str(traced.value) == str(untraced.value)
    assert traced.value.code == 11000
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['fault'] is True
    assert sub['metadata']['default']['failure'] == {'ok': 0.0, 'code': 11000, 'codeName': 'DuplicateKey'}
    (exception,) = sub['cause']['exceptions']
    assert exception['remote'] is True and exception['type'] == 'OperationFailure'
    assert exception['message'] == 'DuplicateKey (11000)'
    assert _SECRET not in json.dumps(sub)


def test_server_error_message_kept_with_full_documents(xray, udp_sink, mongo_server, patched_pymongo):
    patched_pymongo.patch(record_full_documents=True)
    client = _client(mongo_server)
    try:
        with xray.in_segment('seg'):
            with pytest.raises(OperationFailure):
                client.shop.command('nosuchcommand')
    finally:
        client.close()
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['metadata']['default']['failure']['errmsg'] == "no such command: 'nosuchcommand'"
    assert sub['cause']['exceptions'][0]['message'] == "no such command: 'nosuchcommand'"


def test_network_failure_recorded_as_local(xray, udp_sink, mongo_client):
    mongo_client.admin.command('ping')  # connect first, so the failure is the command's own
    with xray.in_segment('seg'):
        with pytest.raises(AutoReconnect):
            mongo_client.shop.command('hangup')
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['fault'] is True and sub['annotations']['mongodb_command_name'] == 'hangup'
    (exception,) = sub['cause']['exceptions']
    assert exception['remote'] is False and exception['type'] == 'AutoReconnect'
    assert sub['metadata']['default']['failure']['errtype'] == 'AutoReconnect'


def test_commands_on_threads_hang_off_their_own_segment(xray, udp_sink, mongo_client):
    errors = []

    def work(n):
        try:
            with xray.in_segment('worker-%d' % n):
                mongo_client.shop.orders.insert_one({'_id': n})
                list(mongo_client.shop.orders.find({'_id': n}))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    docs = udp_sink.wait_for(4)
    assert sorted(doc['name'] for doc in docs) == ['worker-%d' % n for n in range(4)]
    for doc in docs:
        assert [s['annotations']['mongodb_command_name'] for s in doc['subsegments']] == ['insert', 'find']
        assert all(s['parent_id'] == doc['id'] for s in doc['subsegments'])


def test_events_matched_by_request_id_not_current_entity(xray, udp_sink):
    """A command's end event may come from another thread, and commands may interleave."""
    listener = XRayCommandListener()
    address = ('db.internal', 27017)

    def started(request_id, name):
        return monitoring.CommandStartedEvent({name: 'orders', 'lsid': {}}, 'shop', request_id, address, 7)

    with xray.in_segment('seg') as segment:
        listener.started(started(1, 'find'))
        listener.started(started(2, 'insert'))
        assert xray.current_subsegment() is None  # never made current
        succeeded = monitoring.CommandSucceededEvent(_micros(1500), {'ok': 1}, 'find', 1, address, 7,
                                                     database_name='shop')
        finisher = threading.Thread(target=listener.succeeded, args=(succeeded,))
        finisher.start()
        finisher.join(5)
        listener.failed(monitoring.CommandFailedEvent(_micros(900), {'ok': 0, 'code': 2, 'codeName': 'BadValue'},
                                                      'insert', 2, address, 7, database_name='shop'))
        assert xray.get_trace_entity() is segment
    _, subs = subsegments_of(udp_sink)
    by_command = {s['annotations']['mongodb_command_name']: s for s in subs}
    assert by_command['find']['annotations']['mongodb_duration_micros'] == 1500
    assert 'fault' not in by_command['find']
    assert by_command['insert']['fault'] is True
    assert by_command['insert']['name'] == 'shop@db.internal:27017'


def test_untraced_outside_segment_suppressed_and_after_unpatch(xray, udp_sink, mongo_server, mongo_client,
                                                               patched_pymongo):
    xray.configure(context_missing='IGNORE_ERROR')
    try:
        assert mongo_client.admin.command('ping')['ok'] == 1.0
    finally:
        xray.configure(context_missing='LOG_ERROR')
    with xray.in_segment('suppressed'):
        with suppress_tracing():
            mongo_client.admin.command('ping')
    patched_pymongo.unpatch()
    with xray.in_segment('unpatched'):
        mongo_client.admin.command('ping')
    docs = udp_sink.wait_for(2)
    assert sorted(doc['name'] for doc in docs) == ['suppressed', 'unpatched']
    assert all('subsegments' not in doc for doc in docs)


def test_patcher_registers_one_listener_however_often_patched(xray, udp_sink, mongo_server):
    patcher.patch(['pymongo'])
    patcher.unpatch(['pymongo'])
    patcher.patch(['pymongo'])
    ext_pymongo.patch()
    client = _client(mongo_server)
    try:
        with xray.in_segment('seg'):
            client.admin.command('ping')
    finally:
        client.close()
        patcher.unpatch(['pymongo'])
    _, subs = subsegments_of(udp_sink)
    assert len(subs) == 1 and 'metadata' not in subs[0]


def test_client_built_before_patch_can_take_the_listener(xray, udp_sink, mongo_server):
    client = _client(mongo_server, event_listeners=[XRayCommandListener()])
    try:
        with xray.in_segment('seg'):
            client.admin.command('ping')
    finally:
        client.close()
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['annotations']['mongodb_command_name'] == 'ping'


def test_listener_survives_odd_events_and_bounds_open_commands(xray, udp_sink, monkeypatch, caplog):
    listener = XRayCommandListener()
    listener.started(None)
    listener.succeeded(object())
    listener.failed(object())
    monkeypatch.setattr(importlib.import_module('aws_like_sdk.ext.pymongo.patch'), 'MAX_OPEN_COMMANDS', 2)
    address = ('127.0.0.1', 27017)
    with xray.in_segment('seg'):
        for request_id in range(3):  # no end event ever comes for these
            listener.started(monitoring.CommandStartedEvent({'find': 'c'}, 'db', request_id, address, request_id))
    assert len(listener._open) == 2
    assert 'no end event was seen' in caplog.text
