"""A real daemon process fed raw datagrams: what it stores, rejects and counts."""
import json

from .conftest import HEADER, new_id, segment, wait_for


def test_stores_compact_and_upstream_formatted_documents(daemon):
    compact = segment('compact')
    upstream = segment('upstream', in_progress=False, aws={'xray': {'sdk': 'X-Ray for Python', 'sdk_version': '2.15.0'}},
                       service={'runtime': 'CPython', 'runtime_version': '3.11.7'},
                       subsegments=[{'id': new_id(), 'name': 'local-work', 'start_time': 1.0, 'end_time': 1.5,
                                     'in_progress': False, 'namespace': 'local', 'trace_id': 'x'}])
    daemon.send(compact)
    daemon.send(upstream, compact=False)            # json.dumps default separators, as upstream writes
    daemon.send_raw(b'{"format": "JSON", "version": 1, "x": 2}\n' + json.dumps(segment('header-variant')).encode())
    tree = daemon.wait_trace(upstream['trace_id'])
    assert tree['roots'][0]['children'][0]['name'] == 'local-work'
    assert daemon.wait_trace(compact['trace_id'])['summary']['name'] == 'compact'


def test_bad_datagrams_are_counted_and_survived(daemon):
    before = daemon.stats()['counters']
    good = segment('after-garbage')
    daemon.send_raw(b'garbage without newline')
    daemon.send_raw(HEADER)                                         # no body
    daemon.send_raw(b'{"format":"json","version":2}\n{}')           # wrong version
    daemon.send_raw(b'{"format":"xml","version":1}\n{}')            # wrong format
    daemon.send_raw(HEADER + json.dumps(segment())[:40].encode())    # truncated body
    daemon.send_raw(HEADER + b'\xff\xfe\x00binary')
    daemon.send_raw(HEADER + b'[' * 60000)                           # deeply nested JSON
    daemon.send_raw(HEADER + b'{"name":"no-ids"}')
    daemon.send_raw(bytes(range(11, 256)) * 8)                      # binary noise, no newline
    daemon.send(good)
    daemon.wait_trace(good['trace_id'])

    def delta(name):
        return daemon.counter(name) - before.get(name, 0)
    wait_for(lambda: delta('invalid.invalid_json') >= 3)
    assert delta('rejected.missing_header') >= 2
    assert delta('rejected.missing_body') == 1
    assert delta('rejected.invalid_header') == 2
    assert delta('invalid.invalid_document') == 1
    assert daemon.proc.poll() is None
    assert 'rejected datagram' in daemon.log()


def test_oversize_datagram_is_rejected(daemon):
    # The largest IPv4 UDP payload is 65,507 bytes, under the 64 KiB buffer; fill it exactly.
    big = segment('big', metadata={'default': {'pad': ''}})
    overhead = len(HEADER) + len(json.dumps(big, separators=(',', ':')))
    big['metadata']['default']['pad'] = 'x' * (65507 - overhead)
    daemon.send(big)
    assert daemon.wait_trace(big['trace_id'])['summary']['name'] == 'big'


def test_out_of_order_streamed_subsegments(daemon):
    root = segment('streaming-root')
    children = [{'name': 'part-%d' % i, 'id': new_id(), 'trace_id': root['trace_id'], 'parent_id': root['id'],
                 'type': 'subsegment', 'start_time': root['start_time'] + i * 0.001,
                 'end_time': root['start_time'] + i * 0.001 + 0.0005} for i in range(40)]
    running = dict(root, in_progress=True)
    del running['end_time']
    daemon.send(running)
    daemon.send(*reversed(children))
    daemon.send(root)
    trace = daemon.wait_trace(root['trace_id'], documents=41)
    assert trace['summary']['in_progress'] == 0
    assert [c['name'] for c in trace['roots'][0]['children']] == ['part-%d' % i for i in range(40)]


def test_burst_without_loss(daemon):
    before = daemon.counter('stored')
    docs = [segment('burst') for _ in range(2000)]
    daemon.send(*docs)
    daemon.wait_stored(before + 2000, timeout=20)
    assert daemon.counter('dropped.queue_full') == 0
