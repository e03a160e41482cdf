import pytest

from aws_like_sdk.core.sampling.reservoir import Reservoir
from aws_like_sdk.core.sampling.sampling_rule import SamplingRule


def make(**kw):
    args = dict(name='r', priority=1, rate=0.1, reservoir_size=1, host='*.example.com', method='GET',
                path='/api/*', service='orders', service_type='AWS::EC2::Instance')
    args.update(kw)
    return SamplingRule(**args)


@pytest.mark.parametrize('req,expected', [
    ({'host': 'a.example.com', 'method': 'get', 'path': '/api/x', 'service': 'Orders',
      'service_type': 'AWS::EC2::Instance'}, True),
    ({}, True),
    ({'service': 'orders'}, True),
    ({'service': 'billing'}, False),  # #352: the service name selects the rule
    ({'service_type': 'AWS::ECS::Container'}, False),
    ({'host': 'example.org'}, False),
    ({'method': 'POST'}, False),
    ({'path': '/health'}, False),
    (None, False),
])
def test_match(req, expected):
    assert make().match(req) is expected


def test_properties_and_default():
    rule = make(name='Default', reservoir_size=0)
    assert rule.is_default() and not rule.can_borrow
    assert (rule.name, rule.priority, rule.rate) == ('Default', 1, 0.1)
    rule.rate = 0.5
    assert rule.rate == 0.5
    reservoir = Reservoir()
    rule.reservoir = reservoir
    assert rule.reservoir is reservoir
    assert (rule.host, rule.method, rule.path, rule.service, rule.service_type) == (
        '*.example.com', 'GET', '/api/*', 'orders', 'AWS::EC2::Instance')


def test_statistics_snapshot_resets():
    rule = make()
    assert not rule.ever_matched()
    for _ in range(3):
        rule.increment_request_count()
    rule.increment_borrow_count()
    rule.increment_sampled_count()
    assert rule.ever_matched()
    assert (rule.request_count, rule.borrow_count, rule.sampled_count) == (3, 1, 1)
    assert rule.snapshot_statistics() == {'request_count': 3, 'borrow_count': 1, 'sampled_count': 1}
    assert rule.snapshot_statistics() == {'request_count': 0, 'borrow_count': 0, 'sampled_count': 0}
    assert not rule.ever_matched()


def test_merge_carries_statistics_and_reservoir():
    old = make()
    old.increment_request_count()
    old.increment_sampled_count()
    old.reservoir.load_quota(4, 2e9, 10)
    new = make(rate=0.9)
    new.merge(old)
    assert new.reservoir is old.reservoir and new.reservoir.quota == 4
    assert (new.request_count, new.sampled_count, new.rate) == (1, 1, 0.9)


def test_time_to_report_follows_reservoir_interval():
    rule = make()
    rule.reservoir.load_quota(None, None, 20)
    assert [rule.time_to_report() for _ in range(4)] == [False, True, False, True]
