import pytest

from aws_like_sdk.core.exceptions.exceptions import InvalidSamplingManifestError
from aws_like_sdk.core.sampling.local.sampling_rule import SamplingRule


def rule(**overrides):
    data = {'host': '*.example.com', 'http_method': 'GET', 'url_path': '/api/*', 'fixed_target': 2, 'rate': 0.5}
    data.update(overrides)
    return data


def test_properties():
    r = SamplingRule(rule(description='api'))
    assert (r.host, r.method, r.path, r.fixed_target, r.rate, r.version) == (
        '*.example.com', 'GET', '/api/*', 2, 0.5, 2)
    assert r.reservoir.traces_per_sec == 2


@pytest.mark.parametrize('host,method,path,expected', [
    ('www.example.com', 'GET', '/api/users', True),
    ('WWW.EXAMPLE.COM', 'get', '/API/users', True),  # case-insensitive, as upstream
    ('example.org', 'GET', '/api/users', False),
    ('www.example.com', 'POST', '/api/users', False),
    ('www.example.com', 'GET', '/health', False),
    (None, None, None, True),  # missing attributes match
    ('', 'GET', '', True),
])
def test_applies(host, method, path, expected):
    assert SamplingRule(rule()).applies(host, method, path) is expected


def test_question_mark_wildcard():
    r = SamplingRule(rule(url_path='/v?/items'))
    assert r.applies(None, None, '/v1/items') and not r.applies(None, None, '/v10/items')


def test_version_1_uses_service_name():
    r = SamplingRule({'service_name': 'svc-*', 'http_method': '*', 'url_path': '*', 'fixed_target': 0,
                      'rate': 1}, version=1)
    assert r.host == 'svc-*' and r.applies('svc-a', 'GET', '/')


def test_version_1_with_host_key_explains():
    with pytest.raises(InvalidSamplingManifestError, match='service_name'):
        SamplingRule(rule(), version=1)


def test_default_rule_must_not_filter():
    with pytest.raises(InvalidSamplingManifestError, match='default'):
        SamplingRule({'fixed_target': 1, 'rate': 0.1, 'host': 'x'}, default=True)
    assert SamplingRule({'fixed_target': 1, 'rate': 0.1}, default=True).applies('a', 'b', 'c')


@pytest.mark.parametrize('missing', ['host', 'http_method', 'url_path'])
def test_custom_rule_needs_all_filters(missing):
    data = rule()
    del data[missing]
    with pytest.raises(InvalidSamplingManifestError, match=missing):
        SamplingRule(data)


@pytest.mark.parametrize('overrides,message', [
    ({'fixed_target': -1}, 'negative'),
    ({'rate': -0.1}, 'between 0 and 1'),
    ({'rate': 1.5}, 'between 0 and 1'),
    ({'rate': '0.5'}, 'number'),
    ({'fixed_target': 1.5}, 'whole number'),
    ({'fixed_target': True}, 'whole number'),
    ({'host': 5}, 'string'),
])
def test_bad_values(overrides, message):
    with pytest.raises(InvalidSamplingManifestError, match=message):
        SamplingRule(rule(**overrides))


@pytest.mark.parametrize('key', ['fixed_target', 'rate'])
def test_missing_numbers_are_manifest_errors_not_type_errors(key):
    data = rule()
    del data[key]
    with pytest.raises(InvalidSamplingManifestError, match=key):
        SamplingRule(data)


def test_integral_float_fixed_target_accepted():
    assert SamplingRule(rule(fixed_target=3.0)).fixed_target == 3


def test_rule_must_be_object():
    with pytest.raises(InvalidSamplingManifestError, match='JSON object'):
        SamplingRule(['not', 'a', 'rule'])
