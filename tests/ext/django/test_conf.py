"""XRAY_RECORDER settings: defaults, precedence, validation, reload on setting_changed."""
import logging

import pytest

from aws_like_sdk.ext.django import conf
from aws_like_sdk.ext.django.conf import DEFAULTS, SUPPORTED_ENV_VARS, XRAY_NAMESPACE, XRaySettings


def test_public_names():
    assert XRAY_NAMESPACE == 'XRAY_RECORDER'
    assert SUPPORTED_ENV_VARS == ('AWS_XRAY_DAEMON_ADDRESS', 'AWS_XRAY_CONTEXT_MISSING', 'AWS_XRAY_TRACING_NAME')
    assert DEFAULTS == {
        'AWS_XRAY_DAEMON_ADDRESS': '127.0.0.1:2000', 'AUTO_INSTRUMENT': True,
        'AWS_XRAY_CONTEXT_MISSING': 'LOG_ERROR', 'PLUGINS': (), 'SAMPLING': True, 'SAMPLING_RULES': None,
        'SAMPLER': None, 'AWS_XRAY_TRACING_NAME': None, 'DYNAMIC_NAMING': None, 'STREAMING_THRESHOLD': None,
        'MAX_TRACE_BACK': None, 'STREAM_SQL': True, 'PATCH_MODULES': [], 'AUTO_PATCH_PARENT_SEGMENT_NAME': None,
        'IGNORE_MODULE_PATTERNS': [], 'URLS_AS_ANNOTATION': 'LAMBDA'}
    assert set(conf.VALIDATORS) == set(DEFAULTS)


@pytest.mark.parametrize('key', sorted(DEFAULTS))
def test_defaults_apply_when_unset(key):
    assert getattr(XRaySettings({'OTHER': 1}), key) == DEFAULTS[key]


def test_user_setting_wins_over_default():
    xs = XRaySettings({'SAMPLING': False, 'STREAMING_THRESHOLD': 5, 'PATCH_MODULES': ['sqlite3']})
    assert xs.SAMPLING is False
    assert xs.STREAMING_THRESHOLD == 5
    assert xs.PATCH_MODULES == ['sqlite3']


def test_none_user_setting_means_default():
    assert XRaySettings({'URLS_AS_ANNOTATION': None}).URLS_AS_ANNOTATION == 'LAMBDA'


@pytest.mark.parametrize('key,value', [('AWS_XRAY_DAEMON_ADDRESS', '10.0.0.1:3000'),
                                       ('AWS_XRAY_CONTEXT_MISSING', 'IGNORE_ERROR'),
                                       ('AWS_XRAY_TRACING_NAME', 'from-env')])
def test_environment_wins_for_env_named_keys(monkeypatch, key, value):
    monkeypatch.setenv(key, value)
    assert getattr(XRaySettings({key: 'from-settings'}), key) == value
    assert getattr(XRaySettings({'SAMPLING': True}), key) == value


def test_empty_environment_variable_does_not_blank_the_setting(monkeypatch):
    monkeypatch.setenv('AWS_XRAY_TRACING_NAME', '')
    assert XRaySettings({'AWS_XRAY_TRACING_NAME': 'site'}).AWS_XRAY_TRACING_NAME == 'site'


def test_environment_is_not_consulted_for_other_keys(monkeypatch):
    monkeypatch.setenv('SAMPLING', 'False')
    monkeypatch.setenv('STREAM_SQL', 'False')
    xs = XRaySettings({'AWS_XRAY_TRACING_NAME': 'x'})
    assert xs.SAMPLING is True and xs.STREAM_SQL is True


def test_unknown_setting_access_raises_attribute_error():
    with pytest.raises(AttributeError, match='Invalid setting: NOPE'):
        XRaySettings({}).NOPE


def test_unknown_keys_are_reported_with_a_suggestion():
    xs = XRaySettings({'SAMPLNG': False, 'AWS_XRAY_TRACING_NAME': 'x', 'whatever': 1})
    assert xs.unknown_keys() == ['SAMPLNG', 'whatever']
    message = xs.describe_unknown_key('SAMPLNG')
    assert "'SAMPLNG'" in message and "Did you mean 'SAMPLING'?" in message
    assert 'Did you mean' not in xs.describe_unknown_key('whatever')


def test_settings_are_read_from_django_and_reloaded_on_change(settings_override):
    assert conf.settings.AWS_XRAY_TRACING_NAME == 'django-test'
    before = conf.settings
    with settings_override(AWS_XRAY_TRACING_NAME='overridden', STREAM_SQL='raw'):
        assert conf.settings is not before
        assert conf.settings.AWS_XRAY_TRACING_NAME == 'overridden'
        assert conf.settings.STREAM_SQL == 'raw'
    assert conf.settings.AWS_XRAY_TRACING_NAME == 'django-test'


def test_unrelated_setting_change_keeps_settings_object():
    from django.test import override_settings
    before = conf.settings
    with override_settings(USE_TZ=False):
        assert conf.settings is before


def test_values_are_cached_after_first_access(monkeypatch):
    xs = XRaySettings({'AWS_XRAY_TRACING_NAME': 'first'})
    assert xs.AWS_XRAY_TRACING_NAME == 'first'
    monkeypatch.setenv('AWS_XRAY_TRACING_NAME', 'later')
    assert xs.AWS_XRAY_TRACING_NAME == 'first'
    assert XRaySettings({'AWS_XRAY_TRACING_NAME': 'first'}).AWS_XRAY_TRACING_NAME == 'later'


def test_non_dict_namespace_falls_back_to_defaults(caplog):
    from django.test import override_settings
    with override_settings(XRAY_RECORDER=['not', 'a', 'dict']):
        with caplog.at_level(logging.ERROR):
            assert conf.settings.SAMPLING is True
    assert 'must be a dict' in caplog.text


GOOD_VALUES = {
    'AWS_XRAY_DAEMON_ADDRESS': ['127.0.0.1:3000', 'tcp:127.0.0.1:2000 udp:127.0.0.2:2001'],
    'AUTO_INSTRUMENT': [True, False],
    'AWS_XRAY_CONTEXT_MISSING': ['RUNTIME_ERROR', 'LOG_ERROR', 'IGNORE_ERROR'],
    'PLUGINS': [(), ('EC2Plugin',), ['ECSPlugin']],
    'SAMPLING': [True, False],
    'SAMPLING_RULES': [{'version': 2, 'default': {'fixed_target': 1, 'rate': 0.1}}, '/etc/rules.json'],
    'SAMPLER': [None],
    'AWS_XRAY_TRACING_NAME': ['site'],
    'DYNAMIC_NAMING': ['*.example.com'],
    'STREAMING_THRESHOLD': [0, 50],
    'MAX_TRACE_BACK': [0, 20],
    'STREAM_SQL': [True, False, 'raw'],
    'PATCH_MODULES': [[], ['sqlite3', 'requests']],
    'AUTO_PATCH_PARENT_SEGMENT_NAME': ['startup'],
    'IGNORE_MODULE_PATTERNS': [[r'myapp\.tests.*']],
    'URLS_AS_ANNOTATION': ['LAMBDA', 'ALL', 'NONE'],
}

BAD_VALUES = {
    'AWS_XRAY_DAEMON_ADDRESS': ['not an address', 'host:port:extra', 2000],
    'AUTO_INSTRUMENT': ['yes', 1],
    'AWS_XRAY_CONTEXT_MISSING': ['CRASH', True],
    'PLUGINS': [5, [1, 2]],
    'SAMPLING': ['False', 0],
    'SAMPLING_RULES': [42, ['rules']],
    'SAMPLER': ['LocalSampler', object()],
    'AWS_XRAY_TRACING_NAME': [42],
    'DYNAMIC_NAMING': [3.5],
    'STREAMING_THRESHOLD': [-1, '30', True],
    'MAX_TRACE_BACK': [-5, 2.5],
    'STREAM_SQL': ['yes', 'RAW'],
    'PATCH_MODULES': [5, [None]],
    'AUTO_PATCH_PARENT_SEGMENT_NAME': ['', 7],
    'IGNORE_MODULE_PATTERNS': [['(unclosed'], 'x'.join(['['] * 2)],
    'URLS_AS_ANNOTATION': ['SOMETIMES', 3],
}


@pytest.mark.parametrize('key,value', [(k, v) for k, values in GOOD_VALUES.items() for v in values])
def test_valid_values_pass_validation(key, value, caplog):
    with caplog.at_level(logging.WARNING):
        result = XRaySettings({key: value}).validated(key)
    expected = (value,) if key in conf._AS_TUPLE and isinstance(value, str) else value
    assert result == (expected if value is not None else DEFAULTS[key])
    assert not caplog.records


@pytest.mark.parametrize('key,value', [(k, v) for k, values in BAD_VALUES.items() for v in values])
def test_invalid_values_fall_back_to_default_with_a_warning_naming_the_key(key, value, caplog):
    with caplog.at_level(logging.WARNING, logger='aws_like_sdk.ext.django.conf'):
        assert XRaySettings({key: value}).validated(key) == DEFAULTS[key]
    assert key in caplog.text and 'Invalid value' in caplog.text


def test_single_string_for_a_list_setting_is_one_name():
    assert XRaySettings({'PATCH_MODULES': 'sqlite3'}).validated('PATCH_MODULES') == ('sqlite3',)


def test_urls_as_annotation_is_case_insensitive():
    assert XRaySettings({'URLS_AS_ANNOTATION': 'all'}).validated('URLS_AS_ANNOTATION') == 'ALL'


def test_invalid_env_value_names_the_environment_variable(monkeypatch, caplog):
    monkeypatch.setenv('AWS_XRAY_CONTEXT_MISSING', 'EXPLODE')
    with caplog.at_level(logging.WARNING, logger='aws_like_sdk.ext.django.conf'):
        assert XRaySettings({}).validated('AWS_XRAY_CONTEXT_MISSING') == 'LOG_ERROR'
    assert 'environment variable' in caplog.text
