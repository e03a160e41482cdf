"""Our SDK emitting to a real daemon process: nested, streamed and failing entities end up as one tree."""
import pytest

from .conftest import wait_for

recorder_module = pytest.importorskip('aws_like_sdk.core.recorder')
context_module = pytest.importorskip('aws_like_sdk.core.context')


@pytest.fixture
def sdk(daemon):
    rec = recorder_module.AWSXRayRecorder()
    rec.configure(sampling=False, context=context_module.Context(), service='sdk-it',
                  daemon_address='%s:%d' % daemon.udp, streaming_threshold=5)
    yield rec
    rec.clear_trace_entities()


def test_sdk_segments_with_streaming_and_exceptions(daemon, sdk):
    @sdk.capture('leaf')
    def leaf(i):
        return i

    with sdk.in_segment('sdk-it') as segment:
        segment.put_annotation('order_id', 'o-42')
        segment.put_metadata('payload', {'items': 3})
        with sdk.in_subsegment('batch'):
            for i in range(12):   # over the streaming threshold: children are sent on their own
                leaf(i)
        with pytest.raises(ValueError):
            with sdk.in_subsegment('explode'):
                raise ValueError('kaboom')
        trace_id = segment.trace_id

    trace = daemon.wait_trace(trace_id)
    wait_for(lambda: sum(1 for _ in _names(daemon.trace(trace_id)['roots'])) >= 15)
    trace = daemon.trace(trace_id)
    root = trace['roots'][0]
    assert root['name'] == 'sdk-it' and root['annotations'] == {'order_id': 'o-42'}
    names = list(_names(trace['roots']))
    assert names.count('leaf') == 12 and 'explode' in names
    explode = next(n for n in _nodes(trace['roots']) if n['name'] == 'explode')
    assert explode['cause']['exceptions'][0]['message'] == 'kaboom'
    found = daemon.get('/api/traces?annotation=order_id%3Do-42')['traces']
    assert [t['trace_id'] for t in found] == [trace_id]


def _nodes(roots):
    stack = list(roots)
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node['children'])


def _names(roots):
    return (n['name'] for n in _nodes(roots))
