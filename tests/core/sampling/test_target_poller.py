import threading

from aws_like_sdk.core.sampling.rule_cache import RuleCache
from aws_like_sdk.core.sampling.rule_poller import RulePoller
from aws_like_sdk.core.sampling.target_poller import TargetPoller

from .conftest import DEFAULT_RECORD, rule_record


def setup(fake_daemon, connector, clock):
    fake_daemon.set_rules(rule_record('api', 1, size=1, path='/api'), DEFAULT_RECORD)
    cache = RuleCache()
    rules = RulePoller(cache, connector, clock=clock)
    rules.refresh()
    fake_daemon.requests.clear()
    return cache, rules


def test_interval_constant():
    assert TargetPoller.interval == 10


def test_nothing_reported_until_a_rule_matched(fake_daemon, connector, clock):
    cache, rules = setup(fake_daemon, connector, clock)
    poller = TargetPoller(cache, rules, connector)
    assert not poller.poll()
    assert fake_daemon.requests == []


def test_reports_matched_rules_and_applies_targets(fake_daemon, connector, clock):
    cache, rules = setup(fake_daemon, connector, clock)
    api = cache.rules[0]
    api.increment_request_count()
    fake_daemon.targets = {'SamplingTargetDocuments': [
        {'RuleName': 'api', 'FixedRate': 0.3, 'ReservoirQuota': 4, 'ReservoirQuotaTTL': clock.now + 10,
         'Interval': 30}], 'LastRuleModification': clock.now - 10}
    poller = TargetPoller(cache, rules, connector)
    assert poller.poll()
    docs = fake_daemon.requests[0]['body']['SamplingStatisticsDocuments']
    assert [d['RuleName'] for d in docs] == ['api'] and docs[0]['RequestCount'] == 1
    assert (api.rate, api.reservoir.quota, api.reservoir.TTL) == (0.3, 4, clock.now + 10)
    # Interval 30 s = every third 10 s tick.
    api.increment_request_count()
    assert [poller.poll() for _ in range(3)] == [False, False, True]


def test_newer_rule_modification_wakes_rule_poller(fake_daemon, connector, clock):
    cache, rules = setup(fake_daemon, connector, clock)
    woken = []
    rules.wake_up = lambda: woken.append(True)
    cache.rules[0].increment_request_count()
    fake_daemon.targets = {'SamplingTargetDocuments': [], 'LastRuleModification': clock.now + 1}
    TargetPoller(cache, rules, connector).poll()
    assert woken == [True]


def test_daemon_failure_is_survived(fake_daemon, connector, clock):
    cache, rules = setup(fake_daemon, connector, clock)
    cache.rules[0].increment_request_count()
    fake_daemon.mode = 'garbage'
    assert not TargetPoller(cache, rules, connector).poll()


def test_thread_polls_on_interval_and_stops(fake_daemon, connector, clock):
    cache, rules = setup(fake_daemon, connector, clock)
    poller = TargetPoller(cache, rules, connector, interval=0.02)
    cache.rules[0].increment_request_count()
    poller.start()
    try:
        assert fake_daemon.wait_for(lambda: fake_daemon.paths() == ['/SamplingTargets'])
        thread = next(t for t in threading.enumerate() if t.name == 'aws_like_sdk-sampling-target-poller')
        assert thread.daemon
    finally:
        assert poller.stop(timeout=2)
    assert not poller.running
