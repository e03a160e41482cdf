import datetime
import logging
import re
import socket

import pytest

from aws_like_sdk.core.sampling.connector import SamplingConnectorError, ServiceConnector
from aws_like_sdk.core.sampling.sampling_rule import SamplingRule
from aws_like_sdk.core.suppression import is_suppressed

from .conftest import DEFAULT_RECORD, rule_record


def test_construction_does_no_io():
    connector = ServiceConnector('203.0.113.1', 9)  # TEST-NET: any connect attempt would hang or fail
    assert connector.endpoint == '203.0.113.1:9'
    assert re.fullmatch(r'[0-9a-f]{24}', connector.client_id)
    assert connector.xray_client is None


def test_fetch_rules_filters_and_parses(fake_daemon, connector):
    fake_daemon.set_rules(
        rule_record('api', 10, rate=0.5, size=5, host='api.*', method='POST', path='/orders',
                    service='shop', service_type='AWS::EC2::Instance'),
        rule_record('v2', 1, version=2),
        rule_record('arn', 1, resource_arn='arn:aws:s3:::bucket'),
        rule_record('attrs', 1, attributes={'team': 'x'}),
        rule_record('notype', 1, service_type=''),
        {'SamplingRule': {'RuleName': 'broken', 'Version': 1, 'ResourceARN': '*', 'ServiceType': '*'}},
        'garbage',
        DEFAULT_RECORD,
    )
    rules = connector.fetch_sampling_rules()
    assert [r.name for r in rules] == ['api', 'Default']
    api = rules[0]
    assert (api.priority, api.rate, api.can_borrow, api.host, api.method, api.path, api.service,
            api.service_type) == (10, 0.5, True, 'api.*', 'POST', '/orders', 'shop', 'AWS::EC2::Instance')
    request = fake_daemon.requests[0]
    assert request['path'] == '/GetSamplingRules' and request['body'] == {}
    assert request['content_type'] == 'application/json'
    assert request['authorization'] is None  # the daemon signs; we never do


def test_follows_next_token(fake_daemon, connector):
    fake_daemon.rule_pages = [[rule_record('a', 1)], [rule_record('b', 2)], [DEFAULT_RECORD]]
    assert [r.name for r in connector.fetch_sampling_rules()] == ['a', 'b', 'Default']
    assert [r['body'] for r in fake_daemon.requests] == [{}, {'NextToken': '1'}, {'NextToken': '2'}]


def test_repeating_token_does_not_loop(fake_daemon, connector):
    fake_daemon.rules_page = lambda body: {'SamplingRuleRecords': [DEFAULT_RECORD], 'NextToken': 'same'}
    assert len(connector.fetch_sampling_rules()) == 2
    assert len(fake_daemon.requests) == 2


def test_fetch_targets_reports_statistics(fake_daemon, connector, clock):
    rule = SamplingRule('api', 1, 0.1, 1, '*', '*', '*', '*', '*')
    for _ in range(4):
        rule.increment_request_count()
    rule.increment_sampled_count()
    rule.increment_borrow_count()
    fake_daemon.targets = {
        'SamplingTargetDocuments': [
            {'RuleName': 'api', 'FixedRate': 0.25, 'ReservoirQuota': 7, 'ReservoirQuotaTTL': 1.7e9 + 60,
             'Interval': 20, 'SamplingBoost': {'BoostRate': 1}},  # unknown members are ignored
            {'RuleName': 'Default', 'FixedRate': 0.05},
            {'no': 'name'},
        ],
        'LastRuleModification': 1.7e9 + 5,
        'UnprocessedStatistics': [{'RuleName': 'x', 'ErrorCode': '400', 'Message': 'bad'}],
        'UnprocessedBoostStatistics': [],
    }
    targets, modified = connector.fetch_sampling_target([rule])
    assert targets == {
        'api': {'rate': 0.25, 'quota': 7, 'TTL': 1.7e9 + 60, 'interval': 20},
        'Default': {'rate': 0.05, 'quota': None, 'TTL': None, 'interval': None},
    }
    assert modified == int(1.7e9 + 5)
    body = fake_daemon.requests[0]['body']
    assert fake_daemon.requests[0]['path'] == '/SamplingTargets'
    assert body == {'SamplingStatisticsDocuments': [{
        'RuleName': 'api', 'ClientID': connector.client_id, 'Timestamp': int(clock.now),
        'RequestCount': 4, 'BorrowCount': 1, 'SampledCount': 1}]}
    assert rule.request_count == 0


@pytest.mark.parametrize('mode,message', [('500', 'HTTP 500 InternalFailure: boom'),
                                          ('garbage', 'not a JSON object')])
def test_bad_answers_raise(fake_daemon, connector, mode, message):
    fake_daemon.mode = mode
    with pytest.raises(SamplingConnectorError, match=message):
        connector.fetch_sampling_rules()
    assert connector.daemon_unavailable


def test_slow_answer_times_out(fake_daemon, connector):
    fake_daemon.mode = 'slow'
    fake_daemon.slow_seconds = 1.0
    connector.timeout = 0.2
    with pytest.raises(SamplingConnectorError, match='timed out'):
        connector.fetch_sampling_rules()


def unused_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_outage_logged_once_and_recovery_once(fake_daemon, connector, caplog):
    caplog.set_level(logging.DEBUG, logger='aws_like_sdk.core.sampling.connector')
    fake_daemon.mode = '500'
    for _ in range(3):
        with pytest.raises(SamplingConnectorError):
            connector.fetch_sampling_rules()
    fake_daemon.mode = None
    connector.fetch_sampling_rules()
    connector.fetch_sampling_rules()
    levels = [(r.levelno, r.getMessage().split(' (')[0]) for r in caplog.records if r.levelno >= logging.INFO]
    assert levels == [(logging.WARNING, 'X-Ray daemon sampling API at 127.0.0.1:%d is unavailable'
                       % fake_daemon.port),
                      (logging.INFO, 'X-Ray daemon sampling API at 127.0.0.1:%d is answering again.'
                       % fake_daemon.port)]
    assert not [r for r in caplog.records if r.exc_info]


def test_connection_refused(clock):
    connector = ServiceConnector('127.0.0.1', unused_port(), timeout=1.0, clock=clock)
    with pytest.raises(SamplingConnectorError):
        connector.fetch_sampling_rules()


def test_calls_run_with_tracing_suppressed(connector):
    seen = []

    class Client:
        def get_sampling_rules(self, **kwargs):
            seen.append(is_suppressed())
            return {'SamplingRuleRecords': [DEFAULT_RECORD]}

    connector.xray_client = Client()
    assert [r.name for r in connector.fetch_sampling_rules()] == ['Default']
    assert seen == [True] and not is_suppressed()


def test_botocore_style_client_with_datetimes(connector):
    ttl = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)

    class Client:
        def get_sampling_targets(self, SamplingStatisticsDocuments):  # noqa: N803
            return {'SamplingTargetDocuments': [{'RuleName': 'r', 'FixedRate': 0.5, 'ReservoirQuotaTTL': ttl}],
                    'LastRuleModification': ttl}

        def get_sampling_rules(self, **kwargs):
            raise RuntimeError('AccessDenied')

    connector.setup_xray_client('127.0.0.1', 2000, Client())
    targets, modified = connector.fetch_sampling_target([SamplingRule('r', 1, 0.1, 0)])
    assert targets['r']['TTL'] == ttl.timestamp() and modified == int(ttl.timestamp())
    with pytest.raises(SamplingConnectorError, match='AccessDenied'):
        connector.fetch_sampling_rules()


def test_context_property_is_kept(connector):
    marker = object()
    connector.context = marker
    assert connector.context is marker
