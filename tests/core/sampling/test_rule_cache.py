from aws_like_sdk.core.sampling import rule_cache
from aws_like_sdk.core.sampling.rule_cache import TTL, RuleCache
from aws_like_sdk.core.sampling.sampling_rule import SamplingRule

NOW = 1_700_000_000


def rule(name, priority, **kw):
    return SamplingRule(name=name, priority=priority, rate=0.1, reservoir_size=1, host=kw.get('host', '*'),
                        method='*', path=kw.get('path', '*'), service=kw.get('service', '*'), service_type='*')


def loaded(*rules):
    cache = RuleCache()
    cache.load_rules(rules)
    cache.last_updated = NOW
    return cache


def test_ttl_constant():
    assert TTL == rule_cache.TTL == 3600


def test_empty_cache_matches_nothing():
    assert RuleCache().get_matched_rule({}, NOW) is None


def test_sorted_by_priority_then_name():
    cache = loaded(rule('Default', 10000), rule('b', 5), rule('a', 5), rule('first', 1))
    assert [r.name for r in cache.rules] == ['first', 'a', 'b', 'Default']


def test_first_match_by_priority_else_default():
    cache = loaded(rule('Default', 10000), rule('health', 1, path='/health'), rule('api', 2, path='/api/*'))
    assert cache.get_matched_rule({'path': '/api/x'}, NOW).name == 'api'
    assert cache.get_matched_rule({'path': '/health'}, NOW).name == 'health'
    default = SamplingRule('Default', 10000, 0.05, 1, host='never', method='*', path='*', service='*',
                           service_type='*')
    cache = loaded(default, rule('api', 2, path='/api/*'))
    assert cache.get_matched_rule({'host': 'x', 'path': '/other'}, NOW).name == 'Default'


def test_expires_an_hour_after_last_fetch():
    cache = loaded(rule('Default', 10000))
    assert cache.get_matched_rule({}, NOW + TTL).name == 'Default'
    assert cache.get_matched_rule({}, NOW + TTL + 1) is None
    assert cache.is_expired(NOW + TTL + 1)


def test_reload_keeps_state_of_surviving_rules():
    cache = loaded(rule('keep', 1), rule('drop', 2))
    keep = cache.rules[0]
    keep.increment_request_count()
    keep.reservoir.load_quota(7, NOW + 10, 10)
    cache.load_rules([rule('keep', 3), rule('new', 1)])
    names = [r.name for r in cache.rules]
    assert names == ['new', 'keep']
    assert cache.rules[1].request_count == 1 and cache.rules[1].reservoir.quota == 7
    assert cache.rules[1].priority == 3


def test_load_targets():
    cache = loaded(rule('a', 1), rule('b', 2))
    cache.load_targets({'a': {'rate': 0.7, 'quota': 3, 'TTL': NOW + 10, 'interval': 10},
                        'b': {'rate': None, 'quota': None, 'TTL': None, 'interval': None},
                        'unknown': {'rate': 1}})
    a, b = cache.rules
    assert (a.rate, a.reservoir.quota, a.reservoir.TTL) == (0.7, 3, NOW + 10)
    assert (b.rate, b.reservoir.quota) == (0.1, None)


def test_clear_and_snapshot():
    cache = loaded(rule('a', 1))
    assert cache.snapshot() == {'last_updated': NOW, 'rules': ['a']}
    cache.clear()
    assert cache.rules == () and cache.last_updated is None
