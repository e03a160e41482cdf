"""Flask middleware against real Flask apps (test client and a real werkzeug server on loopback)."""
import http.client
import logging
import socket
import threading

import flask
import pytest
from flask import Flask, abort, render_template_string
from werkzeug.serving import make_server

from aws_like_sdk.core.lambda_launcher import LambdaContext
from aws_like_sdk.ext.flask.middleware import XRayMiddleware
from tests.support.udp_sink import walk

TRACE_ID = '1-5759e988-bd862e3fe1be46a994272793'


class Boom(Exception):
    pass


def make_app(recorder):
    app = Flask('flask_test_app')
    app.config['PROPAGATE_EXCEPTIONS'] = False

    @app.route('/ok')
    def ok():
        return 'ok'

    @app.route('/users/<int:user_id>')
    def user(user_id):
        return {'id': user_id}

    @app.route('/throttled')
    def throttled():
        abort(429)

    @app.route('/missing')
    def missing():
        abort(404)

    @app.route('/boom')
    def boom():
        raise Boom('kaboom')

    @app.route('/template')
    def template():
        return render_template_string('<p>{{ name }}</p>', name='x')

    @app.route('/bad-template')
    def bad_template():
        return render_template_string('{{ 1 / 0 }}')

    @app.route('/work')
    def work():
        with recorder.in_subsegment('inner-work'):
            return 'done'

    XRayMiddleware(app, recorder)
    return app


@pytest.fixture
def app(recorder):
    return make_app(recorder)


@pytest.fixture
def client(app):
    return app.test_client()


def one_segment(udp_sink):
    docs = udp_sink.wait_for(1)
    assert len(docs) == 1, docs
    return docs[0]


def test_request_segment_with_http_block_route_and_response_header(client, udp_sink):
    resp = client.get('/users/7?secret=1', headers={'User-Agent': 'pytest-agent', 'Host': 'api.example.com'})
    assert resp.status_code == 200 and resp.get_json() == {'id': 7}
    doc = one_segment(udp_sink)
    assert doc['name'] == 'test-service'
    assert doc['http']['request'] == {'url': 'http://api.example.com/users/7', 'method': 'GET',
                                      'user_agent': 'pytest-agent', 'client_ip': '127.0.0.1'}
    assert doc['http']['response'] == {'status': 200, 'content_length': len(resp.data)}
    assert doc['annotations'] == {'http_route': '/users/<int:user_id>'}
    assert resp.headers['X-Amzn-Trace-Id'] == 'Root=%s' % doc['trace_id']
    assert not doc.get('fault') and not doc.get('error')


def test_incoming_trace_header_is_continued(client, udp_sink):
    resp = client.get('/ok', headers={'X-Amzn-Trace-Id': 'Root=%s;Parent=53995c3f42cd8ad8;Sampled=?' % TRACE_ID})
    doc = one_segment(udp_sink)
    assert doc['trace_id'] == TRACE_ID and doc['parent_id'] == '53995c3f42cd8ad8'
    assert resp.headers['X-Amzn-Trace-Id'] == 'Root=%s;Sampled=1' % TRACE_ID


def test_sampled_zero_sends_nothing_but_serves(client, udp_sink):
    resp = client.get('/ok', headers={'X-Amzn-Trace-Id': 'Root=%s;Sampled=0' % TRACE_ID})
    assert resp.data == b'ok'
    assert udp_sink.settle(quiet=0.1) == []


def test_malformed_trace_header_starts_a_new_trace(client, udp_sink):
    resp = client.get('/ok', headers={'X-Amzn-Trace-Id': ';;=garbage;Root'})
    assert resp.status_code == 200
    doc = one_segment(udp_sink)
    assert doc['trace_id'] != TRACE_ID and doc['trace_id'].startswith('1-')
    assert 'parent_id' not in doc


def test_forwarded_client_ip(client, udp_sink):
    client.get('/ok', headers={'X-Forwarded-For': '203.0.113.9, 10.0.0.1'})
    doc = one_segment(udp_sink)
    assert doc['http']['request']['client_ip'] == '203.0.113.9'
    assert doc['http']['request']['x_forwarded_for'] is True


@pytest.mark.parametrize('path,status,flags', [
    ('/throttled', 429, {'throttle', 'error'}),
    ('/missing', 404, {'error'}),
    ('/no-such-route', 404, {'error'}),
])
def test_status_flags(client, udp_sink, path, status, flags):
    assert client.get(path).status_code == status
    doc = one_segment(udp_sink)
    assert doc['http']['response']['status'] == status
    assert {f for f in ('error', 'throttle', 'fault') if doc.get(f)} == flags
    assert 'cause' not in doc


def test_unrouted_request_has_no_route_annotation(client, udp_sink):
    client.get('/no-such-route')
    assert 'annotations' not in one_segment(udp_sink)


def test_exception_reaching_teardown_is_a_fault_with_stack(client, udp_sink):
    resp = client.get('/boom')
    assert resp.status_code == 500  # Flask's own error response, unchanged
    doc = one_segment(udp_sink)
    assert doc['fault'] is True and doc['http']['response']['status'] == 500
    (exc,) = doc['cause']['exceptions']
    assert exc['type'] == 'Boom' and exc['message'] == 'kaboom'
    assert any(frame['label'] == 'boom' for frame in exc['stack'])


def test_flask_error_response_carries_the_trace_header(client, udp_sink):
    resp = client.get('/boom', headers={'X-Amzn-Trace-Id': 'Root=%s;Sampled=?' % TRACE_ID})
    assert resp.status_code == 500
    assert resp.headers['X-Amzn-Trace-Id'] == 'Root=%s;Sampled=1' % TRACE_ID
    assert one_segment(udp_sink)['trace_id'] == TRACE_ID


def test_teardown_functions_run_inside_the_segment(recorder, udp_sink):
    app = Flask('teardown')

    @app.route('/x')
    def x():
        return 'x'

    XRayMiddleware(app, recorder)

    @app.teardown_request
    def cleanup(exception):
        with recorder.in_subsegment('cleanup'):
            pass

    assert app.test_client().get('/x').data == b'x'
    doc = one_segment(udp_sink)
    assert [s['name'] for s in doc['subsegments']] == ['cleanup']


def test_failing_teardown_function_still_ends_the_segment(recorder, udp_sink):
    app = Flask('bad_teardown')

    @app.route('/x')
    def x():
        return 'x'

    XRayMiddleware(app, recorder)

    @app.teardown_request
    def cleanup(exception):
        raise RuntimeError('teardown failed')

    with pytest.raises(RuntimeError):
        app.test_client().get('/x')
    assert one_segment(udp_sink)['http']['response']['status'] == 200


def test_ignored_error_is_not_recorded(recorder, udp_sink):
    class Quiet(Flask):
        def should_ignore_error(self, error):
            return isinstance(error, Boom)

    app = Quiet('quiet')
    app.config['PROPAGATE_EXCEPTIONS'] = False

    @app.route('/boom')
    def boom():
        raise Boom('ignored')

    XRayMiddleware(app, recorder)
    assert app.test_client().get('/boom').status_code == 500
    doc = one_segment(udp_sink)
    assert doc['http']['response']['status'] == 500 and 'cause' not in doc


def test_request_context_outside_dispatch_records_nothing(app, udp_sink):
    with app.test_request_context('/ok'):
        pass
    assert udp_sink.settle(quiet=0.1) == []


def test_propagated_exception_is_reraised_unchanged(app, udp_sink):
    app.config['PROPAGATE_EXCEPTIONS'] = True
    with pytest.raises(Boom, match='kaboom'):
        app.test_client().get('/boom')
    doc = one_segment(udp_sink)
    assert doc['fault'] is True and doc['http']['response']['status'] == 500
    assert doc['cause']['exceptions'][0]['type'] == 'Boom'


def test_template_subsegment_named_after_template(recorder, udp_sink, tmp_path):
    (tmp_path / 'page.html').write_text('<h1>{{ title }}</h1>{% include "part.html" %}')
    (tmp_path / 'part.html').write_text('<p>part</p>')
    app = Flask('tmpl_app', template_folder=str(tmp_path))

    @app.route('/page')
    def page():
        return flask.render_template('page.html', title='hi')

    XRayMiddleware(app, recorder)
    resp = app.test_client().get('/page')
    assert resp.data == b'<h1>hi</h1><p>part</p>'
    doc = one_segment(udp_sink)
    (sub,) = doc['subsegments']
    assert sub['name'] == 'page.html' and sub['namespace'] == 'local'
    assert sub['start_time'] >= doc['start_time'] and sub['end_time'] <= doc['end_time']


def test_string_template_and_inner_subsegment(client, udp_sink):
    assert client.get('/template').data == b'<p>x</p>'
    (sub,) = one_segment(udp_sink)['subsegments']
    assert sub['name'] == 'template_render'
    udp_sink.clear()
    assert client.get('/work').data == b'done'
    assert [s['name'] for s in one_segment(udp_sink)['subsegments']] == ['inner-work']


def test_failing_template_closes_its_subsegment_and_segment_is_sent(client, udp_sink):
    assert client.get('/bad-template').status_code == 500
    doc = one_segment(udp_sink)
    (sub,) = doc['subsegments']
    assert sub['name'] == 'template_render' and sub['in_progress'] is False
    assert sub['fault'] is True and sub['cause']['exceptions'][0]['type'] == 'ZeroDivisionError'
    assert doc['fault'] is True


def test_template_outside_request_is_untraced_and_quiet(app, udp_sink, caplog_sdk):
    with app.app_context():
        assert render_template_string('{{ 2 + 2 }}') == '4'
    assert udp_sink.settle(quiet=0.1) == []
    assert not [r for r in caplog_sdk.records if r.levelno >= logging.WARNING]


def test_early_returning_before_request_hook_is_still_traced(recorder, udp_sink):
    app = Flask('early')

    @app.before_request
    def gate():
        return 'gated', 403

    @app.route('/x')
    def x():  # pragma: no cover - the gate answers first
        return 'x'

    XRayMiddleware(app, recorder)
    resp = app.test_client().get('/x')
    assert resp.status_code == 403 and resp.data == b'gated'
    doc = one_segment(udp_sink)
    assert doc['http']['response']['status'] == 403 and doc['error'] is True
    assert resp.headers['X-Amzn-Trace-Id'] == 'Root=%s' % doc['trace_id']


def test_after_request_hooks_see_final_response(recorder, udp_sink):
    app = Flask('after')

    @app.route('/x')
    def x():
        return 'x'

    XRayMiddleware(app, recorder)

    @app.after_request
    def change(response):
        response.status_code = 202
        return response

    assert app.test_client().get('/x').status_code == 202
    assert one_segment(udp_sink)['http']['response']['status'] == 202


def test_installing_twice_is_a_noop(app, recorder, udp_sink):
    XRayMiddleware(app, recorder)
    app.test_client().get('/ok')
    assert len(udp_sink.settle(quiet=0.1)) == 1


def test_segment_is_ended_by_handle_even_if_context_was_replaced(recorder, udp_sink):
    app = Flask('replace')

    @app.route('/x')
    def x():
        # Application code that clobbers the context must not make the middleware end the wrong thing.
        recorder.clear_trace_entities()
        return 'x'

    XRayMiddleware(app, recorder)
    assert app.test_client().get('/x').data == b'x'
    doc = one_segment(udp_sink)
    assert doc['http']['response']['status'] == 200


def test_disabled_sdk_serves_normally(client, udp_sink):
    from aws_like_sdk import global_sdk_config
    global_sdk_config.set_sdk_enabled(False)
    resp = client.get('/users/3')
    assert resp.get_json() == {'id': 3}
    assert client.get('/boom').status_code == 500
    assert udp_sink.settle(quiet=0.1) == []


def test_missing_service_name_is_logged_and_survived(recorder, udp_sink, caplog_sdk):
    recorder.service = None
    app = make_app(recorder)
    resp = app.test_client().get('/users/1')
    assert resp.get_json() == {'id': 1} and 'X-Amzn-Trace-Id' not in resp.headers
    assert udp_sink.settle(quiet=0.1) == []


def test_lambda_context_records_a_subsegment(recorder, udp_sink, monkeypatch):
    monkeypatch.setenv('LAMBDA_TASK_ROOT', '/var/task')
    monkeypatch.setenv('_X_AMZN_TRACE_ID', 'Root=%s;Parent=53995c3f42cd8ad8;Sampled=1' % TRACE_ID)
    recorder.context = LambdaContext()
    recorder.streaming_threshold = 0
    app = make_app(recorder)
    assert app.test_client().get('/ok').data == b'ok'
    (doc,) = udp_sink.wait_for(1)
    assert doc['type'] == 'subsegment' and doc['name'] == 'test-service'
    assert doc['trace_id'] == TRACE_ID and doc['http']['response']['status'] == 200


class _Server:
    """A real werkzeug server on an ephemeral loopback port, stopped at the end of the test."""

    def __init__(self, app):
        self.server = make_server('127.0.0.1', 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.05},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def test_real_server_on_loopback(app, udp_sink):
    with _Server(app) as srv:
        conn = http.client.HTTPConnection('127.0.0.1', srv.port, timeout=5)
        conn.request('GET', '/users/5', headers={'X-Amzn-Trace-Id': 'Root=%s' % TRACE_ID})
        resp = conn.getresponse()
        body = resp.read()
        header = resp.getheader('X-Amzn-Trace-Id')
        conn.close()
        doc = one_segment(udp_sink)
    assert resp.status == 200 and b'"id":5' in body.replace(b' ', b'')
    assert header == 'Root=%s' % TRACE_ID and doc['trace_id'] == TRACE_ID
    assert doc['http']['request']['url'] == 'http://127.0.0.1:%d/users/5' % srv.port
    assert doc['annotations']['http_route'] == '/users/<int:user_id>'


def test_real_server_request_without_host_header(app, udp_sink):
    with _Server(app) as srv:
        with socket.create_connection(('127.0.0.1', srv.port), timeout=5) as sock:
            sock.sendall(b'GET /ok HTTP/1.0\r\n\r\n')
            data = b''
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        doc = one_segment(udp_sink)
    assert data.split(b' ', 2)[1] == b'200' and data.endswith(b'ok')
    assert doc['name'] == 'test-service' and doc['http']['response']['status'] == 200
    assert doc['http']['request']['url'].startswith('http://127.0.0.1')


def test_concurrent_requests_on_real_server_get_separate_segments(app, recorder, udp_sink):
    def call(port, results, index):
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
        conn.request('GET', '/users/%d' % index)
        results[index] = conn.getresponse().read()
        conn.close()

    with _Server(app) as srv:
        results = {}
        threads = [threading.Thread(target=call, args=(srv.port, results, i)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=5)
        docs = udp_sink.wait_for(8)
    assert len(docs) == 8 and len({d['trace_id'] for d in docs}) == 8
    urls = sorted(d['http']['request']['url'].rsplit('/', 1)[1] for d in docs)
    assert urls == sorted(str(i) for i in range(8))
    for doc in docs:
        assert all(e is doc or e.get('parent_id') for e, _ in walk(doc))
