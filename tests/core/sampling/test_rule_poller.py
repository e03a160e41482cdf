import threading

from aws_like_sdk.core.sampling import rule_poller
from aws_like_sdk.core.sampling.rule_cache import RuleCache
from aws_like_sdk.core.sampling.rule_poller import DEFAULT_INTERVAL, RulePoller

from .conftest import DEFAULT_RECORD, rule_record


def test_constants():
    assert DEFAULT_INTERVAL == 300 and rule_poller.JITTER == 5.0


def test_refresh_loads_rules_and_stamps_clock(fake_daemon, connector, clock):
    fake_daemon.set_rules(rule_record('b', 2), DEFAULT_RECORD)
    cache = RuleCache()
    poller = RulePoller(cache, connector, clock=clock)
    assert poller.refresh()
    assert [r.name for r in cache.rules] == ['b', 'Default'] and cache.last_updated == clock.now
    assert DEFAULT_INTERVAL <= poller.next_delay() <= DEFAULT_INTERVAL + 5


def test_failed_refresh_keeps_cache_and_backs_off(fake_daemon, connector, clock):
    cache = RuleCache()
    poller = RulePoller(cache, connector, clock=clock)
    poller.refresh()
    stamp = cache.last_updated
    fake_daemon.mode = '500'
    clock.advance(100)
    delays = []
    for _ in range(8):
        assert not poller.refresh()
        delays.append(poller.next_delay())
    assert delays == [5, 10, 20, 40, 80, 160, 300, 300]
    assert cache.last_updated == stamp and [r.name for r in cache.rules] == ['Default']
    fake_daemon.mode = None
    assert poller.refresh() and poller.next_delay() >= DEFAULT_INTERVAL


def test_empty_answer_keeps_cache(fake_daemon, connector, clock):
    cache = RuleCache()
    poller = RulePoller(cache, connector, clock=clock)
    poller.refresh()
    fake_daemon.set_rules()
    assert not poller.refresh()
    assert [r.name for r in cache.rules] == ['Default']


def test_thread_is_named_daemon_fetches_at_once_and_wakes_up(fake_daemon, connector, clock):
    poller = RulePoller(RuleCache(), connector, clock=clock)
    poller.start()
    try:
        assert fake_daemon.wait_for(lambda: len(fake_daemon.requests) == 1)
        thread = next(t for t in threading.enumerate() if t.name == 'aws_like_sdk-sampling-rule-poller')
        assert thread.daemon and poller.running
        poller.start()  # idempotent
        assert [t.name for t in threading.enumerate()].count('aws_like_sdk-sampling-rule-poller') == 1
        poller.wake_up()
        assert fake_daemon.wait_for(lambda: len(fake_daemon.requests) == 2)
    finally:
        assert poller.stop(timeout=2)
    assert not poller.running
