"""Bad input, fuzzed with hypothesis: headers, sampling rules, entity encoding, the daemon's parser.

Example counts are bounded in CI (see ``fuzz()`` in conftest.py); AWS_LIKE_SDK_FULL_RELIABILITY=1 or
AWS_LIKE_SDK_FUZZ_EXAMPLES=N run longer campaigns.
"""
import decimal
import json
import math
import queue
import socket
import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from aws_like_sdk.core.emitters.encoding import MAX_DATAGRAM_BYTES
from aws_like_sdk.core.emitters.udp_emitter import UDPEmitter
from aws_like_sdk.core.exceptions.exceptions import InvalidSamplingManifestError
from aws_like_sdk.core.models.segment import Segment
from aws_like_sdk.core.models.subsegment import Subsegment
from aws_like_sdk.core.models.trace_header import TraceHeader
from aws_like_sdk.core.sampling.connector import SamplingConnectorError, ServiceConnector
from aws_like_sdk.core.sampling.local.sampler import LocalSampler
from aws_like_sdk.daemon import protocol
from aws_like_sdk.daemon.documents import InvalidDocument, parse_document
from aws_like_sdk.daemon.stats import Counters
from aws_like_sdk.daemon.udp import UDPReceiver

from .conftest import LONG_TIMEOUT, fuzz, parse_datagram

pytestmark = pytest.mark.timeout(LONG_TIMEOUT)

HEX = '0123456789abcdef'

# -- X-Amzn-Trace-Id --------------------------------------------------------------------------------

roots = st.builds(lambda t, r: '1-%s-%s' % (t, r), st.text(HEX, min_size=8, max_size=8),
                  st.text(HEX, min_size=24, max_size=24))
parents = st.text(HEX, min_size=16, max_size=16)
data_keys = st.text(string.ascii_letters + string.digits + '_-', min_size=1, max_size=12).filter(
    lambda k: k not in ('Root', 'Parent', 'Sampled', 'Self'))
data_values = st.text(st.characters(blacklist_characters=';\r\n', blacklist_categories=('Cs',)), max_size=20).map(
    str.strip)


@fuzz(ci=300, full=20000)
@given(root=st.none() | roots, parent=st.none() | parents, sampled=st.sampled_from([None, 0, 1, '?']),
       data=st.dictionaries(data_keys, data_values, max_size=4))
def test_trace_header_serialize_parse_round_trip(root, parent, sampled, data):
    if root is None:
        parent = None  # a Parent without a Root is dropped by design
    header = TraceHeader(root=root, parent=parent, sampled=sampled, data=data)
    text = header.to_header_str()
    parsed = TraceHeader.from_header_str(text)
    assert (parsed.root, parsed.parent, parsed.sampled, parsed.data) == (root, parent, sampled, data)
    assert parsed.to_header_str() == text


@fuzz(ci=400, full=50000)
@given(st.text() | st.binary().map(lambda b: b.decode('latin-1')))
@example('Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=1:a87bd80c:0')
@example(';;;=;Root=;Parent==;Sampled=maybe; Self=1-2-3;Foo=a=b;')
def test_trace_header_parse_never_raises_and_reaches_a_fixed_point(text):
    header = TraceHeader.from_header_str(text)
    once = header.to_header_str()
    assert TraceHeader.from_header_str(once).to_header_str() == once
    assert header.sampled in (None, 0, 1, '?')


# -- local sampling rule documents ------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True) | st.text(max_size=10)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
rule_fields = st.fixed_dictionaries({}, optional={
    'fixed_target': st.integers(-5, 100) | json_values, 'rate': st.floats(-1, 2) | json_values,
    'host': st.text(max_size=10) | json_values, 'service_name': st.text(max_size=10) | json_values,
    'http_method': st.sampled_from(['GET', '*', 'P?ST']) | json_values,
    'url_path': st.sampled_from(['/', '/api/*', '*']) | json_values, 'description': json_values})
rule_documents = st.fixed_dictionaries({}, optional={
    'version': st.sampled_from([1, 2, 3, '2', True, None, 2.0]), 'default': rule_fields | json_values,
    'rules': st.lists(rule_fields, max_size=4) | json_values}) | json_values
requests = st.none() | st.fixed_dictionaries({}, optional={
    'host': st.none() | st.text(max_size=10), 'method': st.none() | st.text(max_size=6),
    'path': st.none() | st.text(max_size=10), 'service': st.none() | st.text(max_size=10)})


@fuzz(ci=400, full=20000)
@given(document=rule_documents, request=st.lists(requests, max_size=5))
@example(document={'version': 2, 'default': {'fixed_target': 1}}, request=[None])
@example(document={'version': 1, 'default': {'fixed_target': 1, 'rate': 0.1},
                   'rules': [{'service_name': '*', 'http_method': '*', 'url_path': '*', 'rate': 0.5}]},
         request=[{'host': 'x'}])
def test_local_rules_load_or_raise_the_manifest_error_and_decisions_never_raise(document, request):
    sampler = LocalSampler()
    try:
        sampler.load_local_rules(document)
    except InvalidSamplingManifestError:
        pass  # the only acceptable failure; the previous rules stay in force
    for req in request:
        assert isinstance(sampler.should_trace(req), bool)


# -- the centralized rules and targets, from a loopback server answering fuzzed JSON ----------------

class _ScriptedAPI:
    """An HTTP server on loopback answering every request with the current ``body``.

    It keeps serving for the module (a rules answer with a ``NextToken`` makes the connector ask
    again, and a one-shot server would leave that second request waiting for the client timeout).
    """

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        api = self
        self.body = b'{}'

        class Handler(BaseHTTPRequestHandler):
            timeout = 5
            wbufsize = 1 << 16  # headers and body in one segment: no Nagle / delayed-ACK stall

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get('Content-Length') or 0))
                body = api.body
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={'poll_interval': 0.05},
                                        daemon=True)
        self._thread.start()

    def call(self, func, body: bytes):
        self.body = body
        return func()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


@pytest.fixture(scope='module')
def scripted_api():
    api = _ScriptedAPI()
    yield api
    api.close()


api_values = st.recursive(json_scalars | st.just(float('inf')) | st.just(10 ** 400),
                          lambda inner: st.lists(inner, max_size=3) |
                          st.dictionaries(st.sampled_from(['SamplingRule', 'RuleName', 'Priority', 'FixedRate',
                                                           'ReservoirSize', 'ServiceType', 'ResourceARN', 'Version',
                                                           'ReservoirQuota', 'ReservoirQuotaTTL', 'Interval',
                                                           'Attributes', 'x']), inner, max_size=6),
                          max_leaves=25)
api_documents = st.fixed_dictionaries({}, optional={
    'SamplingRuleRecords': st.lists(st.fixed_dictionaries({'SamplingRule': api_values}), max_size=3) | api_values,
    'SamplingTargetDocuments': st.lists(api_values, max_size=3) | api_values,
    'UnprocessedStatistics': api_values, 'LastRuleModification': api_values, 'NextToken': api_values})


@fuzz(ci=150, full=5000)
@given(document=api_documents)
def test_centralized_rule_and_target_answers_parse_or_raise_the_connector_error(scripted_api, document):
    connector = ServiceConnector('127.0.0.1', scripted_api.port, timeout=5)
    body = json.dumps(document).encode()
    for func in (connector.fetch_sampling_rules, lambda: connector.fetch_sampling_target([])):
        try:
            scripted_api.call(func, body)
        except SamplingConnectorError:
            pass


# -- annotations and metadata: whatever goes in, the datagrams are JSON and fit ---------------------

class Exotic:
    def __init__(self, payload):
        self.payload = payload
        self.me = self  # a cycle through __dict__
        self._private = 'never'

    def __repr__(self):
        raise RuntimeError('repr explodes')


class BadIter:
    def __iter__(self):
        raise RuntimeError('iteration explodes')

    def __str__(self):
        raise RuntimeError('str explodes')


def _cyclic(kind):
    if kind == 'dict':
        value = {}
        value['self'] = value
    elif kind == 'list':
        value = []
        value.append(value)
    else:
        value = {'a': []}
        value['a'].append({'back': value})
    return value


leaves = (st.none() | st.booleans() | st.integers() | st.floats() | st.text() |
          st.binary(max_size=64) | st.decimals(allow_nan=True) |
          st.text(alphabet=st.characters(whitelist_categories=('Cs',)), min_size=1, max_size=4) |
          st.sampled_from(['dict', 'list', 'deep']).map(_cyclic) |
          st.builds(Exotic, st.text(max_size=5)) | st.just(BadIter()) | st.just(object) | st.just(math) |
          st.integers(0, 200000).map(lambda n: 'h' * n) |
          st.integers(0, 100000).map(lambda n: b'\xff\xfe' * n))
metadata_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.sets(st.integers(), max_size=4) |
                               st.tuples(inner, inner) | st.dictionaries(st.text(max_size=8) | st.integers(), inner,
                                                                         max_size=4), max_leaves=12)
annotation_values = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(max_size=8) | \
    st.lists(st.integers(), max_size=2)


@pytest.fixture(scope='module')
def raw_receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.bind(('127.0.0.1', 0))
    sock.settimeout(5)
    yield sock
    sock.close()


@fuzz(ci=120, full=5000)
@given(name=st.text(min_size=1, max_size=300), annotations=st.dictionaries(st.text(max_size=10) | st.integers(),
                                                                             annotation_values, max_size=5),
       metadata=st.dictionaries(st.text(max_size=10), metadata_values, max_size=4),
       namespace=st.text(max_size=8) | st.none(), children=st.integers(0, 3))
def test_any_annotation_and_metadata_emit_valid_json_datagrams_within_the_limit(raw_receiver, name, annotations,
                                                                                 metadata, namespace, children):
    emitter = UDPEmitter('127.0.0.1:%d' % raw_receiver.getsockname()[1])
    segment = Segment(name)
    entities = [segment] + [Subsegment('child-%d' % i, 'local', segment) for i in range(children)]
    for sub in entities[1:]:
        segment.add_subsegment(sub)
    for entity in entities:
        for key, value in annotations.items():
            entity.put_annotation(key, value)
        for key, value in metadata.items():
            entity.put_metadata(key, value, namespace if namespace is not None else 'default')
    for sub in reversed(entities[1:]):
        sub.close()
    segment.close()
    emitter.send_entity(segment)
    assert emitter.flush()
    assert emitter.dropped == 0 and emitter.sent >= 1
    ids = set()
    for _ in range(emitter.sent):
        data = raw_receiver.recv(70000)
        assert len(data) <= MAX_DATAGRAM_BYTES
        doc = parse_datagram(data)
        ids.add(doc['id'])
    assert {e.id for e in entities} <= ids | _nested_ids(segment)
    emitter.close()


def _nested_ids(segment):
    return {sub.id for sub in segment.subsegments}


# -- the daemon's datagram parser -------------------------------------------------------------------

headers = st.one_of(
    st.just(b'{"format":"json","version":1}'),
    st.builds(lambda f, v, extra: json.dumps(dict({'format': f, 'version': v}, **extra)).encode(),
              st.sampled_from(['json', 'JSON', 'Json', 'xml', '', None, 1]),
              st.sampled_from([1, 1.0, True, '1', 2, 0, None]),
              st.dictionaries(st.text(max_size=5), json_scalars, max_size=2)),
    st.binary(max_size=80),
    st.integers(1, 65000).map(lambda n: b'[' * n),
    st.integers(1, 30000).map(lambda n: b'{"format":"json","version":1,"x":' + b'{"a":' * n))
bodies = st.binary(max_size=200) | st.builds(lambda d: json.dumps(d).encode(), json_values)


def _model(data):
    """The reference daemon's rules, restated independently of protocol.py."""
    if b'\n' not in data:
        return None, protocol.MISSING_HEADER
    header, body = data.split(b'\n', 1)
    if not body:
        return None, protocol.MISSING_BODY
    try:
        parsed = json.loads(header)
    except (ValueError, RecursionError):
        return None, protocol.INVALID_HEADER
    if not isinstance(parsed, dict):
        return None, protocol.INVALID_HEADER
    fields = {str(k).lower(): v for k, v in parsed.items()}
    ok = isinstance(fields.get('format'), str) and fields['format'].lower() == 'json' and \
        type(fields.get('version')) is int and fields['version'] == 1
    return (body, None) if ok else (None, protocol.INVALID_HEADER)


@fuzz(ci=400, full=50000)
@given(header=headers, sep=st.sampled_from([b'\n', b'', b'\r\n', b'\n\n']), body=bodies)
@example(header=b'[' * 60000, sep=b'\n', body=b'{}')
def test_daemon_datagram_split_matches_the_reference_rules_and_never_raises(header, sep, body):
    data = header + sep + body
    assert protocol.split_datagram(data) == _model(data)


@fuzz(ci=300, full=20000)
@given(st.binary(max_size=300) | bodies | st.integers(1, 60000).map(lambda n: b'[' * n))
def test_daemon_document_parser_only_raises_invalid_document(body):
    try:
        parse_document(body)
    except InvalidDocument:
        pass


@pytest.fixture(scope='module')
def udp_receiver():
    sink = queue.Queue()
    receiver = UDPReceiver(('127.0.0.1', 0), sink, Counters())
    yield receiver, sink
    receiver.stop()


@fuzz(ci=200, full=20000)
@given(header=headers, body=bodies)
def test_daemon_receiver_handles_any_datagram(udp_receiver, header, body):
    receiver, sink = udp_receiver
    receiver.handle(header + b'\n' + body, ('127.0.0.1', 1))
    while not sink.empty():
        assert sink.get_nowait()


def test_decimal_and_surrogates_survive_strict_json():
    # Spelled out once so a regression shows a readable failure rather than a shrunk example.
    segment = Segment('plain')
    segment.put_metadata('d', decimal.Decimal('NaN'))
    segment.put_metadata('s', 'lone \ud800 surrogate')
    segment.put_metadata('b', b'\xff\xfe\x00')
    segment.close()
    emitter_docs = __import__('aws_like_sdk.core.emitters.encoding', fromlist=['to_datagrams']).to_datagrams(
        segment.to_dict())
    for data in emitter_docs:
        parse_datagram(data)
