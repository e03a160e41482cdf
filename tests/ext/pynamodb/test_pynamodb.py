"""ext.pynamodb against moto's server on loopback: one ``dynamodb`` subsegment per operation."""
import json
import threading

import pytest

pytest.importorskip('pynamodb')
pytest.importorskip('moto.server')

from pynamodb.connection.base import Connection  # noqa: E402
from pynamodb.exceptions import PutError  # noqa: E402

from aws_like_sdk.core import patcher  # noqa: E402
from aws_like_sdk.core.suppression import suppress_tracing  # noqa: E402
from aws_like_sdk.ext import pynamodb as ext_pynamodb  # noqa: E402
from aws_like_sdk.ext._patching import is_wrapped  # noqa: E402
from tests.ext.http._support import subsegments_of, trace_header_for  # noqa: E402

_SECRET = 'do-not-record-me'


@pytest.fixture
def patched(request):
    """Patch through the patcher (pynamodb + botocore), plus whatever the test's param adds."""
    names = ['pynamodb'] + list(getattr(request, 'param', ()))
    patcher.patch(names)
    yield
    patcher.unpatch(names)


@pytest.fixture
def pynamodb_only():
    ext_pynamodb.patch()
    yield
    ext_pynamodb.unpatch()


def _headers_seen(model):
    """Headers of every request the model's client sends, read after every other before-send handler."""
    seen = []

    def hook(request, **_):
        seen.append({k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})

    model._get_connection().connection.client.meta.events.register_last('before-send.dynamodb', hook)
    return seen


@pytest.mark.usefixtures('patched')
def test_operations_give_one_dynamodb_subsegment_each(xray, udp_sink, order_model):
    with xray.in_segment('seg'):
        order_model.create_table(billing_mode='PAY_PER_REQUEST', wait=True)
        order_model(_SECRET, total=3).save()
        item = order_model.get(_SECRET, consistent_read=True)
        found = list(order_model.query(_SECRET))
    assert item.total == 3 and [o.pk for o in found] == [_SECRET]
    segment, subs = subsegments_of(udp_sink)
    operations = [s['aws']['operation'] for s in subs]
    # PynamoDB checks for the table first (DescribeTable -> not found) and waits for it after creating.
    assert operations[0] == 'DescribeTable' and 'CreateTable' in operations
    assert operations[-3:] == ['PutItem', 'GetItem', 'Query']
    table = order_model.Meta.table_name
    for sub in subs:
        assert sub['name'] == 'dynamodb' and sub['namespace'] == 'aws'
        assert sub['parent_id'] == segment['id'], 'botocore must not add a nested subsegment'
        assert 'subsegments' not in sub
        assert sub['aws']['region'] == 'us-east-1'
        assert sub['aws']['request_id']
        assert sub['aws']['table_name'] == table
    put, get, query = subs[-3:]
    assert put['http']['response']['status'] == 200
    assert sorted(put['aws']['item_names']) == ['pk', 'total']
    assert get['aws']['consistent_read'] is True and get['aws']['key_names'] == ['pk']
    assert query['aws']['count'] == 1
    assert _SECRET not in json.dumps(subs)


def _conditional_put(model):
    model('k', total=1).save()
    with pytest.raises(PutError) as info:
        model('k', total=2).save(condition=model.pk.does_not_exist())
    return info.value


def test_conditional_check_failure_is_remote_and_reraised_unchanged(xray, udp_sink, order_model):
    order_model.create_table(billing_mode='PAY_PER_REQUEST', wait=True)
    untraced = _conditional_put(order_model)
    patcher.patch(['pynamodb'])
    try:
        with xray.in_segment('seg'):
            traced = _conditional_put(order_model)
    finally:
        patcher.unpatch(['pynamodb'])
    assert type(traced) is type(untraced)
    assert type(traced.cause) is type(untraced.cause)
    assert str(traced).split(' on table ')[1] == str(untraced).split(' on table ')[1]
    assert traced.cause_response_code == untraced.cause_response_code == 'ConditionalCheckFailedException'
    _, subs = subsegments_of(udp_sink)
    ok, failed = subs
    assert 'cause' not in ok and ok['aws']['operation'] == failed['aws']['operation'] == 'PutItem'
    assert failed['http']['response']['status'] == 400 and failed['error'] is True
    assert failed['aws']['request_id'] and failed['aws']['condition_expression']
    (exception,) = failed['cause']['exceptions']
    assert exception['remote'] is True
    assert exception['type'] == 'VerboseClientError'
    assert 'ConditionalCheckFailed' in exception['message']
    # The very exception object recorded is the one PynamoDB wrapped for the application.
    assert traced.cause._cause_id == exception['id']


@pytest.mark.usefixtures('patched')
def test_trace_header_names_the_dynamodb_subsegment(xray, udp_sink, order_model):
    order_model.create_table(billing_mode='PAY_PER_REQUEST', wait=True)
    seen = _headers_seen(order_model)
    with xray.in_segment('seg'):
        order_model.count('x')
    _, (sub,) = subsegments_of(udp_sink)
    assert seen[-1]['X-Amzn-Trace-Id'] == trace_header_for(sub)


@pytest.mark.parametrize('patched', [('httplib',)], indirect=True)
@pytest.mark.usefixtures('patched')
def test_http_client_patch_adds_nothing_below(xray, udp_sink, order_model):
    order_model.create_table(billing_mode='PAY_PER_REQUEST', wait=True)
    with xray.in_segment('seg'):
        order_model('a', total=1).save()
    segment, subs = subsegments_of(udp_sink)
    assert [(s['name'], s['parent_id']) for s in subs] == [('dynamodb', segment['id'])]


@pytest.mark.usefixtures('pynamodb_only')
def test_pynamodb_patch_alone_traces_and_propagates(xray, udp_sink, order_model):
    order_model.create_table(billing_mode='PAY_PER_REQUEST', wait=True)
    seen = _headers_seen(order_model)
    with xray.in_segment('seg'):
        order_model('a', total=1).save()
    segment, (sub,) = subsegments_of(udp_sink)
    assert sub['aws']['operation'] == 'PutItem' and sub['parent_id'] == segment['id']
    assert seen[-1]['X-Amzn-Trace-Id'] == trace_header_for(sub)


@pytest.mark.usefixtures('patched')
def test_untraced_outside_segment_and_when_suppressed(xray, udp_sink, order_model):
    order_model.create_table(billing_mode='PAY_PER_REQUEST', wait=True)
    seen = _headers_seen(order_model)
    xray.configure(context_missing='IGNORE_ERROR')
    try:
        order_model('a', total=1).save()
    finally:
        xray.configure(context_missing='LOG_ERROR')
    with xray.in_segment('seg'):
        with suppress_tracing():
            assert order_model.get('a').total == 1
    (segment,) = udp_sink.wait_for(1)
    assert 'subsegments' not in segment
    assert all('X-Amzn-Trace-Id' not in headers for headers in seen)


def test_operations_on_threads_hang_off_their_own_segment(xray, udp_sink, order_model):
    order_model.create_table(billing_mode='PAY_PER_REQUEST', wait=True)
    patcher.patch(['pynamodb'])
    errors = []

    def work(n):
        try:
            with xray.in_segment('worker-%d' % n):
                order_model('w%d' % n, total=n).save()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        patcher.unpatch(['pynamodb'])
    assert not errors
    docs = udp_sink.wait_for(4)
    assert len(docs) == 4
    for doc in docs:
        (sub,) = doc['subsegments']
        assert sub['name'] == 'dynamodb' and sub['aws']['operation'] == 'PutItem'


def test_patch_is_idempotent_and_unpatch_restores(xray, udp_sink, order_model):
    original = Connection.__dict__['_make_api_call']
    ext_pynamodb.patch()
    ext_pynamodb.patch()
    assert is_wrapped(Connection, '_make_api_call')
    assert Connection.__dict__['_make_api_call'].__wrapped__ is original
    ext_pynamodb.unpatch()
    ext_pynamodb.unpatch()
    assert Connection.__dict__['_make_api_call'] is original
    order_model.create_table(billing_mode='PAY_PER_REQUEST', wait=True)
    with xray.in_segment('seg'):
        order_model('a', total=1).save()
    (segment,) = udp_sink.wait_for(1)
    assert 'subsegments' not in segment


def test_failing_instrumentation_keeps_result(xray, udp_sink, order_model, monkeypatch):
    order_model.create_table(billing_mode='PAY_PER_REQUEST', wait=True)
    patch_module = __import__('aws_like_sdk.ext.pynamodb.patch', fromlist=['_hook'])

    def broken(client):
        raise RuntimeError('instrumentation bug')

    monkeypatch.setattr(patch_module, '_hook', broken)
    ext_pynamodb.patch()
    try:
        with xray.in_segment('seg'):
            order_model('a', total=5).save()
            assert order_model.get('a').total == 5
            with pytest.raises(PutError):
                order_model('a').save(condition=order_model.pk.does_not_exist())
    finally:
        ext_pynamodb.unpatch()
