"""The daemon's HTTP side: JSON API, local PutTraceSegments, safety checks."""
import http.client
import json

from .conftest import segment


def test_api_lists_filters_and_reports_bad_parameters(daemon):
    doc = segment('web-api', annotations={'tenant': 'acme'}, http={'response': {'status': 502}}, fault=True)
    daemon.send(doc)
    daemon.wait_trace(doc['trace_id'])
    found = daemon.get('/api/traces?service=web-api&annotation=tenant%3Dacme&status=5xx&flag=fault')
    assert [t['trace_id'] for t in found['traces']] == [doc['trace_id']]
    assert 'web-api' in daemon.get('/api/services')['services']
    for bad in ('flag=weird', 'status=abc', 'min_duration=soon', 'limit=x'):
        status, _, body = daemon.request('GET', '/api/traces?' + bad)
        assert status == 400 and json.loads(body)['__type'] == 'InvalidRequestException'
    assert daemon.request('GET', '/api/traces/1-00000000-000000000000000000000000')[0] == 404
    assert daemon.request('GET', '/api/traces/../../etc/passwd')[0] == 404


def test_pages_static_files_and_security_headers(daemon):
    status, headers, body = daemon.request('GET', '/')
    assert status == 200 and b'<table id="traces"' in body
    assert "script-src 'self'" in headers['Content-Security-Policy']
    assert headers['X-Content-Type-Options'] == 'nosniff'
    assert daemon.request('GET', '/static/app.js')[1]['Content-Type'].startswith('text/javascript')
    for path in ('/static/../server.py', '/static/%2e%2e/server.py', '/static/nope.js', '/nope'):
        assert daemon.request('GET', path)[0] == 404
    assert daemon.request('GET', '/map')[0] == 200
    assert daemon.request('GET', '/traces/anything')[0] == 200


def test_dns_rebinding_and_cross_origin_requests_are_refused(daemon):
    assert daemon.request('GET', '/api/traces', headers={'Host': 'evil.example:2000'})[0] == 403
    assert daemon.request('POST', '/GetSamplingRules', b'{}', headers={'Origin': 'http://evil.example'})[0] == 403
    assert daemon.request('GET', '/api/traces', headers={'Host': 'localhost:2000'})[0] == 200


def test_local_put_trace_segments(daemon):
    doc = segment('via-api')
    body = json.dumps({'TraceSegmentDocuments': [json.dumps(doc), 5]}).encode()
    status, _, reply = daemon.request('POST', '/TraceSegments', body, {'Content-Type': 'application/json'})
    assert status == 200 and len(json.loads(reply)['UnprocessedTraceSegments']) == 1
    daemon.wait_trace(doc['trace_id'])


def test_bad_posts(daemon):
    assert daemon.request('POST', '/GetSamplingRules', b'{not json')[0] == 400
    assert daemon.request('POST', '/GetSamplingRules', b'[1]')[0] == 400
    assert daemon.request('POST', '/SamplingTargets', b'{"SamplingStatisticsDocuments": 3}')[0] == 400
    assert daemon.request('POST', '/Unknown', b'{}')[0] == 404
    assert daemon.request('POST', '/TelemetryRecords', b'{}')[0] == 200
    # Announce a 2 MiB body without sending it: the daemon must answer 413 without reading it.
    conn = http.client.HTTPConnection(*daemon.tcp, timeout=10)
    conn.putrequest('POST', '/TraceSegments')
    conn.putheader('Content-Length', str(2 * 1024 * 1024))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()


def test_service_map(daemon):
    front = segment('map-front')
    call_id = 'ab' * 8
    front['subsegments'] = [{'name': 'map-back', 'id': call_id, 'start_time': front['start_time'],
                             'end_time': front['end_time'], 'namespace': 'remote'},
                            {'name': 'map-db', 'id': 'cd' * 8, 'start_time': front['start_time'],
                             'end_time': front['end_time'], 'sql': {'sanitized_query': 'SELECT 1'}}]
    back = segment('map-back', trace_id=front['trace_id'], parent_id=call_id, fault=True)
    daemon.send(front, back)
    daemon.wait_trace(front['trace_id'], documents=2)
    graph = daemon.get('/api/servicemap')
    edges = {(e['source'], e['target']): e for e in graph['edges']}
    assert edges[('client', 'map-front')]['calls'] >= 1
    assert edges[('map-front', 'map-back')]['error_rate'] == 1.0
    assert edges[('map-front', 'map-db')]['calls'] >= 1
    kinds = {n['name']: n['type'] for n in graph['nodes']}
    assert kinds['map-db'] == 'database' and kinds['map-back'] == 'service'
