import logging
import os
import random
import signal
import threading
import time

import pytest

from aws_like_sdk.core.daemon_config import DaemonConfig
from aws_like_sdk.core.exceptions.exceptions import InvalidSamplingManifestError
from aws_like_sdk.core.sampling.rule_cache import TTL
from aws_like_sdk.core.sampling.sampler import DefaultSampler

from .conftest import DEFAULT_RECORD, rule_record

POLLER_NAMES = {'aws_like_sdk-sampling-rule-poller', 'aws_like_sdk-sampling-target-poller'}

NEVER = {'version': 2, 'default': {'fixed_target': 0, 'rate': 0}}
ALWAYS = {'version': 2, 'default': {'fixed_target': 0, 'rate': 1}}


def poller_threads():
    return [t for t in threading.enumerate() if t.name in POLLER_NAMES]


@pytest.fixture
def make_sampler(fake_daemon, clock):
    made = []

    def factory(**kwargs):
        kwargs.setdefault('clock', clock)
        kwargs.setdefault('rng', random.Random(3))
        sampler = DefaultSampler(**kwargs)
        sampler.load_settings(DaemonConfig('127.0.0.1:%d' % fake_daemon.port), context=None)
        sampler.connector.timeout = 1.0
        made.append(sampler)
        return sampler

    yield factory
    for sampler in made:
        assert sampler.stop(timeout=2)


def loaded(sampler, fake_daemon):
    """Start the sampler and wait until the rule poller filled the cache.

    start() rather than should_trace(): a decision racing the first fetch could use up the
    one-per-second borrow that tests then expect to see.
    """
    sampler.start()
    assert fake_daemon.wait_for(lambda: sampler.cache.last_updated is not None)
    return sampler


def test_construction_is_cheap(fake_daemon, make_sampler):
    before = len(poller_threads())
    sampler = make_sampler()
    assert len(poller_threads()) == before and not sampler.started
    assert fake_daemon.requests == []


def test_pollers_start_lazily_once(fake_daemon, make_sampler):
    sampler = make_sampler()
    sampler.should_trace()
    sampler.should_trace()
    assert sampler.started
    assert sorted(t.name for t in poller_threads()) == sorted(POLLER_NAMES)
    assert all(t.daemon for t in poller_threads())
    assert sampler.stop(timeout=2)
    assert poller_threads() == []
    sampler.should_trace()  # a stopped sampler stays stopped until start()
    assert poller_threads() == []
    sampler.start()
    assert len(poller_threads()) == 2


def test_sdk_disabled(monkeypatch, fake_daemon, make_sampler):
    monkeypatch.setenv('AWS_XRAY_SDK_ENABLED', 'false')
    sampler = make_sampler()
    sampler.load_local_rules(ALWAYS)
    assert sampler.should_trace({'host': 'a'}) is False
    sampler.start()
    assert not sampler.started and poller_threads() == []
    assert fake_daemon.requests == []


def test_centralized_rule_name_is_returned(fake_daemon, make_sampler):
    fake_daemon.set_rules(rule_record('api', 5, rate=1.0, path='/api/*'), DEFAULT_RECORD)
    sampler = loaded(make_sampler(), fake_daemon)
    sampler.load_local_rules(ALWAYS)  # must not be consulted while centralized rules apply
    assert sampler.should_trace({'path': '/api/x'}) == 'api'
    assert sampler.should_trace({'path': '/other'}) is False  # Default: rate 0, no reservoir


def test_borrow_then_quota_then_rate(fake_daemon, make_sampler, clock):
    fake_daemon.set_rules(rule_record('Default', 10000, rate=0.0, size=1))
    sampler = loaded(make_sampler(), fake_daemon)
    default = sampler.cache.rules[0]
    # No quota yet: borrow one per second.
    assert [sampler.should_trace() for _ in range(3)] == ['Default', False, False]
    assert (default.request_count, default.borrow_count, default.sampled_count) == (3, 1, 0)
    default.reservoir.load_quota(2, clock.now + 20, 10)
    clock.advance(1)
    assert [sampler.should_trace() for _ in range(3)] == ['Default', 'Default', False]
    assert default.sampled_count == 2


def test_fixed_rate_statistics(fake_daemon, make_sampler, clock):
    fake_daemon.set_rules(rule_record('Default', 10000, rate=0.1, size=0))
    sampler = loaded(make_sampler(rng=random.Random(11)), fake_daemon)
    sampled = sum(bool(sampler.should_trace()) for _ in range(3000))
    assert 200 <= sampled <= 400  # mean 300, sd ~16


def test_service_name_and_origin_select_rules(fake_daemon, make_sampler):
    fake_daemon.set_rules(
        rule_record('billing', 1, rate=1.0, service='billing'),
        rule_record('ecs', 2, rate=1.0, service_type='AWS::ECS::Container'),
        DEFAULT_RECORD)
    sampler = loaded(make_sampler(), fake_daemon)
    assert sampler.should_trace({'service': 'billing'}) == 'billing'
    assert sampler.should_trace({'service': 'orders', 'service_type': 'AWS::EC2::Instance'}) is False
    sampler.load_settings(DaemonConfig('127.0.0.1:%d' % fake_daemon.port), None, origin='AWS::ECS::Container')
    request = {'service': 'orders'}
    assert sampler.should_trace(request) == 'ecs'
    assert request == {'service': 'orders'}  # caller's dict untouched
    assert sampler.origin == 'AWS::ECS::Container'


def test_falls_back_to_local_rules_and_logs_once(fake_daemon, make_sampler, caplog):
    caplog.set_level(logging.INFO, logger='aws_like_sdk.core.sampling')
    fake_daemon.mode = '500'
    sampler = make_sampler()
    sampler.load_local_rules(ALWAYS)
    assert sampler.should_trace({'host': 'a'}) is True
    # The poller thread flags the outage before it logs it: wait for the log line itself.
    assert fake_daemon.wait_for(lambda: any('is unavailable' in r.getMessage() for r in caplog.records))
    for _ in range(50):
        assert sampler.should_trace({'host': 'a'}) is True
    sampler.load_local_rules(NEVER)
    assert sampler.should_trace({'host': 'a'}) is False
    fallback_lines = [r for r in caplog.records if 'local sampling rules decide' in r.getMessage()]
    by_logger = sorted(r.name.rsplit('.', 1)[1] for r in fallback_lines)
    assert by_logger == ['connector', 'sampler']  # one line per component, not one per decision


def test_expired_cache_falls_back(fake_daemon, make_sampler, clock):
    fake_daemon.set_rules(rule_record('Default', 10000, rate=1.0))
    sampler = loaded(make_sampler(), fake_daemon)
    sampler.load_local_rules(NEVER)
    assert sampler.should_trace() == 'Default'
    clock.advance(TTL + 1)
    assert sampler.should_trace() is False


def test_load_local_rules_validates(make_sampler, tmp_path):
    sampler = make_sampler()
    with pytest.raises(InvalidSamplingManifestError):
        sampler.load_local_rules({'version': 9, 'default': {}})
    path = tmp_path / 'r.json'
    path.write_text('{"version": 1, "default": {"fixed_target": 0, "rate": 1}}')
    sampler.load_local_rules(str(path))
    assert sampler.local_sampler.default_rule.rate == 1


def test_xray_client_property(make_sampler):
    sampler = make_sampler()
    assert sampler.xray_client is None
    client = object()
    sampler.xray_client = client
    assert sampler.xray_client is client is sampler.connector.xray_client


def test_follows_rule_change_served_by_daemon(fake_daemon, make_sampler, clock):
    """End to end: the daemon changes a rule and reports it through LastRuleModification."""
    fake_daemon.set_rules(rule_record('api', 1, rate=1.0, path='/api/*'), DEFAULT_RECORD)
    sampler = loaded(make_sampler(target_interval=0.02), fake_daemon)
    assert sampler.should_trace({'path': '/api/a'}) == 'api'

    fake_daemon.set_rules(rule_record('api-v2', 1, rate=1.0, path='/api/v2/*'), DEFAULT_RECORD)
    fake_daemon.targets = {'SamplingTargetDocuments': [], 'LastRuleModification': clock.now + 1}
    assert fake_daemon.wait_for(lambda: [r.name for r in sampler.cache.rules] == ['api-v2', 'Default'])
    assert sampler.should_trace({'path': '/api/a'}) is False
    assert sampler.should_trace({'path': '/api/v2/a'}) == 'api-v2'


def test_targets_applied_end_to_end(fake_daemon, make_sampler, clock):
    fake_daemon.set_rules(rule_record('Default', 10000, rate=0.0, size=1))

    def targets(body):
        docs = body['SamplingStatisticsDocuments']
        return {'SamplingTargetDocuments': [
            {'RuleName': d['RuleName'], 'FixedRate': 1.0, 'ReservoirQuota': 0,
             'ReservoirQuotaTTL': clock.now + 60, 'Interval': 10} for d in docs],
            'LastRuleModification': 0}

    fake_daemon.targets = targets
    sampler = loaded(make_sampler(target_interval=0.02), fake_daemon)
    sampler.should_trace()
    assert fake_daemon.wait_for(lambda: sampler.cache.rules[0].rate == 1.0)
    assert all(sampler.should_trace() == 'Default' for _ in range(20))


def test_daemon_address_change_refetches(fake_daemon, make_sampler):
    sampler = loaded(make_sampler(), fake_daemon)
    count = len(fake_daemon.paths())
    sampler.load_settings(DaemonConfig('tcp:localhost:%d udp:127.0.0.1:2000' % fake_daemon.port), None)
    assert fake_daemon.wait_for(lambda: len(fake_daemon.paths()) > count)
    assert sampler.connector.endpoint == 'localhost:%d' % fake_daemon.port


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs fork')
@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_child_after_fork_restarts_pollers_with_new_client_id(fake_daemon, make_sampler):
    sampler = loaded(make_sampler(), fake_daemon)
    parent_id = sampler.connector.client_id
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report and leave without running pytest's teardown
        code = 1
        try:
            ok = (not sampler.started and sampler.connector.client_id != parent_id
                  and sampler.cache.rules[0].name == 'Default')
            sampler.should_trace()
            ok = ok and sampler.started and len(poller_threads()) == 2
            os.write(write_end, b'ok' if ok else b'bad')
            sampler.stop(timeout=2)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        deadline = time.monotonic() + 10
        while True:  # bounded wait: a hung child is killed rather than hanging the suite
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail('forked child did not finish')
            time.sleep(0.01)
        assert os.read(read_end, 16) == b'ok'
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(read_end)
    assert sampler.started and sampler.connector.client_id == parent_id
