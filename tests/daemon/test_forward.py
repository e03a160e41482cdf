"""Forwarding: moto's X-Ray API on loopback, a capturing OTLP/HTTP server, retries and the buffer."""
import http.server
import json
import socket
import threading
import time

import pytest

from aws_like_sdk.daemon.forward import parse_forward_spec
from aws_like_sdk.daemon.forward.base import Forwarder, RetryableError
from aws_like_sdk.daemon.stats import Counters

from .conftest import new_id, segment, wait_for

AWS_ENV = {'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': 'testing', 'AWS_DEFAULT_REGION': 'us-east-1',
           'AWS_SESSION_TOKEN': 'testing', 'AWS_CONFIG_FILE': '/dev/null', 'AWS_SHARED_CREDENTIALS_FILE': '/dev/null'}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def moto_factory():
    servers = []

    def start(port: int):
        from moto.server import ThreadedMotoServer
        server = ThreadedMotoServer(ip_address='127.0.0.1', port=port, verbose=False)
        server.start()
        servers.append(server)
        return 'http://127.0.0.1:%d' % port
    yield start
    for server in servers:
        server.stop()


def xray_client(endpoint):
    import botocore.session
    return botocore.session.get_session().create_client(
        'xray', region_name='us-east-1', endpoint_url=endpoint, aws_access_key_id='testing',
        aws_secret_access_key='testing')


def fetched_traces(endpoint, trace_ids):
    client = xray_client(endpoint)
    found = {}
    ids = list(trace_ids)
    for start in range(0, len(ids), 5):
        for trace in client.batch_get_traces(TraceIds=ids[start:start + 5])['Traces']:
            found[trace['Id']] = [json.loads(s['Document']) for s in trace['Segments']]
    return found


def test_parse_forward_spec():
    assert parse_forward_spec('xray').kind == 'xray'
    assert parse_forward_spec('otlp=http://127.0.0.1:4318').url == 'http://127.0.0.1:4318/v1/traces'
    assert parse_forward_spec('otlp=http://c:4318/custom/path').url == 'http://c:4318/custom/path'
    for bad in ('otlp=', 'otlp=ftp://x', 'zipkin', 'xray=1'):
        with pytest.raises(ValueError):
            parse_forward_spec(bad)


def test_forward_xray_to_moto(moto_factory, start_daemon):
    pytest.importorskip('moto')
    endpoint = moto_factory(free_port())
    daemon = start_daemon('--forward', 'xray', '--endpoint-url', endpoint, env=AWS_ENV)
    roots = [segment('fwd-%d' % i) for i in range(60)]
    children = [{'name': 'child', 'id': new_id(), 'trace_id': r['trace_id'], 'parent_id': r['id'],
                 'type': 'subsegment', 'start_time': r['start_time'], 'end_time': r['end_time']} for r in roots]
    daemon.send(*roots)
    daemon.send(*children)
    wait_for(lambda: daemon.counter('forward.xray.sent') >= 120, timeout=20)
    found = fetched_traces(endpoint, [r['trace_id'] for r in roots])
    assert set(found) == {r['trace_id'] for r in roots}
    assert all(len(docs) == 2 for docs in found.values())
    assert daemon.counter('forward.xray.rejected') == 0


def test_forward_xray_retries_until_the_service_is_up(moto_factory, start_daemon):
    pytest.importorskip('moto')
    port = free_port()
    daemon = start_daemon('--forward', 'xray', '--endpoint-url', 'http://127.0.0.1:%d' % port, env=AWS_ENV)
    docs = [segment('late-%d' % i) for i in range(10)]
    daemon.send(*docs)
    daemon.wait_stored(10)  # stored locally whatever happens to forwarding
    wait_for(lambda: daemon.counter('forward.xray.failures') >= 1, timeout=10)
    endpoint = moto_factory(port)
    wait_for(lambda: daemon.counter('forward.xray.sent') >= 10, timeout=20)
    assert set(fetched_traces(endpoint, [d['trace_id'] for d in docs])) == {d['trace_id'] for d in docs}


def test_forward_xray_without_region_fails_clearly(start_daemon):
    env = dict(AWS_ENV, AWS_DEFAULT_REGION='')
    with pytest.raises(RuntimeError) as info:
        start_daemon('--forward', 'xray', env=env)
    assert 'region' in str(info.value)


class Capture(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fail_first: int = 0):
        self.requests = []
        self.fail_first = fail_first
        super().__init__(('127.0.0.1', 0), CaptureHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.server_address[1]


class CaptureHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        if self.server.fail_first > 0:
            self.server.fail_first -= 1
            self.send_response(503)
        else:
            self.server.requests.append((self.path, dict(self.headers), body))
            self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def capture():
    servers = []

    def make(**kw):
        server = Capture(**kw)
        servers.append(server)
        return server
    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def _otlp_documents():
    root = segment('otlp-front', http={'request': {'method': 'GET', 'url': 'http://h/p'}, 'response': {'status': 500}},
                   fault=True, annotations={'customer': 'c1', 'n': 7},
                   cause={'exceptions': [{'id': new_id(), 'type': 'ValueError', 'message': 'bad',
                                          'stack': [{'path': 'a.py', 'line': 3, 'label': 'f'}]}]},
                   subsegments=[{'name': 'db', 'id': new_id(), 'start_time': time.time() - 0.04,
                                 'end_time': time.time() - 0.03, 'namespace': 'remote',
                                 'sql': {'database_type': 'SQLite', 'sanitized_query': 'SELECT ?'}}])
    streamed = {'name': 'streamed', 'id': new_id(), 'trace_id': root['trace_id'], 'parent_id': root['id'],
                'type': 'subsegment', 'start_time': root['start_time'], 'end_time': root['end_time']}
    running = dict(segment('otlp-running'), in_progress=True)
    del running['end_time']
    return root, streamed, running


def test_forward_otlp_protobuf_decoded_by_opentelemetry_proto(capture, start_daemon):
    trace_service = pytest.importorskip('opentelemetry.proto.collector.trace.v1.trace_service_pb2')
    server = capture(fail_first=1)  # the first POST gets 503 and must be retried
    daemon = start_daemon('--forward', 'otlp=' + server.url, '--otlp-header', 'Authorization=Bearer t')
    root, streamed, running = _otlp_documents()
    daemon.send(root, streamed, running)
    wait_for(lambda: sum(1 for _ in server.requests) >= 1 and daemon.counter('forward.otlp.sent') >= 2,
             timeout=20)
    assert daemon.counter('forward.otlp.retries') >= 1
    spans = {}
    for path, headers, body in server.requests:
        assert path == '/v1/traces'
        assert headers['Content-Type'] == 'application/x-protobuf'
        assert headers['Authorization'] == 'Bearer t'
        request = trace_service.ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}['service.name']
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans[span.name] = (service, span)
    assert set(spans) == {'otlp-front', 'db', 'streamed'}  # in-progress documents are not forwarded
    service, front = spans['otlp-front']
    assert service == 'otlp-front'
    assert front.trace_id.hex() == root['trace_id'][2:].replace('-', '')
    assert front.span_id.hex() == root['id'] and front.kind == 2 and front.status.code == 2
    attributes = {a.key: a.value for a in front.attributes}
    assert attributes['customer'].string_value == 'c1' and attributes['n'].int_value == 7
    assert attributes['http.response.status_code'].int_value == 500
    assert front.events[0].name == 'exception'
    assert front.end_time_unix_nano - front.start_time_unix_nano == pytest.approx(50_000_000, rel=0.01)
    _, db = spans['db']
    assert db.parent_span_id.hex() == root['id'] and db.kind == 3
    assert {a.key: a.value for a in db.attributes}['db.system'].string_value == 'sqlite'
    service, child = spans['streamed']
    assert child.parent_span_id.hex() == root['id'] and service == 'otlp-front'  # remembered per trace


def test_forward_otlp_json(capture, start_daemon):
    server = capture()
    daemon = start_daemon('--forward', 'otlp=' + server.url + '/v1/traces', '--otlp-encoding', 'json')
    root, _, _ = _otlp_documents()
    daemon.send(root)
    wait_for(lambda: server.requests, timeout=10)
    _, headers, body = server.requests[0]
    assert headers['Content-Type'] == 'application/json'
    payload = json.loads(body)
    span = payload['resourceSpans'][0]['scopeSpans'][0]['spans']
    assert {s['name'] for s in span} == {'otlp-front', 'db'}
    front = next(s for s in span if s['name'] == 'otlp-front')
    assert front['traceId'] == root['trace_id'][2:].replace('-', '') and front['spanId'] == root['id']


class _Flaky(Forwarder):
    def __init__(self, counters, outcomes, **kw):
        super().__init__('test', counters, **kw)
        self.outcomes = list(outcomes)
        self.batches = []

    def convert(self, raw, document):
        return raw

    def send(self, batch):
        outcome = self.outcomes.pop(0) if self.outcomes else 'ok'
        if outcome == 'retry':
            raise RetryableError('down')
        self.batches.append(list(batch))
        return 0


def test_buffer_is_bounded_batches_are_capped_and_offer_never_blocks():
    counters = Counters()
    forwarder = _Flaky(counters, ['retry'], capacity=120, batch_size=50, idle=0.05, max_backoff=0.2)
    started = time.monotonic()
    for i in range(200):
        forwarder.offer(b'%d' % i, None)
    assert time.monotonic() - started < 0.5
    assert counters.get('forward.test.dropped') == 80  # the oldest went
    forwarder.start()
    wait_for(lambda: counters.get('forward.test.sent') == 120, timeout=10)
    forwarder.stop(1.0)
    assert max(len(b) for b in forwarder.batches) <= 50
    assert forwarder.batches[0][0] == b'80'
    assert counters.get('forward.test.retries') == 1


def test_xray_forwarder_batches_of_fifty():
    pytest.importorskip('botocore')
    from aws_like_sdk.daemon.forward.xray import XRayForwarder
    counters = Counters()
    forwarder = XRayForwarder(counters, endpoint_url='http://127.0.0.1:9', region='us-east-1', idle=0.05)
    sizes = []

    class FakeClient:
        def put_trace_segments(self, TraceSegmentDocuments):
            sizes.append(len(TraceSegmentDocuments))
            return {'UnprocessedTraceSegments': [{'Id': 'x', 'ErrorCode': 'InvalidSegment', 'Message': 'm'}]}
    forwarder._client = FakeClient()
    for _ in range(120):
        forwarder.offer(b'{}', None)
    forwarder.start()
    wait_for(lambda: sum(sizes) == 120, timeout=10)
    forwarder.stop(1.0)
    assert sizes == [50, 50, 20]
    assert counters.get('forward.xray.rejected') == 3 and counters.get('forward.xray.sent') == 117
