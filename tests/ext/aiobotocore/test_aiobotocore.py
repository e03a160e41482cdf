"""aiobotocore patch against moto's server on loopback: the same subsegments as the botocore patch."""
import asyncio
import importlib
import json
import logging

import pytest
from botocore.exceptions import ClientError

from aws_like_sdk.core import patcher
from aws_like_sdk.core.suppression import suppress_tracing
from aws_like_sdk.ext import botocore as ext_botocore
from aws_like_sdk.ext import httplib as ext_httplib
from aws_like_sdk.ext._patching import is_wrapped
from tests.ext.botocore.conftest import capture_headers
from tests.ext.http._support import subsegments_of, trace_header_for

pytestmark = pytest.mark.usefixtures('patched_aiobotocore')

_SECRET = 'do-not-record-me'
# moto keeps one in-process backend shared with tests/ext/botocore: every table and queue here is 'aio-' named.


async def _table(client, name):
    await client.create_table(TableName=name, KeySchema=[{'AttributeName': 'pk', 'KeyType': 'HASH'}],
                              AttributeDefinitions=[{'AttributeName': 'pk', 'AttributeType': 'S'}],
                              BillingMode='PAY_PER_REQUEST')


async def test_dynamodb_calls(xray, udp_sink, aio_client):
    async with aio_client('dynamodb') as ddb:
        with xray.in_segment('seg'):
            await _table(ddb, 'aio-orders')
            await ddb.put_item(TableName='aio-orders', Item={'pk': {'S': _SECRET}, 'total': {'N': '3'}})
            item = await ddb.get_item(TableName='aio-orders', Key={'pk': {'S': _SECRET}}, ConsistentRead=True)
            await ddb.query(TableName='aio-orders', KeyConditionExpression='pk = :v',
                            ExpressionAttributeValues={':v': {'S': _SECRET}})
    assert item['Item']['total'] == {'N': '3'}
    segment, subs = subsegments_of(udp_sink)
    assert [s['aws']['operation'] for s in subs] == ['CreateTable', 'PutItem', 'GetItem', 'Query']
    for sub in subs:
        assert sub['name'] == 'dynamodb' and sub['namespace'] == 'aws'
        assert sub['parent_id'] == segment['id']
        assert sub['aws']['region'] == 'us-east-1' and sub['aws']['request_id']
        assert sub['aws']['table_name'] == 'aio-orders'
        assert sub['http']['response']['status'] == 200
        assert 'retries' not in sub['aws'] and 'subsegments' not in sub
    put, get, query = subs[1:]
    assert sorted(put['aws']['item_names']) == ['pk', 'total']
    assert get['aws']['consistent_read'] is True and get['aws']['key_names'] == ['pk']
    assert query['aws']['count'] == 1 and query['aws']['item_count'] == 1
    assert _SECRET not in json.dumps(subs)


async def test_sqs_calls_never_record_message_bodies(xray, udp_sink, aio_client):
    async with aio_client('sqs') as sqs:
        with xray.in_segment('seg'):
            url = (await sqs.create_queue(QueueName='aio-jobs'))['QueueUrl']
            await sqs.send_message(QueueUrl=url, MessageBody=_SECRET,
                                   MessageAttributes={'kind': {'DataType': 'String', 'StringValue': _SECRET}})
            await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=5, MessageAttributeNames=['All'])
    _, (create, send, receive) = subsegments_of(udp_sink)
    assert all(s['name'] == 'sqs' for s in (create, send, receive))
    assert create['aws']['queue_name'] == 'aio-jobs' and create['aws']['queue_url'] == url
    assert send['aws']['message_attribute_names'] == ['kind'] and send['aws']['message_id']
    assert receive['aws']['max_number_of_messages'] == 5 and receive['aws']['message_count'] == 1
    assert _SECRET not in json.dumps([create, send, receive])


async def test_client_error_is_recorded_as_remote_and_reraised(xray, udp_sink, aio_client):
    async with aio_client('dynamodb') as ddb:
        with xray.in_segment('seg'):
            with pytest.raises(ClientError) as info:
                await ddb.get_item(TableName='missing', Key={'pk': {'S': 'a'}})
    assert type(info.value).__name__ == 'ResourceNotFoundException'
    assert info.value.response['Error']['Code'] == 'ResourceNotFoundException'
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['http']['response']['status'] == 400 and sub['error'] is True
    assert sub['aws']['request_id'] and sub['aws']['table_name'] == 'missing'
    (exc,) = sub['cause']['exceptions']
    assert exc['remote'] is True and exc['type'] == 'ResourceNotFoundException'


def _comparable(sub):
    aws = {k: v for k, v in sub['aws'].items() if k != 'request_id'}
    cause = [(e['type'], e.get('remote')) for e in sub.get('cause', {}).get('exceptions', [])]
    return sub['name'], sub['namespace'], aws, sub.get('http'), sub.get('error', False), cause


async def test_same_documents_as_the_botocore_patch(xray, udp_sink, aio_client, aws_client):
    ext_botocore.patch()
    try:
        sync_ddb = aws_client('dynamodb')
        with xray.in_segment('sync'):
            await asyncio.to_thread(_sync_calls, sync_ddb)
        async with aio_client('dynamodb') as ddb:
            with xray.in_segment('async'):
                await ddb.get_item(TableName='aio-same', Key={'pk': {'S': 'a'}})
                with pytest.raises(ClientError):
                    await ddb.get_item(TableName='absent', Key={'pk': {'S': 'a'}})
    finally:
        ext_botocore.unpatch()
    docs = {doc['name']: doc for doc in udp_sink.wait_for(2)}
    sync_subs = [_comparable(s) for s in docs['sync']['subsegments']][1:]  # after CreateTable
    async_subs = [_comparable(s) for s in docs['async']['subsegments']]
    assert sync_subs == async_subs and len(async_subs) == 2


def _sync_calls(client):
    client.create_table(TableName='aio-same', KeySchema=[{'AttributeName': 'pk', 'KeyType': 'HASH'}],
                        AttributeDefinitions=[{'AttributeName': 'pk', 'AttributeType': 'S'}],
                        BillingMode='PAY_PER_REQUEST')
    client.get_item(TableName='aio-same', Key={'pk': {'S': 'a'}})
    try:
        client.get_item(TableName='absent', Key={'pk': {'S': 'a'}})
    except ClientError:
        pass


async def test_trace_header_names_the_aws_subsegment(xray, udp_sink, aio_client):
    async with aio_client('sqs') as sqs:
        headers = capture_headers(sqs)
        with xray.in_segment('seg'):
            await sqs.list_queues()
    _, (sub,) = subsegments_of(udp_sink)
    assert headers[-1]['X-Amzn-Trace-Id'] == trace_header_for(sub)


async def test_concurrent_calls_each_get_their_own_subsegment(xray, udp_sink, aio_client):
    async with aio_client('sqs') as sqs:
        headers = capture_headers(sqs)
        with xray.in_segment('seg'):
            await asyncio.gather(*(sqs.create_queue(QueueName='aio-q%d' % i) for i in range(4)))
    segment, subs = subsegments_of(udp_sink)
    assert len(subs) == 4 and all(s['parent_id'] == segment['id'] for s in subs)
    assert sorted(s['aws']['queue_name'] for s in subs) == ['aio-q0', 'aio-q1', 'aio-q2', 'aio-q3']
    assert sorted(h['X-Amzn-Trace-Id'] for h in headers) == sorted(trace_header_for(s) for s in subs)


async def test_one_subsegment_under_aiohttp_trace_config_and_httplib(xray, udp_sink, aio_client, monkeypatch):
    import aiohttp

    from aws_like_sdk.ext.aiohttp.client import aws_xray_trace_config

    # aiobotocore builds its own ClientSession; give it the SDK's trace config as a user might.
    real_session, built = aiohttp.ClientSession, []

    def traced_session(*args, **kwargs):
        kwargs['trace_configs'] = list(kwargs.get('trace_configs') or ()) + [aws_xray_trace_config()]
        built.append(real_session(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(aiohttp, 'ClientSession', traced_session)
    ext_httplib.patch()
    try:
        async with aio_client('sqs') as sqs:
            with xray.in_segment('seg'):
                await sqs.list_queues()
                await sqs.create_queue(QueueName='aio-layered')
    finally:
        ext_httplib.unpatch()
    assert built, 'aiobotocore no longer builds its session through aiohttp.ClientSession'
    _, subs = subsegments_of(udp_sink)
    assert [s['name'] for s in subs] == ['sqs', 'sqs']
    assert all('subsegments' not in s for s in subs)


async def test_one_subsegment_over_the_httpx_session(xray, udp_sink, aio_client):
    pytest.importorskip('httpx')
    httpxsession = pytest.importorskip('aiobotocore.httpxsession')
    from aiobotocore.config import AioConfig

    from aws_like_sdk.ext import httpx as ext_httpx
    ext_httpx.patch()
    try:
        async with aio_client('sqs', config=AioConfig(http_session_cls=httpxsession.HttpxSession)) as sqs:
            headers = capture_headers(sqs)
            with xray.in_segment('seg'):
                await sqs.list_queues()
    finally:
        ext_httpx.unpatch()
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['name'] == 'sqs' and 'subsegments' not in sub
    assert headers[-1]['X-Amzn-Trace-Id'] == trace_header_for(sub)


async def test_xray_own_calls_are_never_traced(xray, udp_sink, aio_client):
    async with aio_client('xray') as client:
        with xray.in_segment('seg'):
            for call in (client.get_sampling_rules,
                         lambda: client.get_sampling_targets(SamplingStatisticsDocuments=[]),
                         lambda: client.put_trace_segments(TraceSegmentDocuments=[])):
                try:
                    await call()
                except ClientError:
                    pass  # whatever the fake answers, nothing may be recorded
    _, subs = subsegments_of(udp_sink)
    assert subs == []


async def test_outside_segment_untraced(xray, udp_sink, aio_client, caplog):
    caplog.set_level(logging.ERROR)
    async with aio_client('sqs') as sqs:
        headers = capture_headers(sqs)
        result = await sqs.list_queues()
    assert result['ResponseMetadata']['HTTPStatusCode'] == 200
    assert 'X-Amzn-Trace-Id' not in headers[-1]
    assert any('cannot find the current segment' in r.getMessage() for r in caplog.records)
    assert udp_sink.settle(quiet=0.1) == []


async def test_suppressed_and_unsampled(xray, udp_sink, aio_client):
    async with aio_client('sqs') as sqs:
        headers = capture_headers(sqs)
        with xray.in_segment('seg'):
            with suppress_tracing():
                await sqs.list_queues()
        assert 'X-Amzn-Trace-Id' not in headers[-1]
        _, subs = subsegments_of(udp_sink)
        assert subs == []
        udp_sink.clear()
        with xray.in_segment('seg', sampling=0):
            await sqs.list_queues()
    assert headers[-1]['X-Amzn-Trace-Id'].endswith(';Sampled=0')
    assert udp_sink.settle(quiet=0.1) == []


async def test_unpatch(xray, udp_sink, aio_client, patched_aiobotocore):
    from aiobotocore.client import AioBaseClient
    from aiobotocore.endpoint import AioEndpoint
    patched_aiobotocore.unpatch()
    patched_aiobotocore.unpatch()
    for cls, attr in ((AioBaseClient, '_make_api_call'), (AioEndpoint, 'prepare_request'), (AioEndpoint, '_send')):
        assert not is_wrapped(cls, attr)
    assert 'prepare_request' not in vars(AioEndpoint)
    async with aio_client('sqs') as sqs:
        headers = capture_headers(sqs)
        with xray.in_segment('seg'):
            await sqs.list_queues()
    assert 'X-Amzn-Trace-Id' not in headers[-1]
    _, subs = subsegments_of(udp_sink)
    assert subs == []


def test_unpatch_leaves_the_botocore_patch_alone(patched_aiobotocore):
    import botocore.endpoint
    from aiobotocore.endpoint import AioEndpoint
    patched_aiobotocore.unpatch()
    ext_botocore.patch()
    try:
        patched_aiobotocore.patch()
        patched_aiobotocore.unpatch()
        # The subclass inherits botocore's wrapper again, and loses it when botocore is unpatched.
        assert is_wrapped(botocore.endpoint.Endpoint, 'prepare_request')
        assert 'prepare_request' not in vars(AioEndpoint)
    finally:
        ext_botocore.unpatch()
    assert not is_wrapped(AioEndpoint, 'prepare_request')


async def test_patcher_names(xray, udp_sink, aio_client, patched_aiobotocore):
    from aiobotocore.client import AioBaseClient
    patched_aiobotocore.unpatch()
    patcher.patch(['aioboto3'])
    try:
        assert is_wrapped(AioBaseClient, '_make_api_call')
        async with aio_client('sqs') as sqs:
            with xray.in_segment('seg'):
                await sqs.list_queues()
    finally:
        patcher.unpatch(['aioboto3'])
    assert not is_wrapped(AioBaseClient, '_make_api_call')
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['name'] == 'sqs' and sub['aws']['operation'] == 'ListQueues'


def _boom(*args, **kwargs):
    raise RuntimeError('instrumentation bug')


@pytest.mark.parametrize('module,target', [
    ('aws_like_sdk.ext.aiobotocore.patch', '_service_name'),
    ('aws_like_sdk.ext.boto_utils', '_record_params'),
    ('aws_like_sdk.ext.boto_utils', '_record_response_metadata'),
    ('aws_like_sdk.ext._outgoing', 'set_trace_header'),
])
async def test_failing_instrumentation_keeps_result_and_exception(xray, udp_sink, aio_client, monkeypatch,
                                                                  module, target):
    monkeypatch.setattr(importlib.import_module(module), target, _boom)
    name = 'aio-fail-' + target.strip('_').replace('_', '-')
    async with aio_client('dynamodb') as ddb:
        with xray.in_segment('seg'):
            await _table(ddb, name)
            tables = await ddb.list_tables()
            with pytest.raises(ClientError) as info:
                await ddb.describe_table(TableName='absent')
    assert name in tables['TableNames']
    assert info.value.response['Error']['Code'] == 'ResourceNotFoundException'
    udp_sink.wait_for(1)
