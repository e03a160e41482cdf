"""SqsMessageHelper over Lambda SQS event records."""
import pytest

from aws_like_sdk.core.utils.sqs_message_helper import SQS_XRAY_HEADER, SqsMessageHelper

ROOT = 'Root=1-632BB806-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8'


def record(trace_header):
    attributes = {'ApproximateReceiveCount': '1', 'SentTimestamp': '1545082649183'}
    if trace_header is not None:
        attributes[SQS_XRAY_HEADER] = trace_header
    return {'messageId': '059f36b4-87a3-44ab-83d2-661975830a7d', 'body': 'hello', 'attributes': attributes,
            'eventSource': 'aws:sqs'}


@pytest.mark.parametrize('trace_header, sampled', [
    (ROOT + ';Sampled=1', True),
    ('Sampled=1;' + ROOT, True),
    (ROOT + ';Sampled=0', False),
    (ROOT, False),
    (None, False),
    ('', False),
])
def test_is_sampled(trace_header, sampled):
    assert SqsMessageHelper.isSampled(record(trace_header)) is sampled


@pytest.mark.parametrize('bad', [{}, {'attributes': None}, {'attributes': {SQS_XRAY_HEADER: 1}}, None, 'text', []])
def test_malformed_records_are_not_sampled(bad):
    assert SqsMessageHelper.isSampled(bad) is False


def test_header_name_and_static_call():
    assert SQS_XRAY_HEADER == 'AWSTraceHeader'
    assert SqsMessageHelper().isSampled(record(ROOT + ';Sampled=1')) is True
