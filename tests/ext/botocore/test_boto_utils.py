"""The aws block builder and the generated parameter whitelist."""
import datetime
import functools
import importlib.util
import json
import os

import boto3
import botocore.session
import pytest

from aws_like_sdk.core.models.segment import Segment
from aws_like_sdk.core.models.subsegment import Subsegment
from aws_like_sdk.ext import boto_utils

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@functools.lru_cache(maxsize=None)
def _generator():
    spec = importlib.util.spec_from_file_location('gen_whitelist',
                                                  os.path.join(_ROOT, 'scripts', 'gen_aws_para_whitelist.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=None)
def _built():
    return _generator().build()


def _s3_client():
    return boto3.client('s3', region_name='eu-west-1', endpoint_url='http://127.0.0.1:9',
                        aws_access_key_id='k', aws_secret_access_key='s')


def _subsegment():
    return Subsegment('s3', 'aws', Segment('seg'))


def test_response_metadata_id_2_retries_and_safe_values():
    sub = _subsegment()
    response = {
        'ResponseMetadata': {'RequestId': 'REQ1', 'HostId': 'HOST2', 'HTTPStatusCode': 503, 'RetryAttempts': 2,
                             'HTTPHeaders': {}},
        'ContentLength': 4, 'LastModified': datetime.datetime(2024, 1, 2, 3, 4, 5),
        'Body': object(), 'Metadata': {'a': 'secret', 'b': 'secret'},
    }
    boto_utils.aws_meta_processor(None, _s3_client(), ('GetObject', {'Bucket': 'bk', 'Key': 'k',
                                                                   'SSECustomerKey': 'secret'}),
                                  {}, response, None, sub, None)
    aws = sub.aws
    assert aws['operation'] == 'GetObject' and aws['region'] == 'eu-west-1'
    assert aws['request_id'] == 'REQ1' and aws['id_2'] == 'HOST2' and aws['retries'] == 2
    assert aws['bucket_name'] == 'bk' and aws['key'] == 'k'
    assert aws['content_length'] == 4
    assert aws['last_modified'] == '2024-01-02T03:04:05'
    assert sorted(aws['metadata_names']) == ['a', 'b']
    assert 'secret' not in json.dumps(aws) and 'body' not in aws
    assert sub.http['response']['status'] == 503 and sub.fault


def test_non_client_error_is_local_and_unknown_operation_records_basics():
    sub = _subsegment()
    try:
        raise ValueError('bad input')
    except ValueError as exc:
        boto_utils.aws_meta_processor(None, _s3_client(), ('NotAnOperation', {'Bucket': 'x'}), {}, None, exc,
                                      sub, [])
    assert sub.aws == {'operation': 'NotAnOperation', 'region': 'eu-west-1'}
    (throwable,) = sub.cause['exceptions']
    assert throwable.remote is False


def test_whitelist_covers_the_upstream_services():
    services = boto_utils.whitelist['services']
    assert set(services) == {'sns', 'dynamodb', 'sqs', 'lambda', 's3', 'runtime.sagemaker'}
    assert services['sqs']['operations']['SendMessage']['request_parameters'].count('QueueUrl') == 1
    assert 'TableName' in services['dynamodb']['operations']['GetItem']['request_parameters']
    assert 'FunctionName' in services['lambda']['operations']['Invoke']['request_parameters']


def _all_names(document):
    for service in document['services'].values():
        for operation in service['operations'].values():
            for key in ('request_parameters', 'response_parameters'):
                yield from operation.get(key, ())
            for key in ('request_descriptors', 'response_descriptors'):
                yield from operation.get(key, {})


def test_whitelist_never_names_content_or_sensitive_members():
    gen = _generator()
    names = set(_all_names(boto_utils.whitelist))
    for denied in ('MessageBody', 'Message', 'Body', 'Payload', 'ClientContext', 'SSECustomerKey',
                   'ExpressionAttributeValues', 'ReceiptHandle', 'NextToken', 'PhoneNumber', 'GrantRead'):
        assert denied not in names
    session = botocore.session.get_session()
    for service_name in gen.SERVICES:
        model = session.get_service_model(service_name)
        ops = boto_utils.whitelist['services'][model.endpoint_prefix]['operations']
        for op_name, entry in ops.items():
            if op_name not in model.operation_names:
                continue
            op = model.operation_model(op_name)
            for shape, keys in ((op.input_shape, ('request_parameters', 'request_descriptors')),
                                (op.output_shape, ('response_parameters', 'response_descriptors'))):
                for key in keys:
                    for member in entry.get(key, ()):
                        if shape is not None and member in shape.members:
                            assert not shape.members[member].metadata.get('sensitive'), (op_name, member)


@pytest.mark.parametrize('service,operation', [('sqs', 'SendMessage'), ('sqs', 'ReceiveMessage'),
                                               ('dynamodb', 'Query'), ('dynamodb', 'BatchWriteItem'),
                                               ('s3', 'PutObject'), ('lambda', 'Invoke'), ('sns', 'Publish')])
def test_data_file_matches_the_generator_policy(service, operation):
    # The committed file was generated from one botocore release; newer models may add members the
    # file does not list yet. What must hold whatever botocore is installed: every entry in the file
    # is one the policy would still record today (so nothing sensitive slipped in).
    fresh = _built()['services'][service]['operations'][operation]
    committed = boto_utils.whitelist['services'][service]['operations'][operation]
    for key in ('request_parameters', 'response_parameters'):
        assert set(committed.get(key, ())) <= set(fresh.get(key, ())), key
    for key in ('request_descriptors', 'response_descriptors'):
        for name, descriptor in committed.get(key, {}).items():
            assert fresh.get(key, {}).get(name) == descriptor, (key, name)


def test_generator_naming_helpers():
    gen = _generator()
    assert gen.singular('entries') == 'entry'
    assert gen.singular('common_prefixes') == 'common_prefix'
    assert gen.singular('messages') == 'message'
    assert gen.singular('address') == 'address'
    assert gen.snake('MD5OfMessageBody') == 'md5_of_message_body'
