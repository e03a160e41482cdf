import json
import random

import pytest

from aws_like_sdk import global_sdk_config
from aws_like_sdk.core.exceptions.exceptions import InvalidSamplingManifestError
from aws_like_sdk.core.sampling.local import sampler as local_sampler_module
from aws_like_sdk.core.sampling.local.sampler import SUPPORTED_RULE_VERSION, LocalSampler

V2 = {
    'version': 2,
    'rules': [
        {'description': 'never health', 'host': '*', 'http_method': '*', 'url_path': '/health',
         'fixed_target': 0, 'rate': 0},
        {'description': 'api', 'host': 'api.*', 'http_method': 'POST', 'url_path': '/orders/*',
         'fixed_target': 0, 'rate': 1},
    ],
    'default': {'fixed_target': 0, 'rate': 0},
}

V1 = {
    'version': 1,
    'rules': [{'service_name': 'api.*', 'http_method': '*', 'url_path': '*', 'fixed_target': 0, 'rate': 1}],
    'default': {'fixed_target': 0, 'rate': 0},
}


def test_module_constants():
    assert SUPPORTED_RULE_VERSION == (1, 2)
    assert local_sampler_module.local_sampling_rule == {
        'version': 2, 'default': {'fixed_target': 1, 'rate': 0.05}, 'rules': []}
    # Callers get a copy: mutating it does not change the packaged default.
    local_sampler_module.local_sampling_rule['default']['rate'] = 1
    assert local_sampler_module.local_sampling_rule['default']['rate'] == 0.05


def test_packaged_default_first_per_second_then_five_percent(clock):
    sampler = LocalSampler(rng=random.Random(7), clock=clock)
    first = [sampler.should_trace() for _ in range(2001)]
    assert first[0] is True
    rest = sum(first[1:])
    # 2000 Bernoulli(0.05) draws with a fixed seed; the bound is wide enough for any seed (~6 sigma).
    assert 40 <= rest <= 160
    clock.advance(1)
    assert sampler.should_trace() is True


def test_v2_rules_first_match_wins(clock):
    sampler = LocalSampler(V2, clock=clock, rng=random.Random(1))
    assert sampler.should_trace({'host': 'api.shop', 'method': 'POST', 'path': '/health'}) is False
    assert sampler.should_trace({'host': 'api.shop', 'method': 'POST', 'path': '/orders/1'}) is True
    assert sampler.should_trace({'host': 'api.shop', 'method': 'GET', 'path': '/orders/1'}) is False


def test_service_only_request_takes_first_rule_and_none_takes_default(clock):
    doc = {'version': 2, 'default': {'fixed_target': 0, 'rate': 0},
           'rules': [{'host': 'x', 'http_method': 'x', 'url_path': 'x', 'fixed_target': 0, 'rate': 1}]}
    sampler = LocalSampler(doc, clock=clock)
    assert sampler.should_trace({'service': 'manual'}) is True
    assert sampler.should_trace() is False


def test_v1_document(clock):
    sampler = LocalSampler(V1, clock=clock)
    assert sampler.should_trace({'host': 'api.internal', 'method': 'GET', 'path': '/'}) is True
    assert sampler.should_trace({'host': 'web', 'method': 'GET', 'path': '/'}) is False


def test_load_from_file(tmp_path, clock):
    path = tmp_path / 'rules.json'
    path.write_text(json.dumps(V2))
    sampler = LocalSampler(clock=clock)
    sampler.load_local_rules(str(path))
    assert len(sampler.rules) == 2
    sampler.load_local_rules(path)  # PathLike too
    assert sampler.default_rule.rate == 0


def test_rules_key_optional(clock):
    sampler = LocalSampler({'version': 2, 'default': {'fixed_target': 0, 'rate': 1}}, clock=clock)
    assert sampler.rules == () and sampler.should_trace({'host': 'a'}) is True


@pytest.mark.parametrize('document,message', [
    ({'version': 3, 'default': {'fixed_target': 1, 'rate': 0}}, 'version'),
    ({'default': {'fixed_target': 1, 'rate': 0}}, 'version'),
    ({'version': True, 'default': {'fixed_target': 1, 'rate': 0}}, 'version'),
    ({'version': 2}, 'default'),
    ({'version': 2, 'default': {'fixed_target': 1, 'rate': 0}, 'rules': {}}, 'list'),
    ({'version': 2, 'default': {'fixed_target': -1, 'rate': 0}}, 'negative'),
    ({'version': 2, 'default': {'fixed_target': 1, 'rate': 0}, 'rules': [{'fixed_target': 1, 'rate': 0}]},
     'must define'),
    (42, 'dict or a path'),
])
def test_invalid_documents_fail_at_load_time(document, message):
    with pytest.raises(InvalidSamplingManifestError, match=message):
        LocalSampler(document)


def test_invalid_document_keeps_previous_rules(clock):
    sampler = LocalSampler(V2, clock=clock)
    with pytest.raises(InvalidSamplingManifestError):
        sampler.load_local_rules({'version': 2, 'default': {'fixed_target': 1, 'rate': 0},
                                  'rules': [{'host': 'a'}]})
    assert len(sampler.rules) == 2


def test_bad_files(tmp_path):
    sampler = LocalSampler()
    with pytest.raises(InvalidSamplingManifestError, match='Cannot read'):
        sampler.load_local_rules(str(tmp_path / 'missing.json'))
    garbage = tmp_path / 'garbage.json'
    garbage.write_text('{not json')
    with pytest.raises(InvalidSamplingManifestError, match='not valid JSON'):
        sampler.load_local_rules(str(garbage))
    listing = tmp_path / 'list.json'
    listing.write_text('[]')
    with pytest.raises(InvalidSamplingManifestError, match='JSON object'):
        sampler.load_local_rules(str(listing))


def test_reservoir_then_rate_statistics(clock):
    doc = {'version': 2, 'default': {'fixed_target': 5, 'rate': 0.2}}
    sampler = LocalSampler(doc, rng=random.Random(42), clock=clock)
    total = 0
    for _ in range(20):  # 20 simulated seconds of 105 requests each
        decisions = [sampler.should_trace({'host': 'h'}) for _ in range(105)]
        assert all(decisions[:5])
        total += sum(decisions[5:])
        clock.advance(1)
    # 2000 draws at 0.2: mean 400, sd ~18.
    assert 300 <= total <= 500


def test_sdk_disabled_returns_false(monkeypatch, clock):
    sampler = LocalSampler({'version': 2, 'default': {'fixed_target': 10, 'rate': 1}}, clock=clock)
    monkeypatch.setenv('AWS_XRAY_SDK_ENABLED', 'false')
    assert global_sdk_config.sdk_enabled() is False
    assert sampler.should_trace() is False
    monkeypatch.delenv('AWS_XRAY_SDK_ENABLED')
    assert sampler.should_trace() is True


def test_start_and_stop_are_noops():
    sampler = LocalSampler()
    sampler.start()
    sampler.stop()
