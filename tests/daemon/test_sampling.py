"""Centralized sampling served from a local rules file, checked with botocore and our SDK's connector."""
import json
import os
import time

import pytest

from aws_like_sdk.daemon.sampling import SamplingRulesError, SamplingService, parse_rules

LOCAL_V2 = {'version': 2, 'default': {'fixed_target': 2, 'rate': 0.1},
            'rules': [{'description': 'Health checks!', 'host': '*', 'http_method': 'GET',
                       'url_path': '/health', 'fixed_target': 0, 'rate': 0.0}]}
RECORDS = {'SamplingRuleRecords': [{'SamplingRule': {
    'RuleName': 'orders', 'Priority': 5, 'FixedRate': 0.5, 'ReservoirSize': 10, 'ServiceName': 'orders',
    'ServiceType': '*', 'Host': '*', 'HTTPMethod': 'POST', 'URLPath': '/orders*', 'ResourceARN': '*',
    'Version': 1, 'Attributes': {}, 'FutureMember': 'ignored'}}]}


def test_local_v2_rules_convert_in_order():
    rules = parse_rules(LOCAL_V2)
    assert [(r['RuleName'], r['Priority'], r['URLPath']) for r in rules] == [('Health-checks', 1, '/health'),
                                                                            ('Default', 10000, '*')]
    assert rules[1]['ReservoirSize'] == 2 and rules[1]['FixedRate'] == 0.1


def test_local_v1_uses_service_name_as_host():
    rules = parse_rules({'version': 1, 'default': {'fixed_target': 1, 'rate': 0.05},
                         'rules': [{'service_name': 'api.example.com', 'http_method': '*', 'url_path': '*',
                                    'fixed_target': 1, 'rate': 1.0}]})
    assert rules[0]['Host'] == 'api.example.com'


def test_records_shape_and_default_added():
    rules = parse_rules(RECORDS)
    assert [r['RuleName'] for r in rules] == ['orders', 'Default']
    assert parse_rules([RECORDS['SamplingRuleRecords'][0]['SamplingRule']])[0]['RuleName'] == 'orders'


@pytest.mark.parametrize('bad', [
    {'version': 3, 'default': {}},
    {'version': 2},
    {'version': 2, 'default': {'fixed_target': -1, 'rate': 0.1}},
    {'version': 2, 'default': {'fixed_target': 1, 'rate': 2}},
    {'SamplingRuleRecords': [{'SamplingRule': {'RuleName': 'x' * 40}}]},
    {'SamplingRuleRecords': 'nope'},
    [{'RuleName': 'a'}, {'RuleName': 'a'}],
])
def test_invalid_rules(bad):
    with pytest.raises(SamplingRulesError):
        parse_rules(bad)


def test_targets_share_the_reservoir_and_report_unknown_rules(tmp_path):
    path = tmp_path / 'rules.json'
    path.write_text(json.dumps(RECORDS))
    service = SamplingService(str(path))
    stats = {'RuleName': 'orders', 'ClientID': 'a' * 24, 'Timestamp': time.time(), 'RequestCount': 3,
             'SampledCount': 2, 'BorrowCount': 0}
    first = service.get_sampling_targets({'SamplingStatisticsDocuments': [stats]})
    assert first['SamplingTargetDocuments'][0]['ReservoirQuota'] == 10
    second = service.get_sampling_targets({'SamplingStatisticsDocuments': [
        dict(stats, ClientID='b' * 24), dict(stats, RuleName='nope'), dict(stats, ClientID='short')]})
    assert second['SamplingTargetDocuments'][0]['ReservoirQuota'] == 5
    assert [u['RuleName'] for u in second['UnprocessedStatistics']] == ['nope', 'orders']
    assert service.statistics()['orders']['RequestCount'] == 6


def test_rules_file_is_reloaded_when_changed(tmp_path):
    path = tmp_path / 'rules.json'
    path.write_text(json.dumps(LOCAL_V2))
    service = SamplingService(str(path))
    modified = service.get_sampling_targets({'SamplingStatisticsDocuments': []})['LastRuleModification']
    path.write_text(json.dumps(RECORDS))
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert [r['RuleName'] for r in service.rules()] == ['orders', 'Default']
    assert service.get_sampling_targets({'SamplingStatisticsDocuments': []})['LastRuleModification'] >= modified
    path.write_text('{broken')
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert [r['RuleName'] for r in service.rules()] == ['orders', 'Default']  # keeps the last good rules


def test_missing_rules_file_is_an_error(tmp_path):
    with pytest.raises(SamplingRulesError):
        SamplingService(str(tmp_path / 'absent.json'))


@pytest.fixture
def rules_daemon(start_daemon, tmp_path):
    path = tmp_path / 'rules.json'
    path.write_text(json.dumps(RECORDS))
    return start_daemon('--sampling-rules', str(path))


def test_botocore_unsigned_client_like_the_upstream_sdk(rules_daemon):
    botocore = pytest.importorskip('botocore.session')
    from botocore import UNSIGNED
    from botocore.config import Config
    client = botocore.get_session().create_client(
        'xray', region_name='us-west-2', endpoint_url=rules_daemon.base, aws_access_key_id='',
        aws_secret_access_key='', config=Config(signature_version=UNSIGNED))
    records = client.get_sampling_rules()['SamplingRuleRecords']
    assert [r['SamplingRule']['RuleName'] for r in records] == ['orders', 'Default']
    targets = client.get_sampling_targets(SamplingStatisticsDocuments=[{
        'RuleName': 'orders', 'ClientID': 'c' * 24, 'Timestamp': time.time(), 'RequestCount': 1,
        'SampledCount': 1, 'BorrowCount': 0}])
    assert targets['SamplingTargetDocuments'][0]['RuleName'] == 'orders'
    assert targets['SamplingTargetDocuments'][0]['ReservoirQuota'] == 10


def test_our_sdk_connector_reads_the_rules(rules_daemon):
    connector_module = pytest.importorskip('aws_like_sdk.core.sampling.connector')
    connector = connector_module.ServiceConnector(*rules_daemon.tcp)
    names = [getattr(rule, 'name', None) for rule in connector.fetch_sampling_rules()]
    assert names[:1] == ['orders'] and 'Default' in names
