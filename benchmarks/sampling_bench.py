"""Cost of one sampling decision: aws_like_sdk versus aws-xray-sdk (if installed), no daemon involved.

Run from the repository root: PYTHONPATH=. python benchmarks/sampling_bench.py
"""
import timeit

from aws_like_sdk.core.sampling.local.sampler import LocalSampler
from aws_like_sdk.core.sampling.rule_cache import RuleCache
from aws_like_sdk.core.sampling.sampler import DefaultSampler
from aws_like_sdk.core.sampling.sampling_rule import SamplingRule

REQUEST = {'host': 'api.example.com', 'method': 'GET', 'path': '/orders/42', 'service': 'orders'}
RULES = {'version': 2, 'default': {'fixed_target': 1, 'rate': 0.05}, 'rules': [
    {'host': 'admin.*', 'http_method': '*', 'url_path': '*', 'fixed_target': 0, 'rate': 0},
    {'host': '*', 'http_method': 'GET', 'url_path': '/orders/*', 'fixed_target': 1, 'rate': 0.1}]}
N = 200_000


def centralized_sampler() -> DefaultSampler:
    sampler = DefaultSampler()
    rules = [SamplingRule('admin', 1, 0.0, 0, 'admin.*', '*', '*', '*', '*'),
             SamplingRule('orders', 2, 0.1, 1, '*', 'GET', '/orders/*', '*', '*'),
             SamplingRule('Default', 10000, 0.05, 1, '*', '*', '*', '*', '*')]
    cache: RuleCache = sampler.cache
    cache.load_rules(rules)
    import time
    cache.last_updated = time.time()
    sampler.stop()  # keep the pollers from starting: this measures the decision only
    return sampler


def report(name: str, func) -> None:
    seconds = min(timeit.repeat(func, number=N, repeat=3))
    print('%-40s %8.0f ns/decision' % (name, seconds / N * 1e9))


def main() -> None:
    local = LocalSampler(RULES)
    report('aws_like_sdk LocalSampler', lambda: local.should_trace(REQUEST))
    central = centralized_sampler()
    report('aws_like_sdk DefaultSampler (cached)', lambda: central.should_trace(REQUEST))
    try:
        from aws_xray_sdk.core.sampling.local.sampler import LocalSampler as UpstreamLocal
    except ImportError:
        return
    upstream = UpstreamLocal(RULES)
    report('aws-xray-sdk LocalSampler', lambda: upstream.should_trace(dict(REQUEST)))


if __name__ == '__main__':
    main()
