"""Instrumentation failures are contained: a broken hook is logged once and the request still succeeds.

The breakage is real code raising inside the SDK's seams (a sampler, a naming strategy, an emitter,
a patch wrapper), never a mock of the application. Responses and exceptions are compared with
what the same application returns without any instrumentation.
"""
import logging
import socket
import threading
import urllib.error
import urllib.request
from http.client import HTTPConnection

import pytest

from aws_like_sdk.ext import _patching

from .test_secrets import wsgi_server

REQUESTS = 3
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class BrokenSampler:
    def should_trace(self, request=None):
        raise RuntimeError('sampler bug')

    def stop(self, timeout=None):
        pass


class BrokenNaming:
    def get_name(self, host):
        raise RuntimeError('naming bug')


class BrokenEmitter:
    sent = dropped = 0

    def send_entity(self, entity):
        raise RuntimeError('emitter bug')

    def set_daemon_address(self, address):
        pass


@pytest.fixture
def fresh_log_once():
    # log_once remembers keys for the whole process; each scenario must see its own first failure.
    saved = set(_patching._logged)
    _patching._logged.clear()
    yield
    _patching._logged.clear()
    _patching._logged.update(saved)


def _get(url):
    """(status, body) as the client sees them, HTTP errors included."""
    try:
        with OPENER.open(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _plain(environ, start_response):
    if environ['PATH_INFO'] == '/fail':
        raise ValueError('application failure')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'plain:' + environ['PATH_INFO'].encode()]


def _flask_app(flask):
    app = flask.Flask('contained')

    @app.route('/ok')
    def ok():
        return 'flask:/ok'

    @app.route('/fail')
    def fail():
        raise ValueError('application failure')

    return app


def _serve_and_compare(make_app, wrap):
    """Responses from the traced app equal the untraced app's, for good and failing routes."""
    observed = {}
    for label, app in (('plain', make_app()), ('traced', wrap(make_app()))):
        with wsgi_server(app) as base:
            observed[label] = [_get(base + '/ok') for _ in range(REQUESTS)] + [_get(base + '/fail')]
    assert observed['traced'] == observed['plain']
    assert observed['plain'][0][0] == 200 and observed['plain'][-1][0] == 500
    return observed


def _warnings(caplog, text):
    return [r for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


@pytest.mark.parametrize('breakage, message', [
    ('sampler', 'Could not begin the request segment'),
    ('naming', 'Could not begin the request segment'),
    ('emitter', 'Ending the request segment failed'),
])
def test_broken_middleware_hook_is_logged_once_and_requests_succeed(xray, udp_sink, caplog, fresh_log_once,
                                                                    breakage, message):
    import flask

    from aws_like_sdk.ext.flask.middleware import XRayMiddleware as FlaskMiddleware
    from aws_like_sdk.ext.wsgi.middleware import XRayMiddleware as WSGIMiddleware

    caplog.set_level(logging.DEBUG, logger='aws_like_sdk')
    if breakage == 'sampler':
        xray.configure(sampling=True, sampler=BrokenSampler())
    elif breakage == 'naming':
        xray.configure(dynamic_naming=BrokenNaming())
    else:
        xray.configure(emitter=BrokenEmitter())
    try:
        _serve_and_compare(lambda: _plain, lambda app: WSGIMiddleware(app, xray))

        def traced_flask(app):
            FlaskMiddleware(app, xray)
            return app
        _serve_and_compare(lambda: _flask_app(flask), traced_flask)
    finally:
        xray.dynamic_naming = None
    assert len(_warnings(caplog, message)) == 1, [r.getMessage() for r in caplog.records]


def _broken_wrapper(wrapped, instance, args, kwargs):
    raise RuntimeError('deliberately broken patch wrapper')


def _broken_after_call(wrapped, instance, args, kwargs):
    wrapped(*args, **kwargs)
    raise RuntimeError('deliberately broken after the call')


@pytest.mark.parametrize('wrapper', [_broken_wrapper, _broken_after_call])
def test_broken_patch_wrapper_is_logged_once_and_calls_behave_as_unpatched(caplog, fresh_log_once, wrapper):
    caplog.set_level(logging.DEBUG, logger='aws_like_sdk')

    def exchange(base, closed_port):
        results = [_get(base + '/ok') for _ in range(REQUESTS)]
        try:
            _get('http://127.0.0.1:%d/ok' % closed_port)
        except urllib.error.URLError as exc:
            results.append(('error', type(exc.reason)))
        return results

    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    closed_port = sock.getsockname()[1]
    sock.close()
    with wsgi_server(_plain) as base:
        plain = exchange(base, closed_port)
        _patching.wrap(HTTPConnection, 'getresponse', _patching.guard(wrapper))
        _patching.wrap(HTTPConnection, 'connect', _patching.guard(wrapper))
        try:
            patched = exchange(base, closed_port)
        finally:
            _patching.unwrap(HTTPConnection, 'getresponse')
            _patching.unwrap(HTTPConnection, 'connect')
    assert patched == plain
    assert plain[-1] == ('error', ConnectionRefusedError)
    failures = _warnings(caplog, 'failed; the call proceeds untraced')
    assert len(failures) == 1, [r.getMessage() for r in failures]


def test_broken_recorder_seam_under_a_real_patch_keeps_results(xray, udp_sink, caplog):
    """A streaming strategy that raises, under the requests patch: the response is untouched."""
    import importlib

    import requests

    caplog.set_level(logging.DEBUG, logger='aws_like_sdk')
    requests_patch = importlib.import_module('aws_like_sdk.ext.requests.patch')

    class BrokenStreaming:
        streaming_threshold = 0

        def is_eligible(self, segment):
            raise RuntimeError('streaming bug')

        def stream(self, entity, callback):
            raise RuntimeError('streaming bug')

    saved = xray.streaming
    requests_patch.patch()
    try:
        with wsgi_server(_plain) as base:
            xray.streaming = BrokenStreaming()
            with xray.in_segment('client'):
                bodies = [requests.get(base + '/ok', timeout=10).text for _ in range(REQUESTS)]
    finally:
        xray.streaming = saved
        requests_patch.unpatch()
    assert bodies == ['plain:/ok'] * REQUESTS
    assert udp_sink.wait_for(1)[0]['name'] == 'client'
    assert threading.active_count() >= 1
    # The same broken seam on every call is reported once, not once per call.
    repeated = [r for r in caplog.records if r.levelno >= logging.WARNING and 'failed' in r.getMessage()]
    assert len(repeated) <= 1, [r.getMessage() for r in repeated]
