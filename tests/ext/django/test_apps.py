"""XRayConfig.ready() / configure_recorder: every XRAY_RECORDER key reaches the recorder, and the
real start-up (manage.py in a subprocess) behaves with good, bad and missing settings."""
import json
import logging
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from aws_like_sdk.core.exceptions.exceptions import SegmentNameMissingException
from aws_like_sdk.core.sampling.local.sampler import LocalSampler
from aws_like_sdk.ext.django.apps import XRayConfig, configure_recorder
from aws_like_sdk.ext.django.conf import XRaySettings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
MANAGE = os.path.join(HERE, 'project', 'manage.py')


def _apply(recorder, **keys):
    keys.setdefault('AWS_XRAY_TRACING_NAME', 'svc')
    keys.setdefault('AUTO_INSTRUMENT', False)
    configure_recorder(recorder, XRaySettings(keys))
    return recorder


def test_app_config_names():
    from aws_like_sdk.ext import django as ext_django
    from django.apps import apps
    assert ext_django.default_app_config == 'aws_like_sdk.ext.django.apps.XRayConfig'
    assert XRayConfig.name == 'aws_like_sdk.ext.django'
    assert isinstance(apps.get_app_config('django'), XRayConfig)


def test_daemon_address_key_points_the_emitter(recorder, udp_sink):
    from aws_like_sdk.core.emitters.udp_emitter import UDPEmitter
    recorder.emitter = UDPEmitter('127.0.0.1:9')  # somewhere else first
    _apply(recorder, AWS_XRAY_DAEMON_ADDRESS=udp_sink.address, SAMPLING=False)
    with recorder.in_segment('via-settings'):
        pass
    assert [doc['name'] for doc in udp_sink.wait_for(1)] == ['via-settings']


def test_daemon_address_env_wins(recorder, udp_sink, monkeypatch):
    monkeypatch.setenv('AWS_XRAY_DAEMON_ADDRESS', udp_sink.address)
    _apply(recorder, AWS_XRAY_DAEMON_ADDRESS='127.0.0.1:9', SAMPLING=False)
    with recorder.in_segment('via-env'):
        pass
    assert [doc['name'] for doc in udp_sink.wait_for(1)] == ['via-env']


def test_tracing_name_setting_and_env(recorder, monkeypatch):
    assert _apply(recorder, AWS_XRAY_TRACING_NAME='from-settings').service == 'from-settings'
    monkeypatch.setenv('AWS_XRAY_TRACING_NAME', 'from-env')
    assert _apply(recorder, AWS_XRAY_TRACING_NAME='from-settings').service == 'from-env'


def test_tracing_name_from_env_only(recorder, monkeypatch):
    monkeypatch.setenv('AWS_XRAY_TRACING_NAME', 'env-only')
    configure_recorder(recorder, XRaySettings({'AUTO_INSTRUMENT': False}))
    assert recorder.service == 'env-only'


@pytest.mark.parametrize('keys', [{}, {'AWS_XRAY_TRACING_NAME': None}, {'AWS_XRAY_TRACING_NAME': ''},
                                  {'AWS_XRAY_TRACING_NAME': 42}])
def test_missing_tracing_name_is_a_clear_error(recorder, keys):
    with pytest.raises(SegmentNameMissingException, match='AWS_XRAY_TRACING_NAME'):
        configure_recorder(recorder, XRaySettings(dict(keys, SAMPLING=False) or {'SAMPLING': False}))


def test_misspelled_key_is_a_clear_error(recorder):
    with pytest.raises(ImproperlyConfigured, match=r"'SAMPLNG'.*Did you mean 'SAMPLING'\?"):
        _apply(recorder, SAMPLNG=False)


def test_context_missing_key_and_env(recorder, monkeypatch):
    assert _apply(recorder, AWS_XRAY_CONTEXT_MISSING='IGNORE_ERROR').context.context_missing == 'IGNORE_ERROR'
    monkeypatch.setenv('AWS_XRAY_CONTEXT_MISSING', 'RUNTIME_ERROR')
    assert _apply(recorder, AWS_XRAY_CONTEXT_MISSING='IGNORE_ERROR').context.context_missing == 'RUNTIME_ERROR'


def test_sampling_key(recorder):
    assert _apply(recorder, SAMPLING=False).sampling is False
    assert _apply(recorder, SAMPLING=True).sampling is True


def test_sampler_and_sampling_rules_keys(recorder):
    rules = {'version': 2, 'default': {'fixed_target': 0, 'rate': 0.0},
             'rules': [{'description': 'health', 'host': '*', 'http_method': 'GET', 'url_path': '/always',
                        'fixed_target': 0, 'rate': 1.0}]}
    sampler = LocalSampler()
    _apply(recorder, SAMPLING=True, SAMPLER=sampler, SAMPLING_RULES=rules)
    assert recorder.sampler is sampler
    request = {'host': 'h', 'method': 'GET', 'service': 'svc'}
    assert sampler.should_trace(dict(request, path='/always'))
    assert not sampler.should_trace(dict(request, path='/other'))


def test_sampling_rules_file(recorder, tmp_path):
    path = tmp_path / 'rules.json'
    path.write_text(json.dumps({'version': 2, 'default': {'fixed_target': 0, 'rate': 0.0}}))
    sampler = LocalSampler()
    _apply(recorder, SAMPLER=sampler, SAMPLING_RULES=str(path))
    assert not sampler.should_trace({'host': 'h', 'method': 'GET', 'path': '/', 'service': 'svc'})


def test_broken_sampling_rules_are_logged_and_the_rest_applies(recorder, tmp_path, caplog):
    path = tmp_path / 'broken.json'
    path.write_text('{not json')
    with caplog.at_level(logging.ERROR, logger='aws_like_sdk.ext.django.apps'):
        _apply(recorder, SAMPLER=LocalSampler(), SAMPLING_RULES=str(path), MAX_TRACE_BACK=3)
    assert 'SAMPLING_RULES' in caplog.text
    assert recorder.max_trace_back == 3


def test_dynamic_naming_key(recorder):
    _apply(recorder, DYNAMIC_NAMING='*.example.com')
    assert recorder.dynamic_naming.get_name('api.example.com') == 'api.example.com'
    assert recorder.dynamic_naming.get_name('other.org') == 'svc'


def test_streaming_threshold_and_max_trace_back_keys(recorder):
    _apply(recorder, STREAMING_THRESHOLD=7, MAX_TRACE_BACK=4)
    assert recorder.streaming_threshold == 7
    assert recorder.max_trace_back == 4


@pytest.mark.parametrize('value', [True, False, 'raw'])
def test_stream_sql_key(recorder, value):
    assert _apply(recorder, STREAM_SQL=value).stream_sql == value


def test_plugins_default_clears_plugin_metadata(recorder, udp_sink):
    recorder.configure(plugins=('ECSPlugin',))  # not in ECS: contributes nothing, must not fail
    _apply(recorder, AWS_XRAY_DAEMON_ADDRESS=udp_sink.address, SAMPLING=False)
    with recorder.in_segment('plain'):
        pass
    (doc,) = udp_sink.wait_for(1)
    assert set(doc['aws']) == {'xray'}
    assert 'origin' not in doc


def test_plugins_key_is_applied(recorder, monkeypatch):
    monkeypatch.setenv('ECS_CONTAINER_METADATA_URI', '')
    _apply(recorder, PLUGINS=('ECSPlugin',))
    assert recorder._plugins == ('ECSPlugin',)


def test_auto_instrument_key(recorder, django_xray, udp_sink):
    from django.db import connection
    from django.template.base import Template

    from aws_like_sdk.ext.django import db, templates
    db.unpatch_db()
    templates.unpatch_template()
    try:
        _apply(recorder, AUTO_INSTRUMENT=False)
        connection.ensure_connection()
        assert db.xray_execute_wrapper not in connection.execute_wrappers
        assert not templates._is_ours(Template)
        _apply(recorder, AUTO_INSTRUMENT=True)
        assert db.xray_execute_wrapper in connection.execute_wrappers
        assert templates._is_ours(Template)
    finally:
        db.patch_db()
        templates.patch_template()


def test_bad_values_are_survived_and_defaults_used(recorder, caplog):
    before_threshold = recorder.streaming_threshold
    with caplog.at_level(logging.WARNING, logger='aws_like_sdk.ext.django'):
        _apply(recorder, AWS_XRAY_DAEMON_ADDRESS='nonsense', SAMPLING='no', STREAMING_THRESHOLD=-3,
               MAX_TRACE_BACK='ten', STREAM_SQL='maybe', AWS_XRAY_CONTEXT_MISSING='EXPLODE', PLUGINS=7,
               URLS_AS_ANNOTATION='SOMETIMES', DYNAMIC_NAMING=12)
    for key in ('AWS_XRAY_DAEMON_ADDRESS', 'SAMPLING', 'STREAMING_THRESHOLD', 'MAX_TRACE_BACK', 'STREAM_SQL',
                'AWS_XRAY_CONTEXT_MISSING', 'PLUGINS', 'DYNAMIC_NAMING'):
        assert key in caplog.text
    assert recorder.sampling is True
    assert recorder.stream_sql is True
    assert recorder.streaming_threshold == before_threshold
    assert recorder.context.context_missing == 'LOG_ERROR'
    assert recorder.dynamic_naming is None


def test_ready_is_idempotent(django_xray):
    from django.apps import apps
    django_xray.service = 'changed-after-start'
    apps.get_app_config('django').ready()
    assert django_xray.service == 'changed-after-start'


# -- real start-up through manage.py --------------------------------------------------------------------
def _manage(args, tmp_path, udp_sink, xray_recorder=None, env=None):
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(('AWS_XRAY_', 'DJANGO_', 'XRAY_TEST_'))}
    environment.update({'XRAY_TEST_DATABASE_DIR': str(tmp_path), 'PYTHONPATH': ROOT,
                        'XRAY_TEST_DAEMON': udp_sink.address})
    if xray_recorder is not None:
        environment['XRAY_TEST_XRAY_RECORDER'] = json.dumps(xray_recorder)
    environment.update(env or {})
    return subprocess.run([sys.executable, MANAGE] + args, cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize('strategy', ['RUNTIME_ERROR', 'LOG_ERROR', 'IGNORE_ERROR'])
def test_management_commands_outside_segments_never_fail_nor_emit(tmp_path, udp_sink, strategy):
    settings = {'AWS_XRAY_TRACING_NAME': 'cli', 'AWS_XRAY_CONTEXT_MISSING': strategy,
                'AWS_XRAY_DAEMON_ADDRESS': udp_sink.address, 'SAMPLING': False}
    # migrate runs the system checks (as runserver does at start-up) and then real queries.
    result = _manage(['migrate', '--database', 'default', '-v', '0'], tmp_path, udp_sink, settings,
                     env={'AWS_XRAY_CONTEXT_MISSING': strategy})
    assert result.returncode == 0, result.stderr
    assert 'cannot find the current segment' not in result.stderr
    assert udp_sink.settle(quiet=0.2) == []


def test_startup_without_tracing_name_fails_clearly(tmp_path, udp_sink):
    result = _manage(['check'], tmp_path, udp_sink, {'SAMPLING': False})
    assert result.returncode != 0
    assert 'SegmentNameMissingException' in result.stderr
    assert 'AWS_XRAY_TRACING_NAME' in result.stderr


def test_startup_tracing_name_from_environment(tmp_path, udp_sink):
    result = _manage(['check'], tmp_path, udp_sink, {'SAMPLING': False}, env={'AWS_XRAY_TRACING_NAME': 'env'})
    assert result.returncode == 0, result.stderr


def test_startup_with_misspelled_key_names_it(tmp_path, udp_sink):
    result = _manage(['check'], tmp_path, udp_sink, {'AWS_XRAY_TRACING_NAME': 'x', 'STREAM_SQLL': False})
    assert result.returncode != 0
    assert "Unknown key 'STREAM_SQLL' in settings.XRAY_RECORDER. Did you mean 'STREAM_SQL'?" in result.stderr


def test_startup_with_bad_values_still_serves(tmp_path, udp_sink):
    settings = {'AWS_XRAY_TRACING_NAME': 'bad-values', 'AWS_XRAY_DAEMON_ADDRESS': udp_sink.address,
                'SAMPLING': 'nope', 'STREAMING_THRESHOLD': 'x', 'AWS_XRAY_CONTEXT_MISSING': 'BOOM'}
    code = ('from django.test import Client; r = Client().get("/"); '
            'print(r.status_code, r.content.decode())')
    result = _manage(['shell', '-c', code], tmp_path, udp_sink, settings)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == '200 hello'
    assert "Invalid value 'nope' for settings.XRAY_RECORDER['SAMPLING']" in result.stderr
    # SAMPLING fell back to True: the packaged rules sample the first request of each second.
    (doc,) = udp_sink.wait_for(1)
    assert doc['name'] == 'bad-values'


# -- PATCH_MODULES / IGNORE_MODULE_PATTERNS / AUTO_PATCH_PARENT_SEGMENT_NAME ---------------------------
TRACED = 'tests.ext.django.project.traced'


@pytest.fixture
def local_patch_cleanup():
    from aws_like_sdk.core import patcher
    yield
    patcher.unpatch([TRACED])


def test_patch_modules_with_ignore_patterns_and_parent_segment(recorder, django_xray, udp_sink,
                                                               local_patch_cleanup):
    _apply(recorder, AWS_XRAY_DAEMON_ADDRESS=udp_sink.address, SAMPLING=False, PATCH_MODULES=[TRACED],
           IGNORE_MODULE_PATTERNS=[r'.*\.skipped$'], AUTO_PATCH_PARENT_SEGMENT_NAME='django-startup')
    assert [doc['name'] for doc in udp_sink.wait_for(1)] == ['django-startup']
    udp_sink.clear()

    from tests.ext.django.project import traced
    from tests.ext.django.project.traced import helpers, skipped
    with django_xray.in_segment('request'):
        assert traced.greet('you') == 'hello you'
        assert helpers.double(4) == 8
        assert skipped.untouched() == 'plain'
    (segment,) = udp_sink.wait_for(1)
    assert [sub['name'] for sub in segment['subsegments']] == ['greet', 'double']


def test_patch_modules_without_parent_segment_emits_no_startup_segment(recorder, udp_sink, local_patch_cleanup):
    recorder.context.context_missing = 'RUNTIME_ERROR'
    _apply(recorder, AWS_XRAY_DAEMON_ADDRESS=udp_sink.address, SAMPLING=False, PATCH_MODULES=TRACED,
           AWS_XRAY_CONTEXT_MISSING='RUNTIME_ERROR')
    assert udp_sink.settle(quiet=0.1) == []


def test_patch_modules_library_name(recorder):
    from aws_like_sdk.core import patcher
    already = 'sqlite3' in patcher._PATCHED_MODULES
    _apply(recorder, PATCH_MODULES=['sqlite3'])
    try:
        assert 'sqlite3' in patcher._PATCHED_MODULES
    finally:
        if not already:
            patcher.unpatch(['sqlite3'])


def test_unsupported_patch_module_fails_start_up_clearly(recorder):
    with pytest.raises(Exception, match='no_such_library_xyz'):
        _apply(recorder, PATCH_MODULES=['no_such_library_xyz'])
