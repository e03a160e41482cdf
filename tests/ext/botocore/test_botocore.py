"""botocore / boto3 patch against moto's server on loopback."""
import importlib
import json
import logging

import pytest
from botocore.exceptions import ClientError

from aws_like_sdk.core.suppression import suppress_tracing
from aws_like_sdk.ext import boto_utils
from aws_like_sdk.ext import botocore as ext_botocore
from aws_like_sdk.ext import httplib as ext_httplib
from aws_like_sdk.ext._patching import is_wrapped
from tests.ext.botocore.conftest import capture_headers
from tests.ext.http._support import subsegments_of

patch_module = importlib.import_module('aws_like_sdk.ext.botocore.patch')

pytestmark = pytest.mark.usefixtures('patched_botocore')

_SECRET = 'do-not-record-me'


def _table(client, name):
    client.create_table(TableName=name, KeySchema=[{'AttributeName': 'pk', 'KeyType': 'HASH'}],
                        AttributeDefinitions=[{'AttributeName': 'pk', 'AttributeType': 'S'}],
                        BillingMode='PAY_PER_REQUEST')


def test_dynamodb_calls(xray, udp_sink, aws_client):
    ddb = aws_client('dynamodb')
    with xray.in_segment('seg'):
        _table(ddb, 'orders')
        ddb.put_item(TableName='orders', Item={'pk': {'S': _SECRET}, 'total': {'N': '3'}})
        item = ddb.get_item(TableName='orders', Key={'pk': {'S': _SECRET}}, ConsistentRead=True)
        ddb.query(TableName='orders', KeyConditionExpression='pk = :v',
                  ExpressionAttributeValues={':v': {'S': _SECRET}})
    assert item['Item']['total'] == {'N': '3'}
    segment, subs = subsegments_of(udp_sink)
    assert [s['aws']['operation'] for s in subs] == ['CreateTable', 'PutItem', 'GetItem', 'Query']
    for sub in subs:
        assert sub['name'] == 'dynamodb' and sub['namespace'] == 'aws'
        assert sub['parent_id'] == segment['id']
        assert sub['aws']['region'] == 'us-east-1'
        assert sub['aws']['request_id']
        assert sub['aws']['table_name'] == 'orders'
        assert sub['http']['response']['status'] == 200
        assert 'retries' not in sub['aws']
    put, get, query = subs[1:]
    assert sorted(put['aws']['item_names']) == ['pk', 'total']
    assert get['aws']['consistent_read'] is True
    assert get['aws']['key_names'] == ['pk']
    assert sorted(get['aws']['item_names']) == ['pk', 'total']
    assert query['aws']['count'] == 1 and query['aws']['item_count'] == 1
    assert _SECRET not in json.dumps(subs)


def test_sqs_calls_never_record_message_bodies(xray, udp_sink, aws_client):
    sqs = aws_client('sqs')
    with xray.in_segment('seg'):
        url = sqs.create_queue(QueueName='jobs')['QueueUrl']
        sqs.send_message(QueueUrl=url, MessageBody=_SECRET,
                         MessageAttributes={'kind': {'DataType': 'String', 'StringValue': _SECRET}})
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=5, MessageAttributeNames=['All'])
    _, (create, send, receive) = subsegments_of(udp_sink)
    assert create['aws']['queue_name'] == 'jobs' and create['aws']['queue_url'] == url
    assert send['aws']['queue_url'] == url
    assert send['aws']['message_attribute_names'] == ['kind']
    assert send['aws']['message_id']
    assert receive['aws']['max_number_of_messages'] == 5
    assert receive['aws']['message_count'] == 1
    assert _SECRET not in json.dumps([create, send, receive])


def test_s3_calls(xray, udp_sink, aws_client):
    s3 = aws_client('s3')
    with xray.in_segment('seg'):
        s3.create_bucket(Bucket='reports')
        s3.put_object(Bucket='reports', Key='q1.csv', Body=_SECRET.encode(), Metadata={'owner': _SECRET})
        body = s3.get_object(Bucket='reports', Key='q1.csv')['Body'].read()
    assert body == _SECRET.encode()
    _, (create, put, get) = subsegments_of(udp_sink)
    assert all(s['name'] == 's3' for s in (create, put, get))
    assert put['aws']['bucket_name'] == 'reports' and put['aws']['key'] == 'q1.csv'
    assert put['aws']['metadata_names'] == ['owner']
    assert get['aws']['content_length'] == len(_SECRET)
    assert _SECRET not in json.dumps([create, put, get])


def test_client_error_is_recorded_as_remote_and_reraised(xray, udp_sink, aws_client):
    ddb = aws_client('dynamodb')
    with xray.in_segment('seg'):
        with pytest.raises(ClientError) as info:
            ddb.get_item(TableName='missing', Key={'pk': {'S': 'a'}})
    assert info.value.response['Error']['Code'] == 'ResourceNotFoundException'
    _, (sub,) = subsegments_of(udp_sink)
    assert sub['http']['response']['status'] == 400
    assert sub['error'] is True
    assert sub['aws']['request_id'] and sub['aws']['table_name'] == 'missing'
    (exc,) = sub['cause']['exceptions']
    assert exc['remote'] is True
    assert exc['type'] == 'ResourceNotFoundException'


def test_trace_header_names_the_aws_subsegment(xray, udp_sink, aws_client):
    sqs = aws_client('sqs')
    headers = capture_headers(sqs)
    with xray.in_segment('seg'):
        sqs.list_queues()
    _, (sub,) = subsegments_of(udp_sink)
    assert headers[-1]['X-Amzn-Trace-Id'] == 'Root=%s;Parent=%s;Sampled=1' % (sub['trace_id'], sub['id'])


def test_one_subsegment_per_call_with_http_client_patched(xray, udp_sink, aws_client):
    ext_httplib.patch()
    try:
        sqs = aws_client('sqs')
        with xray.in_segment('seg'):
            sqs.list_queues()
            sqs.create_queue(QueueName='layered')
    finally:
        ext_httplib.unpatch()
    segment, subs = subsegments_of(udp_sink)
    assert [s['name'] for s in subs] == ['sqs', 'sqs']
    assert all('subsegments' not in s for s in subs)


def test_xray_own_calls_are_never_traced(xray, udp_sink, aws_client):
    client = aws_client('xray')
    with xray.in_segment('seg'):
        for call in (lambda: client.get_sampling_rules(),
                     lambda: client.get_sampling_targets(SamplingStatisticsDocuments=[]),
                     lambda: client.put_trace_segments(TraceSegmentDocuments=[])):
            try:
                call()
            except ClientError:
                pass  # whatever the fake answers, the point is that nothing is recorded
    _, subs = subsegments_of(udp_sink)
    assert subs == []


def test_outside_segment_untraced(xray, udp_sink, aws_client, caplog):
    caplog.set_level(logging.ERROR)
    sqs = aws_client('sqs')
    headers = capture_headers(sqs)
    sqs.list_queues()
    assert 'X-Amzn-Trace-Id' not in headers[-1]
    assert any('cannot find the current segment' in r.getMessage() for r in caplog.records)
    assert udp_sink.settle(quiet=0.1) == []


def test_suppressed_and_unsampled(xray, udp_sink, aws_client):
    sqs = aws_client('sqs')
    headers = capture_headers(sqs)
    with xray.in_segment('seg'):
        with suppress_tracing():
            sqs.list_queues()
    assert 'X-Amzn-Trace-Id' not in headers[-1]
    _, subs = subsegments_of(udp_sink)
    assert subs == []
    udp_sink.clear()
    with xray.in_segment('seg', sampling=0):
        sqs.list_queues()
    assert headers[-1]['X-Amzn-Trace-Id'].endswith(';Sampled=0')
    assert udp_sink.settle(quiet=0.1) == []


def test_unpatch(xray, udp_sink, aws_client):
    import botocore.client
    import botocore.endpoint
    ext_botocore.patch()
    ext_botocore.unpatch()
    ext_botocore.unpatch()
    assert not is_wrapped(botocore.client.BaseClient, '_make_api_call')
    assert not is_wrapped(botocore.endpoint.Endpoint, 'prepare_request')
    sqs = aws_client('sqs')
    headers = capture_headers(sqs)
    with xray.in_segment('seg'):
        sqs.list_queues()
    assert 'X-Amzn-Trace-Id' not in headers[-1]
    _, subs = subsegments_of(udp_sink)
    assert subs == []


def _boom(*args, **kwargs):
    raise RuntimeError('instrumentation bug')


@pytest.mark.parametrize('module,target', [(patch_module, '_service_name'), (boto_utils, '_record_params'),
                                           (boto_utils._outgoing, 'set_trace_header')])
def test_failing_instrumentation_keeps_result_and_exception(xray, aws_client, monkeypatch, module, target):
    monkeypatch.setattr(module, target, _boom)
    ddb = aws_client('dynamodb')
    with xray.in_segment('seg'):
        _table(ddb, 'fail-' + target.strip('_').replace('_', '-'))
        assert 'TableNames' in ddb.list_tables()
        with pytest.raises(ClientError) as info:
            ddb.describe_table(TableName='absent')
    assert info.value.response['Error']['Code'] == 'ResourceNotFoundException'
